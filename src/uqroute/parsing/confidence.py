"""Verbalized confidence: the number a model states for how sure it is.

Used by the two verbalization UQ methods of the paper (§3.1, methods 4 and 5):
*verbalization-1s* asks for the answer and a numeric confidence in one reply
(Xiong et al., 2024; Tian et al., 2023), *verbalization-2s* asks for the confidence
in a follow-up turn (Tian et al., 2023). Replies without a numeric confidence give
``None``; the paper discards those queries for these methods.

Reading a value (:func:`to_confidence`):

- ``N%`` / ``N percent`` → N/100 (``100%`` → 1.0);
- ``a/b`` or ``a out of b`` (``8/10``, ``4 out of 5``) → a/b;
- a bare number: a decimal ``x ≤ 1`` is a probability (``0.8``, ``1.0``), otherwise it is
  a percentage (``80``, and the integers ``0``/``1`` are 0 % and 1 %), since the
  pipeline's prompts ask for a number from 0 to 100 (``uqroute.inference.prompts``);
  after a ``Probability:`` marker (Tian et al.'s 0.0–1.0 format) ``1`` is 1.0;
- values above 100 %, above the denominator, or negative → ``None``.

Words (``high``, ``very confident``) are **not** mapped to numbers: the prompts
ask for a number, and a reply without one did not follow the instruction.
Range hints echoed from the prompt (``(0-100)``, ``on a scale of 0 to 1``) are
ignored, and so is a negated value (``not 100% sure``, ``isn't 90% confident``: it says
what the confidence is not), so ``I'm not 100% sure, I'd say 90`` gives 0.9 and ``I'm not
100% sure`` alone gives ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ._common import strip_markdown
from .think import clean_reply, final_answer_text, is_truncated

__all__ = ["parse_confidence", "parse_verbal_1s", "strip_verbal_confidence", "to_confidence"]

_NUM = r"(?P<v>\d+(?:\.\d+)?|\.\d+)"
_VALUE = re.compile(
    r"(?<![\w.\-−])" + _NUM + r"(?:\s*(?P<pct>%|percent\b|per\s*cent\b)"
    r"|\s*/\s*(?P<den>\d+(?:\.\d+)?)(?![\d.])"
    r"|\s+out\s+of\s+(?P<den2>\d+(?:\.\d+)?))?"
    r"(?![\w.]\d)",
    re.IGNORECASE,
)
_BOUND = r"(?:0|1)(?:\.0+)?\s*%?\s*(?:-|–|to|,|~|and)\s*(?:1|10|100)(?:\.0+)?\s*%?"
_RANGES = re.compile(
    r"[(\[]\s*(?:(?:on\s+a\s+)?scale\s+(?:of|from)\s+|from\s+|between\s+)?" + _BOUND + r"\s*[)\]]"
    r"|\b(?:on\s+a\s+)?scale\s+(?:of|from)\s+"
    + _BOUND
    + r"|\b(?:from|between)\s+"
    + _BOUND
    + r"|(?<![\d.])"
    + _BOUND
    + r"(?=\s*:)",
    re.IGNORECASE,
)
# "Confidence: 80%", "confidence level is 0.8", "Probability: 0.7" (Tian et al.'s format), "Certainty = 9/10"
_MARKER = re.compile(
    r"\b(?:confidence|certainty|conf)(?:\s+(?:level|score|rating|estimate|value))?"
    r"|\bprobability(?=\s*(?:\([^)\n]*\))?\s*[:=])",
    re.IGNORECASE,
)
_GAP = re.compile(
    r"(?:\s*\([^)\n]*\))?\s*(?:(?:is|of|at|as|to\s+be|would\s+be|will\s+be|about|around|approximately|roughly|"
    r"I\s+would\s+say|I'd\s+say|:|=|-|–|~|≈)\s*)*",
    re.IGNORECASE,
)
_BEFORE_WORD = re.compile(
    r"\s*(?:confident|confidence|sure|certain|certainty|likely|likelihood|probability|chance)\b", re.IGNORECASE
)


def to_confidence(m: re.Match, *, probability_scale: bool = False) -> float | None:
    """Convert a :data:`_VALUE` match to a confidence in [0, 1] (rules in the module docstring).

    ``probability_scale``: the value follows a ``Probability:`` marker (Tian et al.'s
    0.0–1.0 format), so the integers 0 and 1 are probabilities too.
    """
    groups = m.groupdict()
    v = float(groups["v"])
    if groups.get("pct"):
        return v / 100 if v <= 100 else None
    den = groups.get("den") or groups.get("den2")
    if den is not None:
        d = float(den)
        return v / d if 0 < d and v <= d else None
    if v <= 1 and ("." in groups["v"] or probability_scale):
        return v
    if v <= 100:
        return v / 100
    return None


def _clean(text: str | None) -> str:
    return strip_markdown(clean_reply(text))


# A negated value states no confidence: "not 100% sure", "isn't 90% confident", "never 100%".
_NEGATED_VALUE = re.compile(
    r"(?:\bnot|n['’]t|\b(?:is|are|am|was|do|does)nt|\bnever|\bhardly)\s+"
    r"(?:(?:quite|fully|completely|totally|entirely|even|exactly|really|very|so|that|a)\s+)*"
    r"\d+(?:\.\d+)?\s*(?:%|percent\b|per\s*cent\b|/\s*\d+(?:\.\d+)?|out\s+of\s+\d+(?:\.\d+)?)?",
    re.IGNORECASE,
)


def _blank_ranges(t: str) -> str:
    """Range hints (``(0-100)``) and negated values (``not 100%``) replaced by spaces of the same
    length, so spans still index ``t``."""
    t = _RANGES.sub(lambda m: " " * len(m.group(0)), t)
    return _NEGATED_VALUE.sub(lambda m: " " * len(m.group(0)), t)


def _by_marker(t: str):
    """Rule A: the last ``confidence … <value>`` (value on the marker's line, after filler words)."""
    for m in reversed(list(_MARKER.finditer(t))):
        g = _GAP.match(t, m.end())
        v = _VALUE.match(t, g.end())
        if v:
            prob = m.group(0).lower().startswith("probability")
            return to_confidence(v, probability_scale=prob), (m.start(), v.end())
    return None


def _by_word_after(t: str):
    """Rule B: the last ``<value> confident/sure/likely…`` (``I am 90% confident``)."""
    for v in reversed(list(_VALUE.finditer(t))):
        if _BEFORE_WORD.match(t, v.end()):
            return to_confidence(v), (v.start(), _BEFORE_WORD.match(t, v.end()).end())
    return None


def _by_percent(t: str, *, last_line_only: bool):
    """Rule C: the last percentage (on the last non-empty line when ``last_line_only``)."""
    start = 0
    if last_line_only:
        stripped = t.rstrip()
        start = stripped.rfind("\n") + 1
    hits = [v for v in _VALUE.finditer(t, start) if v.group("pct")]
    if hits:
        return to_confidence(hits[-1]), hits[-1].span()
    return None


def _explicit(t: str, *, last_line_only: bool):
    for rule in (_by_marker, _by_word_after):
        got = rule(t)
        if got is not None:
            return got
    return _by_percent(t, last_line_only=last_line_only)


def parse_confidence(text: str | None, *, finish_reason: str | None = None, think_open: bool = False) -> float | None:
    """A verbalized confidence in [0, 1] from a reply such as ``Confidence: 80%``, or ``None``.

    A reply cut off by the token budget (``finish_reason == "length"``) gives ``None`` (``Confidence:
    9`` may be the start of 90). ``think_open``: the prompt opened a ``<think>`` block (see
    :func:`~uqroute.parsing.think.final_answer_text`). Rules, first match wins (``<think>``
    removed first):

    A. the last explicit marker (``confidence``, ``confidence level``, ``certainty``,
       ``probability:``) followed by a value on its line;
    B. the last value followed by ``confident``/``sure``/``certain``/``likely``…
       (``I am 90% confident``);
    C. the last percentage (``85%``);
    D. the reply contains exactly one number (``80``, ``0.8``, ``8/10``, ``I'd say 85.``).

    An explicit value that is out of range (``Confidence: 150``) gives ``None``.
    """
    if is_truncated(finish_reason):
        return None
    t = _blank_ranges(_clean(final_answer_text(text, think_open=think_open)))
    if not t.strip():
        return None
    got = _explicit(t, last_line_only=False)
    if got is not None:
        return got[0]
    values = list(_VALUE.finditer(t))
    if len(values) == 1:
        return to_confidence(values[0])
    return None


_TRAILING = re.compile(r"(?<![\w.\-−/])" + _NUM + r"\s*\)?\s*\.?\s*$")
_NOT_BEFORE_TRAILING = re.compile(
    r"(?:\b(?:is|be|was|equals?|of|to|answer|guess)|[:=+\-*/×÷^<>])\s*\(?$", re.IGNORECASE
)
_GUESS = re.compile(r"^\s*guess\s*[:\-]\s*(?P<g>.+)$", re.IGNORECASE | re.MULTILINE)


def _trailing(t: str):
    """Rule D: a bare number ending the reply, separated from the answer before it."""
    m = _TRAILING.search(t)
    if not m:
        return None
    before = t[: m.start()]
    if before.endswith("("):
        before = before[:-1]
    if not before.strip() or not (before[-1:].isspace() or before.endswith(",")):
        return None
    head = before.rstrip(" \t,")
    if not head.endswith("\n") and (not head or not (head[-1].isalnum() or head[-1] in ").%}]")):
        return None
    if _NOT_BEFORE_TRAILING.search(head):
        return None
    return to_confidence(m), m.span()


def _answer(rest: str, answer_format: str, choices):
    from .answers import parse_answer

    g = _GUESS.search(rest)  # Tian et al. (2023): "Guess: <answer>\nProbability: <p>"
    if g:
        got = parse_answer(g.group("g"), answer_format, choices)
        if got is not None:
            return got
    return parse_answer(rest, answer_format, choices)


def parse_verbal_1s(
    text: str | None,
    answer_format: str,
    choices: Iterable | None = None,
    *,
    finish_reason: str | None = None,
    think_open: bool = False,
) -> tuple[str | None, float | None]:
    """``(answer, confidence)`` from a one-step "answer and confidence" reply (verbalization-1s).

    A reply cut off by the token budget (``finish_reason == "length"``) gives ``(None, None)``:
    a truncation is not an answer, and a confidence cut short is not one either.
    ``think_open``: the prompt opened a ``<think>`` block (see
    :func:`~uqroute.parsing.think.final_answer_text`).

    The confidence is found first, then removed from the reply before the answer is
    parsed with :func:`~uqroute.parsing.answers.parse_answer`, so the confidence
    number is never read as a (numeric) answer. Confidence rules, first match wins:

    A. a ``confidence``/``certainty``/``probability:`` marker followed by a value;
    B. a value followed by ``confident``/``sure``/``likely``… (``I am 90% sure``);
    C. a percentage on the last non-empty line (``B, 85%``);
    D. a bare number ending the reply, after the answer (``B 85``, ``Answer: 42\\n90``),
       provided it does not directly follow ``=``, ``:``, an operator or ``is`` and the rest
       of the reply still holds an answer.

    Rules C and D are dropped when removing the value would leave no answer
    (``Answer: 25%`` for a numeric task is an answer, not a confidence). The
    answer of a ``Guess: …`` line (Tian et al., 2023) takes precedence.
    Numbers inside the answer (math) are therefore only read as confidence when
    attached to a marker, a ``%`` on the last line, or trailing after the answer.
    A negated value (``not 100% sure``) is never the confidence.
    """
    if is_truncated(finish_reason):
        return None, None
    ans, conf, _ = _split_verbal_1s(final_answer_text(text, think_open=think_open), answer_format, choices)
    return ans, conf


def strip_verbal_confidence(
    text: str | None, answer_format: str, choices: Iterable | None = None, *, think_open: bool = False
) -> str:
    """A verbalization-1s reply without its reasoning trace and without the confidence statement that
    :func:`parse_verbal_1s` read (``"B. Paris\\nConfidence: 90%"`` → ``"B. Paris"``): the answer part,
    as the LLM judge is shown it."""
    return _split_verbal_1s(final_answer_text(text, think_open=think_open), answer_format, choices)[2].strip()


def _split_verbal_1s(text: str, answer_format: str, choices) -> tuple[str | None, float | None, str]:
    """``(answer, confidence, the reply text the answer was read from)`` (rules of :func:`parse_verbal_1s`)."""
    t = _clean(text)
    if not t:
        return None, None, ""
    tr = _blank_ranges(t)  # confidence is searched here; the answer is parsed from ``t``
    got = _explicit(tr, last_line_only=True)
    rule_is_weak = got is not None and not (_by_marker(tr) or _by_word_after(tr))
    if got is None:
        got = _trailing(tr)
        rule_is_weak = True
    if got is None:
        return _answer(t, answer_format, choices), None, t
    conf, (s, e) = got
    rest = t[:s] + "\n" + t[e:]
    ans = _answer(rest, answer_format, choices)
    if ans is None and rule_is_weak:
        full = _answer(t, answer_format, choices)
        if full is not None:
            return full, None, t
    return ans, conf, rest
