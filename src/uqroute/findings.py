"""The paper's claims, measured: small summary tables of a results folder (docs/findings.md).

Chuang et al. (arXiv:2502.04428) make four claims this module turns into tables that can be
committed beside the text that quotes them:

1. uncertainty–correctness alignment differs by UQ method (§3.2 Observation 1, Figure 1):
   :func:`alignment_by_method` (mean ROC-AUC per SLM and method, and how many datasets have a
   95 % CI above or below 0.5) and :func:`method_effect` (Friedman test of the methods' AUCs
   across datasets, ``scipy.stats.friedmanchisquare``);
2. routing gain follows alignment (Observation 3, Figure 2): :func:`gain_vs_alignment`
   (Spearman correlation of ROC-AUC and RouteLLM's APGR over (dataset, method) cells);
3. confidence distributions depend more on the SLM and the method than on the dataset (§4.4
   Insight 1, Figures 4–5): :func:`distribution_shift` (mean two-sample Kolmogorov–Smirnov
   distance between datasets for one SLM and method, against that between SLMs for one
   dataset and method; KS is scale-free, so methods with different ranges compare);
4. proxy routing data predicts the routing curve on unseen datasets better than random routing
   (§4.4 Insight 2, Tables 4–5): :func:`proxy_vs_random` (per scenario, how often the proxy
   curve is closer to the oracle than random routing, in both readings of docs/routing.md, with
   the realised budget error and W1 beside them).

:func:`summary_tables` builds them all (plus :func:`accuracy_table` and the per-dataset
:func:`auc_table`) from a results folder; ``scripts/findings_tables.py`` writes them as CSV.
Floats are rounded to :data:`DIGITS` decimals, so the numbers a document quotes are the
numbers the committed tables hold (``tests/test_findings.py`` checks it).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import polars as pl

from . import io
from .results import artifact_path  # an artifact's file inside a results folder
from .schema import ARTIFACTS

__all__ = [
    "DIGITS",
    "accuracy_table",
    "BUDGETS",
    "cut_at_budgets",
    "auc_table",
    "alignment_by_method",
    "method_effect",
    "gain_vs_alignment",
    "distribution_shift",
    "proxy_vs_random",
    "summary_tables",
    "write_tables",
    "markdown",
    "TABLE_BLOCK",
    "select",
    "refresh_doc",
]

#: Decimals kept in the summary tables.
DIGITS = 3
STAGE = "findings"


def _slms(root: Path) -> list[str]:
    folder = root / "routing"
    return (
        sorted(p.name for p in folder.iterdir() if p.is_dir() and (p / "auc.parquet").is_file())
        if folder.is_dir()
        else []
    )


def _round(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(pl.col(pl.Float64).round(DIGITS))


def _concat(root: Path, artifact: str, slms: list[str]) -> pl.DataFrame:
    frames = [io.read_artifact(artifact_path(root, artifact, slm=s), artifact, stage=STAGE) for s in slms]
    if not frames:
        return pl.DataFrame(schema=ARTIFACTS[artifact].polars_schema())
    return pl.concat(frames, how="vertical_relaxed")


# ------------------------------------------------------------------ accuracy


def accuracy_table(root: str | Path) -> pl.DataFrame:
    """Accuracy and truncated fraction of every model on the evaluation rows of every dataset.

    Columns: model, dataset, n (evaluation rows), accuracy (mean of ``correct``; undecided rows
    left out), truncated (fraction of evaluation replies cut off by the token budget).
    """
    root = Path(root)
    rows = []
    folder = root / "correctness"
    for model in sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        for path in sorted((folder / model).glob("*.parquet")):
            if "." in path.stem:
                continue  # agreement / quality files
            dataset = path.stem
            data = io.read_artifact(artifact_path(root, "data", dataset=dataset), "data", columns=["role"], stage=STAGE)
            eval_ids = data.filter(pl.col("role") == "eval")["id"]
            corr = io.read_artifact(path, "correctness", columns=["correct", "label_source"], stage=STAGE)
            corr = io.align_ids(eval_ids.to_list(), corr, path, what="correctness", stage=STAGE)
            rows.append(
                {
                    "model": model,
                    "dataset": dataset,
                    "n": corr.height,
                    "accuracy": corr["correct"].cast(pl.Float64).mean(),
                    "truncated": float((corr["label_source"] == "truncated").mean()) if corr.height else None,
                }
            )
    schema = {"model": pl.Utf8, "dataset": pl.Utf8, "n": pl.Int64, "accuracy": pl.Float64, "truncated": pl.Float64}
    return _round(pl.DataFrame(rows, schema=schema))


#: Token budgets :func:`cut_at_budgets` evaluates.
BUDGETS = (12, 24, 32, 48, 64, 128, 256, 384, 512)


def cut_at_budgets(root: str | Path, budgets=BUDGETS) -> pl.DataFrame:
    """Share of each model's greedy evaluation replies a smaller token budget would have cut off.

    A reply of n tokens that ended by itself is cut by every budget below n; one the run's own
    budget cut off (``finish_reason`` ``length``) is cut by every budget up to its length, and
    counted as cut beyond it too (its real length is unknown), so budgets above the run's own are
    lower bounds on the cut share (``run_budget`` says where that starts). Columns: model, dataset,
    n (evaluation replies), run_budget (the longest reply, = the run's budget when one was cut),
    then ``cut_<B>`` per budget B.
    """
    root = Path(root)
    rows = []
    folder = root / "generations"
    for model in sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        for path in sorted((folder / model).glob("*.parquet")):
            dataset = path.stem
            data = io.read_artifact(artifact_path(root, "data", dataset=dataset), "data", columns=["role"], stage=STAGE)
            eval_ids = data.filter(pl.col("role") == "eval")["id"]
            gen = io.read_artifact(path, "generations", columns=["tokens", "finish_reason"], stage=STAGE)
            gen = gen.filter(pl.col("id").is_in(eval_ids.implode()))
            n = gen["tokens"].list.len().fill_null(0).to_numpy()
            cut_by_run = (gen["finish_reason"] == "length").fill_null(False).to_numpy()
            row = {"model": model, "dataset": dataset, "n": gen.height, "run_budget": int(n.max()) if len(n) else None}
            for b in budgets:
                row[f"cut_{b}"] = float(np.mean((n > b) | cut_by_run)) if len(n) else None
            rows.append(row)
    schema = {
        "model": pl.Utf8,
        "dataset": pl.Utf8,
        "n": pl.Int64,
        "run_budget": pl.Int64,
        **{f"cut_{b}": pl.Float64 for b in budgets},
    }
    return _round(pl.DataFrame(rows, schema=schema))


# ------------------------------------------------------------------ claim 1: alignment differs by method


def auc_table(root: str | Path) -> pl.DataFrame:
    """ROC-AUC with its 95 % bootstrap CI per (SLM, dataset, method), from every SLM's ``auc`` table."""
    root = Path(root)
    auc = _concat(root, "auc", _slms(root))
    return _round(
        auc.select("slm", "dataset", "method", "n", "slm_accuracy", "roc_auc", "roc_auc_lo", "roc_auc_hi").sort(
            "slm", "dataset", "method"
        )
    )


def alignment_by_method(auc: pl.DataFrame) -> pl.DataFrame:
    """Per (SLM, method): datasets with an AUC, its mean / min / max, and how many datasets have a
    95 % CI entirely above 0.5 (``n_above``: aligned) or entirely below (``n_below``: inverted)."""
    scored = auc.filter(pl.col("roc_auc").is_not_null())
    return _round(
        scored.group_by("slm", "method")
        .agg(
            pl.len().alias("n_datasets"),
            pl.col("roc_auc").mean().alias("mean_auc"),
            pl.col("roc_auc").min().alias("min_auc"),
            pl.col("roc_auc").max().alias("max_auc"),
            (pl.col("roc_auc_lo") > 0.5).sum().cast(pl.Int64).alias("n_above"),
            (pl.col("roc_auc_hi") < 0.5).sum().cast(pl.Int64).alias("n_below"),
        )
        .sort("slm", "mean_auc", "method", descending=[False, True, False])
    )


def method_effect(auc: pl.DataFrame) -> pl.DataFrame:
    """Friedman test per SLM: do the methods' AUCs differ beyond chance, with datasets as blocks?

    A method with an AUC on at most half of the datasets (a verbalized confidence the SLM hardly
    ever states) is left out first; then the test uses the datasets on which every remaining method
    has an AUC (a one-class dataset has none). Columns: slm, n_datasets, n_methods, statistic,
    p_value (null with fewer than 2 datasets or 3 methods, where the test is undefined).
    """
    from scipy.stats import friedmanchisquare

    rows = []
    for slm in sorted(auc["slm"].unique().to_list()):
        wide = auc.filter((pl.col("slm") == slm) & pl.col("roc_auc").is_not_null()).pivot(
            on="method", index="dataset", values="roc_auc"
        )
        sparse = [c for c in wide.columns if c != "dataset" and wide[c].is_not_null().sum() * 2 <= wide.height]
        wide = wide.drop(sparse).drop_nulls()
        methods = [c for c in wide.columns if c != "dataset"]
        stat = p = None
        if wide.height >= 2 and len(methods) >= 3:
            res = friedmanchisquare(*[wide[m].to_numpy() for m in methods])
            stat, p = float(res.statistic), float(res.pvalue)
        rows.append({"slm": slm, "n_datasets": wide.height, "n_methods": len(methods), "statistic": stat, "p_value": p})
    schema = {
        "slm": pl.Utf8,
        "n_datasets": pl.Int64,
        "n_methods": pl.Int64,
        "statistic": pl.Float64,
        "p_value": pl.Float64,
    }
    return _round(pl.DataFrame(rows, schema=schema))


# ------------------------------------------------------------------ claim 2: routing gain follows alignment


def gain_vs_alignment(auc: pl.DataFrame, summary: pl.DataFrame) -> pl.DataFrame:
    """Spearman correlation between ROC-AUC and APGR over (dataset, method) cells, per (SLM, LLM).

    Cells where the LLM is not better than the SLM (APGR undefined) or the AUC is null are left out.
    Columns: slm, llm, n_cells, spearman_rho, p_value.
    """
    from scipy.stats import spearmanr

    joined = summary.join(auc.select("slm", "dataset", "method", "roc_auc"), on=["slm", "dataset", "method"])
    joined = joined.filter(
        pl.col("roc_auc").is_not_null()
        & pl.col("apgr").is_not_null()
        & (pl.col("llm_accuracy") > pl.col("slm_accuracy"))
    )
    rows = []
    for (slm, llm), g in sorted(joined.group_by("slm", "llm"), key=lambda t: t[0]):
        rho = p = None
        if g.height >= 3 and g["roc_auc"].n_unique() > 1 and g["apgr"].n_unique() > 1:
            res = spearmanr(g["roc_auc"].to_numpy(), g["apgr"].to_numpy())
            rho, p = float(res.statistic), float(res.pvalue)
        rows.append({"slm": slm, "llm": llm, "n_cells": g.height, "spearman_rho": rho, "p_value": p})
    schema = {"slm": pl.Utf8, "llm": pl.Utf8, "n_cells": pl.Int64, "spearman_rho": pl.Float64, "p_value": pl.Float64}
    return _round(pl.DataFrame(rows, schema=schema))


# ------------------------------------------------------------------ claim 3: what confidence distributions depend on


def distribution_shift(confidences: pl.DataFrame) -> pl.DataFrame:
    """Mean two-sample KS distance between datasets (same SLM and method) and between SLMs (same
    dataset and method), per method.

    ``confidences``: columns slm, dataset, method, confidence (e.g. :func:`uqroute.results.tidy`).
    ``ks_datasets`` averages over every SLM and every pair of datasets; ``ks_slms`` over every
    dataset and every pair of SLMs (null with one SLM). ``ratio`` = ks_datasets / ks_slms: below 1
    the SLM moves the distribution more than the dataset does (the paper's Insight 1).
    """
    from scipy.stats import ks_2samp

    c = confidences.filter(pl.col("confidence").is_not_null())
    groups = {k: g["confidence"].to_numpy() for k, g in c.group_by("slm", "dataset", "method")}
    slms = sorted({k[0] for k in groups})
    datasets = sorted({k[1] for k in groups})
    rows = []
    for method in sorted({k[2] for k in groups}):
        between_d = [
            ks_2samp(groups[(s, a, method)], groups[(s, b, method)]).statistic
            for s in slms
            for a, b in itertools.combinations(datasets, 2)
            if (s, a, method) in groups and (s, b, method) in groups
        ]
        between_s = [
            ks_2samp(groups[(a, d, method)], groups[(b, d, method)]).statistic
            for d in datasets
            for a, b in itertools.combinations(slms, 2)
            if (a, d, method) in groups and (b, d, method) in groups
        ]
        kd = float(np.mean(between_d)) if between_d else None
        ks = float(np.mean(between_s)) if between_s else None
        rows.append(
            {
                "method": method,
                "n_dataset_pairs": len(between_d),
                "ks_datasets": kd,
                "n_slm_pairs": len(between_s),
                "ks_slms": ks,
                "ratio": kd / ks if kd is not None and ks else None,
            }
        )
    schema = {
        "method": pl.Utf8,
        "n_dataset_pairs": pl.Int64,
        "ks_datasets": pl.Float64,
        "n_slm_pairs": pl.Int64,
        "ks_slms": pl.Float64,
        "ratio": pl.Float64,
    }
    return _round(pl.DataFrame(rows, schema=schema))


# ------------------------------------------------------------------ claim 4: proxy routing data vs random routing


def proxy_vs_random(proxy: pl.DataFrame, k: float) -> pl.DataFrame:
    """Per (SLM, LLM, scenario, method) at sampling ratio ``k``, seeds averaged per target first.

    ``scenario`` is ``partial_in_domain`` or a shift's name. Columns: n_targets; ``better_requested``
    / ``better_realised``: share of targets whose proxy curve is closer to the oracle than random
    routing (RMS at the requested ratio / along the realised ratio, docs/routing.md); medians of
    rms, rms_realised, rms_random, budget_error and w1.
    """
    at_k = proxy.filter((pl.col("k") - k).abs() < 1e-9)
    per_target = at_k.group_by("slm", "llm", "setting", "method", "target").agg(
        pl.col("rms").mean(),
        pl.col("rms_realised").mean(),
        pl.col("rms_random").mean(),
        pl.col("budget_error").mean(),
        pl.col("w1").mean(),
    )
    out = (
        per_target.group_by("slm", "llm", "setting", "method")
        .agg(
            pl.len().alias("n_targets"),
            (pl.col("rms") < pl.col("rms_random")).mean().alias("better_requested"),
            (pl.col("rms_realised") < pl.col("rms_random")).mean().alias("better_realised"),
            pl.col("rms").median().alias("median_rms"),
            pl.col("rms_realised").median().alias("median_rms_realised"),
            pl.col("rms_random").median().alias("median_rms_random"),
            pl.col("budget_error").median().alias("median_budget_error"),
            pl.col("w1").median().alias("median_w1"),
        )
        .rename({"setting": "scenario"})
        .sort("slm", "llm", "scenario", "method")
    )
    return _round(out)


# ------------------------------------------------------------------ all of them


def summary_tables(results_dir: str | Path, *, k: float = 0.1) -> dict[str, pl.DataFrame]:
    """Every summary table of a results folder (the pipeline's ``results/``), by name."""
    from .results import tidy

    root = Path(results_dir)
    slms = _slms(root)
    auc_full = _concat(root, "auc", slms)
    summary = _concat(root, "routing_summary", slms)
    proxy = _concat(root, "proxy", slms)
    conf = tidy(root, slms=slms, llms=[]).select("slm", "dataset", "method", "confidence")
    return {
        "accuracy": accuracy_table(root),
        "budgets": cut_at_budgets(root),
        "auc": auc_table(root),
        "alignment_by_method": alignment_by_method(auc_full),
        "method_effect": method_effect(auc_full),
        "gain_vs_alignment": gain_vs_alignment(auc_full, summary),
        "distribution_shift": distribution_shift(conf),
        "proxy_vs_random": proxy_vs_random(proxy, k),
    }


def write_tables(tables: dict[str, pl.DataFrame], out_dir: str | Path) -> list[Path]:
    """Write each table as ``<out_dir>/<name>.csv`` (atomically); returns the paths."""
    out = []
    for name, df in tables.items():
        path = Path(out_dir) / f"{name}.csv"
        with io.atomic_path(path, suffix=".csv") as tmp:
            df.write_csv(tmp, float_precision=DIGITS)
        out.append(path)
    return out


def markdown(df: pl.DataFrame) -> str:
    """A GitHub markdown table of ``df`` as written in the CSV (nulls as ``–``)."""

    def fmt(v):
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:.{DIGITS}f}"
        return str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.iter_rows()]
    return "\n".join(lines) + "\n"


#: A table block of docs/findings.md: ``<!-- table: NAME key=value … columns=a,b -->`` then the
#: markdown of that committed table (filtered, columns selected), then ``<!-- end -->``.
TABLE_BLOCK = re.compile(r"<!-- table: (?P<name>[a-z_]+)(?P<filter>[^>]*)-->\n(?P<body>.*?)<!-- end -->", re.S)


def select(df: pl.DataFrame, spec: str) -> pl.DataFrame:
    """The rows and columns a block's ``key=value`` filters and ``columns=a,b`` name."""
    cols = None
    for part in spec.split():
        key, value = part.split("=", 1)
        if key == "columns":
            cols = value.split(",")
        else:
            df = df.filter(pl.col(key).cast(pl.Utf8) == value)
    return df.select(cols) if cols else df


def refresh_doc(text: str, tables: dict[str, pl.DataFrame]) -> str:
    """``text`` with every table block's body rewritten from ``tables`` (a block naming a table that
    is not there raises ``KeyError``)."""

    def body(m):
        name = m["name"]
        if name not in tables:
            raise KeyError(f"the document quotes table {name!r}, which is not among {sorted(tables)}")
        return f"<!-- table: {name}{m['filter']}-->\n{markdown(select(tables[name], m['filter'].strip()))}<!-- end -->"

    return TABLE_BLOCK.sub(body, text)
