"""The `routing` rule: read UQ scores and correctness, write every routing table.

:func:`load_inputs` joins the artifacts, :func:`evaluate` computes all tables in memory
(pure; used by the benchmark), :func:`run_routing` writes them atomically after
everything has been computed, so a failure leaves no partial output.
"""

from __future__ import annotations

import itertools
import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import polars as pl

from .. import io
from ..schema import ARTIFACTS, check_frame
from .alignment import alignment, bootstrap_weights
from .curves import (
    oracle_curve,
    random_curve,
    random_mc_curve,
    random_permutations,
    ratio_grid,
    relative_accuracy,
    restrict_permutations,
    routed_counts,
    upper_curve,
)
from .proxy import SETTINGS, ProxyPool, apply_thresholds, proxy_thresholds, rms, source_datasets, w1
from .summary import apgr, cpt
from .tables import build_tables, write_tables

log = logging.getLogger(__name__)

__all__ = ["RoutingInputError", "RoutingInputs", "load_inputs", "evaluate", "run_routing", "OUTPUT_KEYS", "DEFAULTS"]

OUTPUT_KEYS = ("auc", "curves", "proxy", "summary", "relative_accuracy", "proxy_curves", "table4_csv", "table4_md", "table5_csv", "table5_md")
DEFAULTS = {
    "ratio_step": 0.01,
    "bins": 30,
    "k": 0.1,
    "seeds": [50, 51, 52],
    "k_sweep": [0.01, 0.02, 0.05, 0.1, 0.2, 0.3],
    "bootstrap": 200,
    "random_mc": 200,
    "proxy_methods": ["perplexity", "ood_probe"],
}


class RoutingInputError(ValueError):
    """An input artifact of the routing stage is missing, malformed or inconsistent."""


@dataclass
class Cell:
    """One (SLM, dataset): confidences per method and correctness, rows aligned by id."""

    ids: np.ndarray
    conf: dict[str, np.ndarray]  # method → float array with NaN for null
    slm: np.ndarray  # float 0/1, NaN for null
    llm: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class RoutingInputs:
    slms: list[str]
    llms: list[str]
    datasets: list[str]
    domains: dict[str, str]
    methods: list[str]
    cells: dict[tuple[str, str], Cell]


def _rng(seed: int, *names: str) -> np.random.Generator:
    """A generator seeded from the run seed and names (stable across processes, unlike hash())."""
    return np.random.default_rng([int(seed)] + [zlib.crc32(n.encode()) for n in names])


def _match(paths: Sequence[str], keys: list[tuple[str, ...]], what: str) -> dict[tuple[str, ...], str]:
    """Pair expand()-ordered ``paths`` with ``keys``, checking each path ends in ``…/a/b.parquet``."""
    paths = [str(p) for p in paths]
    if len(paths) != len(keys):
        raise RoutingInputError(f"routing: {len(paths)} {what} paths for {len(keys)} expected ({keys[:3]}…)")
    out = {}
    for key, p in zip(keys, paths):
        parts = Path(p).with_suffix("").parts[-len(key):]
        if tuple(parts) != tuple(key):
            raise RoutingInputError(f"routing: {what} path {p} does not belong to {'/'.join(key)} (inputs must follow expand() order)")
        out[key] = p
    return out


def _read(path: str, columns: list[str], what: str) -> pl.DataFrame:
    if not Path(path).exists():
        raise RoutingInputError(f"routing: {what} file {path} does not exist")
    df = pl.read_parquet(path)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise RoutingInputError(f"routing: {what} file {path} lacks columns {missing} (has {df.columns})")
    if df["id"].is_duplicated().any():
        dup = df.filter(pl.col("id").is_duplicated())["id"][0]
        raise RoutingInputError(f"routing: {what} file {path} has duplicate id {dup!r}")
    return df


def _aligned(ids: pl.Series, df: pl.DataFrame, col: str, path: str, what: str) -> np.ndarray:
    """``df[col]`` in the order of ``ids``; every id must be present."""
    joined = pl.DataFrame({"id": ids}).join(df.select("id", col), on="id", how="left", maintain_order="left")
    missing = pl.DataFrame({"id": ids}).join(df.select("id"), on="id", how="anti")
    if missing.height:
        raise RoutingInputError(f"routing: {what} file {path} lacks {missing.height} query ids of the UQ table, e.g. {missing['id'][0]!r}")
    return joined[col].cast(pl.Float64).to_numpy()


def load_inputs(uq_paths, correctness_paths, data_paths, *, slms, llms, datasets) -> RoutingInputs:
    """Read and align every input; paths are lists in ``expand()`` order (model outer, dataset inner)."""
    slms, llms, datasets = list(slms), list(llms), list(datasets)
    uq = _match(uq_paths, list(itertools.product(slms, datasets)), "uq")
    corr = _match(correctness_paths, list(itertools.product(slms + llms, datasets)), "correctness")
    data = _match(data_paths, [(d,) for d in datasets], "data")
    domains, eval_ids = {}, {}
    for d in datasets:
        df = _read(data[(d,)], ["id", "domain", "role"], "data").filter(pl.col("role") == "eval")
        doms = df["domain"].unique().to_list()
        if len(doms) != 1:
            raise RoutingInputError(f"routing: data file {data[(d,)]} has {len(doms)} domains {doms} among its eval rows; expected one")
        domains[d], eval_ids[d] = doms[0], set(df["id"].to_list())
    cells, methods = {}, []
    for (slm, d), path in uq.items():
        df = _read(path, ["id"], "uq")
        ids = set(df["id"].to_list())
        if ids != eval_ids[d]:
            extra, miss = ids - eval_ids[d], eval_ids[d] - ids
            raise RoutingInputError(
                f"routing: uq file {path} does not hold exactly the eval rows of {data[(d,)]}: "
                f"{len(extra)} unknown ids (e.g. {sorted(extra)[:1]}), {len(miss)} missing (e.g. {sorted(miss)[:1]})"
            )
        df = df.sort("id")
        conf = {}
        for m in df.columns[1:]:
            if not df.schema[m].is_numeric():
                raise RoutingInputError(f"routing: uq file {path} column {m!r} has type {df.schema[m]}, expected Float64")
            x = df[m].cast(pl.Float64).fill_nan(None).to_numpy()
            if np.isinf(x).any():
                row = int(np.flatnonzero(np.isinf(x))[0])
                raise RoutingInputError(f"routing: uq file {path} column {m!r} is infinite for id {df['id'][row]!r}")
            conf[m] = x
            if m not in methods:
                methods.append(m)
        cell = Cell(ids=df["id"].to_numpy(), conf=conf, slm=np.array([]))
        c = _read(corr[(slm, d)], ["id", "correct"], "correctness")
        cell.slm = _aligned(df["id"], c, "correct", corr[(slm, d)], "correctness")
        for llm in llms:
            c = _read(corr[(llm, d)], ["id", "correct"], "correctness")
            cell.llm[llm] = _aligned(df["id"], c, "correct", corr[(llm, d)], "correctness")
        cells[(slm, d)] = cell
    return RoutingInputs(slms, llms, datasets, domains, methods, cells)


class _Blocks:
    """Long tables built from per-key numeric blocks without a Python loop per row."""

    def __init__(self, key_cols: list[str]):
        self.key_cols, self.keys, self.data = key_cols, [], []

    def add(self, key: tuple, **arrays):
        self.keys.append(key)
        self.data.append(arrays)

    def frame(self, schema: dict[str, pl.DataType]) -> pl.DataFrame:
        if not self.keys:
            return pl.DataFrame(schema=schema)
        lengths = np.array([len(next(iter(a.values()))) for a in self.data])
        idx = np.repeat(np.arange(len(self.keys)), lengths)
        keys = pl.DataFrame(self.keys, schema=self.key_cols, orient="row").select(pl.all().gather(idx))
        cols = {}
        for name in self.data[0]:
            cols[name] = np.concatenate([a[name] for a in self.data])
        df = pl.concat([keys, pl.DataFrame(cols)], how="horizontal")
        return df.select([pl.col(c).cast(t) for c, t in schema.items()])


def _params(params: Mapping | None) -> dict:
    p = dict(DEFAULTS)
    p.update({k: v for k, v in (params or {}).items() if v is not None})
    unknown = set(p) - set(DEFAULTS)
    if unknown:
        raise RoutingInputError(f"routing: unknown config keys {sorted(unknown)} (known: {sorted(DEFAULTS)})")
    return p


def evaluate(inputs: RoutingInputs, params: Mapping | None = None, seed: int = 0) -> dict[str, pl.DataFrame]:
    """Compute every routing table (see docs/routing.md for the definitions)."""
    p = _params(params)
    grid = ratio_grid(p["ratio_step"])
    excluded = grid[grid < 1]
    proxy_methods = inputs.methods if p["proxy_methods"] == "all" else list(p["proxy_methods"])
    absent = [m for m in proxy_methods if m not in inputs.methods]
    if absent:
        raise RoutingInputError(f"routing: proxy_methods {absent} are not columns of the uq tables (methods: {inputs.methods})")

    auc_rows, summary_rows = [], []
    curves = _Blocks(["slm", "llm", "dataset", "method", "curve"])
    rel = _Blocks(["slm", "llm", "dataset", "method"])
    targets: dict[tuple, dict] = {}  # (slm, dataset, method, llm) → state for the proxy study
    for (slm, d), cell in inputs.cells.items():
        # one set of random draws per (SLM, dataset), shared by every method and LLM
        perms = random_permutations(cell.ids.size, p["random_mc"], _rng(seed, "random_mc", slm, d)) if p["random_mc"] > 0 else None
        boot_cache, mc_cache = {}, {}
        n_null = int(np.isnan(cell.slm).sum())
        if n_null:
            log.warning("routing: %s/%s: dropped %d queries with null SLM correctness", slm, d, n_null)
        for llm in inputs.llms:
            k = int((np.isnan(cell.llm[llm]) & ~np.isnan(cell.slm)).sum())
            if k:
                log.warning("routing: %s/%s: dropped %d queries with null correctness of LLM %s", slm, d, k, llm)
        for method in [m for m in inputs.methods if m in cell.conf]:
            c_all = cell.conf[method]
            has = ~np.isnan(c_all) & ~np.isnan(cell.slm)
            n_nullc = int((np.isnan(c_all) & ~np.isnan(cell.slm)).sum())
            if n_nullc:
                log.warning("routing: %s/%s/%s: dropped %d queries with null confidence", slm, d, method, n_nullc)
            if not has.any():
                log.warning("routing: %s/%s/%s: no query has both a confidence and a label; skipped", slm, d, method)
                continue
            where = f"{slm}/{d}/{method}"
            has_key = np.packbits(has).tobytes()
            if has_key not in boot_cache:  # methods scored on the same queries share resamples
                boot_cache[has_key] = bootstrap_weights(int(has.sum()), p["bootstrap"], _rng(seed, "bootstrap", slm, d, str(zlib.crc32(has_key))))
            auc_rows.append({"slm": slm, "dataset": d, "method": method, **alignment(c_all[has], cell.slm[has], bootstrap=boot_cache[has_key], where=where)})
            # LLMs whose labels are null on the same rows share one vectorised pass
            groups: dict[bytes, list[str]] = {}
            for llm in inputs.llms:
                mask = has & ~np.isnan(cell.llm[llm])
                groups.setdefault(np.packbits(mask).tobytes(), []).append(llm)
            for llms in groups.values():
                mask = has & ~np.isnan(cell.llm[llms[0]])
                if not mask.any():
                    log.warning("routing: %s: no rows with labels of LLMs %s; skipped", where, llms)
                    continue
                c, s = c_all[mask], cell.slm[mask]
                lmat = np.stack([cell.llm[l][mask] for l in llms], axis=1)
                uq = oracle_curve(c, s, lmat, grid)
                up = upper_curve(s, lmat, grid)
                rnd = random_curve(s, lmat, grid)
                mc_key = (np.packbits(mask).tobytes(), tuple(llms))  # random routing ignores the confidence
                if mc_key not in mc_cache:
                    mc_cache[mc_key] = random_mc_curve(s, lmat, grid, restrict_permutations(perms, mask)) if perms is not None else None
                mc = mc_cache[mc_key]
                excl = excluded[routed_counts(excluded, s.size) < s.size]  # keep at least one query
                kept, sacc, lacc = relative_accuracy(c, s, lmat, excl)
                order = np.argsort(c, kind="stable")
                for j, llm in enumerate(llms):
                    curves.add((slm, llm, d, method, "uq"), ratio=grid, accuracy=uq[:, j], accuracy_sd=np.full(grid.size, np.nan))
                    curves.add((slm, llm, d, method, "upper"), ratio=grid, accuracy=up[:, j], accuracy_sd=np.full(grid.size, np.nan))
                    curves.add((slm, llm, d, method, "random"), ratio=grid, accuracy=rnd[:, j], accuracy_sd=np.full(grid.size, np.nan))
                    if mc is not None:
                        curves.add((slm, llm, d, method, "random_mc"), ratio=grid, accuracy=mc[0][:, j], accuracy_sd=mc[1][:, j])
                    with np.errstate(divide="ignore", invalid="ignore"):
                        ra = np.where(lacc[:, j] > 0, sacc / np.where(lacc[:, j] > 0, lacc[:, j], 1), np.nan)
                    rel.add((slm, llm, d, method), excluded=excl, n_kept=kept, slm_accuracy=sacc, llm_accuracy=lacc[:, j], relative_accuracy=ra)
                    summary_rows.append({
                        "slm": slm, "llm": llm, "dataset": d, "method": method,
                        "slm_accuracy": float(uq[0, j]), "llm_accuracy": float(uq[-1, j]),
                        "apgr": apgr(uq[:, j]), "cpt50": cpt(uq[:, j], grid, 0.5), "cpt80": cpt(uq[:, j], grid, 0.8),
                    })
                    if method in proxy_methods:
                        gain = (lmat[:, j] - s)[order]
                        targets[(slm, d, method, llm)] = {
                            "conf_sorted": c[order], "cum_gain": np.concatenate([[0.0], np.cumsum(gain)]),
                            "slm_mean": float(s.mean()), "oracle": uq[:, j], "rms_random": rms(rnd[:, j], uq[:, j]),
                        }

    proxy_table, proxy_curves = _proxy_study(inputs, p, grid, proxy_methods, targets)
    tables = {
        "auc": pl.DataFrame(auc_rows, schema=_schema("auc")) if auc_rows else pl.DataFrame(schema=_schema("auc")),
        "curves": curves.frame(_schema("curves")),
        "proxy": proxy_table,
        "summary": pl.DataFrame(summary_rows, schema=_schema("routing_summary")) if summary_rows else pl.DataFrame(schema=_schema("routing_summary")),
        "relative_accuracy": rel.frame(_schema("relative_accuracy")),
        "proxy_curves": proxy_curves.frame(_schema("proxy_curves")),
    }
    for name in ("auc", "curves", "relative_accuracy"):
        tables[name] = tables[name].with_columns(pl.col(pl.Float64).fill_nan(None))
    tables["proxy"] = tables["proxy"].with_columns(pl.col("k").round(10))
    return tables


def _schema(name: str) -> dict:
    return ARTIFACTS[name].polars_schema()


def _proxy_study(inputs: RoutingInputs, p: dict, grid: np.ndarray, methods: list[str], targets: dict):
    """Proxy routing data for every (SLM, method, target, setting, k, seed); LLMs share each sample."""
    ks = sorted({float(p["k"]), *map(float, p["k_sweep"])})
    rows, source_lists = [], []
    curves = _Blocks(["slm", "llm", "target", "method", "setting", "k", "seed"])
    skipped = set()
    for slm, method, target, setting in itertools.product(inputs.slms, methods, inputs.datasets, SETTINGS):
        sources = source_datasets(target, inputs.datasets, inputs.domains, setting)
        if not sources:
            if (setting, target) not in skipped:
                log.warning("routing: proxy setting %s skipped for target %s: no source dataset (domain %s only)", setting, target, inputs.domains[target])
                skipped.add((setting, target))
            continue
        pool = np.concatenate([inputs.cells[(slm, d)].conf[method] for d in sources if method in inputs.cells[(slm, d)].conf])
        pool = pool[~np.isnan(pool)]
        tconf = inputs.cells[(slm, target)].conf.get(method)
        llm_states = [(llm, targets[(slm, target, method, llm)]) for llm in inputs.llms if (slm, target, method, llm) in targets]
        if pool.size == 0 or tconf is None or not llm_states:
            log.warning("routing: proxy %s/%s/%s/%s skipped: %s", slm, method, target, setting, "empty source pool" if pool.size == 0 else "no scored target rows")
            continue
        dist = w1(pool, tconf[~np.isnan(tconf)])
        proxy_pool = ProxyPool(pool, p["bins"])
        src = len(source_lists)
        source_lists.append(sources)
        for k, seed in itertools.product(ks, p["seeds"]):
            sample = proxy_pool.sample(k, int(seed))
            thr = proxy_thresholds(sample, grid)
            for llm, st in llm_states:
                realised, acc = apply_thresholds(st["conf_sorted"], st["cum_gain"], st["slm_mean"], thr)
                rows.append((slm, llm, target, method, setting, src, k, int(seed), int(sample.size),
                             rms(acc, st["oracle"]), st["rms_random"], float(np.abs(realised - grid).sum() / grid.size), dist))
                if abs(k - p["k"]) < 1e-12:
                    curves.add((slm, llm, target, method, setting, float(p["k"]), int(seed)), ratio=grid, threshold=thr,
                               realised_ratio=realised, accuracy=acc, oracle_accuracy=st["oracle"])
    schema = _schema("proxy")
    cols = [c if c != "sources" else "source_index" for c in schema]
    if not rows:
        return pl.DataFrame(schema=schema), curves
    df = pl.DataFrame(rows, schema=cols, orient="row")
    sources = pl.Series("sources", source_lists, dtype=pl.List(pl.Utf8)).gather(df["source_index"])
    return df.with_columns(sources).select([pl.col(c).cast(t) for c, t in schema.items()]), curves


def run_routing(*, uq_paths, correctness_paths, data_paths, slms, llms, datasets, outputs: Mapping[str, str], params: Mapping | None = None, seed: int = 0) -> dict[str, pl.DataFrame]:
    """Rule `routing`: evaluate and write auc, curves, proxy, summary, relative_accuracy,
    proxy_curves and Tables 4/5 (CSV + markdown). ``outputs`` maps each of
    :data:`OUTPUT_KEYS` to a path. Nothing is written unless every table was computed."""
    missing = [k for k in OUTPUT_KEYS if k not in outputs]
    if missing:
        raise RoutingInputError(f"routing: outputs lack {missing}")
    inputs = load_inputs(uq_paths, correctness_paths, data_paths, slms=slms, llms=llms, datasets=datasets)
    p = _params(params)
    tables = evaluate(inputs, p, seed)
    t4, t5 = build_tables(tables["proxy"], inputs, k=float(p["k"]))
    names = {"auc": "auc", "curves": "curves", "proxy": "proxy", "summary": "routing_summary", "relative_accuracy": "relative_accuracy", "proxy_curves": "proxy_curves"}
    for key, name in names.items():  # check everything before writing anything
        check_frame(tables[key], name, where=str(outputs[key]))
    for key, name in names.items():
        io.write_parquet(tables[key], outputs[key], name)
    write_tables(t4, t5, outputs)
    return tables
