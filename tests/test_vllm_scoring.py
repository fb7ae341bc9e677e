"""The vLLM backend's own half, without vLLM: its rounds of jobs and follow-up turns, its generation store and
its teacher-forced scoring pass, against our engine on a tiny random model (fast).

Our engine runs a stage-like job list (greedy answer with entropies and the hidden state, two seeded samples,
follow-up p(True) and verbalization-2s turns, a verbalization-1s job); its generated tokens go into a
:class:`GenerationStore` as vLLM would have returned them (stop token included). A
:class:`VLLMBackend` whose vLLM python does not exist then runs the same jobs: every request is answered by
the store (starting vLLM would fail), and the scoring pass must give our engine's entropies, hidden states
and p(True) distributions. The equivalence with a real vLLM is tests/test_vllm_backend.py (slow).
"""

from __future__ import annotations

import numpy as np
import pytest

from uqroute.inference.jobs import Branch, Job


def _jobs(be, follow_ups: bool = True):
    from uqroute.inference.prompts import (
        answer_conversation,
        ptrue_conversation,
        verbal_1s_conversation,
        verbal_2s_conversation,
    )

    t_ids, f_ids = be.single_token_ids(["True", " True"]), be.single_token_ids(["False", " False"])
    jobs = []
    for q, text in enumerate(
        [
            "What is the capital of France? Options: A. Paris B. Rome",
            "Solve: 2 + 40 = ? Reason briefly.",
            "Is the answer True or False?",
        ]
    ):

        def turns(res, text=text):
            shown = be.decode(res.branches[0].token_ids)
            return [
                Job(be.encode(ptrue_conversation(text, shown, text, [], None)), next_token_groups=[t_ids, f_ids]),
                Job(be.encode(verbal_2s_conversation(text, shown)), [Branch(6, entropy=False)]),
            ]

        jobs.append(
            Job(
                be.encode(answer_conversation(text)),
                [Branch(12), Branch(8, 1.0, seed=100 + q, entropy=False), Branch(8, 1.0, seed=200 + q, entropy=False)],
                want_hidden=True,
                follow_up=turns if follow_ups else None,
            )
        )
        jobs.append(Job(be.encode(verbal_1s_conversation(text)), [Branch(10, entropy=False)]))
    return jobs


def _walk(jobs, results):
    """Every (job, result) pair, follow-up turns included, in a fixed order."""
    for job, res in zip(jobs, results):
        yield job, res
        if job.follow_up is not None:
            yield from _walk(job.follow_up(res), res.follow_ups)


@pytest.fixture()
def backends(tiny_model_dir, tmp_path):
    from uqroute.inference.transformers_backend import TransformersBackend
    from uqroute.inference.vllm_backend import VLLMBackend

    ours = TransformersBackend(tiny_model_dir, dtype="float32", progress=False, pack_weights=False)
    theirs = VLLMBackend(
        tiny_model_dir,
        dtype="float32",
        progress=False,
        pack_weights=False,
        vllm={"python": str(tmp_path / "no-vllm" / "python")},
        store=tmp_path / "gen.sqlite",
        identity="tiny",
    )
    yield ours, theirs
    theirs.close()


def _fill_store(ours_jobs, ours_res, vb):
    items = {}
    for job, res in _walk(ours_jobs, ours_res):
        for b, r in zip(job.branches, res.branches):
            stop = r.finish_reason == "stop"
            items[vb._key(vb._request(job, b))] = {
                "token_ids": r.token_ids + ([min(vb.eos_ids)] if stop else []),
                "logprobs": r.logprobs + ([-0.5] if stop else []),
                "finish_reason": r.finish_reason,
            }
    vb.store.put(items)


def test_store_rounds_and_scoring_match_our_engine(backends):
    ours, vb = backends
    jobs = _jobs(ours)
    res_ours = ours.run_jobs(jobs, hidden_layer=-2)
    _fill_store(jobs, res_ours, vb)
    res_v = vb.run_jobs(_jobs(vb), hidden_layer=-2)
    assert vb.stats["vllm_requests"] == 0 and vb.stats["vllm_requests_stored"] > 0
    pairs_o, pairs_v = list(_walk(jobs, res_ours)), list(_walk(_jobs(vb), res_v))
    assert len(pairs_o) == len(pairs_v) == 3 * 2 + 3 * 2  # answer + verbal-1s jobs, two turns per answer
    n_entropies = 0
    for (job, a), (_, b) in zip(pairs_o, pairs_v):
        assert a.n_prompt_tokens == b.n_prompt_tokens
        for spec, x, y in zip(job.branches, a.branches, b.branches):
            assert x.token_ids == y.token_ids and x.finish_reason == y.finish_reason  # the stop token was stripped
            assert y.logprobs == pytest.approx(x.logprobs)
            if spec.entropy:
                assert y.entropies == pytest.approx(x.entropies, abs=1e-5)
                n_entropies += len(y.entropies)
            else:
                assert y.entropies is None
        if job.want_hidden:
            np.testing.assert_allclose(b.hidden, a.hidden, rtol=1e-5, atol=1e-5)
        else:
            assert b.hidden is None
        if job.next_token_groups:
            assert b.group_probs == pytest.approx(a.group_probs, abs=1e-6)
    assert n_entropies > 0
    assert vb.stats["max_logprob_diff"] < 1e-4  # the teacher-forced pass agrees with the recorded log-probs


def test_scoring_handles_an_empty_reply_and_prompt_only_jobs(backends):
    """A reply that stops at once has no tokens (empty entropies); a job with no branches is prefill only."""
    ours, vb = backends
    t_ids = vb.single_token_ids(["True"])
    jobs = [
        Job(ours.encode([{"role": "user", "content": "Hi"}]), [Branch(4)], want_hidden=True),
        Job(ours.encode([{"role": "user", "content": "True or False?"}]), next_token_groups=[t_ids]),
    ]
    vb.store.put(
        {
            vb._key(vb._request(jobs[0], jobs[0].branches[0])): {
                "token_ids": [min(vb.eos_ids)],
                "logprobs": [-0.1],
                "finish_reason": "stop",
            }
        }
    )
    res = vb.run_jobs(jobs, hidden_layer=-1)
    ref = ours.run_jobs([Job(jobs[0].prompt_ids, [], want_hidden=True), jobs[1]], hidden_layer=-1)
    assert res[0].branches[0].token_ids == [] and res[0].branches[0].entropies == []
    np.testing.assert_allclose(res[0].hidden, ref[0].hidden, rtol=1e-5, atol=1e-5)
    assert res[1].group_probs == pytest.approx(ref[1].group_probs, abs=1e-6)


def test_missing_vllm_is_a_clear_error(backends):
    from uqroute.inference.vllm_backend import VLLMError

    _, vb = backends
    with pytest.raises(VLLMError, match="vLLM python .* does not exist"):
        vb.run_jobs([Job([1, 2, 3], [Branch(2)])])


def test_load_backend_picks_vllm_per_model(tiny_model_dir, tmp_path):
    from uqroute.inference import load_backend
    from uqroute.inference.vllm_backend import VLLMBackend

    be = load_backend(
        {"backend": "vllm"},
        tiny_model_dir,
        {"dtype": "float32", "pack_weights": False},
        cache_dir=tmp_path,
        name="tiny",
    )
    assert isinstance(be, VLLMBackend) and be.store.path == tmp_path / "generations.sqlite"
    assert be.worker_settings["max_model_len"] == 1024  # capped at the model's context
    be.close()
    other = load_backend(
        {},
        tiny_model_dir,
        {"dtype": "float32", "pack_weights": False, "backend": "vllm", "vllm": {"max_model_len": 256}},
        cache_dir=tmp_path,
        name="tiny",
    )
    assert other.worker_settings["max_model_len"] == 256 and other.worker_settings["dtype"] == "float32"
    other.close()
    assert not isinstance(load_backend({"backend": "transformers"}, tiny_model_dir, {"backend": "vllm"}), VLLMBackend)


def test_a_local_judge_stays_on_our_engine(tiny_model_dir, tmp_path):
    """The vLLM engine is for rules infer / infer_llm (their env has vLLM); the judge job's env has not."""
    from uqroute.inference.transformers_backend import TransformersBackend
    from uqroute.inference.vllm_backend import VLLMBackend
    from uqroute.judge.run import judge_backend

    be = judge_backend(
        {"model": "tiny"},
        {"backend": "vllm"},
        tiny_model_dir,
        {"backend": "vllm", "dtype": "float32", "pack_weights": False},
        cache_dir=tmp_path,
    )
    inner = be._backend()  # the judge's model, loaded on first use
    assert isinstance(inner, TransformersBackend) and not isinstance(inner, VLLMBackend)
