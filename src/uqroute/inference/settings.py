"""Inference settings: the ``inference`` config section with its defaults, and per-dataset token budgets."""

from __future__ import annotations

import math

from ..settings import defaults, section

__all__ = ["INFERENCE_DEFAULTS", "resolve_settings", "budgets"]

#: Defaults of the ``inference`` config section, read from the config schema (the one source of every default).
INFERENCE_DEFAULTS = defaults("inference")


def resolve_settings(cfg: dict | None) -> dict:
    """The ``inference`` section with every default filled in (``max_new_tokens`` merged per task type):
    ``uqroute.settings.section("inference", cfg)``."""
    return section("inference", cfg)


def budgets(cfg: dict, spec: dict, task_type: str, domain: str) -> dict[str, int]:
    """Token budgets for one dataset: ``answer``, ``sample``, ``verbal`` (scaled by ``max_new_tokens_scale``).

    Math free-form datasets (domain ``math``, task type ``FF``) use the ``math`` budget. The
    sample budget is ``sample_max_new_tokens`` capped at the answer budget (null: the answer
    budget), so it can shorten the math samples without lengthening the short ones.
    """
    cfg = resolve_settings(cfg)
    scale = float(spec.get("max_new_tokens_scale", 1) or 1)
    key = "math" if (domain == "math" and task_type == "FF") else task_type
    if key not in cfg["max_new_tokens"]:
        raise ValueError(f"inference.max_new_tokens has no budget for {key!r}")
    answer = int(cfg["max_new_tokens"][key])
    # samples are continuations of the answer prompt: never longer than the answer itself may be
    sample = min(answer, int(cfg["sample_max_new_tokens"] or answer))
    verbal = int(cfg["verbal_max_new_tokens"])
    return {k: max(1, math.ceil(v * scale)) for k, v in {"answer": answer, "sample": sample, "verbal": verbal}.items()}
