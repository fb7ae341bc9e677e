"""True/false answers (BoolQ): which truth value a reply states.

The prompt asks for ``True`` or ``False``; replies also come as ``Yes, because…``,
``false.``, ``Answer: True``, ``The statement is false`` or ``It is not true that…``.
A reply that only restates the alternatives (``True or False``) or that asserts
both values without an answer marker gives ``None``.
"""

from __future__ import annotations

import re

from ._common import strip_markdown
from .think import clean_reply

__all__ = ["parse_bool", "BOOL_WORDS"]

#: Words read as a truth value (lower case).
BOOL_WORDS: dict[str, bool] = {
    "true": True, "yes": True, "correct": True, "right": True,
    "false": False, "no": False, "incorrect": False, "wrong": False,
}
_WORDS = "|".join(sorted(BOOL_WORDS, key=len, reverse=True))
_ALTERNATIVES = re.compile(
    r"\b(?:true\s*(?:or|/)\s*false|false\s*(?:or|/)\s*true|yes\s*(?:or|/)\s*no|no\s*(?:or|/)\s*yes|"
    r"correct\s*(?:or|/)\s*incorrect)\b\s*\??",
    re.IGNORECASE,
)
_MARKER = re.compile(
    rf"\b(?:final\s+)?answer\b\s*(?:is|would\s+be|should\s+be|:|=)?\s*:?\s*(?P<neg>not\s+)?[\"'(\[]?(?P<w>{_WORDS})\b",
    re.IGNORECASE,
)
_LEADING = re.compile(rf"^[\s\"'(\[]*(?P<w>{_WORDS})\b(?![-'])", re.IGNORECASE)
_CONJ = re.compile(rf"\s*(?:and|or|/|,|but)\s*(?P<w>{_WORDS})\b", re.IGNORECASE)
_COPULA = re.compile(
    r"\b(?:is|are|was|were|be|seems|appears)\s+(?P<neg>not\s+)?(?:entirely\s+|completely\s+|definitely\s+)?"
    r"(?P<w>true|false|correct|incorrect)\b",
    re.IGNORECASE,
)
_TF = re.compile(r"\b(?P<neg>not\s+)?(?P<w>true|false)\b", re.IGNORECASE)
_WRAPPERS = re.compile(r"\\(?:boxed|text|textbf|mathrm)\s*\{([^{}]*)\}")


def _val(m: re.Match) -> bool:
    v = BOOL_WORDS[m.group("w").lower()]
    return (not v) if m.groupdict().get("neg") else v


def parse_bool(text: str | None) -> bool | None:
    """The truth value stated by a reply, or ``None``.

    Rules (after removing ``<think>`` blocks, markdown and restated alternatives
    such as ``True or False?``):

    1. the last explicit marker ``Answer: <word>`` / ``the answer is <word>``;
    2. the first word of the reply (``Yes, because…``, ``false.``, ``No``), unless it is
       joined to the opposite word (``true and false``);
    3. a copula statement, ``… is (not) true/false/correct/incorrect``, when all such
       statements agree;
    4. every ``true``/``false`` in the reply (``not true`` counts as false) when they agree.

    Words: true/yes/correct/right → ``True``; false/no/incorrect/wrong → ``False``.
    """
    t = strip_markdown(clean_reply(text))
    t = _WRAPPERS.sub(r"\1", t)
    if not t:
        return None
    t = _ALTERNATIVES.sub(" ", t)
    markers = list(_MARKER.finditer(t))
    if markers:
        return _val(markers[-1])
    m = _LEADING.match(t)
    if m:
        other = _CONJ.match(t, m.end())
        if other and BOOL_WORDS[other.group("w").lower()] != _val(m):
            return None  # "true and false"
        return _val(m)
    for pattern in (_COPULA, _TF):
        values = {_val(m) for m in pattern.finditer(t)}
        if len(values) == 1:
            return values.pop()
        if len(values) > 1:
            return None
    return None
