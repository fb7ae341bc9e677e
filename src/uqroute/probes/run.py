"""Rule ``probe``: the in-domain probe and the leave-one-dataset-out probe for one target dataset.

In-domain (``trained_probe``, paper §3.1 (7)): trained on the target's ``role == "train"``
rows (a fixed seeded subsample taken by the data stage) and scored on its eval rows
(scheme ``train_split``). A dataset with no labelled training rows (MATH-500,
or ``train_limit: 0``) is cross-fitted instead: seeded stratified K-fold over its eval
rows, so no query is scored by a probe that saw its label (scheme ``crossfit``; the saved
weights are then a probe fit on all labelled eval rows, for reuse on new data).

Out-of-domain (``ood_probe``, paper §3.1 (8)): same network, lr 1e-4, trained on every row
(train and eval) of every *other* dataset of the run and scored on the target's eval rows.

One-class training labels give a constant score (the training base rate) with a warning
(scheme ``constant``).

Rule ``proxy_probe`` (:func:`run_proxy_probes`): the same OOD probe with *two* datasets held out,
scoring both; one job trains the probes of several pairs. The proxy study (paper §4.2) scores source S of target T's proxy pool with the
probe trained without S and without T, because the leave-one-dataset-out probe of S was trained
on T and would carry the target's labels into its own proxy data.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

import numpy as np
import polars as pl

from ..io import write_parquet
from ..schema import ARTIFACTS
from ..settings import section
from .inputs import ProbeInputError, ProbeInputs, load_probe_inputs
from .train import crossfit_predict, derive_seed, fit_probe
from .weights import save_probe, save_probes

__all__ = ["run_probes", "run_proxy_probes", "in_domain_scores", "ood_scores", "leak_free_scores", "probe_settings"]

log = logging.getLogger(__name__)


def probe_settings(cfg: dict | None) -> dict:
    """The ``probe`` section with the schema's defaults filled in (``uqroute.settings.section("probe", cfg)``);
    an unknown key raises a ``ValueError`` naming it."""
    return section("probe", cfg)


def in_domain_scores(t: ProbeInputs, cfg: dict, seed: int):
    """(scores of the eval rows, scheme, fitted probe, extra metadata) for the in-domain probe."""
    fit = dict(hidden_sizes=cfg["hidden_sizes"], epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"])
    label = f"trained_probe[{t.dataset}]"
    train = t.train_mask & t.labelled
    ev = t.eval_mask
    if train.any():
        probe = fit_probe(t.x[train], t.y[train], seed=derive_seed(seed, "trained_probe"), label=label, **fit)
        scheme = "train_split" if probe.kind == "mlp" else "constant"
        return probe.predict(t.x[ev]), scheme, probe, {"n_folds": 0}
    log.info("%s: no labelled training rows; cross-fitting on the %d eval rows", label, int(ev.sum()))
    res = crossfit_predict(
        t.x[ev], t.y[ev], folds=cfg["crossfit_folds"], seed=derive_seed(seed, "trained_probe"), label=label, **fit
    )
    return res.scores, res.scheme, res.full, {"n_folds": res.n_folds}


def ood_scores(t: ProbeInputs, others: Sequence[ProbeInputs], cfg: dict, seed: int):
    """(scores of the target's eval rows, fitted probe) for the leave-one-dataset-out probe,
    trained on every labelled row of ``others`` (never on ``t``)."""
    if any(o.dataset == t.dataset for o in others):
        raise ValueError(f"ood_probe[{t.dataset}]: the held-out dataset is among its training datasets")
    x = np.concatenate([o.x[o.labelled] for o in others])
    y = np.concatenate([o.y[o.labelled] for o in others])
    if len(y) == 0:
        raise ProbeInputError(
            f"ood_probe[{t.dataset}]: the other datasets {[o.dataset for o in others]} have no labelled rows"
        )
    probe = fit_probe(
        x,
        y,
        hidden_sizes=cfg["hidden_sizes"],
        epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        lr=cfg["ood_lr"],
        seed=derive_seed(seed, "ood_probe"),
        label=f"ood_probe[{t.dataset}]",
    )
    return probe.predict(t.x[t.eval_mask]), probe


def leak_free_scores(held: Sequence[ProbeInputs], others: Sequence[ProbeInputs], cfg: dict, seed: int):
    """({dataset: scores of its eval rows} for every dataset of ``held``, fitted probe): one OOD probe
    trained on every labelled row of ``others`` (never on ``held``), lr ``ood_lr``. The seed is
    derived from the held-out names in sorted order, so the pair (a, b) and (b, a) give one probe."""
    names = sorted(h.dataset for h in held)
    clash = [o.dataset for o in others if o.dataset in names]
    if clash:
        raise ValueError(f"proxy_probe[{'+'.join(names)}]: held-out dataset(s) {clash} are among its training datasets")
    label = f"proxy_probe[without {' and '.join(names)}]"
    if not others:
        raise ProbeInputError(
            f"{label}: no dataset is left to train on; a leak-free probe needs a third dataset in the run"
        )
    x = np.concatenate([o.x[o.labelled] for o in others])
    y = np.concatenate([o.y[o.labelled] for o in others])
    if len(y) == 0:
        raise ProbeInputError(f"{label}: the training datasets {[o.dataset for o in others]} have no labelled rows")
    probe = fit_probe(
        x,
        y,
        hidden_sizes=cfg["hidden_sizes"],
        epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        lr=cfg["ood_lr"],
        seed=derive_seed(seed, "proxy_probe", *names),
        label=label,
    )
    return {h.dataset: probe.predict(h.x[h.eval_mask]) for h in held}, probe


def run_proxy_probes(
    pairs: Sequence[Sequence[str]],
    datasets: Sequence[str],
    data_paths: Sequence,
    hidden_paths: Sequence,
    correctness_paths: Sequence,
    out_path,
    weights_path,
    cfg: dict | None,
    seed: int,
    provenance: dict | None = None,
) -> pl.DataFrame:
    """Rule ``proxy_probe``: for each pair of ``pairs``, the OOD probe trained without both datasets
    of the pair (:func:`leak_free_scores`).

    Each probe trains on every labelled row (train and eval) of the run's other datasets and scores
    the eval rows of both datasets of its pair. One job trains the pairs one dataset owns
    (``uqroute.routing.proxy_probe_jobs``); each probe keeps the seed of its pair, so the grouping
    changes no score. Writes the ``proxy_probe`` artifact (per pair in the given order: rows of
    ``pair[0]`` then ``pair[1]``, each in data order) and one weights file of every pair's probe
    (:func:`uqroute.probes.save_probes`, named ``{a}+{b}``). A dataset's labels are read only when it
    trains some probe of the job, and never reach the probes of the pairs it is in. Paths are
    aligned with ``datasets`` (every dataset of the run).
    """
    datasets, pairs = list(datasets), [tuple(p) for p in pairs]
    for name, paths in {
        "data_paths": data_paths,
        "hidden_paths": hidden_paths,
        "correctness_paths": correctness_paths,
    }.items():
        if len(paths) != len(datasets):
            raise ValueError(f"run_proxy_probes: {name} has {len(paths)} entries for {len(datasets)} datasets")
    if not pairs:
        raise ValueError("run_proxy_probes: no pair of datasets to train a probe for")
    for pair in pairs:
        if len(pair) != 2 or pair[0] == pair[1] or not set(pair) <= set(datasets):
            raise ValueError(
                f"run_proxy_probes: each pair must be two different datasets of the run {datasets}, got {list(pair)}"
            )
    seen = Counter(tuple(sorted(p)) for p in pairs)
    twice = [list(p) for p, n in seen.items() if n > 1]
    if twice:
        raise ValueError(f"run_proxy_probes: pair(s) {twice} given more than once (a pair's probe is one probe)")
    cfg = probe_settings(cfg)
    idx = {d: i for i, d in enumerate(datasets)}
    trains = {d for pair in pairs for d in datasets if d not in pair}  # datasets some probe trains on
    needed = [d for d in datasets if d in trains or any(d in p for p in pairs)]
    inputs = {
        d: load_probe_inputs(
            d, data_paths[idx[d]], hidden_paths[idx[d]], correctness_paths[idx[d]] if d in trains else None
        )
        for d in needed
    }
    dims = {d: i.x.shape[1] for d, i in inputs.items()}
    if len(set(dims.values())) > 1:
        raise ProbeInputError(f"run_proxy_probes: hidden sizes differ across datasets {dims}")
    probes, parts = {}, []
    for pair in pairs:
        others = [d for d in datasets if d not in pair]
        held = [inputs[d] for d in pair]
        scores, probe = leak_free_scores(held, [inputs[d] for d in others], cfg, seed)
        probes["+".join(pair)] = (
            probe,
            dict(
                scheme="leave_two_datasets_out" if probe.kind == "mlp" else "constant",
                lr=cfg["ood_lr"],
                epochs=cfg["epochs"],
                batch_size=cfg["batch_size"],
                seed=int(seed),
                held_out=sorted(pair),
                training_datasets=others,
            ),
        )
        for h, other in zip(held, reversed(pair)):
            ids = [i for i, e in zip(h.ids, h.eval_mask) if e]
            parts.append(
                pl.DataFrame(
                    {
                        "dataset": [h.dataset] * len(ids),
                        "other": [other] * len(ids),
                        "id": ids,
                        "ood_probe": np.asarray(scores[h.dataset], dtype=np.float64),
                    },
                    schema=ARTIFACTS["proxy_probe"].polars_schema(),
                )
            )
        log.info("proxy_probe[without %s]: trained on %s", "+".join(pair), others)
    table = pl.concat(parts)
    save_probes(weights_path, probes)
    write_parquet(table, out_path, "proxy_probe", provenance=provenance)
    log.info("proxy_probe: %d pair probe(s), %d rows scored", len(pairs), table.height)
    return table


def run_probes(
    target: str,
    datasets: Sequence[str],
    data_paths: Sequence,
    hidden_paths: Sequence,
    correctness_paths: Sequence,
    out_path,
    trained_weights_path,
    ood_weights_path,
    cfg: dict | None,
    seed: int,
    provenance: dict | None = None,
) -> pl.DataFrame:
    """Rule ``probe``: write the ``probes`` artifact for ``target`` and both probes' weights.

    ``data_paths``, ``hidden_paths`` and ``correctness_paths`` are aligned with
    ``datasets`` (every dataset of the run; the OOD probe trains on all but ``target``).
    ``cfg`` is the config's ``probe`` block (missing keys: the schema's defaults,
    ``uqroute.settings.defaults("probe")``). Returns the
    written table (the target's eval rows, in data order).
    """
    datasets = list(datasets)
    lists = {"data_paths": data_paths, "hidden_paths": hidden_paths, "correctness_paths": correctness_paths}
    for name, paths in lists.items():
        if len(paths) != len(datasets):
            raise ValueError(f"run_probes: {name} has {len(paths)} entries for {len(datasets)} datasets")
    if target not in datasets:
        raise ValueError(f"run_probes: target {target!r} is not among the run's datasets {datasets}")
    if len(set(datasets)) != len(datasets):
        raise ValueError(f"run_probes: datasets {datasets} contain duplicates")
    others_names = [d for d in datasets if d != target]
    if not others_names:
        raise ValueError(
            f"run_probes: the OOD probe for {target!r} trains on the run's other datasets, but the run has only "
            f"{datasets}; add at least one more dataset"
        )
    cfg = probe_settings(cfg)
    inputs = {
        name: load_probe_inputs(name, dp, hp, cp)
        for name, dp, hp, cp in zip(datasets, data_paths, hidden_paths, correctness_paths)
    }
    dims = {name: inp.x.shape[1] for name, inp in inputs.items()}
    if len(set(dims.values())) > 1:
        raise ProbeInputError(f"run_probes: hidden sizes differ across datasets {dims} (files {list(hidden_paths)})")
    t = inputs[target]
    if not t.labelled.any():
        raise ProbeInputError(f"dataset {target!r}: no row of {correctness_paths[datasets.index(target)]} has a label")

    trained, scheme, trained_probe, extra = in_domain_scores(t, cfg, seed)
    ood, ood_probe = ood_scores(t, [inputs[d] for d in others_names], cfg, seed)

    common = dict(epochs=cfg["epochs"], batch_size=cfg["batch_size"], seed=int(seed), target=target)
    save_probe(
        trained_weights_path, trained_probe, scheme=scheme, lr=cfg["lr"], training_datasets=[target], **extra, **common
    )
    save_probe(
        ood_weights_path,
        ood_probe,
        scheme="leave_one_dataset_out" if ood_probe.kind == "mlp" else "constant",
        lr=cfg["ood_lr"],
        training_datasets=others_names,
        **common,
    )
    table = pl.DataFrame(
        {
            "id": [i for i, e in zip(t.ids, t.eval_mask) if e],
            "trained_probe": np.asarray(trained, dtype=np.float64),
            "trained_probe_scheme": [scheme] * int(t.eval_mask.sum()),
            "ood_probe": np.asarray(ood, dtype=np.float64),
        },
        schema={"id": pl.Utf8, "trained_probe": pl.Float64, "trained_probe_scheme": pl.Utf8, "ood_probe": pl.Float64},
    )
    write_parquet(table, out_path, "probes", provenance=provenance)
    log.info("probes[%s]: scheme %s, %d eval rows, OOD trained on %s", target, scheme, table.height, others_names)
    return table
