"""The router's SLM side on the tiny random model (fast): the served confidence is the pipeline's,
concurrent requests share the engine's pool, the Python API's branches, request validation."""

from __future__ import annotations

import threading

import numpy as np
import polars as pl
import pytest

from uqroute.inference import EngineWorker, TransformersBackend
from uqroute.router import Router, calibrate
from uqroute.router.build import router_document
from uqroute.router.core import RequestError, parse_request
from uqroute.router.slm import SLMScorer
from uqroute.router.upstream import UpstreamError
from uqroute.routing import tie_aware_thresholds

INFERENCE = {"num_samples": 3, "sample_max_new_tokens": 6, "verbal_max_new_tokens": 5}


def _doc(model_dir, method="perplexity", fraction=0.0, mode="fixed", conf=None):
    conf = np.linspace(0.0, 1.0, 20) if conf is None else np.asarray(conf, dtype=float)
    grid = np.linspace(0, 1, 11)
    t, q = tie_aware_thresholds(conf, grid)
    n = conf.size
    row = {
        "slm": "tiny",
        "method": method,
        "setting": "pooled",
        "target": None,
        "sources": ["a"],
        "k": 0.1,
        "seed": 50,
        "bins": 30,
        "pool_size": 10 * n,
        "pool_note": None,
        "source_dataset": ["a"] * n,
        "id": [f"a/{i}" for i in range(n)],
        "confidence": list(np.sort(conf)),
        "slm_correct": [bool(i % 2) for i in range(n)],
        "ratio": list(grid),
        "threshold": list(t),
        "q": list(q),
    }
    cal = calibrate([row], operating_point={"llm_fraction": fraction}, llm_accuracy=0.8)
    return router_document(
        cal,
        slm="tiny",
        method=method,
        llm=None,
        created_by="test",
        model_dir=str(model_dir),
        weights=None,
        inference=INFERENCE,
        max_tokens=8,
        seed=0,
        probe=None,
        holdout_file=None,
        serving={"mode": mode, "window": 10, "min_samples": 5, "drift_margin": 0.1},
    )


QUESTIONS = [
    "What is the capital of France?",
    "Is the proposed answer True?",
    "Answer: 42. Confidence: 90%",
    "Solve the following math problem.",
    "How confident are you?",
    "The answer is B.",
    "True or false?",
    "Options: A. Paris",
]


@pytest.mark.parametrize(
    "method",
    [
        "perplexity",
        "avg_token_prob",
        "mean_token_entropy",
        "jaccard_degree",
        "ptrue",
        "verbal_2s",
        "verbal_1s",
        "sample_agreement",
    ],
)
def test_served_confidence_is_the_pipelines(tiny_model_dir, method):
    """The same statistics and UQ function as rule `infer` + rule `uq` on a dataset row with the same prompt and id."""
    from uqroute.inference import resolve_settings
    from uqroute.inference.run import _slm_shard
    from uqroute.inference.statistics import statistics_for
    from uqroute.uq import METHODS

    doc = _doc(tiny_model_dir, method)
    scorer = SLMScorer(doc, tiny_model_dir)
    try:
        rows = [
            {
                "id": f"q{i}",
                "dataset": "x",
                "domain": "commonsense",
                "task_type": "FF",
                "question": q,
                "context": None,
                "choices": [],
                "prompt": q,
            }
            for i, q in enumerate(QUESTIONS[:3])
        ]
        cfg = resolve_settings(INFERENCE)
        b = {"answer": 8, "sample": 6, "verbal": 5}
        recs = _slm_shard(
            scorer.backend,
            rows,
            fmt="text",
            task_type="FF",
            b=b,
            cfg=cfg,
            seed=0,
            spec={},
            layer=4,
            stats=statistics_for([method]),
        )
        frame = pl.concat(
            [pl.DataFrame(rows).select("id", "task_type"), pl.DataFrame(recs).drop("id", "_hidden")], how="horizontal"
        )
        want = METHODS[method](frame)
        for r, w in zip(rows, want):
            got = scorer.score([{"role": "user", "content": r["prompt"]}], 8, r["id"])
            assert got.confidence == pytest.approx(w, rel=1e-6, abs=1e-9, nan_ok=True)
    finally:
        scorer.close()


def test_concurrent_requests_share_the_pool(tiny_model_dir):
    doc = _doc(tiny_model_dir)
    scorer = SLMScorer(doc, tiny_model_dir)
    try:
        alone = {}
        for i, q in enumerate(QUESTIONS):
            alone[q] = scorer.score([{"role": "user", "content": q}], 8, f"r{i}")
        steps_alone = scorer.worker.steps
        out, barrier = {}, threading.Barrier(len(QUESTIONS))

        def ask(i, q):
            barrier.wait()
            out[q] = scorer.score([{"role": "user", "content": q}], 8, f"c{i}")

        threads = [threading.Thread(target=ask, args=(i, q)) for i, q in enumerate(QUESTIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        steps_together = scorer.worker.steps - steps_alone
        # each request alone needs its own prefill and decoding steps; together they share them
        assert steps_together < steps_alone / 2, (steps_together, steps_alone)
        for q in QUESTIONS:
            assert out[q].text == alone[q].text
            assert out[q].confidence == pytest.approx(alone[q].confidence, rel=1e-4)
        assert scorer.worker.in_flight == 0
    finally:
        scorer.close()


def test_engine_errors_fail_only_their_request(tiny_model_dir):
    from uqroute.inference.jobs import Branch, Job

    be = TransformersBackend(tiny_model_dir, progress=False)
    w = EngineWorker(be.engine(), hidden_layer=None, name="t")
    try:
        too_long = w.submit([Job(list(range(5, 1030)), [Branch(8)])])  # the tiny model's context is 1024
        with pytest.raises(ValueError, match="exceed the model's context"):
            too_long.result(30)
        ok = w.submit([Job(be.encode([{"role": "user", "content": "Hi"}]), [Branch(3)])]).result(30)
        assert len(ok[0].branches[0].token_ids) >= 1
    finally:
        w.close()
    assert not w.alive
    with pytest.raises(Exception, match="not running"):
        w.submit([Job([1, 2], [Branch(1)])]).result(5)


class FakeUpstream:
    """Duck-typed upstream for the Python API's branches (the slow tests use a real vLLM server)."""

    model = "big"

    def __init__(self, fail=False):
        self.fail, self.calls = fail, []

    def complete(self, request):
        self.calls.append(request)
        if self.fail:
            raise UpstreamError(
                "the upstream LLM at http://x could not be reached after the client's retries",
                502,
                "upstream_unreachable",
            )
        return {
            "id": "u",
            "object": "chat.completion",
            "model": "big",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris"}, "finish_reason": "stop"}],
        }

    def close(self):
        pass


def test_route_both_branches_and_fallback(tiny_model_dir):
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    # route nothing (the tiny model never ends within its 8-token budget: its cut-off answer is served, marked)
    with Router(_doc(tiny_model_dir, fraction=0.0), upstream=FakeUpstream(), on_truncated="mark") as r:
        out = r.route(msgs)
        assert out["uqroute"]["answered_by"] == "slm" and out["model"] == "tiny" and not out["uqroute"]["routed"]
        assert out["uqroute"]["threshold"] is None  # −∞, as null
        assert out["uqroute"]["truncated"] and out["uqroute"]["threshold_source"] == "truncated"
        short = r.route(msgs, max_tokens=2)  # the client's max_tokens cuts the reply, not the scoring
        assert (
            short["usage"]["completion_tokens"] == 2 and short["uqroute"]["confidence"] == out["uqroute"]["confidence"]
        )
    with Router(
        _doc(tiny_model_dir, fraction=0.0), upstream=FakeUpstream()
    ) as r:  # by default, a cut-off answer is routed
        out = r.route(msgs)
        assert out["uqroute"]["answered_by"] == "llm" and out["uqroute"]["threshold_source"] == "truncated"
    up = FakeUpstream()
    with Router(_doc(tiny_model_dir, fraction=1.0), upstream=up) as r:  # route everything
        out = r.route(msgs, max_tokens=5, temperature=0.3)
        info = out["uqroute"]
        assert info["answered_by"] == "llm" and info["model"] == "big" and info["routed"]
        assert out["choices"][0]["message"]["content"] == "Paris"
        assert 0 <= info["confidence"] <= 1 and info["latency"]["upstream_s"] >= 0
        assert up.calls[0]["temperature"] == 0.3 and up.calls[0]["messages"] == msgs
        assert r.monitor.state().realised_fraction == 1.0
    with Router(_doc(tiny_model_dir, fraction=1.0), upstream=FakeUpstream(fail=True)) as r:
        with pytest.raises(UpstreamError, match="could not be reached"):
            r.route(msgs)
    with Router(_doc(tiny_model_dir, fraction=1.0), upstream=FakeUpstream(fail=True), fallback=True) as r:
        out = r.route(msgs)
        assert (
            out["uqroute"]["answered_by"] == "slm_fallback"
            and "could not be reached" in out["uqroute"]["upstream_error"]
        )
        assert out["model"] == "tiny"
        text = r.metrics.render().decode()
        assert (
            'uqroute_router_requests_total{answered_by="slm_fallback",router="uqroute-tiny-perplexity",status="ok"} 1.0'
            in text
        )
        assert 'uqroute_router_upstream_errors_total{code="upstream_unreachable"' in text
        assert "uqroute_router_llm_fraction_realised" in text and "uqroute_router_w1_holdout" in text


def test_parse_request_refuses_malformed_requests():
    names = ("r",)
    ok = parse_request(
        {"model": "r", "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}, model_names=names
    )
    assert (
        ok["messages"] == [{"role": "user", "content": "Hi"}] and ok["stream"] is False and ok["slm_max_tokens"] is None
    )
    for body, status, match in (
        ([], 400, "JSON object"),
        ({"messages": [{"role": "user", "content": "x"}]}, 400, "model is required"),
        ({"model": "gpt-x", "messages": [{"role": "user", "content": "x"}]}, 404, "does not exist"),
        ({"model": "r"}, 400, "messages must be a non-empty list"),
        ({"model": "r", "messages": []}, 400, "non-empty"),
        ({"model": "r", "messages": [{"role": "robot", "content": "x"}]}, 400, r"messages\[0\].role"),
        ({"model": "r", "messages": [{"role": "user", "content": 3}]}, 400, r"messages\[0\].content"),
        ({"model": "r", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400, "only text parts"),
        ({"model": "r", "messages": [{"role": "system", "content": "x"}]}, 400, "at least one user message"),
        (
            {"model": "r", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
            400,
            "max_tokens must be an integer",
        ),
        ({"model": "r", "messages": [{"role": "user", "content": "x"}], "n": 2}, 400, "n must be 1"),
        ({"model": "r", "messages": [{"role": "user", "content": "x"}], "temperature": 5}, 400, "temperature"),
        ({"model": "r", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, 400, "stream"),
        ({"model": "r", "messages": [{"role": "user", "content": "x"}], "tools": [{}]}, 400, "tools"),
    ):
        with pytest.raises(RequestError, match=match) as e:
            parse_request(body, model_names=names)
        assert e.value.status == status


def test_probe_router_scores_the_hidden_state_like_the_pipeline(tiny_model_dir, tmp_path):
    """ood_probe: the hidden state of inference.hidden_layer at the last prompt token, scored by the router's probe file."""
    from uqroute.inference import resolve_settings
    from uqroute.inference.run import _slm_shard
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
    save_probe(tmp_path / "ood_probe.safetensors", probe, training_datasets=["a"])
    doc = _doc(tiny_model_dir, "ood_probe")
    doc["inference"]["hidden_layer"] = -2
    doc["probe"] = {
        "path": "ood_probe.safetensors",
        "sha256": file_sha256(tmp_path / "ood_probe.safetensors"),
        "training_datasets": ["a"],
    }
    scorer = SLMScorer(doc, tiny_model_dir, router_dir=tmp_path)
    try:
        rows = [
            {
                "id": "q0",
                "dataset": "x",
                "domain": "commonsense",
                "task_type": "FF",
                "question": QUESTIONS[0],
                "context": None,
                "choices": [],
                "prompt": QUESTIONS[0],
            }
        ]
        recs = _slm_shard(
            scorer.backend,
            rows,
            fmt="text",
            task_type="FF",
            b={"answer": 8, "sample": 6, "verbal": 5},
            cfg=resolve_settings(INFERENCE),
            seed=0,
            spec={},
            layer=3,
            stats=["greedy", "hidden"],
        )  # -2 of 5 states
        want = probe.predict(np.asarray(recs[0]["_hidden"], dtype=np.float32)[None, :])[0]
        got = scorer.score([{"role": "user", "content": QUESTIONS[0]}], 8, "q0")
        assert got.confidence == pytest.approx(want, rel=1e-5)
    finally:
        scorer.close()
    doc["probe"]["sha256"] = "0" * 64
    with pytest.raises(ValueError, match="is not the 0000"):
        SLMScorer(doc, tiny_model_dir, router_dir=tmp_path)
