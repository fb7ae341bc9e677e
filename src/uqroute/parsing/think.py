"""Removing the reasoning block of reasoning models (``<think> … </think>``).

Reasoning models (Qwen3, DeepSeek-R1 distills, …) emit their chain of thought
between ``<think>`` and ``</think>`` before the answer. Some chat templates put the
opening ``<think>`` into the prompt, so the generated text starts with the
reasoning and only contains the closing tag. Every parser in
:mod:`uqroute.parsing` removes these blocks first, so only the final answer is
parsed.
"""

from __future__ import annotations

import re

__all__ = ["strip_think", "clean_reply"]

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
        text = text[closes[-1].end():]
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
