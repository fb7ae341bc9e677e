"""The upstream LLM of a router: any OpenAI-compatible server (OpenAI, vLLM, …).

The key comes only from the environment variable the router names (``--api-key-env``, checked
with :func:`uqroute.inference.api.check_api_key_env`; a server on localhost may go without one,
as in the pipeline's API backend), is sent only to ``base_url`` (HTTP redirects are not
followed) and never appears in a log line, an error or a response. Retries with exponential
backoff are the openai client's own (``max_retries``: connection errors, timeouts, 408/409/429,
5xx); what still fails is an :class:`UpstreamError` carrying the HTTP status to answer with.

Nothing the upstream says reaches the client unfiltered: an :class:`UpstreamError`'s message (what
the client gets) is generic and names neither the upstream's URL nor its words; its ``detail`` (for
the log) is the upstream's message with the key and anything token-shaped replaced by
``[redacted]`` (:func:`redact`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

log = logging.getLogger("uqroute.router")

__all__ = ["Upstream", "UpstreamError", "PASS_THROUGH", "redact"]

#: Request fields forwarded to the LLM as the client sent them (``model`` is replaced by the LLM's name).
PASS_THROUGH = (
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "user",
    "n",
    "response_format",
    "logit_bias",
    "stream_options",
)

#: Token-shaped text: ``sk-…``-style keys, bearer tokens, JWTs, and long runs of key characters (hex, base64).
_TOKENISH = re.compile(
    r"(?i)\bbearer\s+\S+"
    r"|\b(?:sk|pk|rk|api|key|tok|hf|ghp|gho|xox[abp])[-_][A-Za-z0-9_\-]{6,}"
    r"|\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"
    r"|[A-Za-z0-9_\-+/=]{24,}"
)


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with each secret, and anything token-shaped (:data:`_TOKENISH`), replaced by ``[redacted]``."""
    out = str(text)
    for sec in secrets:
        if sec:
            out = out.replace(sec, "[redacted]")
    return _TOKENISH.sub("[redacted]", out)


class UpstreamError(RuntimeError):
    """The LLM could not answer after the client's retries; ``status`` is the HTTP status to return (502/504/4xx).

    ``str(err)`` is the generic message the client gets; ``detail`` is the redacted upstream detail for the log.
    """

    def __init__(self, message: str, status: int = 502, code: str = "upstream_error", detail: str | None = None):
        super().__init__(message)
        self.status, self.code, self.detail = status, code, detail if detail is not None else message


def _error(err: Exception, where: str, key: str | None = None, *, mid_stream: bool = False) -> UpstreamError:
    import openai

    if mid_stream:
        return UpstreamError(
            "the upstream LLM broke off the stream",
            502,
            "upstream_broke_off",
            detail=redact(f"{where}: {type(err).__name__}: {err}", key),
        )
    if isinstance(err, openai.APITimeoutError):
        return UpstreamError(
            "the upstream LLM timed out after the router's retries", 504, "upstream_timeout", detail=f"{where}: timeout"
        )
    if isinstance(err, openai.APIConnectionError):
        return UpstreamError(
            "the upstream LLM could not be reached after the router's retries",
            502,
            "upstream_unreachable",
            detail=f"{where}: {type(err).__name__}",
        )
    if isinstance(err, openai.APIStatusError):
        code = err.status_code
        detail = redact(getattr(err, "message", "") or "", key)
        # the client's own mistakes (4xx other than auth/rate limits) are passed on with their status;
        # an upstream that rejects our key or stays overloaded is a bad gateway for the client
        status = code if 400 <= code < 500 and code not in (401, 403, 407, 429) else 502
        msg = (
            f"the upstream LLM refused the request (HTTP {code})"
            if status != 502
            else f"the upstream LLM failed (HTTP {code})"
        )
        return UpstreamError(msg, status, "upstream_error", detail=f"{where}: HTTP {code}: {detail}")
    return UpstreamError(
        "the upstream LLM failed", 502, "upstream_error", detail=redact(f"{where}: {type(err).__name__}: {err}", key)
    )


class Upstream:
    """Sync and async chat-completion clients for one upstream model."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        max_retries: int = 2,
        timeout_s: float = 60.0,
    ):
        import openai

        from ..inference import endpoint, resolve_api_key

        endpoint(base_url)  # an http(s) URL without credentials (APIConfigError otherwise)
        self.base_url, self.model, self.max_retries, self.timeout_s = (
            base_url,
            model,
            int(max_retries),
            float(timeout_s),
        )
        key = resolve_api_key(api_key_env, base_url)
        self._key = key or None
        kw = dict(api_key=key, base_url=base_url, max_retries=self.max_retries, timeout=self.timeout_s)
        self._sync = openai.OpenAI(**kw, http_client=openai.DefaultHttpxClient(follow_redirects=False))
        self._async = openai.AsyncOpenAI(**kw, http_client=openai.DefaultAsyncHttpxClient(follow_redirects=False))

    def __repr__(self) -> str:  # never the key
        return f"Upstream(model={self.model!r}, base_url={self.base_url!r})"

    def body(self, request: dict) -> dict[str, Any]:
        """The LLM's request: the pass-through fields of the client's request, the LLM's model name."""
        out = {k: request[k] for k in PASS_THROUGH if request.get(k) is not None}
        out["model"] = self.model
        return out

    def complete(self, request: dict) -> dict:
        try:
            return self._sync.chat.completions.create(**self.body(request)).model_dump(exclude_none=True)
        except Exception as err:  # noqa: BLE001
            raise _error(err, self.base_url, self._key) from None

    async def acomplete(self, request: dict) -> dict:
        try:
            return (await self._async.chat.completions.create(**self.body(request))).model_dump(exclude_none=True)
        except Exception as err:  # noqa: BLE001
            raise _error(err, self.base_url, self._key) from None

    async def astream(self, request: dict) -> AsyncIterator[dict]:
        """The upstream's stream, opened before this returns: a failure to connect (after the retries) raises
        :class:`UpstreamError` here, before any chunk is sent; a failure mid-stream raises from the iterator."""
        body = {**self.body(request), "stream": True}
        try:
            stream = await self._async.chat.completions.create(**body)
        except Exception as err:  # noqa: BLE001
            raise _error(err, self.base_url, self._key) from None

        async def chunks():
            try:
                async for chunk in stream:
                    yield chunk.model_dump(exclude_none=True)
            except Exception as err:  # noqa: BLE001
                raise _error(err, self.base_url, self._key, mid_stream=True) from None

        return chunks()

    async def amodels(self, timeout_s: float = 3.0) -> dict:
        """The upstream's ``GET /models`` (one try, short timeout): ``{"state": "ready"|"unreachable"|"error",
        "max_model_len": int|None, "detail": ...}``; ``max_model_len`` is vLLM's field for the served model."""
        try:
            page = await self._async.with_options(max_retries=0, timeout=timeout_s).models.list()
        except Exception as err:  # noqa: BLE001
            e = _error(err, self.base_url, self._key)
            return {
                "state": "unreachable" if e.code in ("upstream_unreachable", "upstream_timeout") else "error",
                "max_model_len": None,
                "message": str(e),
                "detail": e.detail,
            }
        ids, mml = [], None
        for m in page.data:
            ids.append(m.id)
            if m.id == self.model:
                v = (m.model_extra or {}).get("max_model_len")
                mml = int(v) if isinstance(v, int) and not isinstance(v, bool) else None
        if self.model not in ids:
            return {
                "state": "error",
                "max_model_len": None,
                "message": "the upstream does not serve the configured LLM",
                "detail": redact(f"{self.base_url}: models {ids[:20]}", self._key),
            }
        return {"state": "ready", "max_model_len": mml, "message": None, "detail": None}

    def close(self) -> None:
        self._sync.close()

    async def aclose(self) -> None:
        await self._async.close()
