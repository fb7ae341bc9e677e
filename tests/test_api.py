"""OpenAIChatBackend: unit tests, then tests against a real vLLM server (never a mocked client)."""

from __future__ import annotations

import json
import logging
import math
import re
import socket
import time

import pytest
from vllm_fixture import (
    vllm_server,  # noqa: F401  (session-scoped pytest fixture, shared across files)
    vllm_server_module,
)

from uqroute.inference.api import (
    CACHE_FORMAT,
    APIConfigError,
    APIUnreachableError,
    InvalidReply,
    OpenAIChatBackend,
    ResponseCache,
    cache_key,
    check_api_key_env,
    default_cache_dir,
    endpoint,
    generations_from_response,
    resolve_api_key,
)
from uqroute.inference.base import ChatBackend

FAKE_KEY = "sk-uqroute-FAKE-key-0123456789abcdef"
KEY_ENV = "UQROUTE_TEST_API_KEY"
QUESTIONS = [
    "What is the capital of France? Answer in one word.",
    "Name a primary colour.",
    "What is 2 + 3?",
    "Which animal says 'moo'?",
    "Is water wet? Answer yes or no.",
    "What colour is the sky on a clear day?",
]


def convs(questions=QUESTIONS):
    return [[{"role": "user", "content": q}] for q in questions]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def refuse_network(request):
    """An httpx request hook: the request never leaves (a connection error the openai client knows)."""
    from uqroute.inference.api import _httpx

    raise _httpx().ConnectError("no network in this test", request=request)


def backend(base_url, name, cache_dir, **api):
    return OpenAIChatBackend({"api": {"model": name, "base_url": base_url, **api}}, cache_dir=cache_dir)


# ------------------------------------------------------------------ unit tests (no server)


def test_backend_implements_the_protocol(tmp_path):
    b = backend("http://127.0.0.1:9/v1", "m", tmp_path)
    assert isinstance(b, ChatBackend)
    assert b.name == "m"


def test_api_key_only_from_the_environment(monkeypatch):
    monkeypatch.setenv(KEY_ENV, FAKE_KEY)
    assert resolve_api_key(KEY_ENV, "https://api.example.com/v1") == FAKE_KEY
    monkeypatch.delenv(KEY_ENV)
    assert resolve_api_key(KEY_ENV, "http://127.0.0.1:8000/v1") == "EMPTY"
    assert resolve_api_key(KEY_ENV, "http://localhost:8000/v1") == "EMPTY"
    with pytest.raises(APIConfigError, match=KEY_ENV):
        resolve_api_key(KEY_ENV, "https://api.example.com/v1")
    with pytest.raises(APIConfigError, match=r"https://api\.openai\.com/v1 \(the OpenAI API\)"):
        resolve_api_key(KEY_ENV, None)


def test_api_block_is_checked(tmp_path):
    with pytest.raises(APIConfigError, match="`api` block"):
        OpenAIChatBackend({"hub": "x/y"}, cache_dir=tmp_path)
    with pytest.raises(APIConfigError, match="unknown keys"):
        OpenAIChatBackend(
            {"api": {"model": "m", "base_url": "http://127.0.0.1:9/v1", "temprature": 0}}, cache_dir=tmp_path
        )
    with pytest.raises(APIConfigError, match="model"):
        OpenAIChatBackend({"api": {"base_url": "http://127.0.0.1:9/v1"}}, cache_dir=tmp_path)


def test_cache_key_covers_endpoint_and_request(tmp_path, monkeypatch):
    """Another host or port is another server (maybe other weights under the same name): another key."""
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    a = backend("http://127.0.0.1:8000/v1", "m", tmp_path)
    msgs = [{"role": "user", "content": "hi"}]
    base = dict(max_new_tokens=8, temperature=0.0, n=1, seed=None, top_logprobs=0)

    def key(be, msgs=msgs, **kw):
        return be.request_key(be.request_body(msgs, **{**base, **kw}))

    # the same endpoint written differently: the same key
    for same in ("http://127.0.0.1:8000/v1/", "HTTP://127.0.0.1:8000/v1"):
        assert key(backend(same, "m", tmp_path)) == key(a)
    assert key(backend("http://localhost/v1", "m", tmp_path)) == key(backend("http://LOCALHOST:80/v1/", "m", tmp_path))
    variants = [
        key(backend("http://127.0.0.1:8001/v1", "m", tmp_path)),  # vLLM restarted on another port
        key(backend("http://10.0.0.7:8000/v1", "m", tmp_path)),  # ... or on another node
        key(backend("http://localhost:8000/v1", "m", tmp_path)),  # another name of the host
        key(backend("https://127.0.0.1:8000/v1", "m", tmp_path)),
        key(backend("http://127.0.0.1:8000/v2", "m", tmp_path)),
        key(backend("http://127.0.0.1:8000/v1", "other-model", tmp_path)),
        key(a, msgs=[{"role": "user", "content": "hi!"}]),
        key(a, max_new_tokens=9),
        key(a, temperature=1.0),
        key(a, n=2),
        key(a, seed=1),
        key(a, top_logprobs=2),
    ]
    assert len(set(variants + [key(a)])) == len(variants) + 1


def test_endpoint_normalisation_and_bad_base_urls():
    assert endpoint(None) == "https://api.openai.com:443/v1"
    assert endpoint("http://Node-7.cluster:8001/v1/") == "http://node-7.cluster:8001/v1"
    assert endpoint("https://api.example.com") == "https://api.example.com:443"
    assert endpoint("http://[::1]:8000/v1") == "http://[::1]:8000/v1"
    for bad, says in (
        ("ftp://host/v1", "not an http"),
        ("127.0.0.1:8000/v1", "not an http"),
        ("http://host:99999/v1", "invalid port"),
        ("http://host/v1?x=1", "query"),
        ("http:///v1", "not an http"),
    ):
        with pytest.raises(APIConfigError, match=says):
            endpoint(bad)
    with pytest.raises(APIConfigError, match="credentials") as err:
        endpoint(f"https://user:{FAKE_KEY}@api.example.com/v1")
    assert FAKE_KEY not in str(err.value) and "api.example.com" in str(err.value)


def test_api_key_env_must_be_a_variable_name(tmp_path, monkeypatch, caplog):
    assert check_api_key_env("OPENAI_API_KEY") == "OPENAI_API_KEY"
    assert check_api_key_env("my_key_2") == "my_key_2"  # case-insensitive
    for pasted in (FAKE_KEY, "sk-ant-api03-AbCdEf", "2KEY", "KEY NAME", "", None):
        with (
            caplog.at_level(logging.DEBUG),
            pytest.raises(APIConfigError, match="NAME of an environment variable") as err,
        ):
            backend("https://api.example.com/v1", "m", tmp_path, api_key_env=pasted)
        if pasted:
            assert pasted not in str(err.value) and pasted not in caplog.text
    # a key that happens to be a valid identifier: accepted as a name, but never echoed when unset
    for lookalike in ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "ABCDEF0123456789ABCDEF0123456789"):
        monkeypatch.delenv(lookalike, raising=False)
        with pytest.raises(APIConfigError, match="not shown") as err:
            resolve_api_key(lookalike, "https://api.example.com/v1")
        assert lookalike not in str(err.value)
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    with pytest.raises(APIConfigError, match="'VLLM_API_KEY'"):  # a plain name is shown, it helps
        resolve_api_key("VLLM_API_KEY", "http://10.0.0.7:8000/v1")
    with pytest.raises(APIConfigError, match="keys \\['hub'\\]") as err:  # the spec's values are not echoed
        OpenAIChatBackend({"hub": FAKE_KEY}, cache_dir=tmp_path)
    assert FAKE_KEY not in str(err.value)


def test_default_cache_dir(monkeypatch):
    monkeypatch.delenv("UQROUTE_CACHE_DIR", raising=False)
    assert default_cache_dir("api", "Qwen/Qwen3-32B").as_posix() == "resources/cache/api/Qwen__Qwen3-32B"
    monkeypatch.setenv("UQROUTE_CACHE_DIR", "/somewhere")
    assert default_cache_dir("api", "gpt-4.1-mini").as_posix() == "/somewhere/api/gpt-4.1-mini"


def test_response_cache_roundtrip_and_bad_records(tmp_path, caplog):
    cache = ResponseCache(tmp_path)
    key = cache_key({"a": 1})
    assert cache.get(key) is None
    cache.put(key, {"response": {"x": 1}})
    assert cache.get(key) == {"format": CACHE_FORMAT, "response": {"x": 1}}
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.name.startswith(".")]  # no temp files left
    cache.path(key).write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert cache.get(key) is None
    assert str(cache.path(key)) in caplog.text


def test_generations_from_response_reads_logprobs_and_reasoning():
    response = {
        "choices": [
            {
                "index": 1,
                "finish_reason": "length",
                "message": {"content": "B", "reasoning_content": "hmm"},
                "logprobs": None,
            },
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"content": "Paris."},
                "logprobs": {
                    "content": [
                        {
                            "token": "Paris",
                            "logprob": -0.1,
                            "top_logprobs": [{"token": "Paris", "logprob": -0.1}, {"token": "Lyon", "logprob": -2.5}],
                        },
                        {"token": ".", "logprob": -0.01, "top_logprobs": [{"token": ".", "logprob": -0.01}]},
                    ]
                },
            },
        ],
        "usage": {"prompt_tokens": 12},
    }
    g0, g1 = generations_from_response(response, top_logprobs=2)
    assert (g0.text, g0.tokens, g0.token_logprobs) == ("Paris.", ["Paris", "."], [-0.1, -0.01])
    assert g0.top_logprobs == [{"Paris": -0.1, "Lyon": -2.5}, {".": -0.01}]
    assert (g0.finish_reason, g0.n_prompt_tokens, g0.token_entropies) == ("stop", 12, None)
    assert (g1.text, g1.tokens, g1.token_logprobs, g1.finish_reason) == ("<think>hmm</think>B", [], None, "length")
    (g,) = generations_from_response({"choices": [response["choices"][1]]}, top_logprobs=0)
    assert g.top_logprobs is None


GOOD_CHOICE = {
    "index": 0,
    "finish_reason": "stop",
    "message": {"content": "Paris"},
    "logprobs": {
        "content": [{"token": "Paris", "logprob": -0.5, "top_logprobs": [{"token": "Paris", "logprob": -0.5}]}]
    },
}


def _with(path, value, response=None):
    """A copy of a valid one-choice reply with the value at ``path`` (keys/indices) replaced."""
    response = json.loads(json.dumps(response or {"choices": [GOOD_CHOICE], "usage": {"prompt_tokens": 3}}))
    node = response
    for k in path[:-1]:
        node = node[k]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return response


@pytest.mark.parametrize(
    "response, says",
    [
        ([], "not an object"),
        ("<html>", "not an object"),
        ({"id": "x"}, "no `choices` list"),
        (_with(["choices"], []), "0 choices, but n=1"),
        (_with(["choices"], [GOOD_CHOICE, {**GOOD_CHOICE, "index": 1}]), "2 choices, but n=1"),
        (_with(["choices", 0], "text"), "not an object"),
        (_with(["choices", 0, "index"], 3), "choice indices"),
        (_with(["choices", 0, "message"], None), "no message object"),
        (_with(["choices", 0, "message", "content"], 42), "content is a int"),
        (_with(["choices", 0, "logprobs"], [1]), "logprobs is a list"),
        (_with(["choices", 0, "logprobs", "content"], {"a": 1}), "logprobs.content is a dict"),
        (_with(["choices", 0, "logprobs", "content", 0, "logprob"], None), "logprob is None"),
        (_with(["choices", 0, "logprobs", "content", 0, "logprob"], "-0.5"), "logprob is '-0.5'"),
        (_with(["choices", 0, "logprobs", "content", 0, "logprob"], float("nan")), "logprob is nan"),
        (_with(["choices", 0, "logprobs", "content", 0, "logprob"], True), "logprob is True"),
        (_with(["choices", 0, "logprobs", "content", 0, "token"], KeyError), "no token string"),
        (_with(["choices", 0, "logprobs", "content", 0, "top_logprobs"], []), "top_logprobs=1 asked for"),
        (_with(["choices", 0, "logprobs", "content", 0, "top_logprobs", 0, "logprob"], None), "top_logprobs entry"),
        (_with(["usage", "prompt_tokens"], -1), "usage.prompt_tokens"),
    ],
)
def test_generations_from_response_refuses_invalid_replies(response, says):
    with pytest.raises(InvalidReply, match=re.escape(says)):
        generations_from_response(response, n=1, top_logprobs=1)


def test_generations_from_response_accepts_what_servers_send():
    (g,) = generations_from_response(_with(["choices", 0, "logprobs"], None), n=1, top_logprobs=1)
    assert (g.text, g.tokens, g.token_logprobs) == ("Paris", [], None)  # a server without log-probs
    (g,) = generations_from_response(_with(["choices", 0, "logprobs", "content", 0, "logprob"], float("-inf")), n=1)
    assert g.token_logprobs == [float("-inf")]  # vLLM can send -inf (a token outside the top-k)
    (g,) = generations_from_response(_with(["choices", 0, "message", "content"], None), n=1)
    assert g.text == ""  # a refusal or an empty reply
    (g,) = generations_from_response(_with(["usage"], KeyError), n=1)
    assert g.n_prompt_tokens == 0
    (g,) = generations_from_response(_with(["choices", 0, "logprobs", "content"], []), n=1)
    assert g.tokens == [] and g.token_logprobs == []  # an immediate end of sequence


def test_unreachable_server_is_retried_then_named(tmp_path, monkeypatch, caplog):
    """A real connection failure (closed port): the openai client retries with backoff, then a clear error."""
    monkeypatch.setenv(KEY_ENV, FAKE_KEY)
    url = f"http://127.0.0.1:{closed_port()}/v1"
    b = backend(url, "some-model", tmp_path / "cache", max_retries=2, timeout_s=5, api_key_env=KEY_ENV)
    start = time.monotonic()
    with caplog.at_level(logging.INFO, logger="openai"), pytest.raises(APIUnreachableError) as err:
        b.generate(convs()[:1], max_new_tokens=4)
    elapsed = time.monotonic() - start
    message = str(err.value)
    assert url in message and "some-model" in message and "2 retries" in message
    assert FAKE_KEY not in message and FAKE_KEY not in caplog.text
    retries = [r for r in caplog.records if r.getMessage().startswith("Retrying request")]
    assert len(retries) == 2  # the openai client's own retry loop
    assert elapsed >= 0.75 * (0.5 + 1.0)  # exponential backoff 0.5 s, 1 s (minus at most 25% jitter)
    assert not list((tmp_path / "cache").rglob("*.json"))  # failures are not cached


def test_argument_checks(tmp_path):
    b = backend("http://127.0.0.1:9/v1", "m", tmp_path)
    for kw in (
        {"max_new_tokens": 0},
        {"max_new_tokens": 4, "n": 0},
        {"max_new_tokens": 4, "top_logprobs": 21},
        {"max_new_tokens": 4, "temperature": -1},
    ):
        with pytest.raises(ValueError):
            b.generate(convs()[:1], **kw)
    with pytest.raises(ValueError, match="conversation 0, message 0"):
        b.generate([[{"role": "user"}]], max_new_tokens=4)


def test_vllm_server_reports_a_failed_start(tmp_path):
    """scripts/vllm_server.py: a bad model dir, and a server process that dies at once (no vllm module)."""
    import sys

    VLLMServer, Error = vllm_server_module.VLLMServer, vllm_server_module.VLLMServerError
    with pytest.raises(Error, match="no config.json"):
        VLLMServer(tmp_path, "x", python=sys.executable).start()
    (tmp_path / "config.json").write_text("{}")
    log = tmp_path / "server.log"
    server = VLLMServer(tmp_path, "x", python=sys.executable, log_path=log, startup_timeout=60)
    with pytest.raises(Error, match="exited with code 1 before it was ready") as err:
        server.start()
    assert "No module named" in str(err.value) and str(log) in str(err.value)
    assert server.proc is None and log.is_file()


# ------------------------------------------------------------------ against the real vLLM server


@pytest.mark.slow
def test_greedy_is_deterministic_across_fresh_caches(vllm_server, tmp_path):
    url, name, _ = vllm_server
    qs = convs()[:3]
    with backend(url, name, tmp_path / "a") as a, backend(url, name, tmp_path / "b") as b:
        ra = a.generate(qs, max_new_tokens=12)
        rb = b.generate(qs, max_new_tokens=12)
    assert a.stats == {"cache_hits": 0, "requests": 3} == b.stats
    for (ga,), (gb,) in zip(ra, rb):
        assert ga.text and ga.text == gb.text
        assert ga.tokens == gb.tokens
        assert ga.token_logprobs == pytest.approx(gb.token_logprobs, abs=1e-4)
        assert ga.n_prompt_tokens > 0 and ga.finish_reason in ("stop", "length")


@pytest.mark.slow
def test_logprobs_shape(vllm_server, tmp_path):
    url, name, _ = vllm_server
    with backend(url, name, tmp_path) as b:
        ((g,),) = b.generate(convs()[:1], max_new_tokens=10, top_logprobs=3)
    n = len(g.tokens)
    assert 1 <= n <= 10
    assert len(g.token_logprobs) == n and len(g.top_logprobs) == n
    assert g.finish_reason == ("length" if n == 10 else "stop")
    for tok, lp, top in zip(g.tokens, g.token_logprobs, g.top_logprobs):
        assert lp <= 0 and math.isfinite(lp)
        assert 1 <= len(top) <= 3  # k entries, fewer only if two tokens decode to the same string
        assert all(v <= 0 for v in top.values())
        assert max(top.values()) == pytest.approx(lp, abs=1e-5)  # greedy picks the most likely token
        assert tok in top


@pytest.mark.slow
def test_n_samples_with_seed(vllm_server, tmp_path):
    url, name, _ = vllm_server
    qs = convs()[:2]
    kw = dict(max_new_tokens=16, temperature=1.0, n=3)
    with backend(url, name, tmp_path / "a") as a, backend(url, name, tmp_path / "b") as b:
        first = a.generate(qs, seed=7, **kw)
        again = b.generate(qs, seed=7, **kw)  # fresh cache: really sent again
        other = b.generate(qs, seed=8, **kw)
    assert [len(g) for g in first] == [3, 3]
    assert [[g.text for g in gs] for gs in first] == [[g.text for g in gs] for gs in again]
    assert [[g.text for g in gs] for gs in first] != [[g.text for g in gs] for gs in other]
    assert b.stats["requests"] == 4


@pytest.mark.slow
def test_requests_run_concurrently(vllm_server, tmp_path):
    """Observe the real client: at most `concurrency` requests in flight, and more than one at a time."""
    import threading

    url, name, _ = vllm_server
    with backend(url, name, tmp_path / "c", concurrency=3) as b:
        create = b._client.chat.completions.create
        lock, state = threading.Lock(), {"now": 0, "max": 0}

        def observed(**body):
            with lock:
                state["now"] += 1
                state["max"] = max(state["max"], state["now"])
            try:
                return create(**body)
            finally:
                with lock:
                    state["now"] -= 1

        b._client.chat.completions.create = observed
        parallel = b.generate(convs(), max_new_tokens=8)
    assert state["max"] == 3
    with backend(url, name, tmp_path / "s", concurrency=1) as s:
        serial = s.generate(convs(), max_new_tokens=8)
    assert [g[0].text for g in parallel] == [g[0].text for g in serial]  # order kept


@pytest.mark.slow
def test_cache_hit_makes_no_network_call(vllm_server, tmp_path):
    url, name, server = vllm_server
    qs = convs()[:4]
    with backend(url, name, tmp_path) as b:
        first = b.generate(qs, max_new_tokens=8, top_logprobs=2)
    assert b.stats == {"cache_hits": 0, "requests": 4}
    served = server.metric("vllm:request_success_total")
    with backend(url, name, tmp_path) as b:
        second = b.generate(qs, max_new_tokens=8, top_logprobs=2)
    assert b.stats == {"cache_hits": 4, "requests": 0}
    assert server.metric("vllm:request_success_total") == served  # the server saw nothing
    # no network at all (every request refused before it leaves, no retries): still answered, from the cache only
    # (the cache key holds the endpoint, so the same base_url is used; another port would be another server)
    with backend(url, name, tmp_path, max_retries=0) as offline:
        offline._http.event_hooks["request"].append(refuse_network)
        third = offline.generate(qs, max_new_tokens=8, top_logprobs=2)
        with pytest.raises(APIUnreachableError, match="no network in this test"):
            offline.generate(qs, max_new_tokens=9)  # not cached: needs the network
    assert first == second == third
    record = json.loads(next(tmp_path.rglob("*.json")).read_text())
    assert record["request"]["model"] == name and "response" in record


@pytest.mark.slow
def test_api_key_never_lands_in_the_cache(vllm_server, tmp_path, monkeypatch, caplog):
    url, name, _ = vllm_server
    monkeypatch.setenv(KEY_ENV, FAKE_KEY)
    with caplog.at_level(logging.DEBUG), backend(url, name, tmp_path, api_key_env=KEY_ENV) as b:
        b.generate(convs()[:2], max_new_tokens=4)
        assert FAKE_KEY not in repr(b)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 2
    for p in files:
        assert FAKE_KEY.encode() not in p.read_bytes()
        assert FAKE_KEY[-12:].encode() not in p.read_bytes()
    assert FAKE_KEY not in caplog.text
