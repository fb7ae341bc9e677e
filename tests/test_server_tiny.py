"""The HTTP layer of `uqroute serve` with the tiny random model : a real server process and
the real openai client, an upstream that is down (502, then the fallback), SLM streaming, malformed
requests, metrics, and the key never in the logs (slow: three server processes). The real SLM and a real vLLM
upstream: test_server.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from test_router_slm import _doc
from test_server import post_json

from uqroute.router.file import write_router_file

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-tiny-test-SECRET-90e1"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve(tmp_path):
    procs = []

    def start(doc, *extra):
        path = tmp_path / f"router{len(procs)}.json"
        write_router_file(doc, path)
        port, dead = _free_port(), _free_port()
        log = tmp_path / f"out{len(procs)}.log"
        env = {
            **os.environ,
            "TINY_KEY": KEY,
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
        }
        # the upstream is on 127.0.0.2 (not a "local" host for the key rule, so the key is required and used)
        cmd = [
            sys.executable,
            "-m",
            "uqroute.cli",
            "serve",
            "--router",
            str(path),
            "--llm-base-url",
            f"http://127.0.0.2:{dead}/v1",
            "--llm-model",
            "big",
            "--api-key-env",
            "TINY_KEY",
            "--port",
            str(port),
            "--max-retries",
            "1",
            "--timeout",
            "5",
            "--log-file",
            str(tmp_path / f"req{len(procs)}.jsonl"),
            *extra,
        ]
        fh = open(log, "wb")
        p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        procs.append((p, fh, log))
        for _ in range(240):
            assert p.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    return f"http://127.0.0.1:{port}", log
            except OSError:
                time.sleep(0.25)
        raise AssertionError(log.read_text())

    yield start
    for p, fh, _ in procs:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
        fh.close()
    for _, _, log in procs:
        text = log.read_text() + "".join(f.read_text() for f in tmp_path.glob("req*.jsonl"))
        assert KEY not in text


def test_http_layer(serve, tiny_model_dir):
    import openai

    name = "uqroute-tiny-perplexity"
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    # a router that routes everything, upstream down, no fallback: 502 in OpenAI's shape, before any chunk when streaming
    url, log = serve(_doc(tiny_model_dir, fraction=1.0))
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model=name, messages=msgs, max_tokens=4)
    assert e.value.status_code == 502 and e.value.body["code"] == "upstream_unreachable"
    with pytest.raises(openai.APIStatusError) as e:
        list(client.chat.completions.create(model=name, messages=msgs, max_tokens=4, stream=True))
    assert e.value.status_code == 502
    status, body = post_json(f"{url}/v1/chat/completions", b"{not json")
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4", messages=msgs)
    with pytest.raises(openai.BadRequestError, match="context"):
        client.chat.completions.create(model=name, messages=[{"role": "user", "content": "True " * 1100}], max_tokens=4)
    with urllib.request.urlopen(f"{url}/metrics") as r:
        metrics = r.read().decode()
    assert (
        'uqroute_router_upstream_errors_total{code="upstream_unreachable",router="uqroute-tiny-perplexity"} 2.0'
        in metrics
    )
    assert 'uqroute_router_rejected_requests_total{code="404",router="uqroute-tiny-perplexity"} 1.0' in metrics
    # with --fallback: the SLM's answer, marked; and a router that routes nothing streams the SLM's answer
    url, _ = serve(_doc(tiny_model_dir, fraction=1.0), "--fallback")
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    r = client.chat.completions.with_raw_response.create(model=name, messages=msgs, max_tokens=4)
    out = r.parse()
    assert (
        out.model_extra["uqroute"]["answered_by"] == "slm_fallback" == r.headers["x-uqroute-answered-by"]
        and out.model == "tiny"
    )
    # (the tiny random model never ends within its 8-token budget: --on-truncated mark serves its cut-off answers, marked)
    url, _ = serve(_doc(tiny_model_dir, fraction=0.0), "--on-truncated", "mark")
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    whole = client.chat.completions.create(model=name, messages=msgs, max_tokens=6)
    chunks = list(client.chat.completions.create(model=name, messages=msgs, max_tokens=6, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.choices[0].message.content
    assert (
        chunks[0].model_extra["uqroute"]["answered_by"] == "slm"
        and chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    )
    assert (
        chunks[0].model_extra["uqroute"]["truncated"] is True
        and chunks[0].model_extra["uqroute"]["threshold_source"] == "truncated"
    )
