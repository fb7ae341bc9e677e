"""Several operating points of one router file from one `uqroute serve` process (RouteLLM's way: the
LLM-call fraction in the model name): a real server process with the tiny random model and a real
OpenAI-compatible upstream (tests/fault_server.py). Fast: `Router.at_fraction` on the Python API.
Slow: the server process, its /v1/models, both branches, the metrics and the start-up log."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from fault_server import FaultServer
from test_router_slm import _doc

from uqroute.router import Router
from uqroute.router.calibrate import operating_point_at
from uqroute.router.file import read_router_file, write_router_file
from uqroute.routing import tie_aware_thresholds

REPO = Path(__file__).resolve().parents[1]
MSGS = [{"role": "user", "content": "What is the capital of France?"}]


def test_operating_point_at_is_the_files_rule(tiny_model_dir):
    doc = _doc(tiny_model_dir, fraction=0.3, mode="tracking")
    conf = np.asarray(doc["holdout"]["confidence"])
    own = operating_point_at(doc, 0.3)
    for k in ("llm_fraction", "threshold", "q", "predicted_accuracy"):  # the file's own fraction: its own point
        assert own[k] == pytest.approx(doc["operating_point"][k]), k
    for r in (0.0, 0.15, 0.5, 1.0):
        op = operating_point_at(doc, r)
        t, q = tie_aware_thresholds(conf, [r])
        assert op["target"] == {"llm_fraction": r} and op["q"] == pytest.approx(q[0])
        assert (op["threshold"] is None) == (not np.isfinite(t[0])) and (
            op["threshold"] is None or op["threshold"] == t[0]
        )
        grid, acc = doc["grid"]["ratio"], doc["curve"]["accuracy_mean"]
        assert op["predicted_accuracy"] == pytest.approx(np.interp(r, grid, acc))
    assert operating_point_at(doc, 0.0)["predicted_accuracy"] == pytest.approx(doc["curve"]["slm_accuracy"])
    assert operating_point_at(doc, 1.0)["predicted_accuracy"] == pytest.approx(doc["curve"]["llm_accuracy"])
    with pytest.raises(ValueError, match="llm_fraction"):
        operating_point_at(doc, 1.5)


def test_at_fraction_shares_the_engine_and_owns_its_threshold(tiny_model_dir):
    doc = _doc(tiny_model_dir, fraction=0.3, mode="tracking")
    base = Router(doc, llm_fraction=0.0)
    try:
        high = base.at_fraction(1.0)
        mid = base.at_fraction(0.5, name="mid")
        assert (base.name, high.name, mid.name) == ("uqroute-tiny-perplexity-0", "uqroute-tiny-perplexity-1", "mid")
        assert high.scorer is base.scorer and mid.scorer is base.scorer and high.shared and not base.shared
        assert high.threshold is not base.threshold and high.monitor is not base.monitor
        assert (base.target, high.target, mid.target) == (0.0, 1.0, 0.5)
        # each fraction gets its own warm-up plan (r(1 − r) = 0 at the ends: nothing to wait for)
        assert (
            base.warmup["drift_min_samples"] == 1 and mid.warmup["drift_min_samples"] == 5
        )  # k_min ≤ N (the file's 5)
        # both decide the same scored answer from one engine pass, each at its own threshold
        scored = base.scorer.score(MSGS, base.max_tokens(), "r1")
        assert not base.decide(scored.confidence).routed and high.decide(scored.confidence).routed
        high.close()  # a shared router leaves the engine running for the others
        assert base.scorer.worker.alive
    finally:
        base.close()
    assert not base.scorer.worker.alive


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode()


def _post(url: str, body: dict):
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.slow
def test_one_file_served_at_several_operating_points(tiny_model_dir, tmp_path):
    doc = _doc(tiny_model_dir, fraction=0.3, mode="tracking")
    path = tmp_path / "router.json"
    write_router_file(doc, path)
    assert read_router_file(path)["serving"]["warmup"]["source"] == "set"  # _doc sets min_samples 5
    port, log = _free_port(), tmp_path / "out.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    with FaultServer(model="big", reply=lambda body: "Paris") as upstream, open(log, "wb") as fh:
        cmd = [
            sys.executable,
            "-m",
            "uqroute.cli",
            "serve",
            "--router",
            str(path),
            "--operating-point",
            "0",
            "0.5",
            "1",
            "--llm-base-url",
            upstream.base_url,
            "--llm-model",
            "big",
            "--port",
            str(port),
            "--on-truncated",
            "mark",
            "--max-retries",
            "0",
        ]
        p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(400):
                assert p.poll() is None, log.read_text()
                try:
                    _get(f"{url}/health")
                    break
                except OSError:
                    time.sleep(0.25)
            models = {m["id"]: m["uqroute"] for m in json.loads(_get(f"{url}/v1/models"))["data"]}
            names = ["uqroute-tiny-perplexity-0", "uqroute-tiny-perplexity-0.5", "uqroute-tiny-perplexity-1"]
            assert list(models) == names
            conf = np.asarray(doc["holdout"]["confidence"])
            for name, r in zip(names, (0.0, 0.5, 1.0), strict=True):
                t, q = tie_aware_thresholds(conf, [r])
                m = models[name]
                assert m["llm_fraction"] == r and m["q"] == pytest.approx(q[0])
                assert m["threshold"] == (float(t[0]) if np.isfinite(t[0]) else None)
                assert m["warmup"]["min_samples"] == 5 and m["warmup"]["source"] == "set"  # the file's set value
            # the same question at fraction 0 is the SLM's, at fraction 1 the LLM's
            s0, low = _post(f"{url}/v1/chat/completions", {"model": names[0], "messages": MSGS, "max_tokens": 4})
            s1, high = _post(f"{url}/v1/chat/completions", {"model": names[2], "messages": MSGS, "max_tokens": 4})
            assert (s0, s1) == (200, 200)
            assert low["uqroute"]["answered_by"] == "slm" and high["uqroute"]["answered_by"] == "llm"
            assert high["choices"][0]["message"]["content"] == "Paris"
            assert low["uqroute"]["confidence"] == pytest.approx(high["uqroute"]["confidence"])
            s, err = _post(f"{url}/v1/chat/completions", {"model": "uqroute-tiny-perplexity-0.7", "messages": MSGS})
            assert s == 404 and "uqroute-tiny-perplexity-0.5" in err["error"]["message"]
            metrics = _get(f"{url}/metrics")
            for name, r in zip(names, (0.0, 0.5, 1.0), strict=True):
                assert f'uqroute_router_llm_fraction_target{{router="{name}"}} {r}' in metrics
            # one engine: every operating point reports the same engine steps
            steps = {
                line.rsplit(" ", 1)[1]
                for line in metrics.splitlines()
                if line.startswith("uqroute_router_engine_steps{")
            }
            assert len(steps) == 1
        finally:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
    text = log.read_text()
    for name in names:
        assert f"serving {name} on http://127.0.0.1:{port}/v1" in text and f"{name}: warm-up 5 requests" in text
