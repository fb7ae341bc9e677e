"""Compute every routing table from aligned inputs, one cell at a time.

:func:`evaluate` walks the cells: for each (SLM, dataset, method) it selects the scored rows
(:func:`method_cell`), computes the alignment row (:func:`alignment_step`) and, per group of
LLMs labelled on the same rows, the curves, relative accuracy and curve summaries
(:func:`curve_step`); then the proxy study runs per (SLM, method, scenario)
(:func:`proxy_step`). With ``routing.rows: common`` every method of an (SLM, dataset) is
restricted to the rows every method scored (:func:`common_mask`). Each step is a small function
whose value columns come from a registry (``alignment.ALIGNMENT_METRICS``,
``summary.CURVE_SUMMARIES``, :data:`PROXY_METRICS`), so a new metric is one function plus one
schema column.

A method whose evaluation raises is recorded (``routing_warnings`` kind ``failed``, with the
error) and left out; every other method's rows are complete. Degenerate inputs (one-class
labels, null rows, degenerate proxy pools) get defined results and a ``routing_warnings`` row.
"""

from __future__ import annotations

import itertools
import logging
import warnings
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ..schema import ARTIFACTS
from .alignment import alignment, bootstrap_weights
from .config import LEAK_FREE_METHODS, OUT_OF_DOMAIN, RoutingConfigError, Scenario, check_config, scenarios
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
from .inputs import Cell, RoutingInputs
from .proxy import DegeneratePoolWarning, ProxyPool, apply_thresholds, rms, rms_realised, tie_aware_thresholds, w1
from .summary import CURVE_SUMMARIES

log = logging.getLogger("uqroute.routing")

__all__ = [
    "evaluate",
    "params",
    "leak_free_missing",
    "PROXY_METRICS",
    "TABLES",
    "MethodCell",
    "method_cell",
    "common_mask",
    "alignment_step",
    "curve_step",
    "proxy_step",
    "holdout_pool",
    "holdout_frame",
]

#: The tables :func:`evaluate` returns → their artifact names in ``uqroute.schema``.
TABLES = {
    "auc": "auc",
    "curves": "curves",
    "proxy": "proxy",
    "summary": "routing_summary",
    "relative_accuracy": "relative_accuracy",
    "proxy_curves": "proxy_curves",
    "holdout": "holdout",
    "warnings": "routing_warnings",
}


@dataclass(frozen=True)
class ProxyEval:
    """One proxy-threshold curve on one target for one LLM (the inputs of :data:`PROXY_METRICS`)."""

    grid: np.ndarray
    realised: np.ndarray
    accuracy: np.ndarray
    oracle: np.ndarray


#: Distances of a proxy curve to the target's oracle curve ``ProxyEval -> float``, one ``proxy`` column each.
PROXY_METRICS: dict[str, Callable[[ProxyEval], float]] = {
    "rms": lambda e: rms(e.accuracy, e.oracle),
    "rms_realised": lambda e: rms_realised(e.realised, e.accuracy, e.grid, e.oracle),
    "budget_error": lambda e: float(np.abs(e.realised - e.grid).sum() / e.grid.size),
}


def params(routing_cfg: Mapping | None, inputs: RoutingInputs) -> dict:
    """The routing section checked against the inputs (:func:`check_config`), defaults filled in."""
    return check_config(routing_cfg, inputs.datasets, inputs.methods, llms=inputs.llms)


def _rng(seed: int, *names: str) -> np.random.Generator:
    """A generator seeded from the run seed and names (stable across processes, unlike hash())."""
    return np.random.default_rng([int(seed)] + [zlib.crc32(n.encode()) for n in names])


def _key(mask: np.ndarray) -> bytes:
    return np.packbits(mask).tobytes()


class _Blocks:
    """Long tables built from per-key numeric blocks without a Python loop per row."""

    def __init__(self, key_cols: list[str]):
        self.key_cols, self.keys, self.data = key_cols, [], []

    def add(self, key: tuple, **arrays):
        self.keys.append(key)
        self.data.append(arrays)

    def extend(self, other: _Blocks):
        self.keys += other.keys
        self.data += other.data

    def frame(self, schema: dict[str, pl.DataType]) -> pl.DataFrame:
        if not self.keys:
            return pl.DataFrame(schema=schema)
        lengths = np.array([len(next(iter(a.values()))) for a in self.data])
        idx = np.repeat(np.arange(len(self.keys)), lengths)
        keys = pl.DataFrame(self.keys, schema=self.key_cols, orient="row").select(pl.all().gather(idx))
        cols = {name: np.concatenate([a[name] for a in self.data]) for name in self.data[0]}
        df = pl.concat([keys, pl.DataFrame(cols)], how="horizontal")
        return df.select([pl.col(c).cast(t) for c, t in schema.items()])


@dataclass
class _Out:
    """Accumulates the tables; each step's rows are committed only when the whole step succeeded."""

    auc: list = field(default_factory=list)
    summary: list = field(default_factory=list)
    proxy: list = field(default_factory=list)
    holdout: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    curves: _Blocks = field(default_factory=lambda: _Blocks(["slm", "llm", "dataset", "method", "curve"]))
    rel: _Blocks = field(default_factory=lambda: _Blocks(["slm", "llm", "dataset", "method"]))
    proxy_curves: _Blocks = field(
        default_factory=lambda: _Blocks(["slm", "llm", "target", "method", "setting", "k", "seed"])
    )

    def warn(self, slm, dataset, method, setting, kind, message):
        log.warning("routing: %s", message)
        self.warnings.append(
            {"slm": slm, "dataset": dataset, "method": method, "setting": setting, "kind": kind, "message": message}
        )

    def commit(self, other: _Out):
        for name in ("auc", "summary", "proxy", "holdout"):
            getattr(self, name).extend(getattr(other, name))
        self.curves.extend(other.curves)
        self.rel.extend(other.rel)
        self.proxy_curves.extend(other.proxy_curves)


# ------------------------------------------------------------------ per-cell steps
@dataclass
class MethodCell:
    """The scored rows of one (SLM, dataset, method): confidence and the method's own label."""

    slm: str
    dataset: str
    method: str
    label: str  # correctness column
    mask: np.ndarray  # over the cell's rows
    conf: np.ndarray
    s: np.ndarray

    @property
    def where(self) -> str:
        return f"{self.slm}/{self.dataset}/{self.method}"


def method_cell(
    slm: str, dataset: str, method: str, label: str, cell: Cell, out: _Out, rows: np.ndarray | None = None
) -> MethodCell | None:
    """Rows with both a confidence and a label (null confidences are dropped for this method
    only, null labels for every method using that label column); None when no row is left.

    ``rows`` (``routing.rows: common``, :func:`common_mask`): keep only these of the cell's rows as
    well; the scored rows it drops are counted and recorded (``dropped_rows``)."""
    c_all, s_all = cell.conf[method], cell.labels[label]
    has_label, has_conf = ~np.isnan(s_all), ~np.isnan(c_all)
    n_label, n_conf = int((~has_label).sum()), int((has_label & ~has_conf).sum())
    where = f"{slm}/{dataset}/{method}"
    if n_label:
        out.warn(
            slm,
            dataset,
            method,
            None,
            "dropped_rows",
            f"{where}: dropped {n_label} queries with null SLM correctness ({label})",
        )
    if n_conf:
        out.warn(slm, dataset, method, None, "dropped_rows", f"{where}: dropped {n_conf} queries with null confidence")
    mask = has_label & has_conf
    if rows is not None:
        n_common = int((mask & ~rows).sum())
        if n_common:
            out.warn(
                slm,
                dataset,
                method,
                None,
                "dropped_rows",
                f"{where}: dropped {n_common} scored queries that not every method scored (routing.rows: common)",
            )
        scored_any = bool(mask.any())
        mask &= rows
        if scored_any and not mask.any():
            out.warn(
                slm,
                dataset,
                method,
                None,
                "no_scores",
                f"{where}: none of its scored queries is scored by every method (routing.rows: common); method skipped",
            )
            return None
    if not mask.any():
        out.warn(
            slm,
            dataset,
            method,
            None,
            "no_scores",
            f"{where}: no query has both a confidence and a label in {label}; method skipped",
        )
        return None
    s = s_all[mask]
    if s.min() == s.max():
        out.warn(
            slm,
            dataset,
            method,
            None,
            "one_class",
            f"{where}: {label} has a single class on {s.size} queries; ROC-AUC and PRR are undefined",
        )
    return MethodCell(slm, dataset, method, label, mask, c_all[mask], s)


def common_mask(
    slm: str, dataset: str, cell: Cell, methods: list[str], label_of: Mapping[str, str], out: _Out
) -> np.ndarray:
    """``routing.rows: common``: the cell's rows that every method of ``methods`` scored (a confidence
    and a value in the method's own label column), so that every method is evaluated on the same
    queries; recorded (``dropped_rows``, method null) with the size of the intersection.

    A method that scored no row of the cell is left out of the intersection, so that it does not
    empty the dataset for the others, and recorded (``no_scores``); it has no results there anyway.
    Our addition: the paper drops a query only for the method that cannot score it (§3.1)."""
    scored = {m: ~np.isnan(cell.conf[m]) & ~np.isnan(cell.labels[label_of[m]]) for m in methods}
    keep = np.ones(cell.ids.size, dtype=bool)
    used = []
    for m, ok in scored.items():
        if ok.any():
            keep &= ok
            used.append(m)
        else:
            out.warn(
                slm,
                dataset,
                m,
                None,
                "no_scores",
                f"{slm}/{dataset}/{m}: no query with a confidence and a label; left out of the common rows of the "
                "other methods (routing.rows: common)",
            )
    out.warn(
        slm,
        dataset,
        None,
        None,
        "dropped_rows",
        f"{slm}/{dataset}: routing.rows common: every method is evaluated on the {int(keep.sum())} of "
        f"{cell.ids.size} queries that all of {used} scored",
    )
    return keep


def alignment_step(mc: MethodCell, weights: np.ndarray) -> dict:
    """The ``auc`` row of one method cell (bootstrap ``weights`` shared by cells scored on the same rows)."""
    return {
        "slm": mc.slm,
        "dataset": mc.dataset,
        "method": mc.method,
        "label": mc.label,
        **alignment(mc.conf, mc.s, bootstrap=weights, where=mc.where),
    }


@dataclass
class CurveGroup:
    """Oracle/upper/random curves of one method cell against a group of LLMs labelled on the same rows."""

    llms: list[str]
    mask: np.ndarray  # over the method cell's rows
    conf: np.ndarray
    s: np.ndarray
    lmat: np.ndarray  # (n, L)
    uq: np.ndarray  # (R, L)
    random: np.ndarray  # (R, L)


def curve_step(
    mc: MethodCell,
    llms: list[str],
    lmat_all: np.ndarray,
    grid: np.ndarray,
    perms: np.ndarray | None,
    mc_cache: dict,
    out: _Out,
) -> CurveGroup | None:
    """Curves, relative accuracy and curve summaries of ``mc`` for the LLMs in ``llms``
    (``lmat_all`` holds their labels on ``mc``'s rows; rows where they are null are dropped)."""
    mask = ~np.isnan(lmat_all[:, 0])
    if not mask.any():
        out.warn(
            mc.slm, mc.dataset, mc.method, None, "no_scores", f"{mc.where}: no rows with labels of LLMs {llms}; skipped"
        )
        return None
    c, s, lmat = mc.conf[mask], mc.s[mask], lmat_all[mask]
    uq = oracle_curve(c, s, lmat, grid)
    up = upper_curve(s, lmat, grid)
    rnd = random_curve(s, lmat, grid)
    full = np.zeros(mc.mask.size, dtype=bool)
    full[np.flatnonzero(mc.mask)[mask]] = True
    mc_key = (_key(full), tuple(llms))  # random routing ignores the confidence: shared by methods on the same rows
    if mc_key not in mc_cache:
        mc_cache[mc_key] = (
            random_mc_curve(s, lmat, grid, restrict_permutations(perms, full)) if perms is not None else None
        )
    mcurve = mc_cache[mc_key]
    excl = grid[grid < 1]
    excl = excl[routed_counts(excl, s.size) < s.size]  # keep at least one query
    kept, sacc, lacc = relative_accuracy(c, s, lmat, excl)
    realised = routed_counts(grid, s.size) / s.size  # the fraction each grid ratio actually routes
    nan = np.full(grid.size, np.nan)
    for j, llm in enumerate(llms):
        key = (mc.slm, llm, mc.dataset, mc.method)
        out.curves.add((*key, "uq"), ratio=grid, accuracy=uq[:, j], accuracy_sd=nan)
        out.curves.add((*key, "upper"), ratio=grid, accuracy=up[:, j], accuracy_sd=nan)
        out.curves.add((*key, "random"), ratio=grid, accuracy=rnd[:, j], accuracy_sd=nan)
        if mcurve is not None:
            out.curves.add((*key, "random_mc"), ratio=grid, accuracy=mcurve[0][:, j], accuracy_sd=mcurve[1][:, j])
        with np.errstate(divide="ignore", invalid="ignore"):
            ra = np.where(lacc[:, j] > 0, sacc / np.where(lacc[:, j] > 0, lacc[:, j], 1), np.nan)
        out.rel.add(key, excluded=excl, n_kept=kept, slm_accuracy=sacc, llm_accuracy=lacc[:, j], relative_accuracy=ra)
        out.summary.append(
            {
                "slm": mc.slm,
                "llm": llm,
                "dataset": mc.dataset,
                "method": mc.method,
                "slm_accuracy": float(uq[0, j]),
                "llm_accuracy": float(uq[-1, j]),
                **{name: fn(uq[:, j], grid, realised) for name, fn in CURVE_SUMMARIES.items()},
            }
        )
    return CurveGroup(llms, mask, c, s, lmat, uq, rnd)


@dataclass
class _Target:
    """What the proxy study needs of one (SLM, target, method, LLM): the sorted target and its oracle."""

    conf_sorted: np.ndarray
    cum_gain: np.ndarray
    slm_mean: float
    oracle: np.ndarray
    rms_random: float


def _targets_of(group: CurveGroup) -> dict[str, _Target]:
    order = np.argsort(group.conf, kind="stable")
    out = {}
    for j, llm in enumerate(group.llms):
        gain = (group.lmat[:, j] - group.s)[order]
        out[llm] = _Target(
            group.conf[order],
            np.concatenate([[0.0], np.cumsum(gain)]),
            float(group.s.mean()),
            group.uq[:, j],
            rms(group.random[:, j], group.uq[:, j]),
        )
    return out


@dataclass
class _Pool:
    pool: ProxyPool
    dataset: np.ndarray
    ids: np.ndarray
    conf: np.ndarray
    label: np.ndarray


def leak_free_missing(inputs: RoutingInputs, slm: str, method: str, sc: Scenario) -> list[str]:
    """The sources of ``sc`` that lack a leak-free score for ``method`` (:data:`LEAK_FREE_METHODS`):
    no probe trained without both the source and the target. Empty for every other method."""
    if method not in LEAK_FREE_METHODS:
        return []
    have = inputs.leak_free or {}
    return [d for d in sc.sources if method in inputs.cells[(slm, d)].conf and (slm, d, sc.target) not in have]


def _source_conf(inputs: RoutingInputs, slm: str, method: str, d: str, target: str | None) -> np.ndarray:
    """Source ``d``'s confidences as they enter ``target``'s pool: the method's own, or for a
    :data:`LEAK_FREE_METHODS` method the scores of the probe trained without ``d`` and ``target``
    (``target`` None: a pool for no target, as the router's, which takes the method's own scores)."""
    if method in LEAK_FREE_METHODS and target is not None:
        return inputs.leak_free[(slm, d, target)]
    return inputs.cells[(slm, d)].conf[method]


def holdout_pool(
    inputs: RoutingInputs,
    slm: str,
    method: str,
    sources: tuple[str, ...],
    bins: int,
    label: str,
    target: str | None = None,
) -> _Pool | None:
    """The confidences of ``method`` pooled from the ``sources`` datasets of ``slm`` (unscored rows
    dropped) with ``bins`` equal-width bins, from which hold-out sets are drawn; None when no source
    has a scored query. For a ``target``, a :data:`LEAK_FREE_METHODS` method's sources are scored by
    the probe trained without them and without the target (paper §4.2: no information from the
    target). The routing evaluation and the router's pooled hold-out (no target) draw from it."""
    parts = []
    for d in sources:
        cell = inputs.cells[(slm, d)]
        if method not in cell.conf:
            continue
        conf = _source_conf(inputs, slm, method, d, target)
        keep = ~np.isnan(conf)
        parts.append((np.full(int(keep.sum()), d, dtype=object), cell.ids[keep], conf[keep], cell.labels[label][keep]))
    if not parts or sum(p[2].size for p in parts) == 0:
        return None
    ds, ids, conf, lab = (np.concatenate([p[i] for p in parts]) for i in range(4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegeneratePoolWarning)  # recorded in routing_warnings instead
        return _Pool(ProxyPool(conf, bins), ds, ids, conf, lab)


def proxy_step(
    slm: str,
    method: str,
    sc: Scenario,
    pool: _Pool,
    targets: dict[str, _Target],
    target_conf: np.ndarray,
    p: dict,
    grid: np.ndarray,
    ks: list[float],
    out: _Out,
) -> None:
    """Hold-out sets, proxy curves and distances for one (SLM, method, scenario), every k and seed.

    ``targets`` maps each LLM to the target's sorted confidences and oracle curve (empty when the
    target has no scored rows: then only the hold-out sets are written); ``target_conf`` holds the
    target's scored confidences (for W1).
    """
    dist = w1(pool.conf, target_conf) if target_conf.size else float("nan")
    for k, seed in itertools.product(ks, p["seeds"]):
        idx = pool.pool.sample_index(k, int(seed))
        sample = pool.conf[idx]
        t, q = tie_aware_thresholds(sample, grid)
        lab = pool.label[idx]
        out.holdout.append(
            {  # list columns as arrays; holdout_frame builds them column-wise
                "slm": slm,
                "method": method,
                "setting": sc.setting,
                "target": sc.target,
                "sources": list(sc.sources),
                "k": k,
                "seed": int(seed),
                "bins": int(pool.pool.bins),
                "pool_size": int(pool.conf.size),
                "pool_note": pool.pool.note,
                "source_dataset": pool.dataset[idx],
                "id": pool.ids[idx],
                "confidence": sample,
                "slm_correct": lab,
                "ratio": grid,
                "threshold": t,
                "q": q,
            }
        )
        for llm, tg in targets.items():
            realised, acc = apply_thresholds(tg.conf_sorted, tg.cum_gain, tg.slm_mean, t, q)
            ev = ProxyEval(grid, realised, acc, tg.oracle)
            out.proxy.append(
                {
                    "slm": slm,
                    "llm": llm,
                    "target": sc.target,
                    "method": method,
                    "setting": sc.setting,
                    "sources": list(sc.sources),
                    "k": k,
                    "seed": int(seed),
                    "n_proxy": int(idx.size),
                    **{name: fn(ev) for name, fn in PROXY_METRICS.items()},
                    "rms_random": tg.rms_random,
                    "w1": dist,
                    "pool_note": pool.pool.note,
                }
            )
            if abs(k - p["k"]) < 1e-12:
                out.proxy_curves.add(
                    (slm, llm, sc.target, method, sc.setting, float(p["k"]), int(seed)),
                    ratio=grid,
                    threshold=t,
                    q=q,
                    realised_ratio=realised,
                    accuracy=acc,
                    oracle_accuracy=tg.oracle,
                )


# ------------------------------------------------------------------ the whole evaluation
def _guarded(out: _Out, slm, dataset, method, setting, what: str, fn: Callable[[_Out], object]):
    """Run one step into a scratch accumulator; commit it on success, record the error otherwise."""
    scratch = _Out()
    try:
        result = fn(scratch)
    except (RoutingConfigError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as err:  # one method's failure must not take the other methods' tables with it
        log.exception("routing: %s failed", what)
        out.warnings.extend(scratch.warnings)
        out.warn(slm, dataset, method, setting, "failed", f"{what} failed: {type(err).__name__}: {err}")
        return None
    out.warnings.extend(scratch.warnings)
    out.commit(scratch)
    return result


def evaluate(inputs: RoutingInputs, params_: Mapping | None = None, seed: int = 0) -> dict[str, pl.DataFrame]:
    """Compute every routing table (see docs/routing.md for the definitions); keys of :data:`TABLES`."""
    p = params(params_, inputs)
    grid = ratio_grid(p["ratio_step"])
    proxy_methods = inputs.methods if p["proxy_methods"] == "all" else list(p["proxy_methods"])
    out = _Out()
    targets: dict[tuple, dict[str, _Target]] = {}  # (slm, dataset, method) → LLM → target state
    common: dict[tuple[str, str], np.ndarray] = {}  # (slm, dataset) → rows every method scored (rows: common)
    for (slm, d), cell in inputs.cells.items():
        # one set of random draws per (SLM, dataset), shared by every method and LLM
        perms = (
            random_permutations(cell.ids.size, p["random_mc"], _rng(seed, "random_mc", slm, d))
            if p["random_mc"] > 0
            else None
        )
        boot_cache, mc_cache = {}, {}
        for llm in inputs.llms:
            k = int(np.isnan(cell.llm[llm]).sum())
            if k:
                out.warn(
                    slm,
                    d,
                    None,
                    None,
                    "dropped_rows",
                    f"{slm}/{d}: dropped {k} queries with null correctness of LLM {llm}",
                )
        methods = [m for m in inputs.methods if m in cell.conf]
        rows = None
        if p["rows"] == "common" and methods:
            rows = common[(slm, d)] = common_mask(slm, d, cell, methods, inputs.label_of, out)
        for method in methods:

            def step(
                o: _Out,
                method=method,
                cell=cell,
                slm=slm,
                d=d,
                perms=perms,
                boot_cache=boot_cache,
                mc_cache=mc_cache,
                rows=rows,
            ):
                mc = method_cell(slm, d, method, inputs.label_of[method], cell, o, rows)
                if mc is None:
                    return None
                key = _key(mc.mask)
                if key not in boot_cache:  # methods scored on the same queries share resamples
                    boot_cache[key] = bootstrap_weights(
                        int(mc.mask.sum()), p["bootstrap"], _rng(seed, "bootstrap", slm, d, str(zlib.crc32(key)))
                    )
                o.auc.append(alignment_step(mc, boot_cache[key]))
                groups: dict[bytes, list[str]] = {}  # LLMs whose labels are null on the same rows share one pass
                for llm in inputs.llms:
                    groups.setdefault(_key(~np.isnan(cell.llm[llm][mc.mask])), []).append(llm)
                found = {}
                for llms in groups.values():
                    lmat = np.stack([cell.llm[l][mc.mask] for l in llms], axis=1)
                    group = curve_step(mc, llms, lmat, grid, perms, mc_cache, o)
                    if group is not None and method in proxy_methods:
                        found.update(_targets_of(group))
                return found

            found = _guarded(out, slm, d, method, None, f"{slm}/{d}/{method}: evaluation", step)
            if found:
                targets[(slm, d, method)] = found
    _proxy_study(inputs, p, grid, proxy_methods, targets, out, common)
    return _frames(out)


def _proxy_study(
    inputs: RoutingInputs,
    p: dict,
    grid: np.ndarray,
    methods: list[str],
    targets: dict,
    out: _Out,
    common: Mapping[tuple[str, str], np.ndarray] | None = None,
) -> None:
    """The proxy study; ``common`` ((SLM, dataset) → rows, ``routing.rows: common``) restricts each
    target's evaluation rows (its curves in ``targets`` already are; W1 here) to the rows every method
    scored. The pools keep each source's rows the method scored (the proxy data a deployment has)."""
    ks = sorted({float(p["k"]), *map(float, p["k_sweep"])})
    scs = scenarios(inputs.datasets, p["shifts"], inputs.domains if p["out_of_domain"] else None)
    if len(inputs.datasets) < 2:
        for slm in inputs.slms:
            out.warn(
                slm,
                None,
                None,
                "partial_in_domain",
                "no_sources",
                "partially in-domain proxy skipped: the run has a single dataset",
            )
    if p["out_of_domain"]:
        covered = {sc.target for sc in scs if sc.setting == OUT_OF_DOMAIN}
        for slm, d in itertools.product(inputs.slms, inputs.datasets):
            if d not in covered:
                out.warn(
                    slm,
                    d,
                    None,
                    OUT_OF_DOMAIN,
                    "no_sources",
                    f"{slm}: generic out-of-domain proxy for {d!r} skipped: "
                    f"the run has no dataset outside its domain {inputs.domains[d]!r}",
                )
    for slm, method in itertools.product(inputs.slms, methods):
        pools: dict[tuple, _Pool | None] = {}
        for sc in scs:
            what = f"{slm}/{method}: proxy {sc.setting} → {sc.target}"

            def step(o: _Out, slm=slm, method=method, sc=sc, what=what, pools=pools):
                missing = leak_free_missing(inputs, slm, method, sc)
                if missing:
                    o.warn(
                        slm,
                        sc.target,
                        method,
                        sc.setting,
                        "no_sources",
                        f"{what}: skipped, no leak-free {method} scores for sources {missing} (a probe trained without each "
                        f"source and without {sc.target!r}: rule proxy_probe, which needs a third dataset)",
                    )
                    return
                # a leak-free method's pool depends on the target (each source is scored by a probe trained without it)
                key = (sc.sources, sc.target) if method in LEAK_FREE_METHODS else (sc.sources,)
                if key not in pools:
                    pools[key] = holdout_pool(
                        inputs, slm, method, sc.sources, p["bins"], inputs.label_of[method], sc.target
                    )
                    if pools[key] is not None and pools[key].pool.note:
                        o.warn(
                            slm,
                            None,
                            method,
                            sc.setting,
                            "degenerate_pool",
                            f"{slm}/{method}: proxy pool of {list(sc.sources)}: {pools[key].pool.note}",
                        )
                pool = pools[key]
                if pool is None:
                    o.warn(slm, sc.target, method, sc.setting, "no_scores", f"{what}: skipped, no scored source rows")
                    return
                tg = targets.get((slm, sc.target, method), {})
                if not tg:
                    o.warn(
                        slm,
                        sc.target,
                        method,
                        sc.setting,
                        "no_scores",
                        f"{what}: no scored target rows; hold-out set written, no curves",
                    )
                tconf = inputs.cells[(slm, sc.target)].conf.get(method, np.array([]))
                keep = ~np.isnan(tconf)
                if common and (slm, sc.target) in common and tconf.size:
                    keep &= common[(slm, sc.target)]
                proxy_step(slm, method, sc, pool, tg, tconf[keep], p, grid, ks, o)

            _guarded(out, slm, sc.target, method, sc.setting, what, step)


def _frame(rows: list[dict], name: str) -> pl.DataFrame:
    schema = ARTIFACTS[name].polars_schema()
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


_LISTS = ("source_dataset", "id", "confidence", "slm_correct", "ratio", "threshold", "q")


def holdout_frame(rows: list[dict]) -> pl.DataFrame:
    """The ``holdout`` table; its list columns are built from flat arrays and offsets (fast)."""
    import pyarrow as pa

    schema = ARTIFACTS["holdout"].polars_schema()
    if not rows:
        return pl.DataFrame(schema=schema)
    cols = {c: pl.Series(c, [r[c] for r in rows], dtype=schema[c]) for c in schema if c not in _LISTS}
    for c in _LISTS:
        offsets = pa.array(np.concatenate([[0], np.cumsum([len(r[c]) for r in rows])]).astype(np.int64))
        flat = np.concatenate([np.asarray(r[c]) for r in rows])
        if c == "slm_correct":
            values = pa.array(flat == 1, mask=np.isnan(flat.astype(np.float64)))
        elif c in ("source_dataset", "id"):
            values = pa.array(flat, type=pa.large_string())
        else:
            values = pa.array(flat.astype(np.float64))
        cols[c] = pl.Series(c, pl.from_arrow(pa.LargeListArray.from_arrays(offsets, values))).cast(schema[c])
    return pl.DataFrame([cols[c] for c in schema])


def _frames(out: _Out) -> dict[str, pl.DataFrame]:
    t = {
        "auc": _frame(out.auc, "auc"),
        "curves": out.curves.frame(ARTIFACTS["curves"].polars_schema()),
        "proxy": _frame(out.proxy, "proxy"),
        "summary": _frame(out.summary, "routing_summary"),
        "relative_accuracy": out.rel.frame(ARTIFACTS["relative_accuracy"].polars_schema()),
        "proxy_curves": out.proxy_curves.frame(ARTIFACTS["proxy_curves"].polars_schema()),
        "holdout": holdout_frame(out.holdout),
        "warnings": _frame(out.warnings, "routing_warnings").unique(maintain_order=True),
    }
    for name in ("auc", "curves", "relative_accuracy"):
        t[name] = t[name].with_columns(pl.col(pl.Float64).fill_nan(None))
    t["proxy"] = t["proxy"].with_columns(pl.col("k").round(10))
    t["holdout"] = t["holdout"].with_columns(pl.col("k").round(10))
    return t
