"""Benchmark the routing evaluation on the paper's full grid, against a straightforward
per-setting pandas loop.

Grid: 12 SLMs × 15 datasets × 8 UQ methods × 4 LLMs × 3 proxy seeds (× 6 k values of the
sensitivity sweep), the paper's partially in-domain setting and its three named shifts,
``--n`` queries per dataset, synthetic artifacts written with uqroute.io into a temporary
directory (not timed). It also prints the median proxy distances in both readings.

The vectorised evaluation (uqroute.routing.load_inputs + evaluate) runs on the whole grid.
The baseline (sort and slice a pandas frame per (setting, r), sklearn per bootstrap
resample, one permutation per Monte-Carlo draw, pandas groupby sampling per proxy) is timed
on ``--baseline-units`` settings of each kind (AUC cell, curve setting, proxy setting) and
extrapolated linearly to the grid's counts (running it in full would take hours); both
times and the ratio are printed, together with the largest difference between the two
implementations' AUCs, curves and relative accuracies on the timed settings.

    .venv/bin/python benchmarks/bench_routing.py            # full grid
    .venv/bin/python benchmarks/bench_routing.py --small    # 2 SLMs × 5 datasets, quick check
    .venv/bin/python benchmarks/bench_routing.py --readings # the two proxy readings (docs/routing.md)
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time

import numpy as np
import pandas as pd
import polars as pl
from sklearn.metrics import roc_auc_score

from uqroute.routing import evaluate, load_inputs, resolve
from uqroute.routing.synthetic import DOMAINS, write_synthetic

METHODS = [
    "avg_token_prob",
    "perplexity",
    "ptrue",
    "jaccard_degree",
    "verbal_1s",
    "verbal_2s",
    "trained_probe",
    "ood_probe",
]
COMMONSENSE = ["boolq", "commonsenseqa", "hellaswag", "openbookqa", "piqa", "socialiqa", "truthfulqa", "winogrande"]
PAPER_SHIFTS = {  # config/paper.yaml
    "math_to_commonsense": {"sources": ["gsm8k", "aqua", "multiarith", "svamp"], "targets": ["truthfulqa"]},
    "commonsense_to_math": {"sources": COMMONSENSE, "targets": ["aqua"]},
    "commonsense_conversational_to_math": {"sources": COMMONSENSE + ["coqa"], "targets": ["aqua"]},
}


# ------------------------------------------------------------------ straightforward baseline
def _tie_avg_sum(df: pd.DataFrame, m: int, col: str) -> float:
    """Sum of ``col`` over the m least confident rows, ties at the cut averaged."""
    if m == 0:
        return 0.0
    srt = df.sort_values(["conf", "id"])
    v = srt["conf"].iloc[m - 1]
    below = srt[srt["conf"] < v]
    tie = srt[srt["conf"] == v]
    return below[col].sum() + (m - len(below)) * tie[col].mean()


def _frame(inputs, slm, dataset, method, llm=None) -> pd.DataFrame:
    cell = inputs.cells[(slm, dataset)]
    df = pd.DataFrame({"id": cell.ids, "conf": cell.conf[method], "s": cell.slm})
    if llm is not None:
        df["l"] = cell.llm[llm]
    return df.dropna().reset_index(drop=True)


def baseline_auc(inputs, slm, dataset, method, p, rng) -> float:
    """sklearn AUC and a bootstrap CI with one sklearn call per resample."""
    base = _frame(inputs, slm, dataset, method)
    s = base["s"].to_numpy()
    auc = roc_auc_score(s, base["conf"]) if 0 < s.sum() < len(s) else float("nan")
    boots = []
    for _ in range(p["bootstrap"]):
        b = base.sample(len(base), replace=True, random_state=int(rng.integers(2**31)))
        if 0 < b["s"].sum() < len(b):
            boots.append(roc_auc_score(b["s"], b["conf"]))
    np.percentile(boots, [2.5, 97.5])
    return auc


def baseline_curves(inputs, slm, dataset, method, llm, p, grid, rng):
    """Oracle curve, relative accuracy and Monte-Carlo random routing, one ratio at a time."""
    df = _frame(inputs, slm, dataset, method, llm)
    df["g"] = df["l"] - df["s"]
    n = len(df)
    curve = np.array([df["s"].mean() + _tie_avg_sum(df, math.ceil(round(r * n, 9)), "g") / n for r in grid])
    rel = []
    for x in grid[grid < 1]:
        m = math.ceil(round(x * n, 9))
        if m >= n:
            continue
        ks = (df["s"].sum() - _tie_avg_sum(df, m, "s")) / (n - m)
        kl = (df["l"].sum() - _tie_avg_sum(df, m, "l")) / (n - m)
        rel.append(ks / kl if kl > 0 else np.nan)
    mc = []
    for _ in range(p["random_mc"]):
        perm = df.sample(frac=1.0, random_state=int(rng.integers(2**31)))
        mc.append([df["s"].mean() + perm["g"].iloc[: math.ceil(round(r * n, 9))].sum() / n for r in grid])
    np.mean(mc, axis=0), np.std(mc, axis=0, ddof=1)
    return curve, np.array(rel)


def baseline_proxy(inputs, slm, method, target, sources, llm, p, grid, oracle) -> list[float]:
    """Proxy routing data for one (target, sources, LLM): pandas bins, groupby sampling, per-ratio tie-aware thresholds."""
    df = _frame(inputs, slm, target, method, llm)
    n = len(df)
    pool = pd.concat([pd.DataFrame({"conf": inputs.cells[(slm, d)].conf[method]}) for d in sources]).dropna()
    pool["bin"] = pd.cut(pool["conf"], p["bins"], labels=False, include_lowest=True)
    out = []
    for k in sorted({p["k"], *p["k_sweep"]}):
        for seed in p["seeds"]:
            sample = pool.groupby("bin", group_keys=False)[["conf"]].apply(
                lambda g, k=k, seed=seed: g.sample(frac=k, random_state=seed)
            )["conf"]
            prox = []
            for r in grid:
                if r <= 0 or r >= 1:
                    routed = pd.Series(r >= 1, index=df.index, dtype=float)
                else:
                    t = sample.quantile(r)
                    tied = (sample == t).mean()
                    q = min(max((r - (sample < t).mean()) / tied, 0.0), 1.0) if tied > 0 else 0.0
                    routed = (df["conf"] < t).astype(float) + q * (df["conf"] == t)
                prox.append(((df["l"] * routed).sum() + (df["s"] * (1 - routed)).sum()) / n)
            out.append(float(np.sqrt(np.mean((np.array(prox) - oracle) ** 2))))
    return out


def readings(proxy: pl.DataFrame, k: float) -> None:
    """Median distances to the oracle curve at the configured k, per kind of setting (docs/routing.md)."""
    kind = (
        pl.when(pl.col("setting") == "partial_in_domain")
        .then(pl.lit("partial_in_domain"))
        .otherwise(pl.lit("named shifts"))
    )
    med = (
        proxy.filter((pl.col("k") - k).abs() < 1e-9)
        .with_columns(kind.alias("kind"))
        .group_by("kind")
        .agg(
            pl.len().alias("rows"), *[pl.col(c).median() for c in ("rms", "rms_realised", "rms_random", "budget_error")]
        )
        .sort("kind")
    )
    for r in med.iter_rows(named=True):
        print(
            f"readings at k={k} ({r['kind']}, {r['rows']} rows, medians): rms at requested r {r['rms']:.4f}, "
            f"along realised r {r['rms_realised']:.4f}, random {r['rms_random']:.4f}, budget error {r['budget_error']:.4f}"
        )


def readings_experiment() -> None:
    """The two proxy readings on HellaSwag-sized targets (10 042 queries), three situations:
    identical confidence distributions in pool and target; the synthetic grid (each dataset's
    distribution moves with its accuracy); and a strong domain shift (math logits + 3)."""
    from uqroute.routing import (
        ProxyPool,
        apply_thresholds,
        oracle_curve,
        ratio_grid,
        rms,
        rms_realised,
        tie_aware_thresholds,
    )

    grid, n = ratio_grid(0.01), 10042
    rng = np.random.default_rng(0)

    def draw(size, acc):
        s = (rng.random(size) < acc).astype(float)
        return 1 / (1 + np.exp(-(0.8 * (2 * s - 1) + rng.normal(0, 1, size)))), s

    rows = []
    for seed in (50, 51, 52):
        pool, _ = draw(14 * n, 0.55)
        c, s = draw(n, 0.55)
        l_ = (rng.random(n) < 0.8).astype(float)
        order = np.argsort(c)
        cum = np.concatenate([[0], np.cumsum((l_ - s)[order])])
        orc = oracle_curve(c, s, l_, grid)
        t, q = tie_aware_thresholds(ProxyPool(pool, 30).sample(0.1, seed), grid)
        realised, acc = apply_thresholds(c[order], cum, s.mean(), t, q)
        rows.append(
            (
                rms(acc, orc),
                rms_realised(realised, acc, grid, orc),
                rms((1 - grid) * s.mean() + grid * l_.mean(), orc),
                np.mean(np.abs(realised - grid)),
            )
        )
    r = np.array(rows)
    print(
        f"identical distributions (pool 14 × {n}, target {n}, k=0.1, seeds 50-52): requested {r[:, 0].min():.4f}–{r[:, 0].max():.4f}, "
        f"realised {r[:, 1].min():.4f}–{r[:, 1].max():.4f}, random {r[:, 2].min():.4f}–{r[:, 2].max():.4f}, budget error {r[:, 3].max():.4f} max"
    )
    ds = list(DOMAINS)
    shifts = {n_: sh for n_, sh in PAPER_SHIFTS.items() if n_ != "commonsense_conversational_to_math"}
    for shift, size in ((0.0, n), (3.0, 2000)):
        with tempfile.TemporaryDirectory() as root:
            paths = write_synthetic(
                root,
                slms=["s1", "s2", "s3"],
                llms=["l"],
                datasets=ds,
                methods=["perplexity"],
                n=size,
                seed=3,
                domain_shift={"math": shift},
            )
            inp = load_inputs(*paths, slms=["s1", "s2", "s3"], llms=["l"], datasets=ds)
            t = evaluate(
                inp,
                {"bootstrap": 0, "random_mc": 0, "proxy_methods": ["perplexity"], "k_sweep": [0.1], "shifts": shifts},
                seed=0,
            )["proxy"]
        for setting, target in (
            ("partial_in_domain", "hellaswag"),
            *((n_, sh["targets"][0]) for n_, sh in shifts.items()),
        ):
            g = (
                t.filter((pl.col("setting") == setting) & (pl.col("target") == target))
                .group_by("slm")
                .agg(pl.col("rms", "rms_realised", "rms_random", "budget_error").mean())
            )
            rng_ = {c: (g[c].min(), g[c].max()) for c in ("rms", "rms_realised", "rms_random", "budget_error")}
            print(
                f"synthetic grid, math logit shift {shift}, {size} per dataset, {setting} → {target} (3 SLMs, mean over seeds): "
                + ", ".join(
                    f"{lab} {rng_[c][0]:.4f}–{rng_[c][1]:.4f}"
                    for lab, c in (
                        ("requested", "rms"),
                        ("realised", "rms_realised"),
                        ("random", "rms_random"),
                        ("budget error", "budget_error"),
                    )
                )
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="queries per dataset")
    ap.add_argument("--baseline-units", type=int, default=2, help="settings of each kind the baseline is timed on")
    ap.add_argument("--small", action="store_true", help="2 SLMs × 5 datasets × 4 methods × 2 LLMs")
    ap.add_argument(
        "--math-shift",
        type=float,
        default=0.0,
        help="add this to the confidence logits of math datasets (a domain shift)",
    )
    ap.add_argument(
        "--readings",
        action="store_true",
        help="only the two proxy readings on HellaSwag-sized targets (docs/routing.md)",
    )
    args = ap.parse_args()
    if args.readings:
        readings_experiment()
        return
    slms = [f"slm{i:02d}" for i in range(2 if args.small else 12)]
    llms = [f"llm{i}" for i in range(2 if args.small else 4)]
    datasets = list(DOMAINS)[::3] if args.small else list(DOMAINS)
    methods = METHODS[:4] + ["ood_probe"] if args.small else METHODS
    p = resolve(
        {"shifts": {n: sh for n, sh in PAPER_SHIFTS.items() if set(sh["sources"] + sh["targets"]) <= set(datasets)}}
    )
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as root:
        t = time.perf_counter()
        paths = write_synthetic(
            root,
            slms=slms,
            llms=llms,
            datasets=datasets,
            methods=methods,
            n=args.n,
            seed=1,
            null_confidence=0.05,
            domain_shift={"math": args.math_shift},
        )
        print(f"wrote synthetic artifacts in {time.perf_counter() - t:.1f} s (not timed below)")
        t, c = time.perf_counter(), time.process_time()
        inputs = load_inputs(*paths, slms=slms, llms=llms, datasets=datasets)
        t_load = time.perf_counter() - t
        # ood_probe pools use leak-free (pair-probe) scores; the sources' own scores stand in for them here,
        # so the proxy study does the same work as with the proxy_probe artifacts (which are not timed)
        if "ood_probe" in methods:
            inputs.leak_free = {
                (s, d, o): inputs.cells[(s, d)].conf["ood_probe"]
                for s in slms
                for d in datasets
                for o in datasets
                if d != o
            }
        t = time.perf_counter()
        tables = evaluate(inputs, p, seed=0)
        t_eval = time.perf_counter() - t
        cpu = time.process_time() - c
    grid = np.arange(round(1 / p["ratio_step"]) + 1) / round(1 / p["ratio_step"])
    rng = np.random.default_rng(0)
    u = args.baseline_units
    units = [
        (
            slms[i % len(slms)],
            datasets[(7 * i + 3) % len(datasets)],
            methods[(3 * i + 1) % len(methods)],
            llms[i % len(llms)],
        )
        for i in range(u)
    ]
    cur, auc, rel = tables["curves"].filter(pl.col("curve") == "uq"), tables["auc"], tables["relative_accuracy"]
    diff, t_auc, t_cur, t_prx = 0.0, 0.0, 0.0, 0.0
    for s, d, m, l in units:
        t = time.perf_counter()
        a = baseline_auc(inputs, s, d, m, p, rng)
        t_auc += time.perf_counter() - t
        t = time.perf_counter()
        c, r = baseline_curves(inputs, s, d, m, l, p, grid, rng)
        t_cur += time.perf_counter() - t
        t = time.perf_counter()
        baseline_proxy(inputs, s, p["proxy_methods"][0], d, tuple(x for x in datasets if x != d), l, p, grid, c)
        t_prx += time.perf_counter() - t
        sel = (pl.col("slm") == s) & (pl.col("dataset") == d) & (pl.col("method") == m)
        diff = max(diff, abs(auc.filter(sel)["roc_auc"][0] - a))
        diff = max(
            diff, float(np.max(np.abs(cur.filter(sel & (pl.col("llm") == l)).sort("ratio")["accuracy"].to_numpy() - c)))
        )
        diff = max(
            diff,
            float(
                np.nanmax(
                    np.abs(rel.filter(sel & (pl.col("llm") == l)).sort("excluded")["relative_accuracy"].to_numpy() - r)
                )
            ),
        )
    n_auc = len(slms) * len(datasets) * len(methods)
    n_cur = n_auc * len(llms)
    n_prx = tables["proxy"].select("slm", "llm", "target", "method", "setting").unique().height
    t_base = (t_auc * n_auc + t_cur * n_cur + t_prx * n_prx) / u
    n_proxy = tables["proxy"].height
    print(
        f"grid: {len(slms)} SLMs × {len(datasets)} datasets × {len(methods)} methods × {len(llms)} LLMs, n={args.n}; "
        f"seeds {p['seeds']}, k {sorted({p['k'], *p['k_sweep']})}, bootstrap {p['bootstrap']}, random_mc {p['random_mc']}"
    )
    print(
        f"rows: curves {tables['curves'].height}, auc {tables['auc'].height}, proxy {n_proxy}, "
        f"relative_accuracy {tables['relative_accuracy'].height}, proxy_curves {tables['proxy_curves'].height}"
    )
    print(f"load average at start (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    print(f"vectorised: load {t_load:.1f} s + evaluate {t_eval:.1f} s = {t_load + t_eval:.1f} s wall ({cpu:.1f} s CPU)")
    print(
        f"baseline:   per unit {t_auc / u:.2f} s × {n_auc} AUC cells + {t_cur / u:.2f} s × {n_cur} curve settings + "
        f"{t_prx / u:.2f} s × {n_prx} proxy settings = {t_base:.0f} s extrapolated ({u} units timed)"
    )
    print(
        f"speed-up:   {t_base / (t_load + t_eval):.0f}×  (max |difference| from the baseline on the timed units: {diff:.2e})"
    )
    readings(tables["proxy"], float(p["k"]))


if __name__ == "__main__":
    main()
