"""Reasoning traces (``<think> … </think>``) and truncated replies: what part of a reply is its answer.

Reasoning models (Qwen3, DeepSeek-R1, Phi-4-mini-reasoning, …) emit their chain of thought
between ``<think>`` and ``</think>`` before the answer. Some chat templates put the
opening ``<think>`` into the prompt (DeepSeek-R1: the generation prompt ends with
``<｜Assistant｜><think>\\n``), so the generated text starts with the reasoning and only
contains the closing tag; :func:`prompt_opens_think` tells from the rendered prompt.
Every parser in :mod:`uqroute.parsing` removes these blocks first, so only the final
answer is parsed (:func:`strip_think`, :func:`final_answer_text`).

A reply cut off by the token budget (``finish_reason == "length"``, :func:`is_truncated`)
is a truncation, not an answer: the parsers return ``None`` for it when given its
``finish_reason``. :func:`think_prefill` closes an empty think block after a rendered
prompt, for the follow-up turns whose first token is read (p(True)) when the template
ignores ``enable_thinking=False``. The token-level counterparts (the index where the
answer starts in the generated tokens) are in :mod:`uqroute.parsing.tokens`.
"""

from __future__ import annotations

import re

__all__ = [
    "strip_think",
    "clean_reply",
    "final_answer_text",
    "is_truncated",
    "prompt_opens_think",
    "think_prefill",
    "TRUNCATED",
    "CONTENT_FILTER",
    "EMPTY_THINK",
]

#: ``finish_reason`` of a reply that hit ``max_new_tokens`` (``generations.finish_reason``).
TRUNCATED = "length"
#: ``finish_reason`` of an API reply that the provider's content filter stopped or withheld.
CONTENT_FILTER = "content_filter"
#: The empty reasoning block Qwen3's template writes for ``enable_thinking=False``.
EMPTY_THINK = "<think>\n\n</think>\n\n"

_BLOCK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_OPEN = re.compile(r"<think>", re.IGNORECASE)


def _strip_once(text: str) -> str:
    # 1. complete blocks; they all end at or before the last closing tag, so only that
    #    prefix is searched (keeps the non-greedy search linear when many <think> never close)
    closes = list(_CLOSE.finditer(text))
    if closes:
        cut = closes[-1].end()
        text = _BLOCK.sub("", text[:cut]) + text[cut:]
    # 2. a closing tag without its opening tag: the opening tag was in the prompt,
    #    everything before the (last) closing tag is reasoning
    closes = list(_CLOSE.finditer(text))
    if closes:
        text = text[closes[-1].end() :]
    # 3. an opening tag that is never closed (generation stopped while reasoning):
    #    everything after it is reasoning
    m = _OPEN.search(text)
    if m:
        text = text[: m.start()]
    return text


def strip_think(text: str | None) -> str:
    """Remove ``<think>…</think>`` reasoning and surrounding whitespace.

    Rules, applied until nothing changes (so the function is idempotent):

    1. every complete ``<think>…</think>`` block is removed;
    2. if a ``</think>`` remains (its ``<think>`` was part of the prompt), everything
       up to the last ``</think>`` is removed;
    3. if a ``<think>`` remains that is never closed (the generation stopped while
       reasoning, e.g. ``finish_reason == "length"``), it and everything after it is
       removed, so a reply that is only unfinished reasoning becomes ``""``.

    Tags are matched case-insensitively. ``None`` gives ``""``.

    >>> strip_think("<think>2+2 is 4</think>\\n\\nAnswer: 4")
    'Answer: 4'
    >>> strip_think("reasoning…</think> B")
    'B'
    >>> strip_think("<think>still thinking")
    ''
    """
    if text is None:
        return ""
    text = str(text)
    while True:
        new = _strip_once(text)
        if new == text:
            return new.strip()
        text = new


def clean_reply(text: str | None) -> str:
    """:func:`strip_think`, then cut an invented continuation (``Question: …`` after the answer).

    This is what every parser in :mod:`uqroute.parsing` reads.
    """
    from ._common import cut_continuation

    return cut_continuation(strip_think(text)).strip()


def is_truncated(finish_reason: str | None) -> bool:
    """Whether a reply was cut off by the token budget (``finish_reason == "length"``)."""
    return finish_reason == TRUNCATED


def final_answer_text(text: str | None, *, think_open: bool = False) -> str:
    """The final answer part of a generated reply: :func:`strip_think` of it.

    ``think_open``: the prompt ended inside an open ``<think>`` block
    (:func:`prompt_opens_think`), so the reply starts with reasoning even though it holds no
    ``<think>`` of its own; without a ``</think>`` it is then all reasoning and gives ``""``.

    >>> final_answer_text("step 1, step 2</think>\\n\\nB", think_open=True)
    'B'
    >>> final_answer_text("step 1, step 2", think_open=True)
    ''
    """
    if text is None:
        return ""
    return strip_think(("<think>" + str(text)) if think_open else str(text))


def prompt_opens_think(prompt: str | None) -> bool:
    """Whether a rendered prompt (chat template applied) ends inside an open ``<think>`` block.

    True for templates that start the reasoning in the prompt (DeepSeek-R1's generation prompt
    ``<｜Assistant｜><think>\\n``); False for a prompt whose last ``<think>`` is closed (Qwen3
    with ``enable_thinking=False`` writes ``<think>\\n\\n</think>\\n\\n``) or that has none.
    """
    if not prompt:
        return False
    opens = [m.start() for m in _OPEN.finditer(prompt)]
    closes = [m.start() for m in _CLOSE.finditer(prompt)]
    return bool(opens) and (not closes or opens[-1] > closes[-1])


def think_prefill(prompt: str) -> str:
    """The text to append to a rendered prompt so that the model's next token follows a closed,
    empty think block (the reply's first token is then the answer, e.g. ``True`` for p(True)).

    - the prompt already ends after a closed block (Qwen3 with ``enable_thinking=False``) → ``""``;
    - the prompt ends inside an open ``<think>`` (DeepSeek-R1) → the rest of :data:`EMPTY_THINK`
      (``"\\n</think>\\n\\n"`` after ``<think>\\n``);
    - otherwise (a template that ignores ``enable_thinking``, e.g. Phi-4-mini-reasoning's) →
      :data:`EMPTY_THINK`.

    Only meaningful for reasoning models (configured with ``reasoning: true``): a non-reasoning
    model never saw these tags.
    """
    prompt = "" if prompt is None else str(prompt)
    if prompt_opens_think(prompt):
        tail = prompt[[m.start() for m in _OPEN.finditer(prompt)][-1] :]
        return EMPTY_THINK[len(tail) :] if EMPTY_THINK.startswith(tail) else "\n</think>\n\n"
    closes = list(_CLOSE.finditer(prompt))
    if closes and not prompt[closes[-1].end() :].strip():
        return ""
    return EMPTY_THINK
