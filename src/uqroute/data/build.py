"""Build the ``data`` artifact of one dataset (rule ``download``).

Rows: the evaluation split (``role = eval``) and a seeded subsample of the
training split (``role = train``, used only by the in-domain trained probe, which
the paper trains "on a fixed subsample of the in-domain training set", §3.1).

Selection (deterministic under ``seed``):

* evaluation rows: all of them, or with ``eval_limit`` a seeded uniform sample of
  that many rows without replacement, kept in source order. A sample rather than
  the first rows, because several sources are sorted (MMLU by subject, the slices
  by nothing in particular): the first N rows of MMLU are all abstract algebra.
* training rows: a seeded uniform sample of ``train_limit`` rows, in source order.

Both samples draw from ``numpy.random.default_rng`` seeded with ``(seed, dataset,
role)``, so one dataset's sample does not change when another is added. For CoQA
a "row" is one story, asked its last question (``data.coqa_questions: all``: one row per
question). A limit larger than the split uses every row and logs that it did.

A dataset whose registry entry sets ``eval_share`` (TruthfulQA: 164 of 817, Table 2) has no
training split of its own: its evaluation split is divided by :func:`holdout_split`, a shuffle
seeded with the registry's fixed ``HOLDOUT_SEED`` (not the run's ``seed``), into the evaluation
rows (164 of the hub's 817; the same share of a copy with fewer rows) and the training rows (the
other 653); both keep the source split's name in the ``split`` column and their source row index
in the id. The split is ours: the paper does not publish its own.
"""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import numpy as np
import polars as pl

from ..io import write_parquet
from ..schema import ARTIFACTS
from ..settings import ConfigError, defaults, section
from .adapters import adapter_options, to_rows
from .errors import DatasetError, EmptySplitError, SplitNotFoundError
from .registry import HOLDOUT_SEED, DatasetSpec, get_spec
from .sources import SOURCES, read_split, resolve_hub_commit, split_location

log = logging.getLogger(__name__)

__all__ = ["load_rows", "build_dataset", "select_indices", "holdout_split", "data_settings", "dataset_revision"]


def select_indices(n: int, limit: int | None, *, seed: int, dataset: str, role: str) -> np.ndarray:
    """Sorted indices of a seeded uniform sample of ``limit`` out of ``n`` rows (all when ``limit`` is None or ≥ n)."""
    if limit is None or limit >= n:
        if limit is not None and limit > n:
            log.warning(
                "dataset %r: %s limit %d exceeds the %d available rows; using all %d", dataset, role, limit, n, n
            )
        return np.arange(n)
    seq = np.random.SeedSequence([int(seed) % 2**32, zlib.crc32(dataset.encode()), zlib.crc32(role.encode())])
    rng = np.random.default_rng(seq)
    return np.sort(rng.choice(n, size=limit, replace=False))


def holdout_split(n: int, share: tuple[int, int], *, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(evaluation, training)`` indices of ``n`` rows: ``round(n·a/b)`` of them (``a`` when
    ``n == b``; at least 1, and at least 1 left to train), drawn by a shuffle seeded with the registry's
    fixed ``HOLDOUT_SEED`` and the dataset name, are evaluated; the rest train. ``share`` = ``(a, b)``."""
    a, b = share
    if n < 2:
        raise DatasetError(f"dataset {dataset!r}: {n} row(s) cannot be divided into evaluation and training rows")
    n_eval = min(n - 1, max(1, round(n * a / b)))
    seq = np.random.SeedSequence([HOLDOUT_SEED, zlib.crc32(dataset.encode()), zlib.crc32(b"holdout")])
    order = np.random.default_rng(seq).permutation(n)
    return np.sort(order[:n_eval]), np.sort(order[n_eval:])


def _unified(spec: DatasetSpec, split: str, role: str, source_kw: dict, options: dict | None = None) -> list[dict]:
    rows = read_split(spec, split, **source_kw)
    where = split_location(spec, split, **source_kw)
    if not rows:
        raise EmptySplitError(
            f"dataset {spec.name!r}, split {split!r} ({source_kw['source']}): the split has no rows, in {where}"
        )
    out = to_rows(spec, split, role, rows, where, options=options)
    if not out:
        raise EmptySplitError(
            f"dataset {spec.name!r}, split {split!r}: no queries after adapting {len(rows)} rows, in {where}"
        )
    return out


def _check_limit(name: str, key: str, value, minimum: int) -> None:
    if value is None and key == "eval_limit":
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DatasetError(f"dataset {name!r}: data.{key} must be an integer ≥ {minimum}, got {value!r}")


def data_settings(name: str, data: dict) -> dict:
    """The ``data`` section with the schema's defaults filled in (``uqroute.settings.section("data", data)``);
    an unknown key raises :class:`DatasetError` naming the dataset and the key."""
    try:
        return section("data", data)
    except ConfigError as err:
        raise DatasetError(f"dataset {name!r}: {err}") from None


def dataset_revision(name: str, data: dict) -> str | None:
    """The hub revision dataset ``name`` is read at: ``data.revisions[name]`` when the config sets
    it, else the registry's ``revision`` (``None`` = the hub's default branch)."""
    return (data.get("revisions") or {}).get(name) or get_spec(name).revision


def load_rows(name: str, *, seed: int | None = None, **data) -> pl.DataFrame:
    """The unified rows of dataset ``name`` (eval rows, then train rows) as a polars frame.

    Keyword arguments are the config's ``data:`` section (``source``, ``mirror_dir``,
    ``slices_dir``, ``eval_limit``, ``train_limit``, ``revisions``; see ``config/schema.yaml``); a
    key left out takes the schema's default, as does ``seed``. A missing evaluation split is an
    error; a missing training split logs a warning and gives no training rows (the probe stage
    then cross-fits).
    """
    return _load(name, seed, data)[0]


def _file_sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _source_record(spec: DatasetSpec, data: dict, splits: list[str], commit: str | None) -> dict:
    """What the rows were read from: the hub id, config, requested revision and resolved commit, or
    the sha256 of each mirror/slices file read (keyed by its path relative to the root)."""
    source = data["source"]
    if source == "hub":
        return {
            "source": "hub",
            "hub": spec.hub_id,
            "config": spec.hub_config,
            "revision": dataset_revision(spec.name, data),
            "commit": commit,
        }
    root = Path(data["slices_dir"] if source == "slices" else data["mirror_dir"])
    files = {
        spec.split_file(s): _file_sha256(root / spec.split_file(s))
        for s in splits
        if (root / spec.split_file(s)).is_file()
    }
    return {"source": source, "hub": spec.hub_id, "config": spec.hub_config, "files": files}


def _load(name: str, seed: int | None, data: dict) -> tuple[pl.DataFrame, dict]:
    """The rows of :func:`load_rows` and the record of where they came from (:func:`_source_record`)."""
    spec = get_spec(name)
    data = data_settings(name, data)
    seed = defaults("seed") if seed is None else seed
    source, eval_limit, train_limit = data["source"], data["eval_limit"], data["train_limit"]
    if source not in SOURCES:
        raise DatasetError(f"dataset {name!r}: unknown data.source {source!r}; use one of {', '.join(SOURCES)}")
    _check_limit(name, "eval_limit", eval_limit, 1)
    _check_limit(name, "train_limit", train_limit, 0)
    source_kw = {"source": source, "mirror_dir": data["mirror_dir"], "slices_dir": data["slices_dir"]}
    commit = None
    if source == "hub":  # every split from the one commit the revision points at now
        commit = resolve_hub_commit(spec, dataset_revision(name, data))
        source_kw["revision"] = commit or dataset_revision(name, data)
    splits = [spec.eval_split]
    options = adapter_options(data)

    eval_rows = _unified(spec, spec.eval_split, "eval", source_kw, options)
    held_out: list[dict] = []
    if spec.eval_share is not None:  # TruthfulQA: our seeded division of the one labelled split
        ev, tr = holdout_split(len(eval_rows), spec.eval_share, dataset=name)
        held_out = [{**eval_rows[i], "role": "train"} for i in tr]
        eval_rows = [eval_rows[i] for i in ev]
    keep = select_indices(len(eval_rows), eval_limit, seed=seed, dataset=name, role="eval")
    rows = [eval_rows[i] for i in keep]

    if train_limit > 0 and held_out:
        keep = select_indices(len(held_out), train_limit, seed=seed, dataset=name, role="train")
        rows += [held_out[i] for i in keep]
    elif train_limit > 0:
        if spec.train_split is None:
            log.warning("dataset %r has no training split; writing no training rows (the probe stage cross-fits)", name)
        else:
            try:
                train_rows = _unified(spec, spec.train_split, "train", source_kw, options)
            except SplitNotFoundError as e:
                log.warning("%s; writing no training rows (the probe stage cross-fits)", e)
                train_rows = []
            if train_rows:
                splits.append(spec.train_split)
                keep = select_indices(len(train_rows), train_limit, seed=seed, dataset=name, role="train")
                rows += [train_rows[i] for i in keep]

    return pl.DataFrame(rows, schema=ARTIFACTS["data"].polars_schema()), _source_record(spec, data, splits, commit)


def check_locked(name: str, record: dict, locked: dict | None) -> None:
    """Raise :class:`DatasetError` when the rows' source differs from ``locked`` (a revisions lock
    entry, ``uqroute.revisions``): another hub commit, or a mirror/slices file with another sha256."""
    if not locked:
        return
    where = "the revisions lock (config key revisions_lock)"
    if locked.get("source") != record["source"]:
        raise DatasetError(
            f"dataset {name!r}: {where} records data.source {locked.get('source')!r}, the config has {record['source']!r}"
        )
    if record["source"] == "hub":
        if locked.get("commit") and record.get("commit") != locked["commit"]:
            raise DatasetError(
                f"dataset {name!r}: read hub commit {record.get('commit')!r} of {record['hub']}, "
                f"{where} pins {locked['commit']!r}"
            )
        return
    for rel, sha in (locked.get("files") or {}).items():
        got = record["files"].get(rel)
        if got != sha:
            raise DatasetError(
                f"dataset {name!r}: {record['source']} file {rel} has sha256 {got or '(missing)'}, {where} pins {sha}"
            )


def build_dataset(
    name: str,
    out: str | Path,
    *,
    seed: int | None = None,
    provenance: dict | None = None,
    locked: dict | None = None,
    **data,
) -> pl.DataFrame:
    """Write ``results/data/{name}.parquet`` (the ``data`` artifact) atomically; return the frame.

    Called by rule ``download`` with the config's ``data:`` section as keyword arguments (a key
    left out takes the schema's default). The file's provenance (``uqroute.io.read_provenance``)
    names the rows' source under ``datasets[name]``: the hub commit the revision resolved to, or
    the sha256 of each mirror/slices file read; ``provenance`` (``uqroute.io.provenance``) adds the
    config hash. ``locked`` (an entry of a revisions lock) makes a different source an error.
    Nothing is written when any step fails.
    """
    df, record = _load(name, seed, data)
    check_locked(name, record, locked)
    n_eval = int((df["role"] == "eval").sum())
    log.info(
        "dataset %r: %d eval rows, %d train rows from %s",
        name,
        n_eval,
        df.height - n_eval,
        data_settings(name, data)["source"],
    )
    prov = dict(provenance or {})
    prov["datasets"] = {**(prov.get("datasets") or {}), name: record}
    write_parquet(df, out, "data", provenance=prov)
    return df
