"""OpenAI-compatible chat backend (OpenAI, vLLM, any server speaking ``/v1/chat/completions``).

The paper routes to GPT-4.1 mini through the OpenAI API and uses it as the
free-form correctness judge (Chuang et al., arXiv:2502.04428, §3.1); open LLMs
are served with vLLM. :class:`OpenAIChatBackend` implements
:class:`uqroute.inference.base.ChatBackend` for all of them:

* ``concurrency`` requests in flight at a time (a thread pool over the
  thread-safe synchronous ``openai.OpenAI`` client);
* retries with exponential backoff on connection errors, timeouts, 408/409/429
  and 5xx come from the openai client itself (``max_retries``, ``timeout_s``);
  nothing here re-implements them;
* an on-disk cache (:class:`ResponseCache`): one JSON file per request, written
  atomically, so a rerun never pays for the same request twice and a cached
  request makes no network call at all;
* per-token log-probabilities when the server returns them
  (``choices[i].logprobs.content[j].{token, logprob, top_logprobs}``);
* ``n`` samples per conversation through the request's ``n`` parameter (OpenAI
  and vLLM both support it), reproducible with ``seed`` where the server honours it.

Cache key. The key is the SHA-256 of the exact JSON request body sent to the
server (model name, messages, ``max_tokens``, ``temperature``, ``n``, ``seed``,
``logprobs``, ``top_logprobs``) plus a cache format version. ``base_url`` is
deliberately **not** part of the key: the same served model reached at another
host or port (a vLLM job restarted on another SLURM node, a port change) reuses
its answers. The cache directory is per model (``resources/cache/api/<model>/``
by default), and if you change the weights behind an unchanged served name,
delete that directory. The API key is never part of a key or a cache file.

The key comes only from the environment variable named by ``api_key_env``; for a
server on localhost an unset variable means the dummy key ``EMPTY`` (vLLM accepts
any key unless started with ``--api-key``).

The cache itself (:class:`ResponseCache`, :class:`CachedBackend` for any other backend,
:func:`model_fingerprint`) lives in :mod:`.cache`; its names are re-exported here.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any, Sequence
from urllib.parse import urlparse

from .base import Conversation, Generation, check_generation_args, normalise_messages
from .cache import CACHE_FORMAT, CachedBackend, ResponseCache, cache_key, default_cache_dir, model_fingerprint

__all__ = [
    "OpenAIChatBackend",
    "CachedBackend",
    "ResponseCache",
    "APIConfigError",
    "APIRequestError",
    "APIUnreachableError",
    "API_DEFAULTS",
    "CACHE_FORMAT",
    "cache_key",
    "default_cache_dir",
    "resolve_api_key",
    "model_fingerprint",
    "generations_from_response",
]

log = logging.getLogger(__name__)

#: Defaults of a model's ``api`` block (they mirror config/schema.yaml).
API_DEFAULTS: dict[str, Any] = {
    "base_url": None,
    "api_key_env": "OPENAI_API_KEY",
    "concurrency": 8,
    "max_retries": 6,
    "timeout_s": 120,
    "logprobs": True,
}

#: Hosts for which an unset key falls back to the dummy key ``EMPTY``.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})

class APIConfigError(ValueError):
    """A model's ``api`` block or the environment cannot make a working client."""


class APIRequestError(RuntimeError):
    """The server answered a request with an error that retrying does not fix (4xx)."""


class APIUnreachableError(APIRequestError):
    """The server could not be reached (connection error or timeout) after all retries."""


def _is_local(base_url: str | None) -> bool:
    return bool(base_url) and (urlparse(base_url).hostname or "") in LOCAL_HOSTS


def resolve_api_key(api_key_env: str, base_url: str | None) -> str:
    """The API key from environment variable ``api_key_env``.

    An unset (or empty) variable is allowed only for a server on localhost, where
    the dummy key ``EMPTY`` is used. The error names the variable, never a value.
    """
    key = os.environ.get(api_key_env)
    if key:
        return key
    if _is_local(base_url):
        return "EMPTY"
    raise APIConfigError(
        f"environment variable {api_key_env!r} (api_key_env) is not set, and "
        f"{base_url or 'the OpenAI API'} is not a local server; export the API key in {api_key_env}"
    )


def _api_block(spec: dict) -> dict:
    if not isinstance(spec, dict) or not isinstance(spec.get("api"), dict):
        raise APIConfigError(f"OpenAIChatBackend needs a model entry with an `api` block, got {spec!r}")
    api = {**API_DEFAULTS, **spec["api"]}
    unknown = sorted(set(api) - set(API_DEFAULTS) - {"model"})
    if unknown:
        raise APIConfigError(f"api block: unknown keys {unknown} (known: model, {', '.join(API_DEFAULTS)})")
    if not isinstance(api.get("model"), str) or not api["model"]:
        raise APIConfigError(f"api block: `model` (the served model name) is required, got {api.get('model')!r}")
    if not isinstance(api["concurrency"], int) or api["concurrency"] < 1:
        raise APIConfigError(f"api block of {api['model']!r}: concurrency must be an integer >= 1")
    if not isinstance(api["max_retries"], int) or api["max_retries"] < 0:
        raise APIConfigError(f"api block of {api['model']!r}: max_retries must be an integer >= 0")
    if not api["timeout_s"] or api["timeout_s"] <= 0:
        raise APIConfigError(f"api block of {api['model']!r}: timeout_s must be > 0")
    return api


# ------------------------------------------------------------------ responses → Generations


def _choice_text(message: dict) -> str:
    """The reply text; a reasoning server's separate ``reasoning_content`` is put back as a ``<think>`` block.

    vLLM (with a reasoning parser) and DeepSeek's API return the reasoning of R1-style
    models beside the answer; the generations artifact keeps raw text including
    ``<think>`` blocks, so the two are joined the way the model emitted them.
    """
    content = message.get("content") or ""
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        return f"<think>{reasoning}</think>{content}"
    return content


def generations_from_response(response: dict, *, top_logprobs: int = 0) -> list[Generation]:
    """Turn a chat-completion response (as a JSON dict) into one :class:`Generation` per choice.

    Tokens and log-probs come from ``choices[i].logprobs.content``; when the server
    returned none, ``tokens`` is empty and ``token_logprobs`` is ``None``.
    ``finish_reason`` is ``length`` when the token limit was hit and ``stop`` otherwise.
    """
    choices = sorted(response.get("choices") or [], key=lambda c: c.get("index", 0))
    usage = response.get("usage") or {}
    n_prompt = int(usage.get("prompt_tokens") or 0)
    out = []
    for choice in choices:
        content = (choice.get("logprobs") or {}).get("content")
        tokens: list[str] = []
        token_logprobs = None
        top = None
        if content:
            tokens = [e["token"] for e in content]
            token_logprobs = [float(e["logprob"]) for e in content]
            if top_logprobs > 0:
                top = [{t["token"]: float(t["logprob"]) for t in (e.get("top_logprobs") or [])} for e in content]
        reason = choice.get("finish_reason")
        if reason not in ("stop", "length", None):
            log.warning("finish_reason %r recorded as 'stop'", reason)
        out.append(
            Generation(
                text=_choice_text(choice.get("message") or {}),
                tokens=tokens,
                token_logprobs=token_logprobs,
                token_entropies=None,
                top_logprobs=top,
                finish_reason="length" if reason == "length" else "stop",
                n_prompt_tokens=n_prompt,
            )
        )
    return out


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
    """

    def __init__(self, spec: dict, cache_dir: str | os.PathLike | None = None, *, name: str | None = None):
        import openai

        api = _api_block(spec)
        self.model: str = api["model"]
        self.base_url: str | None = api["base_url"]
        self.name: str = name or self.model
        self.concurrency: int = api["concurrency"]
        self.max_retries: int = api["max_retries"]
        self.timeout_s: float = float(api["timeout_s"])
        self.logprobs: bool = bool(api["logprobs"])
        self._secret = resolve_api_key(api["api_key_env"], self.base_url)
        self._client = openai.OpenAI(
            api_key=self._secret,
            base_url=self.base_url,
            max_retries=self.max_retries,
            timeout=self.timeout_s,
        )
        self.cache = ResponseCache(cache_dir if cache_dir is not None else default_cache_dir("api", self.model))
        #: counts since construction: requests answered from the cache / sent to the server
        self.stats = {"cache_hits": 0, "requests": 0}
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        return self.base_url or "the OpenAI API (default base_url)"

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
    ) -> dict:
        """The JSON body of one chat-completion request (also the cache key's content)."""
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
        return body

    def generate(
        self,
        conversations: Sequence[Conversation],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        n: int = 1,
        seed: int | None = None,
        top_logprobs: int = 0,
    ) -> list[list[Generation]]:
        """``n`` generations per conversation; cached requests make no network call."""
        check_generation_args(max_new_tokens, temperature, n, top_logprobs)
        bodies = [
            self.request_body(
                normalise_messages(conv, i),
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                n=n,
                seed=seed,
                top_logprobs=top_logprobs,
            )
            for i, conv in enumerate(conversations)
        ]
        keys = [cache_key({"format": CACHE_FORMAT, "request": b}) for b in bodies]
        responses: dict[str, dict] = {}
        missing: dict[str, dict] = {}
        for key, body in zip(keys, bodies):
            if key in responses or key in missing:
                continue
            record = self.cache.get(key)
            if record is not None:
                responses[key] = record["response"]
                self.stats["cache_hits"] += 1
            else:
                missing[key] = body
        if missing:
            log.info("%s: %d requests to %s (%d cached)", self.name, len(missing), self.where, len(responses))
            responses.update(self._fetch_all(missing))
        out = []
        for i, key in enumerate(keys):
            gens = generations_from_response(responses[key], top_logprobs=top_logprobs)
            if len(gens) != n:
                raise APIRequestError(
                    f"{self.where} (model {self.model!r}) returned {len(gens)} choices for conversation {i}, asked for n={n}"
                )
            out.append(gens)
        return out

    def _fetch_all(self, missing: dict[str, dict]) -> dict[str, dict]:
        """Send the uncached requests, ``concurrency`` at a time; stop sending at the first failure."""
        results: dict[str, dict] = {}
        workers = min(self.concurrency, len(missing))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="uqroute-api") as pool:
            futures = {pool.submit(self._fetch_one, key, body): key for key, body in missing.items()}
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for f in pending:
                f.cancel()
            for f in done:
                if f.exception() is not None:
                    raise f.exception()
            for f, key in futures.items():
                results[key] = f.result()  # any still-running request finishes (and is cached) first
        return results

    def _fetch_one(self, key: str, body: dict) -> dict:
        """One request through the openai client (its retries), stored in the cache on success."""
        import openai

        try:
            completion = self._client.chat.completions.create(**body)
        except openai.APIConnectionError as err:  # includes APITimeoutError
            raise APIUnreachableError(
                f"could not reach the OpenAI-compatible server at {self.where} for model {self.model!r} "
                f"after {self.max_retries} retries (timeout {self.timeout_s:g} s): "
                f"{type(err).__name__}: {self._redact(str(err))}"
            ) from None
        except openai.APIStatusError as err:
            raise APIRequestError(
                f"the server at {self.where} answered HTTP {err.status_code} for model {self.model!r}"
                f"{' after retries' if err.status_code in (408, 409, 429) or err.status_code >= 500 else ''}: "
                f"{self._redact(str(err))}"
            ) from None
        response = completion.model_dump(mode="json")
        self.cache.put(key, {"request": body, "response": response})
        with self._lock:
            self.stats["requests"] += 1
        return response

    def _redact(self, text: str) -> str:
        if self._secret and self._secret != "EMPTY":
            text = text.replace(self._secret, "***")
        return text

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "OpenAIChatBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


