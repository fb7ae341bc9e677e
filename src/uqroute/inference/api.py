"""OpenAI-compatible chat backend (OpenAI, vLLM, any server speaking ``/v1/chat/completions``).

The paper routes to GPT-4.1 mini through the OpenAI API and uses it as the
free-form correctness judge (Chuang et al., arXiv:2502.04428, §3.1); open LLMs
are served with vLLM. :class:`OpenAIChatBackend` implements
:class:`uqroute.inference.base.ChatBackend` for all of them:

* ``concurrency`` requests in flight at a time (a thread pool over the
  thread-safe synchronous ``openai.OpenAI`` client), with a tqdm bar over the
  requests and a log line per call counting cached and new requests;
* retries with exponential backoff come from the openai client itself
  (``max_retries``, ``timeout_s``): connection errors, timeouts, 408/409/429 and
  5xx, and also an HTTP 200 reply that is not a valid chat completion for the
  request (not JSON, truncated, fewer choices than ``n``, a malformed or null
  log-prob): a response hook on the client's HTTP connection checks every 2xx
  reply completely and turns an invalid one into a transport error, which the
  openai client retries like a dropped connection, within the same
  ``max_retries``. Nothing here re-implements the retry loop;
* an on-disk cache (:class:`ResponseCache`): one JSON file per request, written
  atomically and only after the reply was checked and converted, so a rerun never
  pays for the same request twice and a cached request makes no network call;
  a cached record is checked again when read, and a bad one is reported (with its
  key and file) and fetched again;
* per-token log-probabilities when the server returns them
  (``choices[i].logprobs.content[j].{token, logprob, top_logprobs}``);
* ``n`` samples per conversation through the request's ``n`` parameter (OpenAI
  and vLLM both support it), reproducible with ``seed`` where the server honours it;
* interruption (Ctrl-C, or the first request that fails for good): nothing more is
  sent; requests already in flight finish and are cached (they are paid for).

Where requests go. The key is sent to exactly the configured ``base_url``, and to
the official endpoint ``https://api.openai.com/v1`` when it is null: the
``OPENAI_BASE_URL`` environment variable, which the openai client would otherwise
use, is ignored (with a warning when set), and HTTP redirects are not followed.
The key comes only from the environment variable named by ``api_key_env``, which
must look like a variable name; a value that does not (a pasted key) is refused
without being echoed. For a server on localhost an unset variable means the dummy
key ``EMPTY`` (vLLM accepts any key unless started with ``--api-key``). Errors and
logs never show the key.

Cache key. The SHA-256 of the request's **endpoint** (the ``base_url`` normalised:
scheme and host lower-case, the port explicit, no trailing slash; see
:func:`endpoint`) and the exact JSON request body (model name, messages,
``max_tokens``, ``temperature``, ``n``, ``seed``, ``logprobs``, ``top_logprobs``),
plus a cache format version. Two servers can serve different weights under one
name, so another host or port never reuses answers: a vLLM job restarted on
another node or port is asked again. To keep its cached answers, serve it again
at the same address (vLLM's ``--port``, the same host name; or a fixed local
address such as an SSH tunnel's ``127.0.0.1:PORT``). The cache directory is per
served model name (``resources/cache/api/<model>/`` by default); if the weights
behind an unchanged name and address change, delete it. The API key is never
part of a key or a cache file. docs/reliability.md lists every guarantee and its test.

The cache itself (:class:`ResponseCache`, :class:`CachedBackend` for any other backend,
:func:`model_fingerprint`) lives in :mod:`.cache`; its names are re-exported here.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from .api_config import (
    API_DEFAULTS,
    OPENAI_BASE_URL,
    APIConfigError,
    APIReplyError,
    APIRequestError,
    APIUnreachableError,
    InvalidReply,
    _api_block,
    _env_label,
    check_api_block,
    check_api_key_env,
    endpoint,
    resolve_api_key,
)
from .api_replies import StructuredReplyError, check_structured, generations_from_response
from .base import Conversation, Generation, check_generation_args, normalise_messages
from .cache import (
    CACHE_FORMAT,
    CachedBackend,
    ResponseCache,
    cache_key,
    default_cache_dir,
    model_fingerprint,
    progress_bar,
)

__all__ = [
    "OpenAIChatBackend",
    "CachedBackend",
    "ResponseCache",
    "APIConfigError",
    "APIRequestError",
    "APIReplyError",
    "APIUnreachableError",
    "API_DEFAULTS",
    "CACHE_FORMAT",
    "InvalidReply",
    "OPENAI_BASE_URL",
    "cache_key",
    "check_api_block",
    "check_api_key_env",
    "default_cache_dir",
    "endpoint",
    "resolve_api_key",
    "model_fingerprint",
    "generations_from_response",
    "check_structured",
]

log = logging.getLogger(__name__)


def _reply(content: bytes, body: dict) -> tuple[dict, list[Generation]]:
    """A raw HTTP 200 body as (parsed JSON, generations), checked against the request ``body``."""
    try:
        response = json.loads(content)
    except ValueError as err:  # JSONDecodeError, or bytes that are not UTF-8
        raise InvalidReply(f"not JSON ({type(err).__name__}: {err}); it begins {bytes(content[:80])!r}") from None
    gens = generations_from_response(response, n=int(body.get("n", 1)), top_logprobs=int(body.get("top_logprobs") or 0))
    check_structured(gens, body.get("response_format"))
    return response, gens


def _httpx():
    try:  # openai >= 3 speaks httpx2; earlier releases httpx
        import httpx2 as httpx
    except ImportError:  # pragma: no cover - depends on the installed openai
        import httpx
    return httpx


_INVALID_REPLY_ERRORS: dict = {}


def _invalid_reply_error():
    """An exception class the openai client retries like a broken connection (a ``RequestError`` of its httpx)."""
    httpx = _httpx()
    if httpx not in _INVALID_REPLY_ERRORS:
        _INVALID_REPLY_ERRORS[httpx] = type(
            "InvalidReplyError",
            (httpx.DecodingError,),
            {"__doc__": "A 2xx reply that is not a valid chat completion (raised by the response hook)."},
        )
    return _INVALID_REPLY_ERRORS[httpx]


def _tries(request) -> int:
    """How many times the openai client sent a request: its ``x-stainless-retry-count`` header + 1."""
    try:
        return int(request.headers.get("x-stainless-retry-count", "0")) + 1
    except (AttributeError, RuntimeError, ValueError):
        return 1


# ------------------------------------------------------------------ the backend


class OpenAIChatBackend:
    """:class:`~uqroute.inference.base.ChatBackend` over an OpenAI-compatible server, with a disk cache.

    Args:
        spec: a model entry of the config holding an ``api`` block
            (``model``, ``base_url``, ``api_key_env``, ``concurrency``, ``max_retries``,
            ``timeout_s``, ``logprobs``; see config/schema.yaml).
        cache_dir: where responses are cached; default :func:`default_cache_dir`
            ``("api", <served model name>)``.
        name: the backend's name (default: the served model name).
        progress: show a tqdm bar over each call's requests.
    """

    def __init__(
        self, spec: dict, cache_dir: str | os.PathLike | None = None, *, name: str | None = None, progress: bool = True
    ):
        import openai

        api = _api_block(spec)
        self.model: str = api["model"]
        self.base_url: str = api["base_url"] or OPENAI_BASE_URL
        self.endpoint: str = endpoint(api["base_url"])
        self.name: str = name or self.model
        self.concurrency: int = api["concurrency"]
        self.max_retries: int = api["max_retries"]
        self.timeout_s: float = float(api["timeout_s"])
        self.logprobs: bool = bool(api["logprobs"])
        self.progress = progress
        self._key_label = _env_label(api["api_key_env"])
        if api["base_url"] is None and os.environ.get("OPENAI_BASE_URL"):
            log.warning(
                "%s: OPENAI_BASE_URL is set in the environment and ignored: base_url is null, which means "
                "%s; set base_url in the model's api block to use another server",
                self.name,
                OPENAI_BASE_URL,
            )
        self._secret = resolve_api_key(api["api_key_env"], api["base_url"])
        # base_url always explicit: the openai client would otherwise take $OPENAI_BASE_URL. Redirects are
        # not followed, so the key goes to this address only. The response hook checks every 200 reply.
        self._http = openai.DefaultHttpxClient(follow_redirects=False, event_hooks={"response": [self._check_reply]})
        self._client = openai.OpenAI(
            api_key=self._secret,
            base_url=self.base_url,
            max_retries=self.max_retries,
            timeout=self.timeout_s,
            http_client=self._http,
        )
        self.cache = ResponseCache(cache_dir if cache_dir is not None else default_cache_dir("api", self.model))
        #: counts since construction: requests answered from the cache / sent to the server and answered
        self.stats = {"cache_hits": 0, "requests": 0}
        self._lock = threading.Lock()
        self._calls = 0

    @property
    def where(self) -> str:
        return self.base_url + (" (the OpenAI API)" if self.base_url == OPENAI_BASE_URL else "")

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIChatBackend(model={self.model!r}, base_url={self.base_url!r}, cache={str(self.cache.root)!r})"

    def request_body(
        self,
        messages: list[dict],
        *,
        max_new_tokens: int,
        temperature: float,
        n: int,
        seed: int | None,
        top_logprobs: int,
        response_format: dict | None = None,
    ) -> dict:
        """The JSON body of one chat-completion request (with :attr:`endpoint`, the cache key's content).

        ``response_format`` (OpenAI structured outputs, e.g. ``{"type": "json_schema", "json_schema":
        {"name": ..., "schema": {...}}}``; vLLM's guided decoding takes the same field) goes into the
        body as given; without it the body, and so every existing cache key, is unchanged.
        """
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": int(max_new_tokens),
            "temperature": float(temperature),
            "n": int(n),
        }
        if seed is not None:
            body["seed"] = int(seed)
        if self.logprobs or top_logprobs > 0:
            body["logprobs"] = True
            if top_logprobs > 0:
                body["top_logprobs"] = int(top_logprobs)
        if response_format is not None:
            body["response_format"] = response_format
        return body

    def request_key(self, body: dict) -> str:
        """The cache key of a request: endpoint + body + cache format."""
        return cache_key({"format": CACHE_FORMAT, "endpoint": self.endpoint, "request": body})

    def _cached(self, key: str, body: dict) -> list[Generation] | None:
        """The checked generations stored under ``key``, or ``None`` (a miss; a bad record is reported)."""
        record = self.cache.get(key)
        if record is None:
            return None
        try:
            if record.get("endpoint") != self.endpoint or record.get("request") != json.loads(json.dumps(body)):
                raise InvalidReply("it was stored for another endpoint or request")
            gens = generations_from_response(
                record.get("response"), n=int(body["n"]), top_logprobs=int(body.get("top_logprobs") or 0)
            )
            return check_structured(gens, body.get("response_format"))
        except InvalidReply as err:
            log.warning(
                "%s: cached reply %s (key %s) is invalid: %s; asking %s again",
                self.name,
                self.cache.path(key),
                key,
                self._redact(str(err)),
                self.where,
            )
            return None

    def generate(
        self,
        conversations: Sequence[Conversation],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        n: int = 1,
        seed: int | None = None,
        top_logprobs: int = 0,
        response_format: dict | None = None,
    ) -> list[list[Generation]]:
        """``n`` generations per conversation; cached requests make no network call.

        ``response_format`` asks for structured output (:meth:`request_body`); every reply is then
        checked against it (:func:`~.api_replies.check_structured`: complete JSON that the schema
        accepts) before it is cached, and a reply that is not is retried like any invalid reply. A
        server that rejects the field answers with an HTTP 4xx: :class:`APIRequestError` with its
        ``status_code``.
        """
        check_generation_args(max_new_tokens, temperature, n, top_logprobs)
        check_structured([], response_format)  # a bad response_format fails here, before any request
        bodies = [
            self.request_body(
                normalise_messages(conv, i),
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                n=n,
                seed=seed,
                top_logprobs=top_logprobs,
                response_format=response_format,
            )
            for i, conv in enumerate(conversations)
        ]
        keys = [self.request_key(b) for b in bodies]
        results: dict[str, list[Generation]] = {}
        missing: dict[str, dict] = {}
        for key, body in zip(keys, bodies):
            if key in results or key in missing:
                continue
            gens = self._cached(key, body)
            if gens is not None:
                results[key] = gens
            else:
                missing[key] = body
        hits = len(results)
        self.stats["cache_hits"] += hits
        self._calls += 1
        with progress_bar(hits + len(missing), hits, f"{self.name}: API requests", self.progress) as bar:
            if missing:
                log.info("%s: %d requests to %s (%d cached)", self.name, len(missing), self.where, hits)
                results.update(self._fetch_all(missing, bar))
        log.info("%s: %d requests: %d from the cache, %d new", self.name, hits + len(missing), hits, len(missing))
        return [results[key] for key in keys]

    def _fetch_all(self, missing: dict[str, dict], bar) -> dict[str, list[Generation]]:
        """Send the uncached requests, ``concurrency`` at a time.

        At the first request that fails for good, or on Ctrl-C, nothing more is sent: queued
        requests are cancelled (a worker checks ``stop`` before it sends), the ones in flight
        finish (and are cached: they are paid for).
        """
        results: dict[str, list[Generation]] = {}
        stop = threading.Event()

        def fetch(key: str, body: dict) -> list[Generation] | None:
            if stop.is_set():
                return None  # not sent
            try:
                return self._fetch_one(key, body)
            except BaseException:
                stop.set()
                raise

        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(missing)), thread_name_prefix="uqroute-api")
        futures = {pool.submit(fetch, key, body): key for key, body in missing.items()}
        try:
            for f in as_completed(futures):
                results[futures[f]] = f.result()  # raises the first failure
                bar.update(1)
        except BaseException as err:
            stop.set()
            for f in futures:
                f.cancel()
            if isinstance(err, KeyboardInterrupt):
                in_flight = sum(f.running() for f in futures)
                log.warning(
                    "%s: interrupted; queued requests are not sent, the %d in flight finish and are cached",
                    self.name,
                    in_flight,
                )
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return results

    def _check_reply(self, response) -> None:
        """httpx response hook: a 2xx chat completion that is not valid becomes a retried transport error."""
        if not 200 <= response.status_code < 300 or not response.request.url.path.endswith("/chat/completions"):
            return
        response.read()
        try:
            _reply(response.content, json.loads(response.request.content))
        except InvalidReply as err:
            tries = _tries(response.request)
            log.warning(
                "%s: %s answered HTTP %d with an invalid reply (attempt %d of at most %d): %s",
                self.name,
                self.where,
                response.status_code,
                tries,
                self.max_retries + 1,
                self._redact(str(err)),
            )
            error = _invalid_reply_error()(str(err), request=response.request)
            error.status_code = response.status_code
            error.structured = isinstance(err, StructuredReplyError)
            raise error from None

    def _attempts(self, request, *, response=None) -> str:
        """'after k retries' / 'not retried', with the reason where the client stopped before ``max_retries``."""
        retries = _tries(request) - 1
        text = f"after {retries} {'retry' if retries == 1 else 'retries'}" if retries else "not retried"
        if retries < self.max_retries and response is not None:
            headers = response.headers
            wait = f"{headers['retry-after-ms']} ms" if headers.get("retry-after-ms") else headers.get("retry-after")
            if wait and re.fullmatch(r"\s*[0-9.]+\s*", wait):
                wait = f"{wait.strip()} s"
            if headers.get("x-should-retry") == "false":
                text += " (the server sent x-should-retry: false)"
            elif wait:
                text += (
                    f" (the server asked to wait {wait} (Retry-After), longer than the openai client waits "
                    "before a retry; try again later)"
                )
        elif not retries and self.max_retries == 0:
            text += " (max_retries is 0)"
        return text

    def _fetch_one(self, key: str, body: dict) -> list[Generation]:
        """One request through the openai client (its retries); checked, converted, then cached."""
        import openai

        try:
            raw = self._client.chat.completions.with_raw_response.create(**body)
        except openai.APIConnectionError as err:  # includes APITimeoutError, and invalid replies (see _check_reply)
            cause = err.__cause__
            attempts = self._attempts(err.request)
            if isinstance(cause, _invalid_reply_error()):
                error = APIReplyError(
                    f"the server at {self.where} answered model {self.model!r} with HTTP "
                    f"{getattr(cause, 'status_code', 200)} but no valid chat completion ({attempts}; nothing was "
                    f"cached): {self._redact(str(cause))}"
                )
                # a valid completion that does not follow response_format (a server that ignores it)
                error.structured = getattr(cause, "structured", False)
                raise error from None
            what = (
                f"timed out (timeout {self.timeout_s:g} s)"
                if isinstance(err, openai.APITimeoutError)
                else "connection failed"
            )
            detail = f"{type(cause).__name__}: {cause}" if cause is not None else f"{type(err).__name__}: {err}"
            raise APIUnreachableError(
                f"could not reach the OpenAI-compatible server at {self.where} for model {self.model!r}: "
                f"{what}, {attempts}{'' if 'max_retries' in attempts else f' (max_retries {self.max_retries})'}: "
                f"{self._redact(detail)}"
            ) from None
        except openai.APIStatusError as err:
            code = err.status_code
            retryable = code in (408, 409, 429) or code >= 500
            hint = ""
            if 300 <= code < 400:
                hint = (
                    " (redirects are not followed, so that the key goes to base_url only: "
                    "set base_url to the address the server redirects to)"
                )
            elif code in (401, 403):
                hint = f" (check the key in {self._key_label})"
            elif code == 404:
                hint = f" (is {self.model!r} the name the server serves the model under?)"
            error = APIRequestError(
                f"the server at {self.where} answered model {self.model!r} with HTTP {code}"
                f"{', ' + self._attempts(err.response.request, response=err.response) if retryable else ''}"
                f"{hint}: {self._redact(str(err))}"
            )
            error.status_code = code
            raise error from None
        try:
            response, gens = _reply(raw.http_response.content, body)  # already checked by the response hook
        except InvalidReply as err:
            raise APIReplyError(
                f"the server at {self.where} answered model {self.model!r} with HTTP "
                f"{raw.http_response.status_code} but no valid chat completion (not retried; nothing was cached): "
                f"{self._redact(str(err))}"
            ) from None
        self.cache.put(key, {"endpoint": self.endpoint, "request": body, "response": response})
        with self._lock:
            self.stats["requests"] += 1
        return gens

    def _redact(self, text: str) -> str:
        if self._secret and self._secret != "EMPTY":
            text = text.replace(self._secret, "***")
        return text

    def close(self) -> None:
        if self._calls and self.stats["cache_hits"] + self.stats["requests"]:
            log.info(
                "%s: %d requests in all: %d from the cache, %d new (%s)",
                self.name,
                self.stats["cache_hits"] + self.stats["requests"],
                self.stats["cache_hits"],
                self.stats["requests"],
                self.where,
            )
            self._calls = 0
        self._client.close()

    def __enter__(self) -> OpenAIChatBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
