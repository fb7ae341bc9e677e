"""Reading the judge's verdict from its raw reply.

The judge is asked for ``Yes`` or ``No`` (see :mod:`.prompt`), but replies vary
("Yes.", "yes, equivalent", "The answer is correct", "CORRECT", "No, it isn't equivalent",
"I don't think it's correct", "Not incorrect", "Probably not"). :func:`parse_verdict` maps a
reply to ``correct``, ``incorrect`` or ``unparsable``, reading negation (contractions, double
negatives, elliptical "probably not") with :mod:`uqroute.parsing.negation`. It never
guesses: a reply without a verdict, or with verdicts of both polarities ("Yes ... incorrect"),
is ``unparsable``, and the judge stage counts those replies.
"""

from __future__ import annotations

from ..parsing import strip_think
from ..parsing import polarities

__all__ = ["CORRECT", "INCORRECT", "UNPARSABLE", "VERDICTS", "VERDICT_WORDS", "parse_verdict", "verdict_to_bool"]

CORRECT, INCORRECT, UNPARSABLE = "correct", "incorrect", "unparsable"
VERDICTS = (CORRECT, INCORRECT, UNPARSABLE)

#: Polar words of a verdict (besides the answer particles yes/yep/yeah and no/nope/nah).
VERDICT_WORDS: dict[str, bool] = {
    **dict.fromkeys(
        "correct right equivalent accurate same identical equal matches match consistent valid acceptable agrees".split(),
        True,
    ),
    **dict.fromkeys(
        "incorrect wrong inequivalent nonequivalent non-equivalent inaccurate different differs differ difference "
        "differences mismatch mismatches invalid inconsistent contradicts contradict contradictory unacceptable".split(),
        False,
    ),
}


def parse_verdict(reply: str | None) -> str:
    """``correct`` / ``incorrect`` / ``unparsable`` for one raw judge reply.

    ``<think>`` blocks are removed; then every polarity the reply states is read with
    :func:`uqroute.parsing.negation.polarities` over :data:`VERDICT_WORDS` (``isn't correct``
    and ``not the same`` are negative, ``not incorrect`` and ``no difference`` positive,
    ``Probably not`` and ``I don't think so`` negative, ``not sure`` carries none). Exactly one
    polarity present → that verdict; none or both → ``unparsable``.

    >>> [parse_verdict(r) for r in ["Yes", "No.", "It isn't equivalent", "Not incorrect", "maybe"]]
    ['correct', 'incorrect', 'incorrect', 'correct', 'unparsable']
    """
    values = {p.value for p in polarities(strip_think(reply), VERDICT_WORDS)}
    if len(values) != 1:
        return UNPARSABLE
    return CORRECT if values.pop() else INCORRECT


def verdict_to_bool(verdict: str | None) -> bool | None:
    """``correct`` → True, ``incorrect`` → False, anything else → None."""
    return {CORRECT: True, INCORRECT: False}.get(verdict)
