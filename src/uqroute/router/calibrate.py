"""Calibrating a router from a hold-out set (Chuang et al. 2025, §4.1–4.2): thresholds, predicted
accuracy curve, operating point.

Two steps, both usable on their own:

* :func:`pooled_holdout` builds the hold-out set a deployable router wants: proxy routing data
  pooled from **every** dataset of the run (the pipeline's own hold-out sets leave the target out),
  drawn with the same functions as the routing evaluation (:class:`uqroute.routing.ProxyPool`,
  ``routing.bins``, ``k`` and ``seeds``), in the ``holdout`` format with setting ``pooled``
  (artifact ``router_holdout``, ``results/routers/{slm}/holdout.parquet``).
* :func:`calibrate` turns the hold-out rows of one (SLM, method) — one row per seed — into the
  router's numbers: for every ratio of the grid the tie-aware threshold
  (:func:`uqroute.routing.tie_aware_thresholds`) of the served seed, the predicted accuracy curve
  (mean and standard deviation over the seeds), and the operating point. docs/router.md has the
  definitions.

Predicted accuracy. On one seed's hold-out rows with confidence c_i, the SLM's label s_i (the
method's own label) and the LLM's label l_i, routing at ratio r routes row i with probability
π_i(r) = :func:`uqroute.routing.route_fraction` (c_i, t(r), q(r)), and
acc(r) = mean_i [(1 − π_i) s_i + π_i l_i] over the rows whose s_i is known. l_i is the LLM's own
correctness on that query (joined by source dataset and id from its ``correctness`` artifacts);
where the LLM has no label for the query, its accuracy on the query's source dataset. The LLM's
accuracy (the reference of ``llm_accuracy_share``) is acc(1).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from .. import io
from ..routing import ratio_grid, tie_aware_thresholds
from ..schema import ARTIFACTS
from .config import check_operating_point

log = logging.getLogger("uqroute.router")

__all__ = [
    "POOLED",
    "pooled_holdout",
    "select_holdout",
    "llm_labels",
    "llm_accuracy_by_source",
    "calibrate",
    "operating_point_at",
    "predicted_accuracy",
    "CalibrationError",
    "check_identity",
    "calibration_warnings",
    "recorded_inference",
]

#: The hold-out setting of a router: every dataset of the run pooled, no target left out.
POOLED = "pooled"


class CalibrationError(ValueError):
    """A hold-out set or LLM labels that cannot calibrate a router (names the file, method, seed)."""


# ------------------------------------------------------------------ the pooled hold-out set
def pooled_holdout(
    inputs, slm: str, methods: Sequence[str], routing_params: Mapping, *, k: float | None = None
) -> pl.DataFrame:
    """The ``router_holdout`` table of one SLM: for each method and each of ``routing.seeds``, k% of each
    of ``routing.bins`` bins of the confidences pooled from every dataset of ``inputs``
    (:class:`uqroute.routing.RoutingInputs`), with the tie-aware thresholds of the ratio grid.

    Exactly the routing evaluation's draw (same pool order, bins, allocation and keys per seed), with
    every dataset as a source and no target (``target`` null, ``setting`` :data:`POOLED`).
    """
    from ..routing import holdout_frame, holdout_pool, resolve

    p = resolve(routing_params)
    k = float(p["k"] if k is None else k)
    grid = ratio_grid(float(p["ratio_step"]))
    sources = tuple(inputs.datasets)
    rows = []
    for method in methods:
        if method not in inputs.label_of:
            raise CalibrationError(
                f"router hold-out for {slm}: the uq files have no column {method!r} (methods found: {inputs.methods})"
            )
        pool = holdout_pool(inputs, slm, method, sources, int(p["bins"]), inputs.label_of[method])
        if pool is None:
            raise CalibrationError(
                f"router hold-out for {slm}/{method}: no dataset has a scored query ({list(sources)})"
            )
        if pool.pool.note:
            log.warning("router hold-out %s/%s: %s", slm, method, pool.pool.note)
        for seed in p["seeds"]:
            idx = pool.pool.sample_index(k, int(seed))
            sample = pool.conf[idx]
            t, q = tie_aware_thresholds(sample, grid)
            rows.append(
                {
                    "slm": slm,
                    "method": method,
                    "setting": POOLED,
                    "target": None,
                    "sources": list(sources),
                    "k": k,
                    "seed": int(seed),
                    "bins": int(pool.pool.bins),
                    "pool_size": int(pool.conf.size),
                    "pool_note": pool.pool.note,
                    "source_dataset": pool.dataset[idx],
                    "id": pool.ids[idx],
                    "confidence": sample,
                    "slm_correct": pool.label[idx],
                    "ratio": grid,
                    "threshold": t,
                    "q": q,
                }
            )
    df = holdout_frame(rows).with_columns(pl.col("k").round(10))
    return df.select([pl.col(c).cast(t) for c, t in ARTIFACTS["router_holdout"].polars_schema().items()])


def select_holdout(
    df: pl.DataFrame,
    *,
    path: str = "",
    slm: str | None = None,
    method: str | None = None,
    setting: str | None = None,
    target: str | None = None,
    k: float | None = None,
) -> list[dict]:
    """The hold-out rows (one per seed, ascending) of one (slm, method, setting, target, k) of a
    ``holdout`` or ``router_holdout`` table. A selector left None must be unambiguous in ``df``;
    otherwise :class:`CalibrationError` lists the choices."""
    where = path or "hold-out table"
    sel = df
    for col, val in (("slm", slm), ("method", method), ("setting", setting), ("target", target)):
        if val is not None:
            sel = sel.filter(pl.col(col) == val)
    if k is not None:
        sel = sel.filter((pl.col("k") - float(k)).abs() < 1e-9)
    if sel.height == 0:
        raise CalibrationError(
            f"{where}: no hold-out row has slm={slm!r}, method={method!r}, setting={setting!r}, "
            f"target={target!r}, k={k!r}; it has {_choices(df)}"
        )
    groups = sel.select("slm", "method", "setting", "target", "k").unique()
    if groups.height > 1:
        raise CalibrationError(
            f"{where}: {groups.height} hold-out sets match; choose one with --slm/--method/--setting/"
            f"--target/--k among {_choices(sel)}"
        )
    return sel.sort("seed").to_dicts()


def _choices(df: pl.DataFrame) -> str:
    g = (
        df.select("slm", "method", "setting", "target", "k")
        .unique()
        .sort("slm", "method", "setting", "target", "k", nulls_last=True)
    )
    items = [f"({r['slm']}, {r['method']}, {r['setting']}, {r['target']}, k={r['k']})" for r in g.head(12).to_dicts()]
    return ", ".join(items) + (" …" if g.height > 12 else "")


# ------------------------------------------------------------------ the LLM's labels
def llm_labels(correctness_paths: Mapping[str, str | Path]) -> dict[str, pl.DataFrame]:
    """Each source dataset's LLM correctness table (``id``, ``correct``), read with the checked reader."""
    return {
        d: io.read_artifact(p, "correctness", columns=["correct"], stage="router") for d, p in correctness_paths.items()
    }


def llm_accuracy_by_source(labels: Mapping[str, pl.DataFrame]) -> dict[str, float]:
    """The LLM's accuracy on each source dataset: the mean of ``correct`` over its labelled rows."""
    out = {}
    for d, df in labels.items():
        y = df["correct"].drop_nulls()
        if y.len() == 0:
            raise CalibrationError(f"router: the LLM has no labelled row on dataset {d!r}")
        out[d] = float(y.cast(pl.Float64).mean())
    return out


def _llm_per_row(
    row: dict, labels: Mapping[str, pl.DataFrame] | None, constant: float | None, by_source: Mapping[str, float]
) -> np.ndarray:
    """l_i for each sampled row: the LLM's own label (by source dataset and id), else its accuracy on that dataset,
    else ``constant``."""
    ds, ids = row["source_dataset"], row["id"]
    out = np.full(len(ids), np.nan)
    if labels is not None:
        for d in sorted(set(ds)):
            if d not in labels:
                raise CalibrationError(
                    f"router: hold-out rows come from dataset {d!r}, but no LLM correctness file was given "
                    f"for it (given: {sorted(labels)})"
                )
            pos = [i for i, x in enumerate(ds) if x == d]
            table = dict(zip(labels[d]["id"].to_list(), labels[d]["correct"].to_list()))
            missing = [ids[i] for i in pos if ids[i] not in table]
            if missing:
                raise CalibrationError(f"router: the LLM correctness file of {d!r} lacks hold-out id(s) {missing[:5]}")
            for i in pos:
                v = table[ids[i]]
                out[i] = by_source[d] if v is None else float(v)
    else:
        out[:] = float(constant)
    return out


# ------------------------------------------------------------------ calibration
def predicted_accuracy(conf, s, l, t, q) -> np.ndarray:
    """Expected accuracy of routing with (t, q) per ratio: mean over rows with a known s of (1 − π) s + π l,
    π = route_fraction(c, t, q). ``t`` and ``q`` are arrays (one per ratio); NaN when no row has a label."""
    conf, s, l = (np.asarray(x, dtype=np.float64) for x in (conf, s, l))
    keep = ~np.isnan(s)
    if not keep.any():
        return np.full(np.size(t), np.nan)
    c, s, l = conf[keep], s[keep], l[keep]
    t, q = np.atleast_1d(np.asarray(t, dtype=np.float64)), np.atleast_1d(np.asarray(q, dtype=np.float64))
    pi = (c[None, :] < t[:, None]).astype(np.float64) + q[:, None] * (c[None, :] == t[:, None])
    return ((1 - pi) * s[None, :] + pi * l[None, :]).mean(axis=1)


def _finite_or_none(x) -> list:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(x, dtype=np.float64)]


def calibrate(
    rows: Sequence[dict],
    *,
    operating_point: Mapping,
    llm_correctness: Mapping[str, str | Path] | None = None,
    llm_accuracy: float | None = None,
    served_seed: int | None = None,
    where: str = "",
) -> dict:
    """The calibration part of a router file from one hold-out set's rows (one per seed; see
    :func:`select_holdout`).

    ``llm_correctness`` maps each source dataset to the LLM's ``correctness`` file (per-query labels,
    joined by id); without it, ``llm_accuracy`` is the LLM's accuracy on every row. ``served_seed``
    (default: the first seed) is the seed whose thresholds are served. Returns the ``holdout``,
    ``grid``, ``curve`` and ``operating_point`` sections of the router file (docs/router.md).
    """
    op = check_operating_point(operating_point, key="operating_point")
    if not rows:
        raise CalibrationError(f"{where or 'router'}: no hold-out rows")
    if (llm_correctness is None) == (llm_accuracy is None):
        raise CalibrationError("router: give the LLM's correctness files or its accuracy (exactly one)")
    if llm_accuracy is not None and not 0 <= llm_accuracy <= 1:
        raise CalibrationError(f"router: the LLM's accuracy must lie in [0, 1], got {llm_accuracy!r}")
    seeds = [int(r["seed"]) for r in rows]
    if len(set(seeds)) != len(seeds):
        raise CalibrationError(f"{where}: seeds {seeds} repeat; one hold-out set per seed expected")
    served = seeds[0] if served_seed is None else int(served_seed)
    if served not in seeds:
        raise CalibrationError(f"{where}: served seed {served} is not among the hold-out seeds {seeds}")
    grid = np.asarray(rows[0]["ratio"], dtype=np.float64)
    for r in rows:
        if not np.array_equal(np.asarray(r["ratio"], dtype=np.float64), grid):
            raise CalibrationError(f"{where}: seed {r['seed']} has another ratio grid")
        if len(r["confidence"]) == 0:
            raise CalibrationError(f"{where}: seed {r['seed']} has an empty hold-out sample")
    labels = llm_labels(llm_correctness) if llm_correctness is not None else None
    by_source = llm_accuracy_by_source(labels) if labels is not None else {}
    curves, llm_acc, slm_acc, per_seed_op = [], [], [], []
    r_fixed = op.get("llm_fraction")
    for r in rows:
        c = np.asarray(r["confidence"], dtype=np.float64)
        s = np.array([np.nan if v is None else float(v) for v in r["slm_correct"]])
        l = _llm_per_row(r, labels, llm_accuracy, by_source)
        t, q = tie_aware_thresholds(c, grid)  # recomputed: the same (t, q) the file holds, checked below
        stored_t = np.asarray(r["threshold"], dtype=np.float64)
        if not np.allclose(t, stored_t, equal_nan=True) or not np.allclose(q, np.asarray(r["q"], dtype=np.float64)):
            raise CalibrationError(
                f"{where}: seed {r['seed']}: the stored thresholds do not match the hold-out confidences"
            )
        if np.isnan(s).all():
            raise CalibrationError(f"{where}: seed {r['seed']}: no hold-out row has an SLM label")
        curves.append(predicted_accuracy(c, s, l, t, q))
        llm_acc.append(float(curves[-1][-1]))
        slm_acc.append(float(curves[-1][0]))
    curves = np.vstack(curves)
    mean = curves.mean(axis=0)
    sd = curves.std(axis=0, ddof=1) if len(rows) > 1 else np.full(grid.size, np.nan)
    llm_mean = float(np.mean(llm_acc))
    if r_fixed is None:
        share = op["llm_accuracy_share"]
        if llm_mean <= 0:
            raise CalibrationError(f"{where}: the LLM's predicted accuracy is 0; an accuracy share cannot be reached")
        ok = np.flatnonzero(mean >= share * llm_mean - 1e-12)
        if ok.size == 0:
            best = int(np.argmax(mean))
            raise CalibrationError(
                f"{where}: no LLM-call fraction reaches {share} of the LLM's predicted accuracy "
                f"{llm_mean:.4f}; the most is {mean[best] / llm_mean:.4f} at fraction {grid[best]:.2f}"
            )
        r_op = float(grid[ok[0]])
    else:
        r_op = float(r_fixed)
    served_row = rows[seeds.index(served)]
    c_served = np.asarray(served_row["confidence"], dtype=np.float64)
    t_op, q_op = (float(x[0]) for x in tie_aware_thresholds(c_served, [r_op]))
    for r in rows:  # the operating point's accuracy on every seed (each seed's own threshold at r_op)
        c = np.asarray(r["confidence"], dtype=np.float64)
        s = np.array([np.nan if v is None else float(v) for v in r["slm_correct"]])
        l = _llm_per_row(r, labels, llm_accuracy, by_source)
        t1, q1 = tie_aware_thresholds(c, [r_op])
        per_seed_op.append(float(predicted_accuracy(c, s, l, t1, q1)[0]))
    t_s, q_s = tie_aware_thresholds(c_served, grid)
    op_acc = float(np.mean(per_seed_op))
    return {
        "holdout": {
            "slm": served_row["slm"],
            "method": served_row["method"],
            "setting": served_row["setting"],
            "target": served_row["target"],
            "sources": list(served_row["sources"]),
            "k": float(served_row["k"]),
            "bins": int(served_row["bins"]),
            "pool_size": int(served_row["pool_size"]),
            "pool_note": served_row["pool_note"],
            "seeds": seeds,
            "served_seed": served,
            "n": int(c_served.size),
            "confidence": [float(x) for x in c_served],
            "source_dataset": list(served_row["source_dataset"]),
        },
        "grid": {"ratio": [float(x) for x in grid], "threshold": _finite_or_none(t_s), "q": [float(x) for x in q_s]},
        "curve": {
            "accuracy_mean": [float(x) for x in mean],
            "accuracy_sd": _finite_or_none(sd),
            "accuracy_by_seed": [[float(x) for x in c] for c in curves],
            "slm_accuracy": float(np.mean(slm_acc)),
            "llm_accuracy": llm_mean,
            "llm_labels": "per query" if labels is not None else "constant",
            "llm_accuracy_by_source": by_source if labels is not None else None,
        },
        "operating_point": {
            "target": op,
            "llm_fraction": r_op,
            "threshold": None if not np.isfinite(t_op) else t_op,
            "q": q_op,
            "predicted_accuracy": op_acc,
            "predicted_accuracy_sd": float(np.std(per_seed_op, ddof=1)) if len(per_seed_op) > 1 else None,
            "predicted_accuracy_share": op_acc / llm_mean if llm_mean > 0 else None,
        },
    }


def operating_point_at(doc: Mapping, fraction: float) -> dict:
    """The ``operating_point`` section of a router file moved to LLM-call fraction ``fraction``: the served
    seed's tie-aware threshold (the same hold-out confidences and rule as the file's own operating point), and
    the predicted accuracy (and its spread over seeds) read off the file's curve, linear between grid fractions
    (exact at them; the curve itself is piecewise linear in r between the hold-out's 1/n steps, so between grid
    points this is an interpolation). RouteLLM's several operating points of one router, from one file.
    """
    op = check_operating_point({"llm_fraction": fraction}, key="operating point")
    r = op["llm_fraction"]
    c = np.asarray(doc["holdout"]["confidence"], dtype=np.float64)
    (t,), (q,) = tie_aware_thresholds(c, [r])
    grid = np.asarray(doc["grid"]["ratio"], dtype=np.float64)
    curve = doc["curve"]
    acc = float(np.interp(r, grid, np.asarray(curve["accuracy_mean"], dtype=np.float64)))
    sd = curve["accuracy_sd"]
    acc_sd = None if any(v is None for v in sd) else float(np.interp(r, grid, np.asarray(sd, dtype=np.float64)))
    llm = float(curve["llm_accuracy"])
    return {
        "target": op,
        "llm_fraction": r,
        "threshold": None if not np.isfinite(t) else float(t),
        "q": float(q),
        "predicted_accuracy": acc,
        "predicted_accuracy_sd": acc_sd,
        "predicted_accuracy_share": acc / llm if llm > 0 else None,
    }


# ------------------------------------------------------------------ checks of `uqroute calibrate`
def _identities(value) -> list:
    return value if isinstance(value, list) else [value]


def check_identity(holdout_path, slm: str, *, model_dir=None, probe_path=None) -> list[str]:
    """Refuse a hold-out set, SLM weights and probe that do not belong together; return what could not be checked.

    * The hold-out file's provenance (``uqroute.io.read_provenance``) names every model its
      confidences derive from: the SLM its rows name (``slm``) must be among them, or the rows were
      relabelled (or computed by another SLM).
    * ``model_dir`` (``--slm-dir``): the model ``fetch_model`` recorded in it must be that SLM, and
      its weights identity (``uqroute.models.weights_identity``) the one the provenance records for it.
    * ``probe_path`` (``--probe``): the probe's input size must be the SLM's hidden size
      (``config.json`` of ``model_dir``).

    Raises :class:`CalibrationError` naming the files; returns notes for what the files do not record.
    """
    from .. import io

    notes = []
    models = io.read_provenance(holdout_path).get("models") or {}
    if not models:
        notes.append(
            f"hold-out file {holdout_path} records no model identities (written by an older uqroute?): "
            f"whether its confidences are {slm}'s is not checked"
        )
    elif slm not in models:
        raise CalibrationError(
            f"hold-out file {holdout_path}: its rows say SLM {slm!r}, but its provenance says it was computed from "
            f"the models {sorted(models)}: the hold-out set is not {slm}'s (relabelled?); calibrate on {slm}'s own hold-out set"
        )
    if model_dir is not None:
        fetched = io.provenance(inputs=[model_dir])["models"]  # {model: identity} from fetch_model's marker
        if fetched and slm not in fetched:
            raise CalibrationError(
                f"--slm-dir {model_dir} holds the model {', '.join(sorted(fetched))}, but the hold-out file {holdout_path} "
                f"says its rows are SLM {slm!r}'s: the router would score requests with another model than it was calibrated on"
            )
    if model_dir is not None and models.get(slm) is not None:
        from ..models import weights_identity

        got = weights_identity(None, model_dir, name=slm)
        if got not in _identities(models[slm]):
            raise CalibrationError(
                f"--slm-dir {model_dir} holds weights {got}, but the hold-out file {holdout_path} was computed with "
                f"{slm} weights {models[slm]}: the router would score requests with another model than it was calibrated on"
            )
    if probe_path is not None and model_dir is not None:
        import json

        from ..probes import load_probe

        probe, _ = load_probe(probe_path)
        cfg_path = Path(model_dir) / "config.json"
        if cfg_path.is_file():
            cfg = json.loads(cfg_path.read_text())
            hidden = cfg.get("hidden_size", (cfg.get("text_config") or {}).get("hidden_size"))
            if hidden is not None and int(hidden) != int(probe.input_dim):
                raise CalibrationError(
                    f"--probe {probe_path} reads {probe.input_dim}-dimensional hidden states, but the SLM in --slm-dir "
                    f"{model_dir} has hidden size {hidden}: the probe was trained on another model"
                )
        else:
            notes.append(f"--slm-dir {model_dir} has no config.json: the probe's input size is not checked")
    return notes


def calibration_warnings(doc: Mapping) -> list[str]:
    """What a user should know about a router calibrated as ``doc`` (a router file): a hold-out set
    with fewer rows than bins (its thresholds are coarse), and an operating point that routes every
    request to the LLM (or none)."""
    out = []
    h, op = doc["holdout"], doc["operating_point"]
    if h["n"] < h["bins"]:
        out.append(
            f"the hold-out set has {h['n']} rows, fewer than its {h['bins']} bins: its thresholds can only take "
            f"{h['n'] + 1} distinct LLM-call fractions"
        )
    if op["llm_fraction"] >= 1:
        target = op["target"]
        why = (
            f" (no smaller fraction reaches {target['llm_accuracy_share']} of the LLM's predicted accuracy)"
            if "llm_accuracy_share" in target
            else ""
        )
        out.append(f"the operating point routes every request to the LLM{why}: the router saves nothing")
    elif op["llm_fraction"] <= 0 and op["target"].get("llm_fraction", 0) > 0:
        out.append("the operating point routes no request to the LLM")
    return out


def recorded_inference(holdout_path) -> tuple[dict | None, int | None]:
    """The ``inference`` settings and ``seed`` the hold-out file's provenance records (``(None, None)`` when absent)."""
    from .. import io

    cfg = io.read_provenance(holdout_path).get("config") or {}
    inf = cfg.get("inference")
    return (dict(inf) if isinstance(inf, dict) else None), (
        int(cfg["seed"]) if isinstance(cfg.get("seed"), int) else None
    )
