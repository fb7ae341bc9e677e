"""Results one call away: :func:`tidy` returns the per-query table most analyses start from.

    >>> from uqroute.results import tidy
    >>> df = tidy("results")                     # every SLM, dataset and method of the run
    >>> df.group_by("slm", "method").agg(pl.col("slm_correct").mean())

One row per (SLM, dataset, query, UQ method), read from a results folder with the pipeline's
layout (``uqroute.schema.ARTIFACTS`` paths) and joined by query id, never by position.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import polars as pl

from . import io
from .schema import ARTIFACTS

__all__ = ["tidy", "TIDY_COLUMNS", "artifact_path"]

#: The fixed columns of :func:`tidy`'s table; one Boolean ``<llm>_correct`` column per LLM follows.
TIDY_COLUMNS = {
    "slm": "SLM name.",
    "dataset": "Dataset name.",
    "domain": "The dataset's domain (math, commonsense, conversational, problem_solving).",
    "id": "Query id (eval rows only).",
    "method": "UQ method.",
    "label": "The correctness column the method's confidence is about: `correct` (greedy answer) or `verbal_1s_correct`.",
    "confidence": "The method's confidence (higher = more confident); null where it could not score the query.",
    "slm_correct": "Correctness of the SLM answer that the method scores (the `label` column); null where undecided.",
}
STAGE = "tidy"


def artifact_path(results_dir: Path, artifact: str, **wildcards) -> Path:
    """The file of ``artifact`` (with its path wildcards filled) inside the results folder ``results_dir``."""
    pattern = ARTIFACTS[artifact].path  # every artifact path starts with "results/"
    return results_dir / pattern.split("/", 1)[1].format(**wildcards)


def _stems(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.parquet") if "." not in p.stem)


def tidy(results_dir: str | Path = "results", *, slms: Sequence[str] | None = None, llms: Sequence[str] | None = None,
         datasets: Sequence[str] | None = None, methods: Sequence[str] | None = None) -> pl.DataFrame:
    """One row per (SLM, dataset, query, method) with confidence, SLM correctness and each LLM's correctness.

    Args:
        results_dir: the pipeline's ``results/`` folder.
        slms: SLMs to read (default: every folder under ``results/uq``).
        llms: LLMs whose correctness to add as ``<llm>_correct`` columns (default: every model under
            ``results/correctness`` that is not an SLM; ``[]`` for none).
        datasets: datasets to read (default: every uq file of the first SLM).
        methods: UQ methods (default: every method column of the uq files).

    Columns: :data:`TIDY_COLUMNS`, then ``<llm>_correct`` (Boolean, nullable) per LLM. ``slm_correct``
    is the label of the answer the method scores (``uqroute.uq.METHODS[m].answer``): the greedy
    answer's ``correct`` for most methods, ``verbal_1s_correct`` for verbalization-1s. Rows are in
    (SLM, dataset) order as given, ids ascending, methods in uq column order.

    Raises :class:`uqroute.io.ArtifactInputError` naming the file for a missing, corrupt or
    mismatched artifact (e.g. a correctness file that lacks some of the uq file's ids).
    """
    from .routing import label_column

    root = Path(results_dir)
    if slms is None:
        slms = sorted(p.name for p in (root / "uq").iterdir() if p.is_dir()) if (root / "uq").is_dir() else []
    slms = list(slms)
    if llms is None:
        models = sorted(p.name for p in (root / "correctness").iterdir() if p.is_dir()) if (root / "correctness").is_dir() else []
        llms = [m for m in models if m not in slms]
    llms = list(llms)
    frames = []
    for slm in slms:
        ds = list(datasets) if datasets is not None else _stems(root / "uq" / slm)
        for d in ds:
            data_path = artifact_path(root, "data", dataset=d)
            data = io.read_artifact(data_path, "data", columns=["domain", "role"], stage=STAGE).filter(pl.col("role") == "eval")
            ids = sorted(data["id"].to_list())
            domain = dict(zip(data["id"].to_list(), data["domain"].to_list()))
            uq_path = artifact_path(root, "uq", slm=slm, dataset=d)
            uq = io.align_ids(ids, io.read_artifact(uq_path, "uq", stage=STAGE), uq_path, what="uq", stage=STAGE, exact=True)
            ms = [m for m in (methods or uq.columns[1:])]
            absent = [m for m in ms if m not in uq.columns]
            if absent:
                raise io.ArtifactInputError(f"{STAGE}: uq file {uq_path} has no column(s) {absent} (has {uq.columns[1:]})")
            labels = {m: label_column(m) for m in ms}
            corr_path = artifact_path(root, "correctness", model=slm, dataset=d)
            want = sorted(set(labels.values()))
            corr = io.align_ids(ids, io.read_artifact(corr_path, "correctness", columns=want, stage=STAGE), corr_path,
                                what="correctness", stage=STAGE)
            llm_cols = {}
            for llm in llms:
                path = artifact_path(root, "correctness", model=llm, dataset=d)
                c = io.align_ids(ids, io.read_artifact(path, "correctness", columns=["correct"], stage=STAGE), path, what="correctness", stage=STAGE)
                llm_cols[f"{llm}_correct"] = c["correct"]
            for m in ms:
                frames.append(pl.DataFrame({
                    "slm": [slm] * len(ids), "dataset": [d] * len(ids), "domain": [domain[i] for i in ids], "id": ids,
                    "method": [m] * len(ids), "label": [labels[m]] * len(ids), "confidence": uq[m].cast(pl.Float64).fill_nan(None),
                    "slm_correct": corr[labels[m]], **llm_cols,
                }, schema={**{c: pl.Utf8 for c in ("slm", "dataset", "domain", "id", "method", "label")}, "confidence": pl.Float64,
                           "slm_correct": pl.Boolean, **{c: pl.Boolean for c in llm_cols}}))
    if not frames:
        return pl.DataFrame(schema={**{c: pl.Utf8 for c in list(TIDY_COLUMNS)[:6]}, "confidence": pl.Float64, "slm_correct": pl.Boolean,
                                    **{f"{llm}_correct": pl.Boolean for llm in llms}})
    return pl.concat(frames)
