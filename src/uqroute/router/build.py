"""Entry points of the router rules and of ``uqroute calibrate``.

* :func:`run_router_holdout` (rule ``router_holdout``): the pooled hold-out sets of one SLM;
* :func:`run_router_probe` (rule ``router_probe``): the OOD probe a router serves, trained on every
  dataset of the run;
* :func:`run_router` (rule ``router``) and :func:`calibrate_file` (``uqroute calibrate``): a router file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from .. import io
from .calibrate import (
    CalibrationError,
    calibrate,
    calibration_warnings,
    check_identity,
    pooled_holdout,
    recorded_inference,
    select_holdout,
)
from .config import UNSUPPORTED, RouterConfigError, check_mode, check_operating_point
from .file import FORMAT, INFERENCE_KEYS, VERSION, file_sha256, file_warmup, write_router_file
from .tracking import warmup_plan

log = logging.getLogger("uqroute.router")

__all__ = ["run_router_holdout", "run_router_probe", "run_router", "calibrate_file", "router_document"]


def run_router_holdout(
    *,
    uq_paths,
    correctness_paths,
    data_paths,
    slm: str,
    datasets: Sequence[str],
    methods: Sequence[str],
    out_path,
    routing_params: Mapping | None = None,
    k: float | None = None,
    provenance: dict | None = None,
) -> pl.DataFrame:
    """Rule ``router_holdout``: ``results/routers/{slm}/holdout.parquet`` (artifact ``router_holdout``).
    ``provenance`` (``uqroute.io.provenance``) records the models and the inference settings, which
    ``uqroute calibrate`` checks and reads."""
    from ..routing import load_inputs

    inputs = load_inputs(uq_paths, correctness_paths, data_paths, slms=[slm], llms=[], datasets=datasets)
    df = pooled_holdout(inputs, slm, list(methods), routing_params or {}, k=k)
    io.write_parquet(df, out_path, "router_holdout", provenance=provenance)
    return df


def run_router_probe(
    *,
    datasets: Sequence[str],
    data_paths,
    hidden_paths,
    correctness_paths,
    out_path,
    probe_cfg: Mapping | None,
    seed: int,
) -> None:
    """Rule ``router_probe``: the OOD probe of a router: the network of ``ood_probe`` (``probe.hidden_sizes``,
    ``probe.ood_lr``, epochs, batch size) trained on every labelled row of **every** dataset of the run
    (the pipeline's ``ood_probe`` for dataset d leaves d out; live traffic is from none of them), seeded
    like the pipeline's (``derive_seed(seed, "ood_probe")``)."""
    from ..probes import derive_seed, fit_probe, load_probe_inputs, probe_settings, save_probe

    cfg = probe_settings(dict(probe_cfg or {}))
    datasets = list(datasets)
    inputs = [
        load_probe_inputs(d, dp, hp, cp) for d, dp, hp, cp in zip(datasets, data_paths, hidden_paths, correctness_paths)
    ]
    dims = {i.dataset: i.x.shape[1] for i in inputs}
    if len(set(dims.values())) > 1:
        raise CalibrationError(f"router_probe: hidden sizes differ across datasets {dims}")
    x = np.concatenate([i.x[i.labelled] for i in inputs])
    y = np.concatenate([i.y[i.labelled] for i in inputs])
    if y.size == 0:
        raise CalibrationError(f"router_probe: no labelled row in {datasets}")
    probe = fit_probe(
        x,
        y,
        hidden_sizes=cfg["hidden_sizes"],
        epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        lr=cfg["ood_lr"],
        seed=derive_seed(seed, "ood_probe"),
        label=f"router ood_probe[{', '.join(datasets)}]",
    )
    save_probe(
        out_path,
        probe,
        scheme="all_datasets" if probe.kind == "mlp" else "constant",
        lr=cfg["ood_lr"],
        training_datasets=datasets,
        epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        seed=int(seed),
        target="router",
    )


def router_document(
    cal: dict,
    *,
    slm: str,
    method: str,
    llm: str | None,
    created_by: str,
    model_dir: str | None,
    weights: str | None,
    inference: Mapping,
    max_tokens: int,
    seed: int,
    probe: dict | None,
    holdout_file: str | None,
    serving: Mapping,
) -> dict:
    """The whole router file from :func:`uqroute.router.calibrate.calibrate`'s sections and the serving settings."""
    from ..inference import resolve_settings, statistics_for

    inf = resolve_settings(dict(inference or {}))
    check_mode(serving["mode"], serving["window"], serving["min_samples"], prefix="serving.")
    holdout = {"file": holdout_file, **cal["holdout"]}
    plan = warmup_plan(
        cal["operating_point"]["llm_fraction"],
        cal["holdout"]["n"],
        float(serving["drift_margin"]),
        int(serving["window"]),
        min_samples=serving["min_samples"],
    )
    return {
        "format": FORMAT,
        "version": VERSION,
        "created_by": created_by,
        "slm": slm,
        "method": method,
        "llm": llm,
        "slm_model": {"model_dir": model_dir, "weights": weights},
        "inference": {
            **{k: inf[k] for k in INFERENCE_KEYS},
            "max_tokens": int(max_tokens),
            "seed": int(seed),
            "statistics": statistics_for([method]),
        },
        "probe": probe,
        "holdout": holdout,
        "grid": cal["grid"],
        "curve": cal["curve"],
        "operating_point": cal["operating_point"],
        "serving": {
            "mode": serving["mode"],
            "window": int(serving["window"]),
            "min_samples": plan["min_samples"],
            "drift_margin": float(serving["drift_margin"]),
            "warmup": file_warmup(plan),
        },
    }


def _probe_entry(method: str, probe_path, router_path) -> dict | None:
    from ..uq import METHODS

    if method in UNSUPPORTED:
        raise RouterConfigError(f"method {method}: {UNSUPPORTED[method]}")
    if METHODS[method].family != "probe":
        if probe_path is not None:
            raise RouterConfigError(
                f"method {method} is not a probe method; no probe file is needed (got {probe_path})"
            )
        return None
    if probe_path is None:
        raise RouterConfigError(
            f"method {method} scores hidden states with a probe: give its probe file (rule router_probe "
            "writes results/routers/{slm}/ood_probe.safetensors; any results/probes/{slm}/{dataset}.ood_probe.safetensors works too)"
        )
    from ..probes import load_probe

    _, meta = load_probe(probe_path)  # checks the format
    rel = os.path.relpath(Path(probe_path).resolve(), Path(router_path).resolve().parent)
    import json

    return {
        "path": rel,
        "sha256": file_sha256(probe_path),
        "training_datasets": json.loads(meta.get("training_datasets", "[]")),
    }


def run_router(
    *,
    holdout_path,
    llm_correctness: Mapping[str, str],
    out_path,
    slm: str,
    method: str,
    llm: str,
    router_cfg: Mapping,
    inference_cfg: Mapping,
    seed: int,
    model_dir: str | None,
    weights: str | None,
    probe_path=None,
    routing_seeds: Sequence[int] | None = None,
) -> dict:
    """Rule ``router``: ``results/routers/{slm}/{method}.json`` from the pooled hold-out set and the LLM's correctness."""
    from .config import resolve

    p = resolve(router_cfg)
    df = io.read_artifact(holdout_path, "router_holdout", stage="router")
    rows = select_holdout(df, path=str(holdout_path), slm=slm, method=method)
    served = p["seed"] if p["seed"] is not None else (list(routing_seeds)[0] if routing_seeds else None)
    cal = calibrate(
        rows,
        operating_point=p["operating_point"],
        llm_correctness=llm_correctness,
        served_seed=served,
        where=f"router {slm}/{method}",
    )
    doc = router_document(
        cal,
        slm=slm,
        method=method,
        llm=llm,
        created_by="rule router",
        model_dir=model_dir,
        weights=weights,
        inference=inference_cfg,
        max_tokens=p["max_tokens"],
        seed=seed,
        probe=_probe_entry(method, probe_path, out_path),
        holdout_file=str(holdout_path),
        serving=p,
    )
    write_router_file(doc, out_path)
    op, w = doc["operating_point"], doc["serving"]["warmup"]
    log.info(
        "router %s/%s: LLM-call fraction %.3f, threshold %s, predicted accuracy %.4f (LLM %.4f, SLM %.4f), mode %s, "
        "warm-up %d (hold-out %d; early from %d), expected fraction over it ± %.3f",
        slm,
        method,
        op["llm_fraction"],
        op["threshold"],
        op["predicted_accuracy"],
        doc["curve"]["llm_accuracy"],
        doc["curve"]["slm_accuracy"],
        p["mode"],
        doc["serving"]["min_samples"],
        doc["holdout"]["n"],
        w["drift_min_samples"],
        w["band_warmup"],
    )
    return doc


def calibrate_file(
    *,
    holdout_path,
    out_path,
    slm: str | None = None,
    method: str | None = None,
    setting: str | None = None,
    target: str | None = None,
    k: float | None = None,
    llm_correctness_dir=None,
    llm_accuracy: float | None = None,
    llm: str | None = None,
    llm_fraction: float | None = None,
    llm_accuracy_share: float | None = None,
    mode: str = "tracking",
    window: int = 500,
    min_samples: int | None = None,
    drift_margin: float = 0.1,
    seed: int | None = None,
    model_dir: str | None = None,
    inference_cfg: Mapping | None = None,
    max_tokens: int = 256,
    inference_seed: int | None = None,
    probe_path=None,
) -> dict:
    """``uqroute calibrate``: a router file from any ``holdout`` or ``router_holdout`` file.

    ``llm_correctness_dir`` is a folder with the LLM's ``{dataset}.parquet`` correctness files
    (``results/correctness/{llm}``); or give ``llm_accuracy``. The hold-out set, ``model_dir`` and
    ``probe_path`` must belong to the same SLM (:func:`uqroute.router.calibrate.check_identity`).
    ``inference_cfg`` / ``inference_seed`` None: the settings the hold-out file's provenance records
    (else the schema's defaults, with a warning). Warnings (:func:`uqroute.router.calibrate.calibration_warnings`)
    are logged.
    """
    if llm_fraction is not None and llm_accuracy_share is not None:
        raise RouterConfigError("give --llm-fraction or --llm-accuracy-share, not both")
    op = check_operating_point(
        {"llm_fraction": llm_fraction} if llm_accuracy_share is None else {"llm_accuracy_share": llm_accuracy_share},
        key="operating point",
    )
    check_mode(mode, window, min_samples, prefix="--")
    path = Path(holdout_path)
    if not path.is_file():
        raise FileNotFoundError(f"hold-out file {path} does not exist")
    schema = pl.read_parquet_schema(path)
    artifact = (
        "router_holdout"
        if "target" in schema and pl.read_parquet(path, columns=["setting"])["setting"].eq("pooled").all()
        else "holdout"
    )
    df = io.read_artifact(path, artifact, stage="uqroute calibrate")
    rows = select_holdout(df, path=str(path), slm=slm, method=method, setting=setting, target=target, k=k)
    sources = sorted({d for r in rows for d in r["source_dataset"]})
    corr = None
    if llm_correctness_dir is not None:
        folder = Path(llm_correctness_dir)
        corr = {d: str(folder / f"{d}.parquet") for d in sources}
        missing = [p for p in corr.values() if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(
                f"--llm-correctness {folder}: the hold-out rows come from {sources}, but {missing} do not exist"
            )
        llm = llm or folder.name
    elif llm_accuracy is None:
        raise RouterConfigError(
            "give the LLM's correctness folder (--llm-correctness results/correctness/LLM) or its accuracy (--llm-accuracy)"
        )
    r0 = rows[0]
    for note in check_identity(
        path,
        r0["slm"],
        model_dir=model_dir if model_dir is not None and Path(model_dir).is_dir() else None,
        probe_path=probe_path,
    ):
        log.warning("%s", note)
    if inference_cfg is None or inference_seed is None:
        rec_inf, rec_seed = recorded_inference(path)
        if inference_cfg is None:
            if rec_inf is None:
                log.warning(
                    "hold-out file %s records no inference settings and no --configfile was given: the router file gets the "
                    "schema's defaults, which may not be those its confidences were computed with",
                    path,
                )
            inference_cfg = rec_inf or {}
        if inference_seed is None:
            inference_seed = rec_seed if rec_seed is not None else 0
    cal = calibrate(
        rows,
        operating_point=op,
        llm_correctness=corr,
        llm_accuracy=llm_accuracy,
        served_seed=seed,
        where=f"{path} {r0['slm']}/{r0['method']}",
    )
    weights = None
    if model_dir is not None and Path(model_dir).is_dir():
        from ..models import weights_identity

        weights = weights_identity(None, model_dir, name=r0["slm"])
    doc = router_document(
        cal,
        slm=r0["slm"],
        method=r0["method"],
        llm=llm,
        created_by="uqroute calibrate",
        model_dir=model_dir,
        weights=weights,
        inference=inference_cfg or {},
        max_tokens=max_tokens,
        seed=inference_seed,
        probe=_probe_entry(r0["method"], probe_path, out_path),
        holdout_file=str(path),
        serving={"mode": mode, "window": window, "min_samples": min_samples, "drift_margin": drift_margin},
    )
    for w in calibration_warnings(doc):
        log.warning("router %s/%s: %s", r0["slm"], r0["method"], w)
    write_router_file(doc, out_path)
    return doc
