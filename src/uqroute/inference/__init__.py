"""Inference stage (rule ``infer``): one batched pass per model × dataset yielding what the UQ methods need.

The package's public face (other stages, the benchmarks and a server use only these names):

* :func:`run_inference` — the rule's entry point (:mod:`.run`);
* :func:`load_backend` — a :class:`ChatBackend` for a model spec (:mod:`.backends`):
  :class:`TransformersBackend` for local models, :class:`OpenAIChatBackend` for ``api`` specs;
* :class:`APIRequestError`, :class:`APIReplyError` — an OpenAI-compatible server's errors after all
  retries (the judge falls back to a text verdict when a server rejects structured output);
* :class:`ResponseCache`, :class:`CachedBackend`, :func:`model_fingerprint`,
  :func:`default_cache_dir` — the on-disk cache of slow or paid calls (:mod:`.cache`);
* :data:`STATISTICS`, :func:`statistics_for` — the statistics one SLM pass produces and
  which UQ methods need which (:mod:`.statistics`);
* :class:`Job`, :class:`Branch`, :class:`JobResult` — engine work items (:mod:`.jobs`);
* :data:`INFERENCE_DEFAULTS`, :func:`resolve_settings`, :func:`budgets`, :func:`answer_budgets` — the
  ``inference`` config section and token budgets (:mod:`.config`);
* :class:`QueryPlan`, :class:`QueryBatch`, :func:`chat_row` — one query's jobs for a set of statistics and its
  record from their results, the same for the pipeline (a shard's batch) and the router (one chat request)
  (:mod:`.plan`); :class:`ShardContext` (what a query's statistics share, :mod:`.statistics`);
* :class:`EngineWorker`, :class:`EngineStopped` — the engine's online face: one thread owns a
  continuous-batching run that concurrent requests join (:mod:`.online`);
* :class:`QueryResult`, :func:`check_job`, :func:`answer_conversation` — a query's results, the context check
  of a job, the answer prompt (:mod:`.statistics`, :mod:`.jobs`, :mod:`.prompts`);
* :func:`endpoint`, :func:`resolve_api_key` — an OpenAI-compatible endpoint and its key (:mod:`.api_config`);
* :mod:`.prompts` — the p(True) / verbalized-confidence prompts.

Modules: ``base`` (Generation, ChatBackend), ``config`` (the config section, budgets), ``backends``,
``jobs`` (jobs, branches, results, the context check), ``plan`` (query plans), ``online``
(EngineWorker), ``kvcache`` (buffered KV layers, prefix sources), ``prefill`` (three-level shared
prefill), ``pool`` (continuous-batching decoding pool and the token choice both engines share),
``engine`` (scheduler), ``recurrent`` (the engine for recurrent-state models such as RWKV-7),
``fla_cpu`` (flash-linear-attention's PyTorch reference ops for a CPU), ``transformers_backend``
(model, tokenizer, chat templates, which engine), ``cache``, ``api`` (OpenAI-compatible backend),
``statistics``, ``run``, ``sharding``, ``seeding``, ``packing``, ``prompts``, ``vllm_backend``
(``inference.backend: vllm``: vLLM generates in ``vllm_worker``, a subprocess of the vLLM
environment's python, and one teacher-forced transformers pass scores).
Importing the package does not import torch.
"""

from __future__ import annotations

from .api_config import APIReplyError, APIRequestError, endpoint, resolve_api_key
from .backends import load_backend
from .base import ChatBackend, Conversation, Generation, Message
from .cache import CachedBackend, ResponseCache, cache_key, default_cache_dir, model_fingerprint
from .config import INFERENCE_DEFAULTS, answer_budgets, budgets, resolve_settings
from .jobs import Branch, Job, JobResult, check_job
from .online import EngineStopped, EngineWorker
from .plan import QueryBatch, QueryPlan, chat_row
from .prompts import answer_conversation
from .statistics import STATISTICS, QueryResult, ShardContext, statistics_for

__all__ = [
    "endpoint",
    "resolve_api_key",
    "check_job",
    "answer_conversation",
    "resolve_settings",
    "answer_budgets",
    "QueryPlan",
    "QueryBatch",
    "chat_row",
    "EngineWorker",
    "EngineStopped",
    "QueryResult",
    "ShardContext",
    "APIReplyError",
    "APIRequestError",
    "INFERENCE_DEFAULTS",
    "STATISTICS",
    "Branch",
    "CachedBackend",
    "ChatBackend",
    "Conversation",
    "Generation",
    "Job",
    "JobResult",
    "Message",
    "OpenAIChatBackend",
    "ResponseCache",
    "TransformersBackend",
    "budgets",
    "cache_key",
    "default_cache_dir",
    "load_backend",
    "model_fingerprint",
    "run_inference",
    "statistics_for",
]


def __getattr__(attr):  # lazy: importing the package must not import torch (or openai)
    if attr == "run_inference":
        from .run import run_inference

        return run_inference
    if attr == "TransformersBackend":
        from .transformers_backend import TransformersBackend

        return TransformersBackend
    if attr == "OpenAIChatBackend":
        from .api import OpenAIChatBackend

        return OpenAIChatBackend
    raise AttributeError(attr)
