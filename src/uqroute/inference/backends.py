"""Backend selection: the :class:`~.base.ChatBackend` for one model spec."""

from __future__ import annotations

from pathlib import Path

from .config import resolve_settings

__all__ = ["load_backend", "engine_name", "check_thinking_budget"]


def engine_name(spec: dict, inference_cfg: dict | None = None) -> str:
    """The engine a local model runs on: its own ``backend``, else ``inference.backend``, else ``transformers``."""
    return spec.get("backend") or (inference_cfg or {}).get("backend") or "transformers"


def check_thinking_budget(
    model: str, spec: dict, role: str, dataset: str, b: dict, inference_cfg: dict | None = None
) -> None:
    """Budget forcing (``models.<name>.thinking_budget``, s1) needs the local engine (it forces tokens while
    decoding: SLM inference) and room to answer after the trace: a thinking budget below the answer budget."""
    tb = spec.get("thinking_budget")
    if tb is None:
        return
    if "api" in spec or role != "slm" or engine_name(spec, inference_cfg) != "transformers":
        raise ValueError(
            f"model {model!r}: thinking_budget (budget forcing) is implemented for SLM inference on the "
            "transformers backend only; remove it from this model's config"
        )
    if int(tb) >= b["answer"]:
        raise ValueError(
            f"model {model!r}, dataset {dataset!r}: thinking_budget {tb} leaves no room to answer within the "
            f"answer budget of {b['answer']} tokens; lower thinking_budget or raise the answer budget"
        )


def load_backend(spec: dict, model_dir, inference_cfg: dict | None = None, cache_dir=None, *, name: str | None = None):
    """The backend for one model: OpenAI-compatible for ``api`` specs, else transformers on ``model_dir``
    (our engine, or with backend ``vllm`` vLLM generating and transformers scoring: :mod:`.vllm_backend`).

    ``inference_cfg`` is the ``inference`` config section (dtype, batch_size, attn_implementation);
    ``spec.device_map`` is passed to transformers (e.g. ``auto`` for multi-GPU).
    """
    cfg = inference_cfg or {}
    backend = engine_name(spec, cfg)
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
