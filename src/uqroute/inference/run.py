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
answer is done.

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

from ..io import write_hidden_states, write_parquet
from ..schema import ARTIFACTS
from . import prompts
from .seeding import branch_seed
from .sharding import ShardStore, fingerprint

log = logging.getLogger(__name__)

__all__ = ["run_inference", "budgets", "INFERENCE_DEFAULTS", "find_option_token", "TRUE_VARIANTS", "FALSE_VARIANTS"]

INFERENCE_DEFAULTS = {
    "backend": "transformers",
    "dtype": "auto",
    "attn_implementation": None,
    "batch_size": 16,
    "max_batch_rows": 128,
    "pack_weights": True,
    "max_new_tokens": {"MCQ": 16, "TF": 8, "FF": 64, "math": 256},
    "num_samples": 5,
    "sample_temperature": 1.0,
    "sample_max_new_tokens": None,
    "verbal_max_new_tokens": 32,
    "hidden_layer": -8,
    "shard_size": 64,
}

TRUE_VARIANTS = ("True", " True", "true", " true", "TRUE", " TRUE")
FALSE_VARIANTS = ("False", " False", "false", " false", "FALSE", " FALSE")

_DATA_COLUMNS = ("id", "dataset", "domain", "task_type", "question", "context", "choices", "prompt")


def _cfg(cfg: dict | None) -> dict:
    out = {**INFERENCE_DEFAULTS, **(cfg or {})}
    out["max_new_tokens"] = {**INFERENCE_DEFAULTS["max_new_tokens"], **((cfg or {}).get("max_new_tokens") or {})}
    return out


def budgets(cfg: dict, spec: dict, task_type: str, domain: str) -> dict[str, int]:
    """Token budgets for one dataset: ``answer``, ``sample``, ``verbal`` (scaled by ``max_new_tokens_scale``).

    Math free-form datasets (domain ``math``, task type ``FF``) use the ``math`` budget.
    """
    cfg = _cfg(cfg)
    scale = float(spec.get("max_new_tokens_scale", 1) or 1)
    key = "math" if (domain == "math" and task_type == "FF") else task_type
    if key not in cfg["max_new_tokens"]:
        raise ValueError(f"inference.max_new_tokens has no budget for {key!r}")
    answer = int(cfg["max_new_tokens"][key])
    sample = int(cfg["sample_max_new_tokens"] or answer)
    verbal = int(cfg["verbal_max_new_tokens"])
    return {k: max(1, math.ceil(v * scale)) for k, v in {"answer": answer, "sample": sample, "verbal": verbal}.items()}


def find_option_token(tokens: list[str], answer: str | None, task_type: str) -> int | None:
    """Index of the generated token that states the chosen option, or None.

    MCQ: the first token that is exactly the parsed letter once whitespace and the
    punctuation ``()[].:,*`` around it are removed (case-sensitive, so the article
    "a" is not option A). TF: the first token that, cleaned the same way, is the
    parsed word (``True``/``False``, case-insensitive) or a prefix of at least two
    letters of it (a word split over several tokens states the option at its first
    token, which carries the decision). Paper §3.1, average token probability for MCQ.
    """
    if answer is None or task_type not in ("MCQ", "TF"):
        return None
    target = str(answer).strip()
    for i, tok in enumerate(tokens):
        t = tok.strip().strip("()[].:,*\"'")
        if not t:
            continue
        if task_type == "MCQ" and t == target:
            return i
        if task_type == "TF" and (t.lower() == target.lower() or (len(t) >= 2 and target.lower().startswith(t.lower()))):
            return i
    return None


def _answer_format(dataset: str) -> str:
    from ..data import get_spec

    return get_spec(dataset).answer_format


def _choices(row) -> list[dict]:
    return [dict(c) for c in (row.get("choices") or [])]


def _check_data(df: pl.DataFrame, data_path) -> None:
    missing = [c for c in _DATA_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{data_path}: data table lacks column(s) {missing}")
    if df.height == 0:
        raise ValueError(f"{data_path}: data table has no rows")
    datasets = df["dataset"].unique().to_list()
    tasks = df["task_type"].unique().to_list()
    if len(datasets) != 1 or len(tasks) != 1:
        raise ValueError(f"{data_path}: expected one dataset and one task type, got {datasets} / {tasks}")
    if df["id"].is_duplicated().any():
        raise ValueError(f"{data_path}: duplicate query ids")



# ------------------------------------------------------------------ one shard, local model
def _slm_shard(backend, rows: list[dict], *, fmt: str, task_type: str, b: dict, cfg: dict, seed: int, spec: dict, layer: int):
    from ..parsing import parse_answer, parse_confidence, parse_verbal_1s, strip_think
    from .transformers_backend import Branch, Job

    m, temp = int(cfg["num_samples"]), float(cfg["sample_temperature"])
    think_kw = {"enable_thinking": False} if spec.get("reasoning") else {}
    t_ids, f_ids = backend.single_token_ids(TRUE_VARIANTS), backend.single_token_ids(FALSE_VARIANTS)
    if not t_ids or not f_ids:
        raise ValueError(f"model {backend.name}: the tokenizer has no single-token 'True'/'False' for p(True)")

    def follow_ups(r):
        """p(True) and verbalization-2s: follow-up turns after the model's own (think-stripped) answer."""

        def make(res):
            shown = strip_think(backend.decode(res.branches[0].token_ids))
            ptrue = prompts.ptrue_conversation(r["prompt"], shown, r["question"], _choices(r), r.get("context"))
            verbal = prompts.verbal_2s_conversation(r["prompt"], shown)
            return [
                Job(backend.encode(ptrue, **think_kw), next_token_groups=[t_ids, f_ids], group=r["id"]),
                Job(backend.encode(verbal), [Branch(b["verbal"], entropy=False)], group=r["id"]),
            ]

        return make

    # One pool for everything: per query the greedy answer and its m samples decode from one prefill;
    # the verbal-1s prompt shares that prefill's dataset prompt (same group); once the greedy answer
    # is done, its two follow-up turns start from its KV cache (prompt + answer) and join the pool.
    jobs = []
    for r in rows:
        branches = [Branch(b["answer"])] + [
            Branch(b["sample"], temp, branch_seed(seed, r["id"], k), entropy=False) for k in range(m)
        ]
        jobs.append(Job(backend.encode(prompts.answer_conversation(r["prompt"])), branches, want_hidden=True,
                        group=r["id"], follow_up=follow_ups(r)))
    for r in rows:
        jobs.append(
            Job(backend.encode(prompts.verbal_1s_conversation(r["prompt"])), [Branch(b["answer"] + b["verbal"], entropy=False)],
                group=r["id"])
        )
    res = backend.run_jobs(jobs, hidden_layer=layer, desc=f"{backend.name}: answer, samples, p(True), verbal-1s/2s")
    main, v1 = res[: len(rows)], res[len(rows):]
    greedy = [backend.to_generation(x.branches[0], x.n_prompt_tokens) for x in main]
    pt = [x.follow_ups[0] for x in main]
    v2 = [x.follow_ups[1] for x in main]

    out = []
    for i, r in enumerate(rows):
        g = greedy[i]
        choices = _choices(r)
        parsed = parse_answer(g.text, fmt, choices)
        opt = find_option_token(g.tokens, parsed, task_type)
        samples = [backend.decode(x.token_ids) for x in main[i].branches[1:]]
        pT, pF = pt[i].group_probs
        v1_text = backend.decode(v1[i].branches[0].token_ids)
        v1_ans, v1_conf = parse_verbal_1s(v1_text, fmt, choices)
        v2_text = backend.decode(v2[i].branches[0].token_ids)
        out.append(
            {
                "id": r["id"],
                "response": g.text,
                "parsed_answer": parsed,
                "tokens": g.tokens,
                "token_logprobs": g.token_logprobs,
                "token_entropies": g.token_entropies,
                "option_prob": math.exp(g.token_logprobs[opt]) if opt is not None else None,
                "n_prompt_tokens": g.n_prompt_tokens,
                "finish_reason": g.finish_reason,
                "samples": samples,
                "sample_answers": [parse_answer(s, fmt, choices) for s in samples],
                "ptrue": pT / (pT + pF) if (pT + pF) > 0 else None,
                "verbal_1s_response": v1_text,
                "verbal_1s_answer": v1_ans,
                "verbal_1s_confidence": v1_conf,
                "verbal_2s_response": v2_text,
                "verbal_2s_confidence": parse_confidence(v2_text),
                "_hidden": main[i].hidden.astype(np.float32).tolist(),
            }
        )
    return out


def _llm_shard(backend, rows: list[dict], *, fmt: str, task_type: str, b: dict):
    from ..parsing import parse_answer

    convs = [prompts.answer_conversation(r["prompt"]) for r in rows]
    gens = backend.generate(convs, max_new_tokens=b["answer"], temperature=0.0, n=1)
    out = []
    for r, gl in zip(rows, gens):
        g = gl[0]
        parsed = parse_answer(g.text, fmt, _choices(r))
        lps = g.token_logprobs
        opt = find_option_token(g.tokens, parsed, task_type) if lps is not None else None
        out.append(
            {
                "id": r["id"],
                "response": g.text,
                "parsed_answer": parsed,
                "tokens": list(g.tokens),
                "token_logprobs": [None if x is None else float(x) for x in lps] if lps is not None else None,
                "token_entropies": list(g.token_entropies) if g.token_entropies is not None else None,
                "option_prob": math.exp(lps[opt]) if opt is not None and lps[opt] is not None else None,
                "n_prompt_tokens": int(g.n_prompt_tokens),
                "finish_reason": g.finish_reason,
                **{c: None for c in ARTIFACTS["generations"].names[9:]},
            }
        )
    return out


def _frame(records: list[dict], with_hidden: bool) -> pl.DataFrame:
    schema = dict(ARTIFACTS["generations"].polars_schema())
    if with_hidden:
        schema["_hidden"] = pl.List(pl.Float32)
    return pl.DataFrame(records, schema=schema)


# ------------------------------------------------------------------ entry point
def run_inference(model, spec, model_dir, data_path, out_path, hidden_path, role, cfg, seed) -> None:
    """Write the ``generations`` artifact (and, for SLMs, the hidden-states file) for one model × dataset.

    Args mirror ``workflow/scripts/infer.py``: ``spec`` is the model's config entry, ``model_dir``
    the fetched directory (None for API models), ``role`` ``"slm"`` or ``"llm"``, ``cfg`` the
    ``inference`` config section, ``seed`` the run seed.
    """
    from . import load_backend

    if role not in ("slm", "llm"):
        raise ValueError(f"model {model!r}: role must be 'slm' or 'llm', got {role!r}")
    if role == "slm" and "api" in spec:
        raise ValueError(
            f"model {model!r} is an API model and cannot be an SLM: the SLM needs hidden states and "
            "token entropies, which only a local model gives"
        )
    if role == "slm" and not hidden_path:
        raise ValueError(f"model {model!r}: role 'slm' needs a hidden-states output path")
    cfg = _cfg(cfg)
    data = pl.read_parquet(data_path)
    _check_data(data, data_path)
    dataset, task_type, domain = data["dataset"][0], data["task_type"][0], data["domain"][0]
    fmt = _answer_format(dataset)
    b = budgets(cfg, spec, task_type, domain)
    if role == "llm":
        # Routing only ever uses the LLM's answers to evaluation queries; training rows exist
        # for the SLM's in-domain probe.
        data = data.filter(pl.col("role") == "eval")
    rows = data.select(list(_DATA_COLUMNS)).to_dicts()
    size = int(cfg["shard_size"])
    n_shards = math.ceil(len(rows) / size)
    fp = fingerprint(
        {"model": model, "spec": spec, "role": role, "cfg": cfg, "seed": seed, "ids": [r["id"] for r in rows],
         "prompts": fingerprint([r["prompt"] for r in rows])}
    )
    layer = _layer_index(model, model_dir, int(cfg["hidden_layer"])) if role == "slm" else None
    store = ShardStore(out_path, fp)
    log.info("%s / %s (%s): %d rows in %d shard(s), budgets %s", model, dataset, role, len(rows), n_shards, b)
    backend = None

    def compute(i: int) -> pl.DataFrame:
        nonlocal backend
        if backend is None:
            # API responses go to the persistent cache (resources/cache/api/ or $UQROUTE_CACHE_DIR),
            # not the shard folder, which is removed on success: a rerun must never pay twice.
            backend = load_backend(spec, model_dir, cfg, name=model)
        part = rows[i * size:(i + 1) * size]
        log.info("%s / %s: shard %d/%d (%d rows)", model, dataset, i + 1, n_shards, len(part))
        if role == "slm":
            recs = _slm_shard(backend, part, fmt=fmt, task_type=task_type, b=b, cfg=cfg, seed=seed, spec=spec, layer=layer)
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
    if role == "slm":
        hidden = np.asarray(df["_hidden"].to_list(), dtype=np.float32)
        n_na1 = sum(1 for r in df.iter_rows(named=True) if r["verbal_1s_confidence"] is None)
        n_na2 = df["verbal_2s_confidence"].null_count()
        log.info(
            "%s / %s: unparsable verbalized confidence: verbal_1s %d/%d, verbal_2s %d/%d (these queries are "
            "missing for those methods)", model, dataset, n_na1, df.height, n_na2, df.height,
        )
        write_hidden_states(hidden_path, df["id"].to_list(), hidden, layer=layer, model=model, dataset=dataset)
        df = df.drop("_hidden")
    write_parquet(df, out_path, "generations")
    store.clear()


def _layer_index(model: str, model_dir, hidden_layer: int) -> int:
    """Absolute hidden-states index for ``hidden_layer``, from the model directory's config.json."""
    import json

    from .transformers_backend import resolve_layer

    if model_dir is None:
        raise ValueError(f"model {model!r}: an SLM needs a local model directory")
    cfg_path = Path(model_dir) / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"model {model!r}: {cfg_path} does not exist (run rule fetch_model first)")
    conf = json.loads(cfg_path.read_text())
    n = conf.get("num_hidden_layers") or (conf.get("text_config") or {}).get("num_hidden_layers")
    if not n:
        raise ValueError(f"model {model!r}: {cfg_path} has no num_hidden_layers")
    return resolve_layer(hidden_layer, int(n))
