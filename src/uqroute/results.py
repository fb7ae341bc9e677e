"""Results one call away: the per-query tables most analyses start from.

    >>> from uqroute.results import tidy, per_query, correctness, holdout_rows
    >>> df = tidy("results")                     # every SLM, LLM, dataset and method of the run
    >>> df.group_by("slm", "method").agg(pl.col("slm_correct").mean())

* :func:`tidy`: one row per (SLM, dataset, query, UQ method, LLM): the method's confidence, the
  SLM's and the LLM's correctness. The LLM is a value (column ``llm``), never part of a column name.
* :func:`correctness`: every model's correctness rows with their ``split`` (``eval``/``train``).
* :func:`per_query`: one row per (model, dataset, query) with the prompt, the answer, the gold
  answer, the correctness and its source, and (SLMs) every method's confidence.
* :func:`holdout_rows`: a ``holdout``/``router_holdout`` file with one row per sampled query.

Files are read with the pipeline's layout (``uqroute.schema.ARTIFACTS`` paths) and joined by
query id, never by position.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from . import io
from .schema import ARTIFACTS

__all__ = [
    "tidy",
    "TIDY_COLUMNS",
    "artifact_path",
    "correctness",
    "CORRECTNESS_COLUMNS",
    "per_query",
    "PER_QUERY_COLUMNS",
    "holdout_rows",
    "HOLDOUT_ROW_COLUMNS",
    "common_rows",
]

#: The columns of :func:`tidy`'s table.
TIDY_COLUMNS = {
    "slm": "SLM name.",
    "dataset": "Dataset name.",
    "domain": "The dataset's domain (math, commonsense, conversational, problem_solving).",
    "id": "Query id (eval rows only).",
    "method": "UQ method.",
    "label": "The correctness column the method's confidence is about: `correct` (greedy answer) or `verbal_1s_correct`.",
    "confidence": "The method's confidence (higher = more confident); null where it could not score the query.",
    "slm_correct": "Correctness of the SLM answer that the method scores (the `label` column); null where undecided.",
    "llm": "LLM name (one row per LLM; null when no LLM is read).",
    "llm_correct": "Correctness of that LLM's greedy answer to the query; null where undecided or without an LLM.",
}
STAGE = "tidy"


def artifact_path(results_dir: Path, artifact: str, **wildcards) -> Path:
    """The file of ``artifact`` (with its path wildcards filled) inside the results folder ``results_dir``."""
    pattern = ARTIFACTS[artifact].path  # every artifact path starts with "results/"
    return results_dir / pattern.split("/", 1)[1].format(**wildcards)


def _stems(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.parquet") if "." not in p.stem)


def _models(root: Path, folder: str) -> list[str]:
    return sorted(p.name for p in (root / folder).iterdir() if p.is_dir()) if (root / folder).is_dir() else []


def _llms(root: Path, slms: list[str], llms) -> list[str]:
    return list(llms) if llms is not None else [m for m in _models(root, "correctness") if m not in slms]


def _eval_data(root: Path, dataset: str, columns=("domain", "role")) -> pl.DataFrame:
    path = artifact_path(root, "data", dataset=dataset)
    return (
        io.read_artifact(path, "data", columns=list(columns), stage=STAGE).filter(pl.col("role") == "eval").sort("id")
    )


def tidy(
    results_dir: str | Path = "results",
    *,
    slms: Sequence[str] | None = None,
    llms: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    rows: str = "per_method",
) -> pl.DataFrame:
    """One row per (SLM, dataset, query, method, LLM) with confidence, SLM correctness and the LLM's correctness.

    Args:
        results_dir: the pipeline's ``results/`` folder.
        slms: SLMs to read (default: every folder under ``results/uq``).
        llms: LLMs whose correctness to add, one row each (default: every model under
            ``results/correctness`` that is not an SLM; ``[]`` for none: one row per method with
            ``llm`` and ``llm_correct`` null).
        datasets: datasets to read (default: every uq file of the first SLM).
        methods: UQ methods (default: every method column of the uq files).
        rows: ``per_method`` (default, the paper's rule: every query, a method's unscored
            queries have a null confidence and each method is evaluated on its own scored rows) or
            ``common`` (only the queries every selected method scored, per SLM and dataset, so
            that every method is evaluated on the same rows; :func:`common_rows`).

    Columns: :data:`TIDY_COLUMNS`. ``slm_correct`` is the label of the answer the method scores
    (``uqroute.uq.METHODS[m].answer``): the greedy answer's ``correct`` for most methods,
    ``verbal_1s_correct`` for verbalization-1s. Rows are in (SLM, dataset) order as given, ids
    ascending, methods in uq column order, LLMs as given.

    Raises :class:`uqroute.io.ArtifactInputError` naming the file for a missing, corrupt or
    mismatched artifact (e.g. a correctness file that lacks some of the uq file's ids).
    """
    from .routing import label_column

    if rows not in ("per_method", "common"):
        raise ValueError(f"tidy: rows must be 'per_method' or 'common', not {rows!r}")
    root = Path(results_dir)
    slms = list(slms) if slms is not None else _models(root, "uq")
    llms = _llms(root, slms, llms)
    schema = {
        **{c: pl.Utf8 for c in ("slm", "dataset", "domain", "id", "method", "label")},
        "confidence": pl.Float64,
        "slm_correct": pl.Boolean,
        "llm": pl.Utf8,
        "llm_correct": pl.Boolean,
    }
    frames = []
    for slm in slms:
        ds = list(datasets) if datasets is not None else _stems(root / "uq" / slm)
        for d in ds:
            data = _eval_data(root, d)
            ids = data["id"].to_list()
            domain = data["domain"].to_list()
            uq_path = artifact_path(root, "uq", slm=slm, dataset=d)
            uq = io.align_ids(
                ids, io.read_artifact(uq_path, "uq", stage=STAGE), uq_path, what="uq", stage=STAGE, exact=True
            )
            ms = [m for m in (methods or uq.columns[1:])]
            absent = [m for m in ms if m not in uq.columns]
            if absent:
                raise io.ArtifactInputError(
                    f"{STAGE}: uq file {uq_path} has no column(s) {absent} (has {uq.columns[1:]})"
                )
            labels = {m: label_column(m) for m in ms}
            corr_path = artifact_path(root, "correctness", model=slm, dataset=d)
            want = sorted(set(labels.values()))
            corr = io.align_ids(
                ids,
                io.read_artifact(corr_path, "correctness", columns=want, stage=STAGE),
                corr_path,
                what="correctness",
                stage=STAGE,
            )
            llm_correct = {}
            for llm in llms:
                path = artifact_path(root, "correctness", model=llm, dataset=d)
                c = io.align_ids(
                    ids,
                    io.read_artifact(path, "correctness", columns=["correct"], stage=STAGE),
                    path,
                    what="correctness",
                    stage=STAGE,
                )
                llm_correct[llm] = c["correct"]
            for m in ms:
                base = {
                    "slm": [slm] * len(ids),
                    "dataset": [d] * len(ids),
                    "domain": domain,
                    "id": ids,
                    "method": [m] * len(ids),
                    "label": [labels[m]] * len(ids),
                    "confidence": uq[m].cast(pl.Float64).fill_nan(None),
                    "slm_correct": corr[labels[m]],
                }
                for llm in llms or [None]:
                    frames.append(
                        pl.DataFrame(
                            {
                                **base,
                                "llm": [llm] * len(ids),
                                "llm_correct": llm_correct[llm] if llm is not None else [None] * len(ids),
                            },
                            schema=schema,
                        )
                    )
    df = pl.concat(frames) if frames else pl.DataFrame(schema=schema)
    return common_rows(df) if rows == "common" else df


def common_rows(df: pl.DataFrame) -> pl.DataFrame:
    """The rows of a :func:`tidy` table whose query every method of the table scored (per SLM and
    dataset): every method is then evaluated on the same queries. The paper drops a query only for
    the method that could not score it (the default of :func:`tidy` and of the routing stage); this
    is the stricter comparison, our addition. A method that scored nothing empties its dataset."""
    n_methods = df.group_by("slm", "dataset").agg(pl.col("method").n_unique().alias("_m"))
    scored = (
        df.filter(pl.col("confidence").is_not_null())
        .group_by("slm", "dataset", "id")
        .agg(pl.col("method").n_unique().alias("_s"))
    )
    keep = (
        scored.join(n_methods, on=["slm", "dataset"])
        .filter(pl.col("_s") == pl.col("_m"))
        .select("slm", "dataset", "id")
    )
    return df.join(keep, on=["slm", "dataset", "id"], how="semi", maintain_order="left")


#: The columns of :func:`correctness`'s table.
CORRECTNESS_COLUMNS = {
    "model": "Model name.",
    "dataset": "Dataset name.",
    "id": "Query id.",
    "split": "`eval` (evaluation row: what every accuracy and AUC is about) or `train` (training row of the in-domain probe; SLMs only).",
    "correct": "The final label (`correctness.correct`).",
    "label_source": "`rule`, `judge` or `truncated` (`correctness.label_source`).",
}


def correctness(
    results_dir: str | Path = "results", *, models: Sequence[str] | None = None, datasets: Sequence[str] | None = None
) -> pl.DataFrame:
    """Every model's correctness rows with their ``split`` (``eval``/``train``, from the data file's
    ``role``): ``correctness(...).filter(pl.col("split") == "eval")`` is what the routing stage
    scores; a mean over all rows would mix in the SLM's training rows.

    Columns: :data:`CORRECTNESS_COLUMNS`; rows in (model, dataset) order, ids ascending.
    """
    root = Path(results_dir)
    models = list(models) if models is not None else _models(root, "correctness")
    schema = {
        "model": pl.Utf8,
        "dataset": pl.Utf8,
        "id": pl.Utf8,
        "split": pl.Utf8,
        "correct": pl.Boolean,
        "label_source": pl.Utf8,
    }
    frames = []
    for model in models:
        ds = list(datasets) if datasets is not None else _stems(root / "correctness" / model)
        for d in ds:
            data_path = artifact_path(root, "data", dataset=d)
            role = io.read_artifact(data_path, "data", columns=["role"], stage=STAGE).select(
                "id", pl.col("role").alias("split")
            )
            path = artifact_path(root, "correctness", model=model, dataset=d)
            corr = io.read_artifact(path, "correctness", columns=["correct", "label_source"], stage=STAGE)
            got = corr.join(role, on="id", how="left")
            if got["split"].null_count():
                bad = got.filter(pl.col("split").is_null())["id"].head(5).to_list()
                raise io.ArtifactInputError(
                    f"{STAGE}: correctness file {path} has ids that the data file {data_path} lacks, e.g. {bad}"
                )
            frames.append(
                got.select(
                    pl.lit(model).alias("model"), pl.lit(d).alias("dataset"), "id", "split", "correct", "label_source"
                )
                .sort("id")
                .cast(schema)
            )
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


#: The fixed columns of :func:`per_query`'s table; one Float64 column per UQ method follows (SLMs; null for LLMs).
PER_QUERY_COLUMNS = {
    "model": "Model name.",
    "role": "`slm` or `llm`.",
    "dataset": "Dataset name.",
    "id": "Query id (eval rows only).",
    "prompt": "The prompt the model was given (`data.prompt`).",
    "gold": "The gold answer (`data.answer`).",
    "response": "The model's greedy reply, raw text (`generations.response`).",
    "answer": "The answer parsed from it (`generations.parsed_answer`; null when unparsable or truncated).",
    "finish_reason": "`stop`, or `length` when the token budget cut the reply off.",
    "correct": "The final label (`correctness.correct`).",
    "label_source": "Which check decided it: `rule`, `judge` or `truncated`.",
}


def per_query(
    results_dir: str | Path = "results",
    *,
    models: Sequence[str] | None = None,
    slms: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
) -> pl.DataFrame:
    """One row per (model, dataset, evaluation query): what lm-evaluation-harness's ``--log_samples``
    gives, for every model of the run, plus every UQ method's confidence for SLM rows.

    Args:
        models: models to read (default: every folder under ``results/correctness``).
        slms: which of them are SLMs (default: the folders under ``results/uq``).
        datasets, methods: selections (default: every correctness file / every uq column).

    Columns: :data:`PER_QUERY_COLUMNS`, then one confidence column per UQ method (null for LLMs).
    """
    root = Path(results_dir)
    models = list(models) if models is not None else _models(root, "correctness")
    slms = set(slms) if slms is not None else set(_models(root, "uq"))
    frames, method_cols = [], list(methods or [])
    for model in models:
        ds = list(datasets) if datasets is not None else _stems(root / "correctness" / model)
        for d in ds:
            data = _eval_data(root, d, columns=("role", "prompt", "answer")).select(
                "id", "prompt", pl.col("answer").alias("gold")
            )
            ids = data["id"].to_list()
            gpath = artifact_path(root, "generations", model=model, dataset=d)
            gen = io.align_ids(
                ids,
                io.read_artifact(
                    gpath, "generations", columns=["response", "parsed_answer", "finish_reason"], stage=STAGE
                ),
                gpath,
                what="generations",
                stage=STAGE,
            )
            cpath = artifact_path(root, "correctness", model=model, dataset=d)
            corr = io.align_ids(
                ids,
                io.read_artifact(cpath, "correctness", columns=["correct", "label_source"], stage=STAGE),
                cpath,
                what="correctness",
                stage=STAGE,
            )
            df = pl.DataFrame(
                {
                    "model": [model] * len(ids),
                    "role": ["slm" if model in slms else "llm"] * len(ids),
                    "dataset": [d] * len(ids),
                    "id": ids,
                    "prompt": data["prompt"],
                    "gold": data["gold"],
                    "response": gen["response"],
                    "answer": gen["parsed_answer"],
                    "finish_reason": gen["finish_reason"],
                    "correct": corr["correct"],
                    "label_source": corr["label_source"],
                }
            )
            if model in slms:
                upath = artifact_path(root, "uq", slm=model, dataset=d)
                uq = io.align_ids(ids, io.read_artifact(upath, "uq", stage=STAGE), upath, what="uq", stage=STAGE)
                cols = [c for c in uq.columns[1:] if methods is None or c in methods]
                method_cols += [c for c in cols if c not in method_cols]
                df = df.with_columns([uq[c].cast(pl.Float64).fill_nan(None).alias(c) for c in cols])
            frames.append(df)
    if not frames:
        return pl.DataFrame(schema={c: (pl.Boolean if c == "correct" else pl.Utf8) for c in PER_QUERY_COLUMNS})
    out = pl.concat(frames, how="diagonal_relaxed")
    return out.select(
        *PER_QUERY_COLUMNS, *[pl.col(c) if c in out.columns else pl.lit(None, pl.Float64).alias(c) for c in method_cols]
    )


#: The columns of :func:`holdout_rows`'s table.
HOLDOUT_ROW_COLUMNS = (
    "slm",
    "method",
    "setting",
    "target",
    "k",
    "seed",
    "source_dataset",
    "id",
    "confidence",
    "slm_correct",
)


def holdout_rows(path: str | Path) -> pl.DataFrame:
    """A ``holdout`` (``results/routing/{slm}/holdout.parquet``) or ``router_holdout``
    (``results/routers/{slm}/holdout.parquet``) file with one row per sampled query: the list
    columns ``source_dataset``, ``id``, ``confidence`` and ``slm_correct`` exploded, the other
    keys repeated (the thresholds per ratio stay in the file). Columns: :data:`HOLDOUT_ROW_COLUMNS`."""
    kind = io.artifact_of_path(path)
    df = io.read_artifact(path, kind if kind in ("holdout", "router_holdout") else "holdout", stage="holdout_rows")
    return df.select(*HOLDOUT_ROW_COLUMNS).explode(["source_dataset", "id", "confidence", "slm_correct"])
