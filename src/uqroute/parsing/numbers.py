"""Final numeric answers of math word problems (GSM8K, MultiArith, SVAMP).

Follows the usual answer-extraction practice for GSM8K-style evaluation
(Cobbe et al., 2021; Wei et al., 2022, chain-of-thought): an explicit answer marker
wins, otherwise the last number in the reply is the answer.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

from ._common import last_boxed, strip_markdown
from .think import clean_reply

__all__ = ["parse_number", "format_number", "find_numbers", "number_from_segment"]

# A number: optional sign, digits with optional thousands separators, optional
# decimals, optional "/denominator" (a fraction), or a bare ".5".
_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>-)?"
    r"(?P<num>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)"
    r"(?:\s*/\s*(?P<den>\d+(?:\.\d+)?)(?![\d.]))?"
)
_FRAC = re.compile(r"(-\s*)?\\[dt]?frac\s*\{\s*(-?\d+(?:\.\d+)?)\s*\}\s*\{\s*(\d+(?:\.\d+)?)\s*\}")
_FRAC_SHORT = re.compile(r"(-\s*)?\\[dt]?frac\s*(\d)\s*(\d)")

# Explicit answer markers, strongest last-occurrence wins.
_MARKER = re.compile(
    r"\b(?:final\s+answer|answer|result)\b\s*(?:is|would\s+be|will\s+be|should\s+be|=|:)\s*:?",
    re.IGNORECASE,
)
_HASHES = re.compile(r"####")
# "the answer is not 12", "the answer isn't 12": a negated marker does not state the answer
_NEGATED_MARKER = re.compile(r"\s*(?:n['’]?t\b|not\b|never\b)", re.IGNORECASE)

_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "hundred": 100,
}
_DIGIT = re.compile(r"\d")
_WORD_RE = re.compile(r"\b(" + "|".join(_WORDS) + r")\b", re.IGNORECASE)


def _frac_repl(m: re.Match) -> str:
    sign = "-" if m.group(1) else ""
    num = m.group(2)
    if sign and num.startswith("-"):
        sign, num = "", num[1:]
    return f" {sign}{num}/{m.group(3)} "


def _prepare(text: str) -> str:
    """Normalise LaTeX/markdown/currency so that numbers can be read with :data:`_NUMBER`."""
    t = strip_markdown(text)
    t = t.replace("\u2212", "-").replace("\u2013", "-")  # unicode minus / en dash
    t = t.replace("-\\$", "-").replace("-$", "-")  # "-$5"
    t = t.replace("\\$", " ").replace("$", " ")
    t = t.replace("\\%", "%").replace("\\!", "")
    t = t.replace("{,}", ",")
    t = re.sub(r"(?<=\d)\\,(?=\d{3})", ",", t)  # LaTeX thin-space thousands: 1\,000
    t = re.sub(r"(?<=\d)[\u202f\u00a0](?=\d{3}\b)", ",", t)  # narrow no-break space thousands
    t = _FRAC.sub(_frac_repl, t)
    t = _FRAC_SHORT.sub(_frac_repl, t)
    t = re.sub(r"[€£¥₹]", " ", t)
    return t


def _value(m: re.Match) -> float | None:
    try:
        v = float(m.group("num").replace(",", ""))
        if m.group("den") is not None:
            den = float(m.group("den"))
            if den == 0:
                return None
            v = v / den
    except ValueError:  # pragma: no cover - the regex only matches valid floats
        return None
    if m.group("sign"):
        v = -v
    return v if math.isfinite(v) else None


def find_numbers(text: str) -> list[float]:
    """Every number in ``text`` (after LaTeX/markdown/currency normalisation), in order."""
    out = []
    for m in _NUMBER.finditer(_prepare(text)):
        v = _value(m)
        if v is not None:
            out.append(v)
    return out


def _first_number(segment: str) -> float | None:
    for m in _NUMBER.finditer(segment):
        v = _value(m)
        if v is not None:
            return v
    if not _DIGIT.search(segment):
        w = _WORD_RE.search(segment)
        if w:
            return float(_WORDS[w.group(1).lower()])
    return None


def number_from_segment(segment: str) -> float | None:
    """The answer number in a short, already-prepared segment after an answer marker.

    If the segment is an equation (``5 + 3 = 8``) the number after the last ``=`` is
    taken, else the first number (``8 apples (5 + 3)`` → 8).
    """
    if "=" in segment:
        after = segment.rsplit("=", 1)[1]
        v = _first_number(after)
        if v is not None:
            return v
    return _first_number(segment)


#: How far after an answer marker the answer is looked for (characters).
_WINDOW = 300
#: Only the last few markers are tried (bounds the work on degenerate, repetitive replies).
_MAX_MARKERS = 20


def _after_marker(t: str, end: int) -> float | None:
    rest = t[end : end + _WINDOW]
    lines = rest.split("\n")
    # the marker's own line, else the next non-empty line ("Answer:\n\n42")
    first = lines[0]
    if first.strip():
        return number_from_segment(first)
    for line in lines[1:]:
        if line.strip():
            return number_from_segment(line)
    return None


def parse_number(text: str | None) -> float | None:
    """The final numeric answer in a model reply, or ``None``.

    Order of precedence (``<think>`` blocks and invented continuations such as a
    new ``Question: …`` are removed first, see :func:`~uqroute.parsing.think.clean_reply`):

    1. the last ``\\boxed{…}`` that contains a number;
    2. the last GSM8K-style ``#### <n>`` marker;
    3. the last explicit marker (``answer is``, ``Answer:``, ``final answer:``,
       ``result is``, ``answer =``): the number on the marker's line (or the next non-empty
       line), after the last ``=`` if the segment is an equation; a negated marker (``the
       answer is not 12``, ``the answer isn't 12``) is skipped;
    4. otherwise the last number in the reply;
    5. a number word (``five``, ``twenty``) when the reply holds no digits.

    Thousands separators (``1,234``), currency (``$``, ``€``), percent signs (``50%``
    gives 50), units, LaTeX fractions (``\\frac{3}{4}``) and plain fractions (``3/4``)
    are handled; a trailing sentence period is ignored.
    """
    t = clean_reply(text)
    if not t:
        return None
    boxed = last_boxed(t)
    if boxed is not None:
        v = number_from_segment(_prepare(boxed))
        if v is not None:
            return v
    p = _prepare(t)
    hashes = list(_HASHES.finditer(p))
    if hashes:
        v = _after_marker(p, hashes[-1].end())
        if v is not None:
            return v
    for m in reversed(list(_MARKER.finditer(p))[-_MAX_MARKERS:]):
        if _NEGATED_MARKER.match(p, m.end()):
            continue
        v = _after_marker(p, m.end())
        if v is not None:
            return v
    nums = [v for v in (_value(m) for m in _NUMBER.finditer(p)) if v is not None]
    if nums:
        return nums[-1]
    return _first_number(p)


def format_number(x: float) -> str:
    """Minimal canonical string for a number: ``5.0`` → ``"5"``, ``0.50`` → ``"0.5"``, ``-0.0`` → ``"0"``.

    Integral values print as integers; others with up to 12 significant digits, in
    positional notation (never ``1e-07``), so :func:`parse_number` reads the string back.
    """
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"cannot format non-finite number {x!r}")
    if x.is_integer():
        return str(int(x))
    s = format(Decimal(format(x, ".12g")), "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s
