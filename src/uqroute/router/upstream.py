"""The upstream LLM of a router: any OpenAI-compatible server (OpenAI, vLLM, …).

The key comes only from the environment variable the router names (``--api-key-env``, checked
with :func:`uqroute.inference.api.check_api_key_env`; a server on localhost may go without one,
as in the pipeline's API backend), is sent only to ``base_url`` (HTTP redirects are not
followed) and never appears in a log line, an error or a response. Retries with exponential
backoff are the openai client's own (``max_retries``: connection errors, timeouts, 408/409/429,
5xx); what still fails is an :class:`UpstreamError` carrying the HTTP status to answer with.
"""

from __future__ import annotations

import logging
from typing import Any, AsyncIterator

log = logging.getLogger("uqroute.router")

__all__ = ["Upstream", "UpstreamError", "PASS_THROUGH"]

#: Request fields forwarded to the LLM as the client sent them (``model`` is replaced by the LLM's name).
PASS_THROUGH = ("messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "seed", "presence_penalty",
                "frequency_penalty", "logprobs", "top_logprobs", "user", "n", "response_format", "logit_bias")


class UpstreamError(RuntimeError):
    """The LLM could not answer after the client's retries; ``status`` is the HTTP status to return (502/504/4xx)."""

    def __init__(self, message: str, status: int = 502, code: str = "upstream_error"):
        super().__init__(message)
        self.status, self.code = status, code


def _error(err: Exception, where: str) -> UpstreamError:
    import openai

    if isinstance(err, openai.APITimeoutError):
        return UpstreamError(f"the upstream LLM at {where} timed out after the client's retries", 504, "upstream_timeout")
    if isinstance(err, openai.APIConnectionError):
        return UpstreamError(f"the upstream LLM at {where} could not be reached after the client's retries", 502, "upstream_unreachable")
    if isinstance(err, openai.APIStatusError):
        code = err.status_code
        detail = getattr(err, "message", "") or ""
        # the client's own mistakes (4xx other than auth/rate limits) are passed on with their status;
        # an upstream that rejects our key or stays overloaded is a bad gateway for the client
        status = code if 400 <= code < 500 and code not in (401, 403, 407, 429) else 502
        return UpstreamError(f"the upstream LLM at {where} answered HTTP {code}: {detail}", status, "upstream_error")
    return UpstreamError(f"the upstream LLM at {where} failed: {type(err).__name__}", 502, "upstream_error")


class Upstream:
    """Sync and async chat-completion clients for one upstream model."""

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY", max_retries: int = 2,
                 timeout_s: float = 60.0):
        import openai

        from ..inference.api import endpoint, resolve_api_key

        endpoint(base_url)  # an http(s) URL without credentials (APIConfigError otherwise)
        self.base_url, self.model, self.max_retries, self.timeout_s = base_url, model, int(max_retries), float(timeout_s)
        key = resolve_api_key(api_key_env, base_url)
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
            raise _error(err, self.base_url) from None

    async def acomplete(self, request: dict) -> dict:
        try:
            return (await self._async.chat.completions.create(**self.body(request))).model_dump(exclude_none=True)
        except Exception as err:  # noqa: BLE001
            raise _error(err, self.base_url) from None

    async def astream(self, request: dict) -> AsyncIterator[dict]:
        """The upstream's stream, opened before this returns: a failure to connect (after the retries) raises
        :class:`UpstreamError` here, before any chunk is sent; a failure mid-stream raises from the iterator."""
        body = {**self.body(request), "stream": True}
        try:
            stream = await self._async.chat.completions.create(**body)
        except Exception as err:  # noqa: BLE001
            raise _error(err, self.base_url) from None

        async def chunks():
            try:
                async for chunk in stream:
                    yield chunk.model_dump(exclude_none=True)
            except Exception as err:  # noqa: BLE001
                raise _error(err, self.base_url) from None

        return chunks()

    def close(self) -> None:
        self._sync.close()

    async def aclose(self) -> None:
        await self._async.close()
