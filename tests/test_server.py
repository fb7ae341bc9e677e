"""The routing server end to end (slow): the real `uqroute serve` process with the demo SLM
(SmolLM2-135M), a real vLLM-on-CPU upstream serving the demo LLM (Qwen2.5-Coder-0.5B), and the
real `openai` client: both branches, concurrent clients sharing the engine's pool, streaming,
malformed requests, an upstream that is down (error, then fallback), and the key never logged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from vllm_fixture import REPO, vllm_server_module

pytestmark = pytest.mark.slow

LLM = "qwen2.5-coder-0.5b"
KEY = "sk-uqroute-test-SECRET-4f9a1c"  # must never appear in any log
KEY_ENV = "UQROUTE_TEST_UPSTREAM_KEY"
PROMPTS = [
    "What is the capital of France? Answer with one word.",
    "Is 17 a prime number? Answer True or False.",
    "Compute 12 * 11. Give only the number.",
    "Name a primary colour.",
    "Which planet is known as the red planet?",
    "Translate 'bonjour' into English.",
    "What is 2 + 2?",
    "Who wrote Romeo and Juliet?",
]
MAX_TOKENS = 12


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    import yaml

    from uqroute.models import fetch_model

    spec = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["models"][LLM]
    return fetch_model(LLM, spec, tmp_path_factory.mktemp("models") / LLM)


@pytest.fixture(scope="module")
def upstream(qwen_dir):
    python = vllm_server_module.vllm_python()
    if not python.exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and the vLLM environment {python} does not exist", pytrace=False)
        pytest.skip(f"SKIPPED (no vLLM): {python} does not exist (make install-vllm)")
    server = vllm_server_module.VLLMServer(qwen_dir, LLM, startup_timeout=600, extra_args=["--api-key", KEY])
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def router_file(smollm2_dir, tmp_path_factory):
    """A perplexity router whose threshold is the median of the SLM's confidences on the PROMPTS it answers
    within the budget (computed in-process with the same code): half of those go to the LLM, and so does
    every answer cut off by the budget (never trusted as confident). Returns (path, {prompt: routed})."""
    from uqroute.router.file import write_router_file
    from uqroute.router.slm import SLMScorer

    grid = np.linspace(0, 1, 11)
    probe_doc = _doc(np.linspace(0.1, 0.9, 9), grid, smollm2_dir)
    scorer = SLMScorer(probe_doc, smollm2_dir)
    try:
        scored = {p: scorer.score([{"role": "user", "content": p}], MAX_TOKENS, f"x{i}") for i, p in enumerate(PROMPTS)}
    finally:
        scorer.close()
    whole = np.array(sorted(s.confidence for s in scored.values() if not s.truncated))
    assert whole.size >= 2, {p: s.finish_reason for p, s in scored.items()}
    # an even number of values puts the median between two of them (no tie at the threshold); the top one left out
    # is above it, so it still goes to the SLM
    whole = whole[: whole.size - whole.size % 2]
    doc = _doc(whole, grid, smollm2_dir)
    t = doc["operating_point"]["threshold"]
    assert doc["operating_point"]["q"] == 0.0 or t not in whole
    path = tmp_path_factory.mktemp("router") / "perplexity.json"
    write_router_file(doc, path)
    return path, {p: s.truncated or s.confidence < t for p, s in scored.items()}


def _doc(conf, grid, model_dir):
    from uqroute.router import calibrate
    from uqroute.router.build import router_document
    from uqroute.routing import tie_aware_thresholds

    t, q = tie_aware_thresholds(conf, grid)
    n = conf.size
    row = {
        "slm": "smollm2-135m",
        "method": "perplexity",
        "setting": "pooled",
        "target": None,
        "sources": ["x"],
        "k": 1.0,
        "seed": 50,
        "bins": 1,
        "pool_size": n,
        "pool_note": None,
        "source_dataset": ["x"] * n,
        "id": [f"x/{i}" for i in range(n)],
        "confidence": list(np.sort(conf)),
        "slm_correct": [True] * n,
        "ratio": list(grid),
        "threshold": list(t),
        "q": list(q),
    }
    cal = calibrate([row], operating_point={"llm_fraction": 0.5}, llm_accuracy=0.9)
    return router_document(
        cal,
        slm="smollm2-135m",
        method="perplexity",
        llm=LLM,
        created_by="test",
        model_dir=str(model_dir),
        weights=None,
        inference={},
        max_tokens=MAX_TOKENS,
        seed=0,
        probe=None,
        holdout_file=None,
        serving={"mode": "fixed", "window": 50, "min_samples": 5, "drift_margin": 0.3},
    )


def post_json(url: str, data: bytes) -> tuple[int, dict]:
    """POST raw bytes as JSON to ``url``: (status, decoded JSON body), for error statuses too."""
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class RouterProcess:
    def __init__(self, router_path, base_url, log_dir: Path, *extra):
        self.port = vllm_server_module.free_port()
        self.log_file, self.out_file = log_dir / f"router-{self.port}.jsonl", log_dir / f"router-{self.port}.out"
        env = {
            **os.environ,
            KEY_ENV: KEY,
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
        }
        cmd = [
            sys.executable,
            "-m",
            "uqroute.cli",
            "serve",
            "--router",
            str(router_path),
            "--llm-base-url",
            base_url,
            "--llm-model",
            LLM,
            "--api-key-env",
            KEY_ENV,
            "--port",
            str(self.port),
            "--max-retries",
            "1",
            "--timeout",
            "60",
            "--log-file",
            str(self.log_file),
            *extra,
        ]
        self.out = open(self.out_file, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"router exited with {self.proc.returncode}:\n{self.out_file.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.root}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"router not healthy in time:\n{self.out_file.read_text()[-3000:]}")

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self):
        import openai

        return openai.OpenAI(base_url=f"{self.root}/v1", api_key="unused", max_retries=0, timeout=300)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"{self.root}{path}", timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def post(self, path: str, data: bytes) -> tuple[int, dict]:
        return post_json(f"{self.root}{path}", data)

    def logs(self) -> str:
        if not self.out.closed:
            self.out.flush()
        return self.out_file.read_text(errors="replace") + (
            self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.out.close()


@pytest.fixture(scope="module")
def server(router_file, upstream, tmp_path_factory):
    proc = RouterProcess(router_file[0], upstream.base_url, tmp_path_factory.mktemp("logs"))
    yield proc
    proc.stop()


def _name(server) -> str:
    return server.client().models.list().data[0].id


def test_models_health_and_both_branches(server, router_file, upstream):
    _, routed = router_file
    assert set(routed.values()) == {True, False}
    status, body = server.get("/health")
    assert status == 200 and json.loads(body)["status"] == "ok"
    models = server.client().models.list().data
    assert [m.id for m in models] == ["uqroute-smollm2-135m-perplexity"]
    client = server.client()
    for prompt, want_routed in routed.items():
        raw = client.chat.completions.with_raw_response.create(
            model=_name(server), messages=[{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS, temperature=0
        )
        resp = raw.parse()
        info = resp.model_extra["uqroute"]
        assert info["routed"] is want_routed, (prompt, info)
        assert info["answered_by"] == ("llm" if want_routed else "slm")
        assert resp.model == (LLM if want_routed else "smollm2-135m") == info["model"]
        assert (
            raw.headers["x-uqroute-model"] == info["model"]
            and raw.headers["x-uqroute-answered-by"] == info["answered_by"]
        )
        assert float(raw.headers["x-uqroute-confidence"]) == pytest.approx(info["confidence"])
        assert float(raw.headers["x-uqroute-threshold"]) == pytest.approx(info["threshold"])
        assert resp.choices[0].message.content
        assert (info["confidence"] < info["threshold"] or info["truncated"]) is want_routed
        assert info["threshold_source"] == ("truncated" if info["truncated"] else "calibrated")
    if True:  # the routed answer is the LLM's own: the same as asking vLLM directly (greedy)
        import openai

        prompt = next(p for p, r in routed.items() if r)
        direct = openai.OpenAI(base_url=upstream.base_url, api_key=KEY, max_retries=0).chat.completions.create(
            model=LLM, messages=[{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS, temperature=0
        )
        via = client.chat.completions.create(
            model=_name(server), messages=[{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS, temperature=0
        )
        assert via.choices[0].message.content == direct.choices[0].message.content


def test_concurrent_clients_share_the_engine(server, router_file):
    _, routed = router_file
    prompts = list(routed) * 2
    results, errors = {}, []
    barrier = threading.Barrier(len(prompts))

    def ask(i, p):
        try:
            barrier.wait()
            r = server.client().chat.completions.create(
                model="uqroute-smollm2-135m-perplexity",
                messages=[{"role": "user", "content": p}],
                max_tokens=MAX_TOKENS,
                temperature=0,
            )
            results[i] = (p, r)
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=ask, args=(i, p)) for i, p in enumerate(prompts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors and len(results) == len(prompts)
    for p, r in results.values():
        assert r.model_extra["uqroute"]["routed"] is routed[p]
    status, text = server.get("/metrics")
    text = text.decode()
    peak = next(
        float(line.split()[-1]) for line in text.splitlines() if line.startswith("uqroute_router_engine_requests_peak{")
    )
    assert peak >= 4, text  # several requests decoded in the pool together, not one at a time


def test_streaming_both_branches(server, router_file):
    _, routed = router_file
    client = server.client()
    for prompt in (next(p for p, r in routed.items() if r), next(p for p, r in routed.items() if not r)):
        whole = client.chat.completions.create(
            model=_name(server), messages=[{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS, temperature=0
        )
        stream = client.chat.completions.create(
            model=_name(server),
            messages=[{"role": "user", "content": prompt}],
            max_tokens=MAX_TOKENS,
            temperature=0,
            stream=True,
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == whole.choices[0].message.content
        assert chunks[0].model_extra["uqroute"]["routed"] is routed[prompt]
        if routed[prompt]:
            assert (
                len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
            )  # the LLM's tokens as they come


def test_malformed_requests_get_4xx(server):
    import openai

    status, body = server.post("/v1/chat/completions", b"{not json")
    assert (
        status == 400
        and "not valid JSON" in body["error"]["message"]
        and body["error"]["type"] == "invalid_request_error"
    )
    status, body = server.post("/v1/chat/completions", json.dumps({"model": _name(server), "messages": "hi"}).encode())
    assert status == 400 and body["error"]["param"] == "messages"
    client = server.client()
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="n must be 1"):
        client.chat.completions.create(model=_name(server), messages=[{"role": "user", "content": "hi"}], n=2)
    with pytest.raises(openai.BadRequestError, match="context"):  # longer than SmolLM2's 8192-token context
        client.chat.completions.create(
            model=_name(server), messages=[{"role": "user", "content": "word " * 9000}], max_tokens=4
        )
    assert server.get("/health")[0] == 200  # still serving


def test_metrics_and_request_log(server):
    status, text = server.get("/metrics")
    text = text.decode()
    assert status == 200
    for name in (
        "uqroute_router_llm_fraction_realised",
        "uqroute_router_llm_fraction_target",
        "uqroute_router_w1_holdout",
        "uqroute_router_drift",
        "uqroute_router_requests_total",
        "uqroute_router_request_seconds_bucket",
        "uqroute_router_confidence_seconds_bucket",
        "uqroute_router_rejected_requests_total",
    ):
        assert name in text, name
    lines = [
        json.loads(line.split(" INFO ", 1)[1])
        for line in server.logs().splitlines()
        if "uqroute.router.requests INFO" in line and line.endswith("}")
    ]
    ok = [r for r in lines if r["status"] == "ok"]
    assert ok and all({"confidence", "routed", "answered_by", "total_s", "slm_s"} <= set(r) for r in ok)
    assert any(r["status"] == "rejected" for r in lines)


def test_upstream_down_error_then_fallback(router_file, tmp_path_factory):
    import openai

    _, routed = router_file
    prompt = next(p for p, r in routed.items() if r)
    dead = f"http://127.0.0.1:{vllm_server_module.free_port()}/v1"  # nothing listens there
    logs = tmp_path_factory.mktemp("down")
    for fallback in (False, True):
        proc = RouterProcess(router_file[0], dead, logs, *(["--fallback"] if fallback else []))
        try:
            client = proc.client()
            if not fallback:
                with pytest.raises(openai.APIStatusError) as e:
                    client.chat.completions.create(
                        model=_name(proc), messages=[{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS
                    )
                assert e.value.status_code == 502 and "could not be reached" in str(e.value)
                assert e.value.body["code"] == "upstream_unreachable"
                with pytest.raises(openai.APIStatusError):  # streaming: the error comes before any chunk
                    list(
                        client.chat.completions.create(
                            model=_name(proc),
                            messages=[{"role": "user", "content": prompt}],
                            max_tokens=MAX_TOKENS,
                            stream=True,
                        )
                    )
            else:
                r = client.chat.completions.create(
                    model=_name(proc), messages=[{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS
                )
                info = r.model_extra["uqroute"]
                assert info["answered_by"] == "slm_fallback" and info["routed"] and r.model == "smollm2-135m"
                assert "could not be reached" in info["upstream_error"] and r.choices[0].message.content
            assert proc.get("/health")[0] == 200
        finally:
            proc.stop()
        assert KEY not in proc.logs()


def test_key_never_logged(server):
    logs = server.logs()
    assert "uqroute.router.requests" in logs and KEY not in logs
