"""Rule ``uq``: score every evaluation query of one (SLM, dataset) with the configured methods."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import polars as pl

from ..io import ArtifactInputError, align_ids, read_artifact, write_parquet
from .registry import get_methods, probe_methods

__all__ = ["run_uq", "score_frame", "join_inputs", "UQInputError"]

log = logging.getLogger(__name__)


class UQInputError(ArtifactInputError):
    """Inputs of rule ``uq`` that do not fit the methods asked for (e.g. probe methods without a probes file).

    Unreadable or mismatched input artifacts raise :class:`uqroute.io.ArtifactInputError` (its base),
    naming the file and the ids."""


def join_inputs(data_path, generations_path, probes_path=None) -> pl.DataFrame:
    """The evaluation rows of ``data`` (in data order) joined on ``id`` with ``generations``
    and, if given, ``probes``.

    Each file is read with :func:`uqroute.io.read_artifact` (checked against its documented
    schema) and aligned with :func:`uqroute.io.align_ids`; a missing, truncated or off-schema
    file, or one that lacks evaluation ids, raises :class:`uqroute.io.ArtifactInputError` naming it.
    """
    data = read_artifact(data_path, "data", stage="uq")
    frame = data.filter(pl.col("role") == "eval")
    ids = frame["id"].to_list()
    parts = [frame]
    inputs = [("generations", generations_path)] + ([("probes", probes_path)] if probes_path is not None else [])
    for what, path in inputs:
        other = read_artifact(path, what, stage="uq")
        parts.append(align_ids(ids, other, path, what=what, stage="uq").drop("id"))
    return pl.concat(parts, how="horizontal")


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
                method.name,
                n_null,
                frame.height,
            )
        cols[method.name] = pl.Series(method.name, values, dtype=pl.Float64).fill_nan(None)
    return pl.DataFrame(cols)


def run_uq(
    data_path, generations_path, probes_path, out_path, methods: Sequence[str], *, provenance: dict | None = None
) -> pl.DataFrame:
    """Rule ``uq``: write ``results/uq/{slm}/{dataset}.parquet`` (artifact ``uq``).

    Joins the evaluation rows of ``data_path`` with ``generations_path`` (and
    ``probes_path`` when a probe method is requested; it may be ``None`` otherwise), runs
    each method of :data:`uqroute.uq.METHODS` named in ``methods`` and writes one column per
    method in that order (higher = more confident, null where a method cannot score a query).
    Returns the written table.
    """
    get_methods(methods)  # fail on unknown names before reading anything
    needs_probes = probe_methods(methods)
    if needs_probes and probes_path is None:
        raise UQInputError(f"uq: methods {needs_probes} need a probes file")
    frame = join_inputs(data_path, generations_path, probes_path if needs_probes else None)
    table = score_frame(frame, methods)
    write_parquet(table, out_path, "uq", provenance=provenance)
    log.info("uq: wrote %d queries × %d methods to %s", table.height, len(methods), out_path)
    return table
