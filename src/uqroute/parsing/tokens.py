"""Token-level parsing of a generation: where its final answer starts, and which token states the option.

Inference stores the generated tokens of the greedy reply one by one (``generations.tokens``,
each token decoded on its own, special tokens such as ``</think>`` included) with their
log-probabilities. For a reasoning model those tokens hold a ``<think> … </think>`` trace
before the final answer; the UQ methods that read token probabilities must score the answer,
not the trace. :func:`answer_start` gives the index of the answer's first token (the
``generations.answer_start`` column) and :func:`find_option_token` the token that states the
chosen option of an MCQ/TF answer (its probability is ``generations.option_prob``), searched
in the final answer only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from .options import _NEGATED, _STRONG, _letter_at, normalize_choices

__all__ = ["answer_start", "find_option_token"]

_OPEN = re.compile(r"<think>", re.IGNORECASE)
_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_STRIP = "()[].:,*\"'"
_BLANK = str.maketrans({"*": " ", "`": " ", "$": " "})


def _texts(tokens: Sequence[str | None] | None) -> list[str]:
    return ["" if t is None else str(t) for t in (tokens or [])]


def answer_start(tokens: Sequence[str | None] | None, *, think_open: bool = False) -> int:
    """Index into ``tokens`` of the first token of the final answer.

    - No reasoning trace (no ``<think>``/``</think>`` in the tokens, and ``think_open`` False):
      ``0``, the whole generation is the answer.
    - A closed trace: the first token after the last ``</think>``, skipping the whitespace-only
      tokens right after it (the template's ``\\n\\n``), so the answer of a thinking reply starts
      where a non-thinking reply's would. The tag may be one token (Qwen3, DeepSeek-R1) or
      several (``</``, ``think``, ``>``): tokens are matched on their joined text; a token that
      straddles the tag's end starts the answer only if text other than whitespace follows the
      tag within it.
    - An unfinished trace — a ``<think>`` never closed, a ``<think>`` opened again after the last
      ``</think>``, or ``think_open`` (the prompt opened the block, :func:`prompt_opens_think`)
      without any ``</think>`` — has no answer: ``len(tokens)``.
    - A closed trace with nothing but whitespace after it: ``len(tokens)``.

    ``None`` entries count as empty tokens.
    """
    texts = _texts(tokens)
    n = len(texts)
    joined = "".join(texts)
    closes = list(_CLOSE.finditer(joined))
    if not closes:
        return n if (think_open or _OPEN.search(joined)) else 0
    end = closes[-1].end()
    if _OPEN.search(joined, end):
        return n  # a new trace opened after the last one closed, never finished
    pos = 0
    for i, t in enumerate(texts):
        nxt = pos + len(t)
        if nxt > end and (pos >= end or joined[end:nxt].strip()):
            # the first token past the tag (or holding answer text after the tag's end)
            j = i
            if pos >= end:
                while j < n and not texts[j].strip():
                    j += 1
            return j
        pos = nxt
    return n


def _last_marker_end(text: str, target: str, opts) -> int:
    """End of the last explicit answer marker in ``text`` followed by the label ``target`` (0: none)."""
    for m in reversed(list(_STRONG.finditer(text))):
        if _letter_at(text, m.end(), opts, allow_lower=False) == target.upper():
            return m.end()
    return 0


def find_option_token(
    tokens: Sequence[str | None] | None,
    answer: str | None,
    task_type: str,
    *,
    start: int = 0,
    choices: Iterable | None = None,
) -> int | None:
    """Index of the generated token that states the chosen option, or ``None``.

    Searched in ``tokens[start:]`` only: pass ``start = answer_start(tokens, …)`` so that a
    letter or ``True`` inside a reasoning trace is never taken.

    - ``MCQ``: where the reply states its answer after an explicit answer marker (``Answer: B``,
      ``the answer is (B)``: the :func:`uqroute.parsing.parse_option` rule that takes the *last*
      such marker), the search starts at the last marker that names the parsed label, so a reply
      that reasons first (AQuA's math prompt) gives the token of its final letter, not a mention of
      that option inside the reasoning. Then: the first token that is exactly the parsed label once whitespace and the
      punctuation ``()[].:,*"'`` around it are removed — case-sensitive, so the article "a" is
      not option A — and that stands as a label in the answer text: not the article or pronoun
      ``A``/``I`` before an ordinary word (``A person would…``, unless the option's text follows,
      which needs ``choices``), and not negated (``not A``). The checks are those of
      :func:`uqroute.parsing.parse_option`.
    - ``TF``: the first token that, cleaned the same way, is the parsed word (``True``/``False``,
      case-insensitive) or a prefix of at least two letters of it (a word split over several
      tokens states the option at its first token, which carries the decision).

    Paper §3.1, average token probability for MCQ: "the probability of the chosen option token".
    """
    if answer is None or task_type not in ("MCQ", "TF"):
        return None
    texts = _texts(tokens)
    if not 0 <= start <= len(texts):
        raise ValueError(f"find_option_token: start {start} is outside the {len(texts)} tokens")
    target = str(answer).strip()
    if not target:
        return None
    opts = normalize_choices(choices) if choices else []
    # the answer text with markdown emphasis and math dollars blanked (same length, so positions hold)
    joined = "".join(texts[start:]).translate(_BLANK)
    skip = _last_marker_end(joined, target, opts) if task_type == "MCQ" else 0
    pos = 0
    for i in range(start, len(texts)):
        tok = texts[i]
        here, pos = pos, pos + len(tok)
        if pos <= skip:
            continue
        t = tok.strip().strip(_STRIP)
        if not t:
            continue
        if task_type == "TF":
            low, tgt = t.lower(), target.lower()
            if low == tgt or (len(low) >= 2 and tgt.startswith(low)):
                return i
            continue
        if t != target:
            continue
        at = here + tok.index(target)  # the label's position in the answer text
        if _NEGATED.search(joined[max(0, at - 40) : at]):
            continue
        if len(target) == 1 and target.isalpha() and _letter_at(joined, at, opts, allow_lower=False) != target.upper():
            continue
        return i
    return None
