"""`uqroute serve` in front of real clients and adversaries (slow: real server processes with the tiny
random model, and a real OpenAI-compatible upstream, tests/fault_server.py, that can echo its key).

Covered: bad input never reaches a 500 (a 5,000-digit integer, a lone surrogate, 100,000 nested
``[``, a 5 MB body while another client's ``/health`` answers within 1 s), OpenAI-shaped errors
with a request id for unknown routes too; the confidence does not depend on the client's
``max_tokens`` and a reply cut off by the budget is routed; the upstream's words and key never reach
the client or the log, and every response has the router's own id and an ``x-request-id`` that
matches its log line; client keys, no /docs, limits of both models, refused parameters, ``stop``
and ``include_usage``, ``/ready``, several routers in one process, and the stream accounting
(a stream without ``finish_reason``, a client that leaves).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fault_server import FaultServer
from test_router_slm import _doc

from uqroute.router.file import write_router_file

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
UPSTREAM_KEY = "sk-hardening-UPSTREAM-7c1e55d2a9"  # the upstream's key: never in a response or a log
CLIENT_KEY = "client-key-0123456789"
OTHER_KEY = "client-key-abcdefghij"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, url: str, proc, log: Path, reqlog: Path):
        self.url, self.proc, self.log, self.reqlog = url, proc, log, reqlog

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        key: str | None = CLIENT_KEY,
        headers=None,
        timeout: float = 60,
    ):
        """(status, headers, decoded JSON body or raw bytes)."""
        h = {"Content-Type": "application/json", **(headers or {})}
        if key:
            h["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, hdrs, data = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, hdrs, data = e.code, e.headers, e.read()
        try:
            return status, hdrs, json.loads(data)
        except ValueError:
            return status, hdrs, data

    def chat(self, body: dict, **kw):
        return self.request("POST", "/v1/chat/completions", json.dumps(body).encode(), **kw)

    def lines(self) -> list[dict]:
        return [
            json.loads(line.split(" INFO ", 1)[1])
            for line in self.reqlog.read_text().splitlines()
            if "uqroute.router.requests INFO" in line
        ]

    def text(self) -> str:
        return self.log.read_text(errors="replace") + self.reqlog.read_text(errors="replace")


@pytest.fixture(scope="module")
def upstream():
    with FaultServer(
        model="big", reply=lambda body: "The answer is forty two indeed", stream_delay_s=0.3, max_model_len=512
    ) as s:
        yield s


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    procs = []
    tmp = tmp_path_factory.mktemp("hardening")

    def go(docs: dict, base_url: str, *extra, keys=(CLIENT_KEY, OTHER_KEY)) -> Served:
        i = len(procs)
        args = []
        for name, doc in docs.items():
            path = tmp / f"router{i}-{name}.json"
            write_router_file(doc, path)
            args += ["--router", str(path), "--name", name]
        port = _free_port()
        log, reqlog = tmp / f"out{i}.log", tmp / f"req{i}.jsonl"
        env = {
            **os.environ,
            "HARD_KEY": UPSTREAM_KEY,
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
        }
        env.pop("UQROUTE_API_KEY", None)
        cmd = [
            sys.executable,
            "-m",
            "uqroute.cli",
            "serve",
            *args,
            "--llm-base-url",
            base_url,
            "--llm-model",
            "big",
            "--api-key-env",
            "HARD_KEY",
            "--port",
            str(port),
            "--max-retries",
            "0",
            "--timeout",
            "5",
            "--log-file",
            str(reqlog),
            *[a for k in keys for a in ("--api-key", k)],
            *extra,
        ]
        fh = open(log, "wb")
        p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        procs.append((p, fh))
        for _ in range(400):
            assert p.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    return Served(f"http://127.0.0.1:{port}", p, log, reqlog)
            except OSError:
                time.sleep(0.25)
        raise AssertionError(log.read_text())

    yield go
    for p, fh in procs:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
        fh.close()


@pytest.fixture(scope="module")
def two(start, upstream, tiny_model_dir):
    """One process, two routers: `none` routes nothing (its cut-off answers served, marked) and `all` routes everything."""
    return start(
        {"none": _doc(tiny_model_dir, fraction=0.0), "all": _doc(tiny_model_dir, fraction=1.0)},
        upstream.base_url,
        "--on-truncated",
        "mark",
        "--no-docs",
        "--max-body-bytes",
        "1000000",
    )


MSGS = [{"role": "user", "content": "What is the capital of France?"}]


def _assert_error(status, hdrs, body, want_status, *, param=None):
    assert status == want_status, (status, body)
    err = body["error"]
    assert set(err) >= {"message", "type", "param", "code", "request_id"} and err["message"]
    assert err["request_id"] and err["request_id"] == hdrs["x-request-id"]
    assert "Error" not in err["message"] and "Exception" not in err["message"]  # no exception class names
    if param is not None:
        assert err["param"] == param, err


def test_bad_input_never_reaches_a_500(two):
    # a 5,000-digit integer (Python's integer-string limit), a lone surrogate, 100,000 nested [
    big = b'{"model": "none", "messages": [{"role": "user", "content": "hi"}], "max_tokens": ' + b"9" * 5000 + b"}"
    _assert_error(*two.request("POST", "/v1/chat/completions", big), 400)
    lone = b'{"model": "none", "messages": [{"role": "user", "content": "hi \\ud800 there"}]}'
    _assert_error(*two.request("POST", "/v1/chat/completions", lone), 400, param="messages[0].content")
    nested = b'{"model": "none", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    _assert_error(*two.request("POST", "/v1/chat/completions", nested), 400)
    _assert_error(*two.request("POST", "/v1/chat/completions", b"\xff\xfe not utf-8"), 400)
    huge_int = {"model": "none", "messages": MSGS, "seed": 2**200}
    _assert_error(*two.chat(huge_int), 400, param="seed")
    # unknown routes and methods answer in OpenAI's shape, with a request id
    _assert_error(*two.request("GET", "/v1/nothing"), 404)
    _assert_error(*two.request("GET", "/v1/chat/completions"), 405)
    assert two.request("GET", "/health")[0] == 200


def test_a_5mb_body_is_refused_while_others_are_answered(two):
    size = 5 * 1024 * 1024
    done = {}

    def upload():  # a 5 MB body sent in 100 KiB pieces over ~1.5 s
        conn = http.client.HTTPConnection("127.0.0.1", int(two.url.rsplit(":", 1)[1]), timeout=60)
        conn.putrequest("POST", "/v1/chat/completions")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Authorization", f"Bearer {CLIENT_KEY}")
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        piece = b" " * (100 * 1024)
        try:
            for _ in range(size // len(piece)):
                conn.send(piece)
                time.sleep(0.03)
            conn.send(b" " * (size % len(piece)))
        except OSError:
            pass
        r = conn.getresponse()
        done["status"], done["body"] = r.status, json.loads(r.read())
        conn.close()

    # and a body under the limit that is long to tokenize (refused for the tiny model's context)
    def long_prompt():
        done["long"] = two.chat({"model": "none", "messages": [{"role": "user", "content": "word " * 180_000}]})

    threads = [threading.Thread(target=upload), threading.Thread(target=long_prompt)]
    for t in threads:
        t.start()
    worst = 0.0
    while any(t.is_alive() for t in threads):
        t0 = time.perf_counter()
        assert two.request("GET", "/health", key=None, timeout=5)[0] == 200
        worst = max(worst, time.perf_counter() - t0)
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert done["status"] == 413 and done["body"]["error"]["code"] == "request_too_large"
    assert any(x["request_id"] == done["body"]["error"]["request_id"] and x["http_status"] == 413 for x in two.lines())
    _assert_error(*done["long"], 400)
    assert worst < 1.0, worst


def test_client_key_docs_and_request_ids(two):
    assert two.chat({"model": "none", "messages": MSGS}, key=None)[0] == 401
    status, hdrs, body = two.chat({"model": "none", "messages": MSGS}, key="client-key-wrong-000000")
    _assert_error(status, hdrs, body, 401)
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert two.request("GET", path)[0] == 404
    assert two.request("GET", "/health", key=None)[0] == 200  # health and metrics need no key, as vLLM's
    status, _, models = two.request("GET", "/v1/models")
    assert status == 200 and [m["id"] for m in models["data"]] == ["none", "all"]
    # the answer's id is the router's own, in x-request-id, and in the log line
    status, hdrs, body = two.chat({"model": "none", "messages": MSGS, "max_tokens": 3})
    assert status == 200 and body["id"] == hdrs["x-request-id"]
    status, hdrs, routed = two.chat({"model": "all", "messages": MSGS, "max_tokens": 3})
    assert status == 200 and routed["id"] == hdrs["x-request-id"] != "chatcmpl-fault-server"
    assert "system_fingerprint" not in routed and routed["uqroute"]["answered_by"] == "llm"
    ids = {line["request_id"] for line in two.lines()}
    assert body["id"] in ids and routed["id"] in ids
    # one process, two routers: each metric family once (the text format allows a name once), both routers' samples
    metrics = two.request("GET", "/metrics", key=None)[2].decode()
    import re

    assert len(re.findall(r"^# TYPE uqroute_router_requests(?:_total)? counter$", metrics, re.MULTILINE)) == 1, metrics
    assert (
        'answered_by="slm",router="none",status="ok"' in metrics
        and 'answered_by="llm",router="all",status="ok"' in metrics
    )


def test_client_max_tokens_does_not_change_the_decision(two):
    out = {}
    for mt in (None, 1, 3, 100):
        status, _, body = two.chat({"model": "none", "messages": MSGS, **({"max_tokens": mt} if mt else {})})
        assert status == 200, body
        out[mt] = body
    confs = {mt: b["uqroute"]["confidence"] for mt, b in out.items()}
    assert len(set(confs.values())) == 1, confs  # scored at the router file's budget whatever max_tokens says
    assert out[1]["usage"]["completion_tokens"] == 1 and out[1]["choices"][0]["finish_reason"] == "length"
    assert out[None]["usage"]["completion_tokens"] == 8  # the file's budget
    assert out[None]["choices"][0]["message"]["content"].startswith(out[3]["choices"][0]["message"]["content"])
    # stop is honoured on the SLM's answer too (the text ends before the stop string)
    full = out[None]["choices"][0]["message"]["content"]
    stop = full[3:6]
    status, _, cut = two.chat({"model": "none", "messages": MSGS, "stop": [stop]})
    assert (
        cut["choices"][0]["message"]["content"] == full[: full.find(stop)]
        and cut["choices"][0]["finish_reason"] == "stop"
    )


def test_limits_and_parameters_are_the_same_on_both_branches(two, upstream):
    for model in ("none", "all"):
        for extra, param in (
            ({"max_tokens": 6000}, "max_tokens"),
            ({"presence_penalty": 1000}, "presence_penalty"),
            ({"logprobs": True}, "logprobs"),
            ({"response_format": {"type": "json_object"}}, "response_format"),
            ({"stream_options": {"include_usage": True}}, "stream_options"),
            ({"logit_bias": {"1": 5}}, "logit_bias"),
        ):
            _assert_error(*two.chat({"model": model, "messages": MSGS, **extra}), 400, param=param)
    # refused on both branches because the upstream says max_model_len 512 (/v1/models, as vLLM's)
    for model in ("none", "all"):
        status, _, body = two.chat({"model": model, "messages": MSGS, "max_tokens": 600})
        assert status == 400 and "512" in body["error"]["message"], body
        assert two.chat({"model": model, "messages": MSGS, "max_tokens": 100})[0] == 200
    status, _, ready = two.request("GET", "/ready", key=None)
    assert (
        status == 200
        and ready["routers"]["all"]["upstream"] == "ready"
        and ready["routers"]["all"]["llm_max_model_len"] == 512
    )


def _sse(raw: bytes) -> list:
    return [json.loads(line[6:]) for line in raw.decode().splitlines() if line.startswith("data: {")]


def test_routed_streams_usage_cut_and_disconnect(two, upstream):
    n0 = len(upstream.sent())
    status, hdrs, raw = two.chat(
        {"model": "all", "messages": MSGS, "stream": True, "stream_options": {"include_usage": True}}
    )
    events = _sse(raw)
    assert status == 200 and upstream.sent()[n0]["stream_options"] == {"include_usage": True}
    assert events[-1]["usage"]["total_tokens"] > 0 and all(e["id"] == hdrs["x-request-id"] for e in events)
    assert all("system_fingerprint" not in e for e in events)
    # the SLM's stream sends usage only when asked for
    assert "usage" not in _sse(two.chat({"model": "none", "messages": MSGS, "stream": True})[2])[-1]
    assert (
        _sse(
            two.chat({"model": "none", "messages": MSGS, "stream": True, "stream_options": {"include_usage": True}})[2]
        )[-1]["usage"]["completion_tokens"]
        == 8
    )
    # an upstream stream that ends without finish_reason: an error event that says it broke off, logged as an error
    upstream.fail("stream_cut")
    status, hdrs, raw = two.chat({"model": "all", "messages": MSGS, "stream": True})
    err = [e for e in _sse(raw) if "error" in e]
    assert err and "broke off" in err[0]["error"]["message"] and err[0]["error"]["request_id"] == hdrs["x-request-id"]
    line = next(x for x in two.lines() if x["request_id"] == hdrs["x-request-id"])
    assert line["status"] == "error"
    # a client that leaves a routed stream is counted and logged
    port = int(two.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(
        "POST",
        "/v1/chat/completions",
        json.dumps({"model": "all", "messages": MSGS, "stream": True}),
        {"Content-Type": "application/json", "Authorization": f"Bearer {CLIENT_KEY}"},
    )
    r = conn.getresponse()
    rid = r.headers["x-request-id"]
    r.fp.readline()  # the first event, then leave (the upstream sends a word every 0.3 s)
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    for _ in range(100):
        if any(x["request_id"] == rid for x in two.lines()):
            break
        time.sleep(0.1)
    line = next(x for x in two.lines() if x["request_id"] == rid)
    assert line["status"] == "client_disconnected"
    metrics = two.request("GET", "/metrics", key=None)[2].decode()
    assert 'uqroute_router_client_disconnects_total{router="all"} 1.0' in metrics


def test_upstream_words_and_key_never_reach_the_client(two, upstream):
    upstream.fail("echo_key")
    status, hdrs, body = two.chat({"model": "all", "messages": MSGS})
    _assert_error(status, hdrs, body, 502)
    assert upstream.keys[-1] == UPSTREAM_KEY  # the upstream got the key and echoed it ...
    assert UPSTREAM_KEY not in json.dumps(body) and "Incorrect API key" not in body["error"]["message"]
    assert upstream.base_url not in body["error"]["message"] and "127.0.0.1" not in body["error"]["message"]
    line = next(x for x in two.lines() if x["request_id"] == hdrs["x-request-id"])
    assert (
        line["status"] == "error"
        and "HTTP 401" in line["detail"]
        and "Incorrect API key provided: [redacted]" in line["detail"]
    )
    assert UPSTREAM_KEY not in two.text() and UPSTREAM_KEY[10:] not in two.text()  # ... which is in no log


def test_truncated_reply_is_routed_and_readiness_reports_a_down_upstream(start, tiny_model_dir):
    with FaultServer(model="big") as up:
        s = start({"r": _doc(tiny_model_dir, fraction=0.0)}, up.base_url, keys=())
        # the tiny model never ends within its 8-token budget: each answer is cut off, so it is never served as confident
        status, _, body = s.chat({"model": "r", "messages": MSGS}, key=None)
        assert status == 200 and body["uqroute"]["answered_by"] == "llm" and body["uqroute"]["routed"]
        assert body["uqroute"]["threshold_source"] == "truncated" and body["uqroute"]["truncated"] is True
        assert s.request("GET", "/ready", key=None)[0] == 200
    status, _, ready = s.request("GET", "/ready", key=None)
    assert (
        status == 503
        and ready["routers"]["r"]["upstream"] == "unreachable"
        and s.request("GET", "/health", key=None)[0] == 200
    )
    # the openapi docs are on unless --no-docs
    assert s.request("GET", "/openapi.json", key=None)[0] == 200


def test_ood_probe_decides_at_prefill_and_skips_the_decode(start, upstream, tiny_model_dir, tmp_path):
    """ood_probe reads the prompt's hidden state: a routed request never waits for the SLM's answer; an answered
    one gets the same confidence as the pipeline's path (prefill, then the answer); the fallback decodes then."""
    import numpy as np

    from uqroute.probes import fit_probe, save_probe
    from uqroute.router.file import file_sha256

    rng = np.random.default_rng(0)
    probe = fit_probe(
        rng.normal(size=(40, 32)).astype(np.float32),
        (rng.random(40) < 0.5).astype(float),
        hidden_sizes=[8, 4],
        epochs=2,
        batch_size=8,
        lr=1e-3,
        seed=0,
        label="test",
    )
    path = tmp_path / "ood_probe.safetensors"
    save_probe(path, probe, training_datasets=["a"])
    docs = {}
    for name, fraction in (("probe-all", 1.0), ("probe-none", 0.0)):
        doc = _doc(tiny_model_dir, "ood_probe", fraction=fraction)
        doc["inference"]["hidden_layer"] = -2
        doc["probe"] = {"path": str(path), "sha256": file_sha256(path), "training_datasets": ["a"]}
        docs[name] = doc
    s = start(docs, upstream.base_url, "--on-truncated", "mark", "--fallback", keys=())
    status, _, routed = s.chat({"model": "probe-all", "messages": MSGS}, key=None)
    assert status == 200 and routed["uqroute"]["answered_by"] == "llm" and routed["uqroute"]["slm_decoded"] is False
    status, _, answered = s.chat({"model": "probe-none", "messages": MSGS}, key=None)
    assert status == 200 and answered["uqroute"]["answered_by"] == "slm" and answered["uqroute"]["slm_decoded"] is True
    assert answered["uqroute"]["confidence"] == pytest.approx(routed["uqroute"]["confidence"], rel=1e-6)
    assert answered["usage"]["completion_tokens"] == 8 and answered["choices"][0]["message"]["content"]
    upstream.fail("500")
    status, _, fell = s.chat({"model": "probe-all", "messages": MSGS}, key=None)
    assert status == 200 and fell["uqroute"]["answered_by"] == "slm_fallback" and fell["uqroute"]["slm_decoded"] is True
    assert fell["choices"][0]["message"]["content"] == answered["choices"][0]["message"]["content"]
    assert fell["uqroute"]["confidence"] == routed["uqroute"]["confidence"]
