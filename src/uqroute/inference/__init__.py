"""Inference stage (rule ``infer``): one batched pass per model × dataset yielding what the UQ methods need.

* :func:`run_inference` — the rule's entry point (:mod:`.run`);
* :func:`load_backend` — a :class:`ChatBackend` for a model spec: :class:`TransformersBackend`
  for local models, ``uqroute.inference.api.OpenAIChatBackend`` for ``api`` specs;
* :mod:`.prompts` — the p(True) / verbalized-confidence prompts.
"""

from __future__ import annotations

from .base import ChatBackend, Conversation, Generation, Message

__all__ = [
    "ChatBackend",
    "Conversation",
    "Generation",
    "Message",
    "load_backend",
    "run_inference",
    "TransformersBackend",
]


def load_backend(spec: dict, model_dir, inference_cfg: dict | None = None, cache_dir=None, *, name: str | None = None):
    """The backend for one model: OpenAI-compatible for ``api`` specs, else transformers on ``model_dir``.

    ``inference_cfg`` is the ``inference`` config section (dtype, batch_size, attn_implementation);
    ``spec.device_map`` is passed to transformers (e.g. ``auto`` for multi-GPU).
    """
    cfg = inference_cfg or {}
    backend = spec.get("backend") or cfg.get("backend") or "transformers"
    if "api" in spec or backend == "openai":
        if "api" not in spec:
            raise ValueError(f"model {name or model_dir!r}: backend 'openai' needs an `api` block in the model's config")
        from .api import OpenAIChatBackend

        return OpenAIChatBackend(spec, cache_dir=cache_dir, name=name)
    if model_dir is None:
        raise ValueError(f"model {name!r}: a local model needs its fetched directory (rule fetch_model)")
    from .run import INFERENCE_DEFAULTS
    from .transformers_backend import TransformersBackend

    cfg = {**INFERENCE_DEFAULTS, **cfg}  # the one place the defaults live (the judge passes a partial section)
    return TransformersBackend(
        model_dir,
        dtype=cfg["dtype"],
        batch_size=int(cfg["batch_size"]),
        max_batch_rows=int(cfg["max_batch_rows"]),
        pack_weights=bool(cfg["pack_weights"]),
        attn_implementation=cfg["attn_implementation"],
        device_map=spec.get("device_map"),
        trust_remote_code=bool(spec.get("trust_remote_code", False)),
        name=name,
    )


def __getattr__(attr):  # lazy: importing the package must not import torch
    if attr == "run_inference":
        from .run import run_inference

        return run_inference
    if attr == "TransformersBackend":
        from .transformers_backend import TransformersBackend

        return TransformersBackend
    raise AttributeError(attr)
