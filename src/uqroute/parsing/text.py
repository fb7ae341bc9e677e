"""SQuAD-style normalisation, exact match and token F1 for free-form answers.

The normalisation (lower-case, drop punctuation, drop the articles *a*, *an*,
*the*, collapse whitespace) and the token-level F1 are those of the official
SQuAD v1.1 evaluation script (Rajpurkar et al., 2016, "SQuAD: 100,000+ Questions
for Machine Comprehension of Text", EMNLP), also used by CoQA (Reddy et al., 2019).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable

__all__ = ["normalize_text", "token_f1", "best_f1", "exact_match"]

_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_text(s: str | None) -> str:
    """Lower-case, remove punctuation, remove articles and collapse whitespace (SQuAD v1.1)."""
    if s is None:
        return ""
    s = str(s).lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def token_f1(pred: str | None, ref: str | None) -> float:
    """Token-level F1 between the normalised prediction and reference (SQuAD v1.1).

    As in the SQuAD script, when either side has no tokens the score is 1.0 if both
    are empty and 0.0 otherwise.
    """
    p = normalize_text(pred).split()
    r = normalize_text(ref).split()
    if not p or not r:
        return float(p == r)
    common = Counter(p) & Counter(r)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(p)
    recall = same / len(r)
    return 2 * precision * recall / (precision + recall)


def _as_list(refs: str | Iterable[str] | None) -> list[str]:
    if refs is None:
        return []
    if isinstance(refs, str):
        return [refs]
    return [r for r in refs if r is not None]


def best_f1(pred: str | None, refs: str | Iterable[str] | None) -> float:
    """Maximum :func:`token_f1` over the references (SQuAD takes the max over gold answers); 0.0 without references."""
    refs = _as_list(refs)
    if not refs:
        return 0.0
    return max(token_f1(pred, r) for r in refs)


def exact_match(pred: str | None, refs: str | Iterable[str] | None) -> bool:
    """True if the normalised prediction equals any normalised reference (SQuAD exact match)."""
    if pred is None:
        return False
    p = normalize_text(pred)
    return any(p == normalize_text(r) for r in _as_list(refs))
