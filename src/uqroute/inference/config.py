"""The ``inference`` config section: its defaults, and the token budgets of a dataset or a request.

(Named like ``routing/config.py`` and ``router/config.py``, which hold their sections; the
library's own config module is ``uqroute.settings``.)
"""

from __future__ import annotations

import math

from ..settings import defaults, section

__all__ = ["INFERENCE_DEFAULTS", "resolve_settings", "budgets", "answer_budgets"]

#: Defaults of the ``inference`` config section, read from the config schema (the one source of every default).
INFERENCE_DEFAULTS = defaults("inference")


def resolve_settings(cfg: dict | None) -> dict:
    """The ``inference`` section with every default filled in (``max_new_tokens`` merged per task type):
    ``uqroute.settings.section("inference", cfg)``."""
    return section("inference", cfg)


def _scaled(v, scale: float) -> int:
    return max(1, math.ceil(int(v) * scale))


def _task_key(task_type: str, domain: str) -> str:
    return "math" if domain == "math" else task_type


def budgets(cfg: dict, spec: dict, task_type: str, domain: str) -> dict[str, int]:
    """Token budgets for one dataset: ``answer``, ``sample``, ``verbal``.

    Every dataset of the math domain uses the ``math`` budget, whatever its task type: the paper's
    Table 2 puts AQuA (multiple choice) in mathematical reasoning with GSM8K, MultiArith, SVAMP and
    MATH-500, and its prompt asks for reasoning before the letter (``uqroute.data.prompts``). The
    answer budget is the model's own ``max_new_tokens`` for that task where its config entry sets
    one (reasoning models: the output length their model cards recommend), else
    ``inference.max_new_tokens`` × the model's ``max_new_tokens_scale``. The sample budget is
    ``sample_max_new_tokens`` × the scale capped at the answer budget (null: the answer budget), so
    it can shorten the math samples without lengthening the short ones; the verbal budget is
    ``verbal_max_new_tokens`` × the scale.
    """
    cfg = resolve_settings(cfg)
    scale = float(spec.get("max_new_tokens_scale", 1) or 1)
    key = _task_key(task_type, domain)
    if key not in cfg["max_new_tokens"]:
        raise ValueError(f"inference.max_new_tokens has no budget for {key!r}")
    own = spec.get("max_new_tokens") or {}
    answer = int(own[key]) if key in own else _scaled(cfg["max_new_tokens"][key], scale)
    return answer_budgets(answer, cfg, scale)


def answer_budgets(answer: int, cfg: dict, scale: float = 1.0) -> dict[str, int]:
    """The ``answer`` / ``sample`` / ``verbal`` budgets that go with an answer budget of ``answer`` tokens.

    :func:`budgets` for a dataset (``answer`` from the task's budget), and the router for a request (``answer``:
    the router file's budget). ``cfg`` is a (resolved) ``inference`` section; ``scale`` the model's
    ``max_new_tokens_scale``.
    """
    answer = int(answer)
    # samples are continuations of the answer prompt: never longer than the answer itself may be
    sample = min(answer, _scaled(cfg["sample_max_new_tokens"], scale)) if cfg["sample_max_new_tokens"] else answer
    return {"answer": answer, "sample": sample, "verbal": _scaled(cfg["verbal_max_new_tokens"], scale)}
