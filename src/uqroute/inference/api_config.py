"""The ``api`` block of a model: its defaults, the endpoint a key may go to, the key itself, and errors.

* :func:`endpoint` — the one URL requests (and the key) go to: the configured ``base_url``
  normalised, or the official OpenAI endpoint for ``null`` (``OPENAI_BASE_URL`` is ignored);
* :func:`resolve_api_key` — the key from the environment variable named by ``api_key_env``
  (never echoed); :func:`check_api_key_env` checks that the name looks like a variable name;
* :func:`check_api_block` — every check of an ``api`` block that needs no network (start-up checks).
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any
from urllib.parse import urlsplit

from ..settings import defaults, section

log = logging.getLogger(__name__)

__all__ = [
    "API_DEFAULTS",
    "APIConfigError",
    "APIReplyError",
    "APIRequestError",
    "APIUnreachableError",
    "InvalidReply",
    "LOCAL_HOSTS",
    "OPENAI_BASE_URL",
    "check_api_block",
    "check_api_key_env",
    "endpoint",
    "resolve_api_key",
]

#: Defaults of a model's ``api`` block, read from the config schema (the one source of every default).
API_DEFAULTS: dict[str, Any] = defaults("model.api")

#: Where ``base_url: null`` sends requests (and the key): OpenAI's official endpoint.
OPENAI_BASE_URL = "https://api.openai.com/v1"

#: Hosts for which an unset key falls back to the dummy key ``EMPTY``.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class APIConfigError(ValueError):
    """A model's ``api`` block or the environment cannot make a working client."""


class APIRequestError(RuntimeError):
    """The server answered a request with an error that retrying did not fix."""


class APIUnreachableError(APIRequestError):
    """The server could not be reached (connection error or timeout) after all retries."""


class APIReplyError(APIRequestError):
    """The server answered HTTP 200 (2xx), but not with a valid chat completion for the request, after all retries."""


class InvalidReply(ValueError):
    """A reply (or a cached record) is not a valid chat completion for its request; says what is wrong."""


def endpoint(base_url: str | None) -> str:
    """The normalised address requests go to: ``scheme://host:port/path`` (null → :data:`OPENAI_BASE_URL`).

    Scheme and host are lower-case, the port is explicit (80/443 by default), the path has
    no trailing slash. Part of every cache key. Raises :class:`APIConfigError` for anything
    but an ``http(s)://host[:port][/path]`` URL; credentials in the URL are refused and never shown.
    """
    url = OPENAI_BASE_URL if base_url is None else base_url
    if not isinstance(url, str):
        raise APIConfigError(f"base_url must be a URL string or null, got a {type(url).__name__}")
    parts = urlsplit(url.strip())
    shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()  # without any user:password@
    if parts.username is not None or parts.password is not None:
        raise APIConfigError(
            f"base_url {shown!r} contains credentials (user:password@); they are not shown. "
            "Put the key in the environment variable named by api_key_env instead"
        )
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise APIConfigError(f"base_url {shown!r} is not an http(s)://host[:port][/path] URL")
    if parts.query or parts.fragment:
        raise APIConfigError(f"base_url {shown!r} must not have a query or fragment")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise APIConfigError(f"base_url {shown!r} has an invalid port") from None
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}{parts.path.rstrip('/')}"


def _is_local(base_url: str | None) -> bool:
    return bool(base_url) and (urlsplit(base_url).hostname or "") in LOCAL_HOSTS


def _env_label(name: str) -> str:
    """How an ``api_key_env`` value appears in messages: its name if it looks like one, else not at all.

    Shown: upper-case names made of short underscore-separated words (``OPENAI_API_KEY``,
    ``VLLM_API_KEY``). Anything else might be a pasted key that happens to be a valid
    identifier (``sk_live_...``), so it is never echoed.
    """
    if re.fullmatch(r"[A-Z_][A-Z0-9_]*", name) and len(name) <= 64 and all(len(w) <= 16 for w in name.split("_")):
        return f"environment variable {name!r} (api_key_env)"
    return (
        "the environment variable named by api_key_env (its name is not shown: it does not look like "
        "an upper-case variable name and might be a key)"
    )


def check_api_key_env(api_key_env, model: str | None = None) -> str:
    """``api_key_env`` if it is an environment variable's name (``[A-Za-z_][A-Za-z0-9_]*``), else :class:`APIConfigError`.

    The error never shows the value: it may be a key pasted in by mistake.
    """
    if isinstance(api_key_env, str) and _ENV_NAME.fullmatch(api_key_env):
        return api_key_env
    what = f"api block of {model!r}" if model else "api block"
    raise APIConfigError(
        f"{what}: api_key_env must be the NAME of an environment variable (letters, digits and underscores, "
        "not starting with a digit, e.g. OPENAI_API_KEY); the value given is not one, and it is not shown "
        "in case it is a key. Put the key in an environment variable (export OPENAI_API_KEY=...) and set "
        "api_key_env to that variable's name"
    )


def resolve_api_key(api_key_env: str, base_url: str | None) -> str:
    """The API key from environment variable ``api_key_env``.

    An unset (or empty) variable is allowed only for a server on localhost, where
    the dummy key ``EMPTY`` is used. The error names the variable (if it looks like a
    variable name), never a value.
    """
    check_api_key_env(api_key_env)
    key = os.environ.get(api_key_env)
    if key:
        return key
    if _is_local(base_url):
        return "EMPTY"
    where = base_url or f"{OPENAI_BASE_URL} (the OpenAI API)"
    raise APIConfigError(
        f"{_env_label(api_key_env)} is not set, and {where} is not a local server; export the API key in it"
    )


def check_api_block(spec: dict) -> dict:
    """A model entry's ``api`` block with its defaults, checked (``APIConfigError`` names the key, never a secret).

    Needs no network and no key: a workflow can call it at start for every API model.
    """
    return _api_block(spec)


def _api_block(spec: dict) -> dict:
    if not isinstance(spec, dict) or not isinstance(spec.get("api"), dict):
        keys = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
        raise APIConfigError(f"OpenAIChatBackend needs a model entry with an `api` block, got one with keys {keys}")
    unknown = sorted(set(spec["api"]) - set(API_DEFAULTS) - {"model"})
    if unknown:
        raise APIConfigError(f"api block: unknown keys {unknown} (known: model, {', '.join(API_DEFAULTS)})")
    api = section("model.api", spec["api"])
    if not isinstance(api.get("model"), str) or not api["model"]:
        raise APIConfigError(f"api block: `model` (the served model name) is required, got {api.get('model')!r}")
    check_api_key_env(api["api_key_env"], api["model"])
    try:
        endpoint(api["base_url"])
    except APIConfigError as err:
        raise APIConfigError(f"api block of {api['model']!r}: {err}") from None
    if not isinstance(api["concurrency"], int) or api["concurrency"] < 1:
        raise APIConfigError(f"api block of {api['model']!r}: concurrency must be an integer >= 1")
    if not isinstance(api["max_retries"], int) or api["max_retries"] < 0:
        raise APIConfigError(f"api block of {api['model']!r}: max_retries must be an integer >= 0")
    if not api["timeout_s"] or api["timeout_s"] <= 0:
        raise APIConfigError(f"api block of {api['model']!r}: timeout_s must be > 0")
    return api
