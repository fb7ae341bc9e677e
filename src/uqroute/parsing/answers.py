"""One entry point per stage: parse a reply in a dataset's answer format, and check it against the gold answer.

``answer_format`` is the dataset's ``DatasetSpec.answer_format`` (see
``uqroute.data.registry``): ``letter`` (MCQ), ``bool`` (TF), ``number`` (GSM8K,
MultiArith, SVAMP), ``latex`` (MATH-500) or ``text`` (CoQA, TruthfulQA).
The rule-based check is the "rule" label of the ``correctness`` artifact; free-form
text answers are additionally judged by an LLM (paper §3.1, GPT-4.1 mini judge).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from ._common import strip_markdown
from .boolean import parse_bool
from .mathexpr import extract_math_answer, math_equivalent
from .numbers import format_number, parse_number
from .options import parse_option
from .text import best_f1, exact_match
from .think import clean_reply, final_answer_text, is_truncated

__all__ = [
    "ANSWER_FORMATS",
    "UnknownAnswerFormatError",
    "InvalidGoldError",
    "parse_answer",
    "parse_text_answer",
    "is_correct",
    "canonical_bool",
    "numbers_equal",
]

ANSWER_FORMATS = ("letter", "bool", "number", "latex", "text")

#: Relative tolerance of the numeric check (plus an absolute 1e-9 for answers near 0).
NUMBER_REL_TOL = 1e-6


class UnknownAnswerFormatError(ValueError):
    """An ``answer_format`` that is not one of :data:`ANSWER_FORMATS`."""


class InvalidGoldError(ValueError):
    """A gold answer that cannot be read in its dataset's answer format (a data error)."""


def _check_format(answer_format: str) -> None:
    if answer_format not in ANSWER_FORMATS:
        raise UnknownAnswerFormatError(
            f"unknown answer_format {answer_format!r}; expected one of {', '.join(ANSWER_FORMATS)}"
        )


_TEXT_PREFIX = re.compile(
    r"^\s*(?:(?:my\s+|the\s+)?(?:final\s+|short\s+|best\s+)?(?:answer|guess|response|a)\s*(?:is\s*)?(?::|\s[-–]\s)\s*)",
    re.IGNORECASE,
)


def parse_text_answer(text: str | None) -> str | None:
    """A short free-form answer: the first non-empty line, without an ``Answer:``/``A:``/``Guess:`` prefix,
    markdown, enclosing quotes and a final ``.``/``,``/``;``/``:``. ``None`` if nothing is left.

    Taking the first line mirrors the prompt, which asks for a short answer without
    explanation; the LLM judge sees the whole reply anyway.
    """
    t = strip_markdown(clean_reply(text))
    for line in t.split("\n"):
        line = _TEXT_PREFIX.sub("", line, count=1).strip()
        line = line.strip("\"'“”‘’ ").strip()
        if line[-1:] in (",", ";", ":") or (line.endswith(".") and not line.endswith("..")):
            line = line[:-1].rstrip()
        if line:
            return line
    return None


def parse_answer(
    text: str | None,
    answer_format: str,
    choices: Iterable | None = None,
    *,
    finish_reason: str | None = None,
    think_open: bool = False,
) -> str | None:
    """The canonical answer string of a reply in ``answer_format``, or ``None`` when nothing parses.

    ``<think>`` blocks are removed first (``think_open``: the prompt opened the block, see
    :func:`~uqroute.parsing.think.final_answer_text`). A reply cut off by the token budget
    (``finish_reason == "length"``) is a truncation, not an answer: ``None``, whatever it holds
    (the last number of a half-written solution is not its answer). Canonical forms: the option
    label (``"B"``) for ``letter`` (``choices`` required), ``"True"``/``"False"`` for ``bool``, a
    minimal number string (``"42"``, ``"0.5"``, ``"-3"``) for ``number``, the LaTeX
    answer for ``latex``, and a short stripped text for ``text``.
    """
    _check_format(answer_format)
    if is_truncated(finish_reason):
        return None
    if think_open:
        text = final_answer_text(text, think_open=True)
    if answer_format == "letter":
        return parse_option(text, choices)
    if answer_format == "bool":
        v = parse_bool(text)
        return None if v is None else str(v)
    if answer_format == "number":
        v = parse_number(text)
        return None if v is None else format_number(v)
    if answer_format == "latex":
        return extract_math_answer(text)
    return parse_text_answer(text)


def canonical_bool(value) -> bool | None:
    """A gold or parsed truth value as ``bool`` (accepts bools, ``"True"``, ``"false"``, ``"yes"``, …)."""
    if isinstance(value, bool):
        return value
    if value is None:
        return None
    return parse_bool(str(value))


def numbers_equal(a: float, b: float) -> bool:
    """Numeric answer equality: exact for two integers (``999999 ≠ 1000000``), otherwise
    ``math.isclose`` with relative tolerance :data:`NUMBER_REL_TOL` (1e-6) and absolute 1e-9,
    which absorbs rounding such as ``0.333333`` vs ``1/3`` only at the 6th significant digit."""
    a, b = float(a), float(b)
    if a.is_integer() and b.is_integer():
        return a == b
    return math.isclose(a, b, rel_tol=NUMBER_REL_TOL, abs_tol=1e-9)


def _gold_number(gold) -> float:
    if isinstance(gold, (int, float)) and not isinstance(gold, bool):
        return float(gold)
    v = parse_number(str(gold)) if gold is not None else None
    if v is None:
        raise InvalidGoldError(f"gold answer {gold!r} is not a number (answer_format 'number')")
    return v


def is_correct(
    parsed: str | None,
    gold: str,
    answer_format: str,
    references: Iterable[str] = (),
    f1_threshold: float = 0.5,
) -> bool | None:
    """Rule-based correctness of a parsed answer (the ``rule_correct`` column).

    - ``letter``: same option label (case-insensitive);
    - ``bool``: same truth value (``gold`` may be ``"True"``, ``"false"``, ``"yes"``…);
    - ``number``: :func:`numbers_equal` (exact for integers, else relative tolerance 1e-6);
    - ``latex``: :func:`~uqroute.parsing.mathexpr.math_equivalent` (math-verify);
    - ``text``: SQuAD exact match against any reference, or best token F1 ≥
      ``f1_threshold`` (Rajpurkar et al., 2016). ``references`` defaults to ``[gold]``.

    ``parsed is None`` (the model gave no parsable answer) is ``False``; for ``text``
    the result is ``None`` only when there is no reference to compare with.
    A gold answer that is unreadable in its format raises :class:`InvalidGoldError`.
    """
    _check_format(answer_format)
    if answer_format == "text":
        refs = [r for r in (list(references) if references is not None else []) if r is not None and str(r).strip()]
        if not refs and gold is not None and str(gold).strip():
            refs = [str(gold)]
        if not refs:
            return None
        if parsed is None:
            return False
        return exact_match(parsed, refs) or best_f1(parsed, refs) >= f1_threshold
    if answer_format == "letter":
        if gold is None or not str(gold).strip():
            raise InvalidGoldError(f"gold answer {gold!r} is not an option label (answer_format 'letter')")
        return parsed is not None and str(parsed).strip().upper() == str(gold).strip().upper()
    if answer_format == "bool":
        g = canonical_bool(gold)
        if g is None:
            raise InvalidGoldError(f"gold answer {gold!r} is not True/False (answer_format 'bool')")
        return parsed is not None and canonical_bool(parsed) is g
    if answer_format == "number":
        g = _gold_number(gold)
        if parsed is None:
            return False
        p = parse_number(str(parsed))
        return p is not None and numbers_equal(p, g)
    # latex
    if gold is None or not str(gold).strip():
        raise InvalidGoldError(f"gold answer {gold!r} is empty (answer_format 'latex')")
    return parsed is not None and math_equivalent(str(parsed), str(gold))
