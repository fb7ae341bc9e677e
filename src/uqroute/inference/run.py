"""``run_inference``: everything one model produces for one dataset, in one stage (rule ``infer``).

For an SLM (Chuang et al., arXiv:2502.04428, §3.1), per query:

1. the greedy answer (temperature 0) with each generated token's log-probability and
   next-token entropy; for MCQ/TF the probability of the token stating the chosen option;
2. the hidden state of ``inference.hidden_layer`` at the last prompt token (probe input);
3. m = ``num_samples`` samples at ``sample_temperature``, each seeded from
   ``(seed, query id, k)`` (consistency methods such as jaccard_degree);
4. verbalization-1s: a separate prompt asking for answer + confidence (Xiong et al. 2024);
5. p(True): a follow-up turn after the greedy answer; P(True) = p(True) / (p(True) + p(False))
   of the first reply token, summing the tokenizer's variants of each word (Kadavath et al. 2022);
6. verbalization-2s: a follow-up turn asking for a 0–100 confidence (Tian et al. 2023).

All six run in one continuous-batching pass of the transformers backend: the greedy answer and
the samples decode from one prefill, the verbal-1s prompt shares that prefill's dataset prompt,
and the two follow-up turns of a query start from its greedy answer's KV cache as soon as the
answer is done. Each of them is a declared statistic (:mod:`.statistics`); only those that the
configured UQ methods need are computed (``methods``), the others' columns are null.

A model whose cache is a recurrent state (RWKV-7) runs the same jobs on the recurrent engine
(:mod:`.recurrent`), one job at a time, with the same statistics.

A reply cut off by its token budget (``finish_reason`` ``length``) is a truncation: no answer
is parsed from it (``parsed_answer``, the sample's ``sample_answers`` entry, or
``verbal_1s_answer`` and ``verbal_1s_confidence`` are null); ``samples_truncated`` and
``verbal_1s_finish_reason`` record the others, and the log warns when more than 20 % of a kind
were cut off. Prompts that do not fit the model's context with their budgets are refused
before anything is generated (:func:`_check_context`; the follow-up turns by the engine).

For an LLM only the greedy answer (with log-probs where the backend gives them).
Rows are processed in resumable shards (``inference.shard_size``); the artifact and the
hidden-states file appear atomically once every shard is done.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import polars as pl

from ..io import read_artifact, write_hidden_states, write_parquet
from ..parsing import TRUNCATED
from ..schema import ARTIFACTS
from .backends import check_thinking_budget, engine_name, load_backend
from .config import INFERENCE_DEFAULTS, budgets, resolve_settings
from .plan import QueryBatch
from .prompts import answer_conversation, verbal_1s_conversation
from .sharding import ShardStore, fingerprint
from .statistics import (
    ALWAYS,
    FALSE_VARIANTS,
    STATISTICS,
    TRUE_VARIANTS,
    ShardContext,
    greedy_columns,
    statistics_for,
)

log = logging.getLogger(__name__)

__all__ = ["run_inference", "budgets", "INFERENCE_DEFAULTS", "TRUE_VARIANTS", "FALSE_VARIANTS"]

_DATA_COLUMNS = ("id", "dataset", "domain", "task_type", "role", "question", "context", "choices", "prompt")


def _answer_format(dataset: str) -> str:
    from ..data import get_spec

    return get_spec(dataset).answer_format


def _choices(row) -> list[dict]:
    return [dict(c) for c in (row.get("choices") or [])]


def _check_data(df: pl.DataFrame, data_path) -> None:
    if df.height == 0:
        raise ValueError(f"{data_path}: data table has no rows")
    datasets = df["dataset"].unique().to_list()
    tasks = df["task_type"].unique().to_list()
    if len(datasets) != 1 or len(tasks) != 1:
        raise ValueError(f"{data_path}: expected one dataset and one task type, got {datasets} / {tasks}")
    if df["id"].is_duplicated().any():
        raise ValueError(f"{data_path}: duplicate query ids")


# ------------------------------------------------------------------ one shard, local model
def _slm_shard(
    backend,
    rows: list[dict],
    *,
    fmt: str,
    task_type: str,
    b: dict,
    cfg: dict,
    seed: int,
    spec: dict,
    layer: int,
    stats: list[str] | None = None,
):
    """Every selected statistic (:mod:`.statistics`; default: all) for ``rows``, in one pass of the engine.

    One pool for everything (:class:`.plan.QueryBatch`): per query the greedy answer and its samples decode
    from one prefill; the verbal-1s prompt shares that prefill's dataset prompt (same group); once the greedy
    answer is done, its follow-up turns start from its KV cache (prompt + answer) and join the pool.
    Training rows (``role == "train"``) get the :data:`.statistics.ALWAYS` statistics only: the
    in-domain probe needs their hidden state and correctness, nothing evaluates the rest.
    """
    chosen = [STATISTICS[s] for s in (stats or list(STATISTICS))]
    batch = QueryBatch(ShardContext(backend, fmt, task_type, b, cfg, seed, spec), rows, chosen)
    res = backend.run_jobs(
        batch.jobs, hidden_layer=layer, desc=f"{backend.name}: {', '.join(st.name for st in chosen)}"
    )
    return batch.collect(res)


def _llm_shard(backend, rows: list[dict], *, fmt: str, task_type: str, b: dict):
    convs = [answer_conversation(r["prompt"]) for r in rows]
    gens = backend.generate(convs, max_new_tokens=b["answer"], temperature=0.0, n=1)
    think_open = ShardContext(backend, fmt, task_type, b, {}, 0, {}).think_open  # a local reasoning LLM's template
    out = []
    for r, gl in zip(rows, gens):
        # an LLM fills the greedy columns only
        out.append(
            {
                **{c: None for c in ARTIFACTS["generations"].names},
                "id": r["id"],
                **greedy_columns(gl[0], fmt, task_type, _choices(r), think_open=think_open),
            }
        )
    return out


def _frame(records: list[dict], with_hidden: bool) -> pl.DataFrame:
    schema = dict(ARTIFACTS["generations"].polars_schema())
    if with_hidden:
        schema["_hidden"] = pl.List(pl.Float32)
    return pl.DataFrame(records, schema=schema)


# ------------------------------------------------------------------ entry point
def run_inference(
    model,
    spec,
    model_dir,
    data_path,
    out_path,
    hidden_path,
    role,
    cfg,
    seed,
    methods=None,
    statistics=None,
    provenance: dict | None = None,
) -> None:
    """Write the ``generations`` artifact (and, for SLMs, the hidden-states file) for one model × dataset.

    Args mirror ``workflow/scripts/infer.py``: ``spec`` is the model's config entry, ``model_dir``
    the fetched directory (None for API models), ``role`` ``"slm"`` or ``"llm"``, ``cfg`` the
    ``inference`` config section, ``seed`` the run seed. An SLM computes the ``statistics``
    named (:mod:`.statistics`), or those the UQ ``methods`` need, or (neither given) all of them.
    ``provenance`` (:func:`uqroute.io.provenance`) goes into the artifact's metadata; the model's
    weights identity is always added to it.
    """
    if role not in ("slm", "llm"):
        raise ValueError(f"model {model!r}: role must be 'slm' or 'llm', got {role!r}")
    if role == "slm" and "api" in spec:
        raise ValueError(
            f"model {model!r} is an API model and cannot be an SLM: the SLM needs hidden states and "
            "token entropies, which only a local model gives"
        )
    if role == "slm" and not hidden_path:
        raise ValueError(f"model {model!r}: role 'slm' needs a hidden-states output path")
    cfg = resolve_settings(cfg)
    if role == "llm":
        stats = ["greedy"]
    elif statistics is not None:
        unknown = [s for s in statistics if s not in STATISTICS]
        if unknown:
            raise ValueError(f"model {model!r}: unknown statistics {unknown} (known: {list(STATISTICS)})")
        stats = [s for s in STATISTICS if s in set(statistics) | set(ALWAYS)]
    else:
        stats = statistics_for(methods)
    data = read_artifact(data_path, "data", columns=list(_DATA_COLUMNS), stage=f"infer {model}")
    _check_data(data, data_path)
    dataset, task_type, domain = data["dataset"][0], data["task_type"][0], data["domain"][0]
    fmt = _answer_format(dataset)
    b = budgets(cfg, spec, task_type, domain)
    check_thinking_budget(model, spec, role, dataset, b, cfg)
    if role == "llm":
        # Routing only ever uses the LLM's answers to evaluation queries; training rows exist
        # for the SLM's in-domain probe.
        data = data.filter(pl.col("role") == "eval")
    rows = data.select(list(_DATA_COLUMNS)).to_dicts()
    size = int(cfg["shard_size"])
    n_shards = math.ceil(len(rows) / size)
    from ..models import weights_identity

    # the weights are part of what makes a shard reusable: a replaced local model discards its shards
    weights = weights_identity(spec, model_dir, name=model) if model_dir is not None else None
    fp = fingerprint(
        {
            "model": model,
            "spec": spec,
            "role": role,
            "cfg": cfg,
            "seed": seed,
            "ids": [r["id"] for r in rows],
            "prompts": fingerprint([r["prompt"] for r in rows]),
            "statistics": stats,
            "weights": weights,
        }
    )
    layer = _layer_index(model, model_dir, int(cfg["hidden_layer"])) if role == "slm" else None
    store = ShardStore(out_path, fp)
    log.info(
        "%s / %s (%s): %d rows in %d shard(s), budgets %s, statistics %s",
        model,
        dataset,
        role,
        len(rows),
        n_shards,
        b,
        ", ".join(stats),
    )
    backend = None

    def compute(i: int) -> pl.DataFrame:
        nonlocal backend
        if backend is None:
            # API responses go to the persistent cache (resources/cache/api/ or $UQROUTE_CACHE_DIR),
            # not the shard folder, which is removed on success: a rerun must never pay twice.
            backend = load_backend(spec, model_dir, cfg, name=model)
            _check_context(backend, rows, stats, b, model, data_path)  # every row, before any generation
        part = rows[i * size : (i + 1) * size]
        log.info("%s / %s: shard %d/%d (%d rows)", model, dataset, i + 1, n_shards, len(part))
        if role == "slm":
            recs = _slm_shard(
                backend,
                part,
                fmt=fmt,
                task_type=task_type,
                b=b,
                cfg=cfg,
                seed=seed,
                spec=spec,
                layer=layer,
                stats=stats,
            )
        else:
            recs = _llm_shard(backend, part, fmt=fmt, task_type=task_type, b=b)
        return _frame(recs, role == "slm")

    try:
        shards = store.run(n_shards, compute)
    finally:
        if backend is not None:
            backend.close()
    df = pl.concat(shards, how="vertical_relaxed")
    if df["id"].to_list() != [r["id"] for r in rows]:
        raise RuntimeError(f"{out_path}: shard rows do not match the data rows (stale shards in {store.dir}?)")
    _log_truncations(df, stats, model, dataset, b)
    if role == "slm":
        hidden = np.asarray(df["_hidden"].to_list(), dtype=np.float32)
        for st, col in (("verbal_1s", "verbal_1s_confidence"), ("verbal_2s", "verbal_2s_confidence")):
            if st in stats:
                log.info(
                    "%s / %s: unparsable %s: %d/%d (these queries are missing for that method)",
                    model,
                    dataset,
                    col,
                    df[col].null_count(),
                    df.height,
                )
        write_hidden_states(hidden_path, df["id"].to_list(), hidden, layer=layer, model=model, dataset=dataset)
        df = df.drop("_hidden")
    from ..io import provenance as make_provenance
    from ..models import source_identity

    record = dict(provenance) if provenance is not None else make_provenance(inputs=[data_path])
    record["models"] = {**record.get("models", {}), model: weights or source_identity(spec, name=model)}
    record["engine"] = _engine_record(backend, spec, cfg)
    write_parquet(df, out_path, "generations", provenance=record)
    store.clear()


def _engine_record(backend, spec: dict, cfg: dict) -> dict:
    """Which engine generated (provenance): ``{"name": "vllm", "version": …, …}`` (the backend's own record),
    ``{"name": "uqroute"}`` (our engine; the code version is the record's ``uqroute_version``) or an API."""
    if backend is not None and hasattr(backend, "engine_record"):
        return backend.engine_record()
    name = "openai" if "api" in spec else engine_name(spec, cfg)
    return {"name": "uqroute" if name == "transformers" else name}


def _check_context(backend, rows: list[dict], stats: list[str], b: dict, model: str, data_path) -> None:
    """Refuse a dataset whose prompts do not fit the model's context with their budgets, naming the rows.

    Checked for every row before anything is generated: the answer prompt with the larger of the
    answer and sample budgets, and the verbalization-1s prompt with its budget. (The follow-up
    turns, whose length depends on the answer, are checked by the engine when they are built.)
    A model that declares no context (``backend.context_limit`` None: API and recurrent models)
    is not checked.
    """
    limit = getattr(backend, "context_limit", None)
    if not limit:
        return
    over = []
    for r in rows:
        need = len(backend.encode(answer_conversation(r["prompt"]))) + max(
            b["answer"], b["sample"] if "samples" in stats else 0
        )
        if "verbal_1s" in stats:
            need = max(need, len(backend.encode(verbal_1s_conversation(r["prompt"]))) + b["answer"] + b["verbal"])
        if need > limit:
            over.append(f"{r['id']} ({need})")
    if over:
        raise ValueError(
            f"{data_path}: {len(over)} of {len(rows)} prompt(s) do not fit model {model}'s context of {limit} tokens "
            f"with their token budgets (prompt + budget in parentheses): {', '.join(over[:10])}"
            f"{' …' if len(over) > 10 else ''}. Lower inference.max_new_tokens, shorten the prompts, or use a model "
            "with a longer context; nothing was generated."
        )


def _log_truncations(df: pl.DataFrame, stats: list[str], model: str, dataset: str, b: dict) -> None:
    """Log how many replies hit their token budget (they count as unanswered); warn when many did."""
    counts = [("greedy answers", int((df["finish_reason"] == TRUNCATED).sum()), df.height, b["answer"])]
    if "verbal_1s" in stats:
        n = int((df["verbal_1s_finish_reason"] == TRUNCATED).sum())
        counts.append(("verbalization-1s replies", n, df.height, b["answer"] + b["verbal"]))
    if "samples" in stats:
        counts.append(("samples", int(df["samples_truncated"].sum()), int(df["samples"].list.len().sum()), b["sample"]))
    for what, n, total, budget in counts:
        if total and n / total > 0.2:
            log.warning(
                "%s / %s: %d/%d %s were cut off by the token budget (%d tokens) and count as unanswered; "
                "raise inference.max_new_tokens (or the model's max_new_tokens_scale)",
                model,
                dataset,
                n,
                total,
                what,
                budget,
            )
        else:
            log.info("%s / %s: truncated %s: %d/%d", model, dataset, what, n, total)


def _layer_index(model: str, model_dir, hidden_layer: int) -> int:
    """Absolute hidden-states index for ``hidden_layer``, from the model directory's config.json
    (``uqroute.models.num_hidden_layers``, which the start-up check reads too)."""
    from ..models import num_hidden_layers, resolve_layer

    if model_dir is None:
        raise ValueError(f"model {model!r}: an SLM needs a local model directory")
    cfg_path = Path(model_dir) / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"model {model!r}: {cfg_path} does not exist (run rule fetch_model first)")
    n = num_hidden_layers(model_dir)
    if n is None:
        raise ValueError(f"model {model!r}: {cfg_path} has no num_hidden_layers")
    return resolve_layer(hidden_layer, n)
