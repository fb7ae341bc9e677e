"""Rule ``uq``: score every evaluation query of one (SLM, dataset) with the configured methods."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import polars as pl

from ..io import write_parquet
from .registry import get_methods

__all__ = ["run_uq", "score_frame", "join_inputs", "UQInputError"]

log = logging.getLogger(__name__)

PROBE_COLUMNS = ("trained_probe", "ood_probe")


class UQInputError(ValueError):
    """An input artifact of rule ``uq`` that does not fit the others (names the file)."""


def _read(path: str | os.PathLike, what: str) -> pl.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"uq: {what} file {path} does not exist")
    return pl.read_parquet(path)


def _check_covers(ids: pl.Series, other: pl.DataFrame, path, what: str) -> None:
    """Every id in ``ids`` must appear exactly once in ``other``."""
    if "id" not in other.columns:
        raise UQInputError(f"uq: {what} file {path} has no `id` column")
    if other["id"].is_duplicated().any():
        dup = other.filter(other["id"].is_duplicated())["id"][0]
        raise UQInputError(f"uq: {what} file {path} holds id {dup!r} more than once")
    missing = ids.filter(~ids.is_in(other["id"].implode()))
    if missing.len():
        raise UQInputError(
            f"uq: {what} file {path} lacks {missing.len()} evaluation id(s) of the data file, "
            f"e.g. {missing.head(3).to_list()}"
        )


def join_inputs(data_path, generations_path, probes_path=None) -> pl.DataFrame:
    """The evaluation rows of ``data`` (in data order) joined on ``id`` with ``generations``
    and, if given, ``probes``. Raises :class:`UQInputError` naming the file that lacks ids."""
    data = _read(data_path, "data")
    for col in ("id", "role", "task_type"):
        if col not in data.columns:
            raise UQInputError(f"uq: data file {data_path} has no `{col}` column")
    frame = data.filter(pl.col("role") == "eval")
    gens = _read(generations_path, "generations")
    _check_covers(frame["id"], gens, generations_path, "generations")
    frame = frame.join(gens, on="id", how="left", suffix="_generations", maintain_order="left")
    if probes_path is not None:
        probes = _read(probes_path, "probes")
        _check_covers(frame["id"], probes, probes_path, "probes")
        frame = frame.join(probes, on="id", how="left", suffix="_probes", maintain_order="left")
    return frame


def score_frame(frame: pl.DataFrame, methods: Sequence[str]) -> pl.DataFrame:
    """The ``uq`` table for a joined frame: ``id`` then one Float64 column per method, in the
    given order; NaN from a method becomes null. Logs how many rows each method could not score."""
    chosen = get_methods(methods)
    cols = {"id": frame["id"]}
    for method in chosen:
        values = method(frame)
        n_null = int(np.isnan(values).sum())
        if n_null:
            log.warning(
                "uq: method %s could not score %d of %d queries (null; dropped for this method)",
                method.name, n_null, frame.height,
            )
        cols[method.name] = pl.Series(method.name, values, dtype=pl.Float64).fill_nan(None)
    return pl.DataFrame(cols)


def run_uq(data_path, generations_path, probes_path, out_path, methods: Sequence[str]) -> pl.DataFrame:
    """Rule ``uq``: write ``results/uq/{slm}/{dataset}.parquet`` (artifact ``uq``).

    Joins the evaluation rows of ``data_path`` with ``generations_path`` (and
    ``probes_path`` when a probe method is requested; it may be ``None`` otherwise), runs
    each method of :data:`uqroute.uq.METHODS` named in ``methods`` and writes one column per
    method in that order (higher = more confident, null where a method cannot score a query).
    Returns the written table.
    """
    get_methods(methods)  # fail on unknown names before reading anything
    needs_probes = any(m in PROBE_COLUMNS for m in methods)
    if needs_probes and probes_path is None:
        raise UQInputError(f"uq: methods {[m for m in methods if m in PROBE_COLUMNS]} need a probes file")
    frame = join_inputs(data_path, generations_path, probes_path if needs_probes else None)
    table = score_frame(frame, methods)
    write_parquet(table, out_path, "uq")
    log.info("uq: wrote %d queries × %d methods to %s", table.height, len(methods), out_path)
    return table
