"""True/false answers (BoolQ): which truth value a reply states.

The prompt asks for ``True`` or ``False``; replies also come as ``Yes, because…``,
``false.``, ``Answer: True``, ``The statement is false``, ``It isn't true that…``,
``Probably not``, ``I don't think so``, ``Untrue`` or ``Absolutely``. Negation (contractions
included), questions and hedges are handled by :mod:`uqroute.parsing.negation`. A reply that only
restates the alternatives (``True or False``), that asserts both values without an answer marker,
or that hedges (``I'm not sure it's true``, ``Not necessarily``, ``It's unclear whether it's true``,
``None of it is true``, ``Far from true``) gives ``None``: a hedge is no answer, never the
opposite one. tests/test_parsing_phrasings.py holds the table of phrasings.
"""

from __future__ import annotations

import re

from ._common import strip_markdown
from .negation import NEGATORS, normalize_negations, polarities
from .think import clean_reply

__all__ = ["parse_bool", "BOOL_WORDS"]

#: Words read as a truth value (lower case).
BOOL_WORDS: dict[str, bool] = {
    "true": True,
    "yes": True,
    "correct": True,
    "right": True,
    "accurate": True,
    "false": False,
    "no": False,
    "incorrect": False,
    "wrong": False,
    "untrue": False,
    "inaccurate": False,
}
_WORDS = "|".join(sorted(BOOL_WORDS, key=len, reverse=True))
_ALTERNATIVES = re.compile(
    r"\b(?:true\s*(?:or|/)\s*false|false\s*(?:or|/)\s*true|yes\s*(?:or|/)\s*no|no\s*(?:or|/)\s*yes|"
    r"correct\s*(?:or|/)\s*incorrect)\b\s*\??"
)
_MARKER = re.compile(
    rf"\b(?:final\s+)?answer\b\s*(?:is|would\s+be|should\s+be|will\s+be|:|=)?\s*:?\s*(?P<neg>(?:not\s+)*)"
    rf"[\"'(\[]?(?P<w>{_WORDS})\b(?!-)"
)
_WRAPPERS = re.compile(r"\\(?:boxed|text|textbf|mathrm)\s*\{([^{}]*)\}")
# polar words other than the answer particles (yes/no are particles in uqroute.parsing.negation)
_LEXICON = {w: v for w, v in BOOL_WORDS.items() if w not in ("yes", "no")}
_STATEMENT_WORDS = {
    w: _LEXICON[w] for w in ("true", "false", "correct", "incorrect", "accurate", "inaccurate", "untrue")
}
_TF_WORDS = {w: _LEXICON[w] for w in ("true", "false", "untrue")}
# words that may precede the stated value at the start of a reply ("Probably not", "I think yes")
_LEAD = (
    frozenset(
        "probably likely most very maybe perhaps definitely certainly absolutely surely well hmm ok okay so "
        "i think believe guess would say do does the is my final clearly obviously".split()
    )
    | NEGATORS
)
# "s"/"re": "it's", "they're" after normalisation split at the apostrophe
_COPULAS = frozenset("is are was were be been being seems seem appears appear sounds s re".split())
_ADVERBS = frozenset(
    "not entirely completely definitely also actually indeed very quite totally absolutely partially partly "
    "simply certainly clearly probably likely".split()
)


def _copula_before(words: tuple[str, ...], i: int) -> bool:
    j = i - 1
    while j >= 0 and words[j] in _ADVERBS:
        j -= 1
    return j >= 0 and words[j] in _COPULAS


def _agreeing(values) -> bool | None:
    vals = set(values)
    return vals.pop() if len(vals) == 1 else None


def parse_bool(text: str | None) -> bool | None:
    """The truth value stated by a reply, or ``None``.

    Rules (after removing ``<think>`` blocks, markdown and restated alternatives
    such as ``True or False?``, and writing negative contractions out):

    1. the last explicit marker ``Answer: <word>`` / ``the answer is (not) <word>``;
    2. the value the reply opens with, after hedges (``Yes, because…``, ``false.``, ``No``,
       ``Not true``, ``Probably not``, ``I don't think so``, ``It does not.``), unless its first
       clause states both values (``true and false``);
    3. a copula statement, ``… is (not) true/false/correct/incorrect/accurate/inaccurate/untrue``
       (``isn't true``, ``is not incorrect``, ``This statement is not accurate``), when all such
       statements agree;
    4. every ``true``/``false``/``untrue`` in the reply, negation-aware (``not true`` counts as false),
       when they agree.

    Words: true/yes/correct/right/accurate (and a clause that is only ``Absolutely``, ``Of course``,
    ``Certainly``…) → ``True``; false/no/incorrect/wrong/untrue/inaccurate → ``False``.
    """
    t = strip_markdown(clean_reply(text))
    t = _WRAPPERS.sub(r"\1", t)
    if not t:
        return None
    t = _ALTERNATIVES.sub(" ", normalize_negations(t))
    markers = list(_MARKER.finditer(t))
    if markers:
        m = markers[-1]
        value = BOOL_WORDS[m.group("w")]
        return value ^ (len(m.group("neg").split()) % 2 == 1)

    pols = polarities(t, _LEXICON, normalized=True)
    if pols:
        first = pols[0]
        if first.word == "(ellipsis)" or all(w in _LEAD for w in first.words[: first.index]):
            same_clause = [p.value for p in pols if p.clause == first.clause]
            return _agreeing(same_clause)
    statements = [p.value for p in polarities(t, _STATEMENT_WORDS, normalized=True) if _copula_before(p.words, p.index)]
    if statements:
        return _agreeing(statements)
    tf = [p.value for p in polarities(t, _TF_WORDS, normalized=True) if p.word in _TF_WORDS]
    return _agreeing(tf) if tf else None
