"""Reading the judge's verdict from its raw reply.

The judge is asked for ``Yes`` or ``No`` (see :mod:`.prompt`), but replies vary
("Yes.", "yes, equivalent", "The answer is correct", "CORRECT", "No, it is not
equivalent"). :func:`parse_verdict` maps a reply to ``correct``, ``incorrect`` or
``unparsable``. It never guesses: a reply without a verdict word, or with verdict
words of both polarities ("Yes ... incorrect"), is ``unparsable``.
"""

from __future__ import annotations

import re

from ..parsing import strip_think

__all__ = ["CORRECT", "INCORRECT", "UNPARSABLE", "VERDICTS", "parse_verdict", "verdict_to_bool"]

CORRECT, INCORRECT, UNPARSABLE = "correct", "incorrect", "unparsable"
VERDICTS = (CORRECT, INCORRECT, UNPARSABLE)

# Negative phrases first: "not correct" must not count as "correct".
_NEGATIVE = re.compile(
    r"\b(?:no|nope|incorrect|wrong|inequivalent|nonequivalent|non-equivalent|"
    r"not\s+(?:\w+\s+){0,2}?(?:correct|equivalent|right|the\s+same|equal|accurate))\b"
)
_POSITIVE = re.compile(r"\b(?:yes|correct|equivalent|right)\b")


def parse_verdict(reply: str | None) -> str:
    """``correct`` / ``incorrect`` / ``unparsable`` for one raw judge reply.

    Case-insensitive; ``<think>`` blocks are removed. Negative phrases (``no``,
    ``incorrect``, ``wrong``, ``not [..] correct/equivalent/right/the same``) are
    found first and masked, then positive words (``yes``, ``correct``, ``equivalent``,
    ``right``). Exactly one polarity present → that verdict; none or both →
    ``unparsable``.

    >>> [parse_verdict(r) for r in ["Yes", "No.", "The answer is not equivalent", "maybe"]]
    ['correct', 'incorrect', 'incorrect', 'unparsable']
    """
    text = strip_think(reply).lower()
    if not text:
        return UNPARSABLE
    negative = bool(_NEGATIVE.search(text))
    positive = bool(_POSITIVE.search(_NEGATIVE.sub(" ", text)))
    if negative == positive:
        return UNPARSABLE
    return CORRECT if positive else INCORRECT


def verdict_to_bool(verdict: str | None) -> bool | None:
    """``correct`` → True, ``incorrect`` → False, anything else → None."""
    return {CORRECT: True, INCORRECT: False}.get(verdict)
