"""Small helpers shared by the parsers (markdown removal, balanced braces)."""

from __future__ import annotations

import re

_MD_EMPH = re.compile(r"(\*\*|__|`+)")
_MD_ITALIC = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_BULLET = re.compile(r"^\s*(?:[-•]|>)\s+", re.MULTILINE)


def strip_markdown(text: str) -> str:
    """Remove markdown emphasis (``**``, ``__``, ``*word*``, backticks), headings and bullets.

    A single ``*`` is only removed around a word (``*B*``), so products such as
    ``3*4`` survive.

    ``####`` followed by a number (the GSM8K answer marker) is kept: headings are
    only removed when followed by text that does not start with a digit or sign.
    """
    text = _MD_EMPH.sub("", text)
    text = _MD_ITALIC.sub(r"\1", text)
    text = re.sub(r"^\s{0,3}#{1,6}\s+(?![-−$\d])", "", text, flags=re.MULTILINE)
    text = _BULLET.sub("", text)
    return text


def balanced_brace(text: str, open_idx: int) -> tuple[str, int] | None:
    """Content of the ``{…}`` group whose ``{`` is at ``open_idx`` and the index after its ``}``.

    Handles nesting; escaped braces (``\\{``) do not count. ``None`` if unbalanced.
    """
    if open_idx >= len(text) or text[open_idx] != "{":
        return None
    depth = 0
    i = open_idx
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[open_idx + 1 : i], i + 1
        i += 1
    return None


#: Only the last few ``\\boxed`` are tried (an unbalanced one is skipped; bounds the work).
_MAX_BOXED = 10
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{…}`` (or ``\\fbox{…}``) in ``text``, nested braces included.

    ``\\boxed 5`` (no braces) gives the token after it. ``None`` if there is none.
    """
    for m in reversed(list(_BOXED.finditer(text))[-_MAX_BOXED:]):
        j = m.end()
        if j < len(text) and text[j] == "{":
            got = balanced_brace(text, j)
            if got is not None:
                return got[0]
        elif j > m.start() + len(m.group(0).rstrip()):  # "\\boxed 5": whitespace, then a token
            tok = re.match(r"[^\s$]+", text[j:])
            if tok:
                return tok.group(0)
    return None


# A new turn that a small model invents after its answer ("Question: …", "Human: …",
# leaked chat-template tokens). Everything from there on is not part of the reply.
_CONTINUATION = re.compile(
    r"^[ \t]*(?:#+\s*)?(?:question|problem|q|human|user|instruction|passage|context)\s*\d*\s*:"
    r"|<\|(?:im_start|im_end|endoftext|eot_id|end_of_text|user|end|start_header_id)\|>",
    re.IGNORECASE | re.MULTILINE,
)


def cut_continuation(text: str) -> str:
    """Cut a reply where the model starts inventing a new turn after answering.

    Small models often go on with ``Question: …`` / ``Human: …`` blocks (or leaked
    special tokens such as ``<|im_end|>``) after their answer, whose own answers
    would otherwise be parsed. The reply is cut at the first such line that follows
    some content; a reply that starts by restating the question is kept.
    """
    for m in _CONTINUATION.finditer(text):
        if text[: m.start()].strip():
            return text[: m.start()].rstrip()
    return text
