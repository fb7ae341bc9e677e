"""Chat-completion replies → :class:`~.base.Generation` objects, checked completely before anything is cached.

A reply is accepted only with exactly the ``n`` choices asked for, in order, string content, and
(where log-probs were asked for) a finite log-probability for every token; otherwise
:class:`~.api_config.InvalidReply` says what is wrong, and the backend retries it like a server error.
"""

from __future__ import annotations

import json
import logging

from .api_config import InvalidReply
from .base import FINISH_REASONS, Generation
from .cache import check_generations

log = logging.getLogger(__name__)

__all__ = ["generations_from_response", "check_structured", "structured_content", "StructuredReplyError"]


class StructuredReplyError(InvalidReply):
    """A valid chat completion whose content is not what ``response_format`` asked for (a server that
    ignores the field answers this way)."""


def _choice_text(message: dict) -> str:
    """The reply text; a reasoning server's separate ``reasoning_content`` is put back as a ``<think>`` block.

    vLLM (with a reasoning parser) and DeepSeek's API return the reasoning of R1-style
    models beside the answer; the generations artifact keeps raw text including
    ``<think>`` blocks, so the two are joined the way the model emitted them.
    """
    content = message.get("content")
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if content is not None and not isinstance(content, str):
        raise InvalidReply(f"message.content is a {type(content).__name__}, not a string")
    if reasoning is not None and not isinstance(reasoning, str):
        raise InvalidReply(f"the message's reasoning is a {type(reasoning).__name__}, not a string")
    content = content or ""
    if reasoning:
        return f"<think>{reasoning}</think>{content}"
    return content


def _is_logprob(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x  # not NaN; -inf is allowed


def _token_entries(content, top_logprobs: int, where: str) -> tuple[list[str], list[float], list[dict] | None]:
    if not isinstance(content, list):
        raise InvalidReply(f"{where}: logprobs.content is a {type(content).__name__}, not a list")
    tokens, lps, tops = [], [], []
    for j, e in enumerate(content):
        if not isinstance(e, dict) or not isinstance(e.get("token"), str):
            raise InvalidReply(f"{where}, token {j}: no token string")
        if not _is_logprob(e.get("logprob")):
            raise InvalidReply(f"{where}, token {j} ({e['token']!r}): logprob is {e.get('logprob')!r}, not a number")
        tokens.append(e["token"])
        lps.append(float(e["logprob"]))
        if top_logprobs > 0:
            top = e.get("top_logprobs")
            if not isinstance(top, list) or not top:
                raise InvalidReply(f"{where}, token {j}: top_logprobs={top_logprobs} asked for, got {top!r}")
            for t in top:
                if not isinstance(t, dict) or not isinstance(t.get("token"), str) or not _is_logprob(t.get("logprob")):
                    raise InvalidReply(f"{where}, token {j}: a top_logprobs entry is {t!r}")
            tops.append({t["token"]: float(t["logprob"]) for t in top})
    return tokens, lps, (tops if top_logprobs > 0 else None)


def generations_from_response(response, *, n: int | None = None, top_logprobs: int = 0) -> list[Generation]:
    """Check a chat-completion reply (a parsed JSON value) completely and turn it into one :class:`Generation` per choice.

    Raises :class:`InvalidReply` saying what is wrong: not a JSON object, no ``choices`` (or
    not ``n`` of them when ``n`` is given; choice indices other than ``0..n-1``), a message
    whose content is not a string, a log-prob entry without a token string or with a log-prob
    that is not a number (``null``, NaN), missing top log-probs where ``top_logprobs > 0``, a
    bad ``usage.prompt_tokens``. A choice without log-probs (``logprobs`` null: the server
    gives none) is valid: its ``tokens`` are empty and ``token_logprobs`` is ``None``.
    ``finish_reason`` is ``length`` when the token limit was hit, ``content_filter`` when the
    provider's content filter stopped the reply, and ``stop`` otherwise (any other value is logged).
    """
    if not isinstance(response, dict):
        raise InvalidReply(f"the reply is a JSON {type(response).__name__}, not an object")
    choices = response.get("choices")
    if not isinstance(choices, list):
        raise InvalidReply("the reply has no `choices` list")
    if n is not None and len(choices) != n:
        raise InvalidReply(f"{len(choices)} choices, but n={n} were asked for")
    if not choices:
        raise InvalidReply("the reply has no choices")
    for pos, c in enumerate(choices):
        if not isinstance(c, dict):
            raise InvalidReply(f"choice {pos} is a {type(c).__name__}, not an object")
    indices = [c.get("index", pos) for pos, c in enumerate(choices)]
    if sorted(indices) != list(range(len(choices))):
        raise InvalidReply(f"choice indices {indices} are not 0..{len(choices) - 1}")
    usage = response.get("usage") or {}
    n_prompt = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    n_prompt = 0 if n_prompt is None else n_prompt
    if not isinstance(n_prompt, int) or isinstance(n_prompt, bool) or n_prompt < 0:
        raise InvalidReply(f"usage.prompt_tokens is {n_prompt!r}")
    out = []
    for index, choice in sorted(zip(indices, choices), key=lambda t: t[0]):
        where = f"choice {index}"
        message = choice.get("message")
        if not isinstance(message, dict):
            raise InvalidReply(f"{where} has no message object")
        logprobs = choice.get("logprobs")
        if logprobs is not None and not isinstance(logprobs, dict):
            raise InvalidReply(f"{where}: logprobs is a {type(logprobs).__name__}, not an object")
        content = (logprobs or {}).get("content")
        tokens: list[str] = []
        token_logprobs = None
        top = None
        if content is not None:
            tokens, token_logprobs, top = _token_entries(content, top_logprobs, where)
        reason = choice.get("finish_reason")
        if reason not in FINISH_REASONS and reason is not None:
            log.warning("finish_reason %r recorded as 'stop'", reason)
        out.append(
            Generation(
                text=_choice_text(message),
                tokens=tokens,
                token_logprobs=token_logprobs,
                token_entropies=None,
                top_logprobs=top,
                finish_reason=reason if reason in FINISH_REASONS else "stop",
                n_prompt_tokens=n_prompt,
            )
        )
    try:
        return check_generations(out, len(out))
    except ValueError as err:
        raise InvalidReply(str(err)) from None


def structured_content(text: str) -> str:
    """The part of a reply that structured output constrains: the text after a ``<think>`` block."""
    return text.rsplit("</think>", 1)[-1].strip()


def check_structured(gens: list[Generation], response_format: dict | None) -> list[Generation]:
    """``gens`` if each reply is what ``response_format`` asked for, else :class:`StructuredReplyError`.

    ``{"type": "json_schema", "json_schema": {"schema": S}}``: the reply (after any reasoning) is one
    complete JSON value that the JSON schema ``S`` accepts (``jsonschema``); ``{"type":
    "json_object"}``: a JSON object. A reply cut off by the token limit is invalid (its JSON is
    incomplete). ``None`` or ``{"type": "text"}`` checks nothing.
    """
    kind = (response_format or {}).get("type", "text")
    if kind == "text":
        return gens
    if kind not in ("json_schema", "json_object"):
        raise ValueError(f"response_format type {kind!r} is not one of text, json_object, json_schema")
    schema = (response_format.get("json_schema") or {}).get("schema") if kind == "json_schema" else {"type": "object"}
    if not isinstance(schema, dict):
        raise ValueError("response_format json_schema has no `schema` object")
    import jsonschema

    for i, g in enumerate(gens):
        where = f"choice {i}"
        if g.finish_reason == "length":
            raise StructuredReplyError(f"{where}: the structured reply was cut off by the token limit: {g.text[:80]!r}")
        content = structured_content(g.text)
        try:
            value = json.loads(content)
        except ValueError:
            raise StructuredReplyError(
                f"{where}: the reply is not the JSON that response_format asked for: {content[:80]!r}"
            ) from None
        try:
            jsonschema.validate(value, schema)
        except jsonschema.ValidationError as err:
            raise StructuredReplyError(
                f"{where}: the reply {content[:80]!r} does not match the response_format schema: {err.message}"
            ) from None
    return gens
