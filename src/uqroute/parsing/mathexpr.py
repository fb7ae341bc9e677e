"""Competition-math answers (MATH-500): extracting the final LaTeX answer and checking equivalence.

Extraction follows the MATH benchmark convention (Hendrycks et al., 2021): the
answer is the content of the last ``\\boxed{…}``; the Minerva-style sentence
``The final answer is $…$`` (Lewkowycz et al., 2022) and an ``Answer: …`` line are
accepted as fallbacks. Equivalence is decided by Hugging Face's ``math-verify``
(https://github.com/huggingface/Math-Verify), which parses both sides to SymPy and
compares them (fractions vs decimals, intervals, sets, equations ``x=2`` vs ``2``,
``\\text{(C)}`` vs ``C``, …).
"""

from __future__ import annotations

import logging
import re
import threading

from ._common import last_boxed
from .think import clean_reply

__all__ = ["extract_math_answer", "math_equivalent", "normalize_latex", "MAX_VERIFY_CHARS"]

log = logging.getLogger(__name__)


class _NoTimeoutWarning(logging.Filter):
    """Drops math-verify's "Timeout is disabled" warning: outside the main thread we
    disable its SIGALRM timeout on purpose and bound the work by :data:`MAX_VERIFY_CHARS`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_NoTimeoutWarning())

#: Longer answers are only compared as normalised strings: SymPy can take very
#: long on large expressions, and outside the main thread no timeout can stop it.
MAX_VERIFY_CHARS = 400

_FINAL = re.compile(r"final\s+answer\s*(?:is|:)\s*:?\s*", re.IGNORECASE)
_ANSWER = re.compile(r"\banswer\s*(?:is|:)\s*:?\s*", re.IGNORECASE)
_HOPE = re.compile(r"\.?\s*I hope it is correct\.?\s*$", re.IGNORECASE)
_MATH_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def _clean_answer(s: str) -> str | None:
    s = _HOPE.sub("", s.strip())
    s = s.strip()
    changed = True
    while changed and s:
        changed = False
        for left, right in _MATH_DELIMS:
            if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
                s = s[len(left) : len(s) - len(right)].strip()
                changed = True
                break
        if s.endswith(".") and not re.search(r"\d\.$", s[-2:] if len(s) > 1 else s):
            s = s[:-1].rstrip()
            changed = True
        elif re.search(r"(?<=\d)\.$", s):  # "42." sentence period after a number
            s = s[:-1]
            changed = True
    return s or None


def _math_span(rest: str) -> str:
    """The answer after a marker: the first ``$…$``/``\\(…\\)`` span if the text starts with one, else the line."""
    rest = rest.lstrip()
    for left, right in _MATH_DELIMS:
        if rest.startswith(left):
            end = rest.find(right, len(left))
            if end != -1:
                return rest[len(left) : end]
    line = rest.split("\n", 1)[0]
    return line


def extract_math_answer(text: str | None) -> str | None:
    """The final LaTeX answer of a reply, or ``None``.

    Precedence: the last ``\\boxed{…}``/``\\fbox{…}`` (nested braces kept); the last
    ``final answer is …`` (the ``$…$`` span after it, or the rest of the line, without
    Minerva's "I hope it is correct"); the last ``Answer: …`` line. Surrounding math
    delimiters and a trailing period are removed.
    """
    t = clean_reply(text)
    if not t:
        return None
    boxed = last_boxed(t)
    if boxed is not None and _clean_answer(boxed):
        return _clean_answer(boxed)
    for pattern in (_FINAL, _ANSWER):
        hits = list(pattern.finditer(t))
        if hits:
            got = _clean_answer(_math_span(t[hits[-1].end() :]))
            if got:
                return got
    return None


def normalize_latex(s: str) -> str:
    """A light normalisation used for the fast string-equality path of :func:`math_equivalent`.

    Removes whitespace, ``\\left``/``\\right``, ``\\!``/``\\,``, ``$``, and maps
    ``\\dfrac``/``\\tfrac`` to ``\\frac``.
    """
    s = s.strip()
    for a, b in (
        ("\\left", ""),
        ("\\right", ""),
        ("\\!", ""),
        ("\\,", ""),
        ("\\;", ""),
        ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
        ("$", ""),
    ):
        s = s.replace(a, b)
    return re.sub(r"\s+", "", s)


def _wrap(s: str) -> str:
    s = s.strip()
    if s.startswith("$") or s.startswith("\\(") or s.startswith("\\["):
        return s
    return f"${s}$"


def math_equivalent(pred: str | None, gold: str | None, *, timeout_s: int = 5) -> bool:
    """Whether two LaTeX answers are mathematically equivalent, using ``math-verify``.

    Never raises: unparsable input, a SymPy error or a timeout give ``False``.
    Identical strings after :func:`normalize_latex` are equal without SymPy.
    math-verify's own timeout uses ``SIGALRM``, which only works in the main
    thread; elsewhere the timeout is disabled and answers longer than
    :data:`MAX_VERIFY_CHARS` are compared as strings only, so a call cannot hang on
    a pathological expression.
    """
    if pred is None or gold is None:
        return False
    pred, gold = str(pred).strip(), str(gold).strip()
    if not pred or not gold:
        return False
    if normalize_latex(pred) == normalize_latex(gold):
        return True
    if len(pred) > MAX_VERIFY_CHARS or len(gold) > MAX_VERIFY_CHARS:
        return False
    try:
        from math_verify import parse, verify
    except ImportError as e:  # pragma: no cover - math-verify is a dependency
        raise ImportError("math_equivalent needs the 'math-verify' package (pip install math-verify)") from e
    t = timeout_s if threading.current_thread() is threading.main_thread() else None
    try:
        g = parse(_wrap(gold), parsing_timeout=t)
        p = parse(_wrap(pred), parsing_timeout=t)
        if not g or not p:
            return False
        return bool(verify(g, p, timeout_seconds=t))
    except Exception as e:  # math-verify/SymPy failures and timeouts: not equivalent
        log.debug("math-verify failed on pred=%r gold=%r: %s", pred, gold, e)
        return False
