"""Backend selection: the :class:`~.base.ChatBackend` for one model spec."""

from __future__ import annotations

from pathlib import Path

from .settings import resolve_settings

__all__ = ["load_backend"]


def load_backend(spec: dict, model_dir, inference_cfg: dict | None = None, cache_dir=None, *, name: str | None = None):
    """The backend for one model: OpenAI-compatible for ``api`` specs, else transformers on ``model_dir``
    (our engine, or with backend ``vllm`` vLLM generating and transformers scoring: :mod:`.vllm_backend`).

    ``inference_cfg`` is the ``inference`` config section (dtype, batch_size, attn_implementation);
    ``spec.device_map`` is passed to transformers (e.g. ``auto`` for multi-GPU).
    """
    cfg = inference_cfg or {}
    backend = spec.get("backend") or cfg.get("backend") or "transformers"
    if "api" in spec or backend == "openai":
        if "api" not in spec:
            raise ValueError(
                f"model {name or model_dir!r}: backend 'openai' needs an `api` block in the model's config"
            )
        from .api import OpenAIChatBackend

        return OpenAIChatBackend(spec, cache_dir=cache_dir, name=name)
    if model_dir is None:
        raise ValueError(f"model {name!r}: a local model needs its fetched directory (rule fetch_model)")
    from .transformers_backend import TransformersBackend

    cfg = resolve_settings(cfg)  # the one place the defaults live (the judge passes a partial section)
    cls, extra = TransformersBackend, {}
    if backend == "vllm":
        from ..models import weights_identity
        from .cache import default_cache_dir
        from .vllm_backend import VLLMBackend

        # vLLM generates (its results kept per request in the generation store), transformers scores
        store = Path(cache_dir) if cache_dir is not None else default_cache_dir("vllm", name or Path(model_dir).name)
        cls, extra = (
            VLLMBackend,
            {
                "vllm": {**resolve_settings({})["vllm"], **(cfg.get("vllm") or {})},
                "store": store / "generations.sqlite",
                "identity": weights_identity(spec, model_dir, name=name or "model"),
            },
        )
    return cls(
        model_dir,
        **extra,
        dtype=cfg["dtype"],
        batch_size=int(cfg["batch_size"]),
        max_batch_rows=int(cfg["max_batch_rows"]),
        pack_weights=bool(cfg["pack_weights"]),
        attn_implementation=cfg["attn_implementation"],
        device_map=spec.get("device_map"),
        trust_remote_code=bool(spec.get("trust_remote_code", False)),
        stop_tokens=spec.get("stop_tokens"),
        name=name,
    )
