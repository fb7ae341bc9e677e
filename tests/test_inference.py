"""Inference stage: the batched engine's mechanics on a tiny random model, run_inference, shards."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
import torch

from uqroute.inference import load_backend, run_inference
from uqroute.inference.prefill import common_prefix_len
from uqroute.inference.run import budgets
from uqroute.inference.seeding import branch_seed
from uqroute.inference.transformers_backend import (
    Branch,
    Job,
    TransformersBackend,
    _pick_dtype,
    resolve_layer,
)
from uqroute.io import read_hidden_states
from uqroute.schema import check_frame

CONVS = [
    [{"role": "user", "content": "Is the proposed answer True or False?"}],
    [
        {
            "role": "user",
            "content": "Question: What is the capital of France? Options: A. Paris B. Rome C. Oslo D. Bern. "
            "Answer with the letter of the correct option only.",
        }
    ],
    [{"role": "user", "content": "Answer: 42"}],
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny matrices: one thread avoids OpenMP spin-waits, which dominate on a busy 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    be = TransformersBackend(tiny_model_dir, batch_size=4, progress=False)
    be.min_shared_prefix = 1  # exercise the shared-prefix prefill in every batch
    return be


def _forward_logprobs(be, prompt_ids, gen_ids, layer=None, steps=False):
    """Teacher-forced plain forward over prompt + generated tokens: the generated tokens' log-probs,
    the entropies, the next-token log-probs after the prompt (or, ``steps``, at every generated
    position) and the hidden state of ``layer`` at the last prompt token."""
    ids = torch.tensor([prompt_ids + gen_ids])
    with torch.inference_mode():
        out = be.model(ids, output_hidden_states=True)
    lp = torch.log_softmax(out.logits[0].float(), -1)
    P = len(prompt_ids)
    lps = [lp[P - 1 + k, t].item() for k, t in enumerate(gen_ids)]
    ents = [float(-(lp[P - 1 + k].exp() * lp[P - 1 + k]).sum()) for k in range(len(gen_ids))]
    hidden = out.hidden_states[layer][0, P - 1].numpy() if layer is not None else None
    return lps, ents, (lp[P - 1 : P - 1 + len(gen_ids)] if steps else lp[P - 1]), hidden


def _check_greedy(step_lp, token_ids):
    """Every greedy token is the argmax of the teacher-forced next-token distribution (ties within 1e-5 allowed)."""
    for k, t in enumerate(token_ids):
        row = step_lp[k]
        assert t == int(row.argmax()) or float(row[t]) >= float(row.max()) - 1e-5, (k, t, int(row.argmax()))


def test_greedy_logprobs_entropies_hidden_match_plain_forward(backend):
    jobs = [Job(backend.encode(c), [Branch(12)], want_hidden=True) for c in CONVS]
    res = backend.run_jobs(jobs, hidden_layer=-2)
    layer = resolve_layer(-2, backend.n_layers)
    assert layer == backend.n_layers - 1
    for job, r in zip(jobs, res):
        b = r.branches[0]
        assert 1 <= len(b.token_ids) <= 12 and len(b.logprobs) == len(b.token_ids) == len(b.entropies)
        lps, ents, step_lp, hidden = _forward_logprobs(backend, job.prompt_ids, b.token_ids, layer, steps=True)
        np.testing.assert_allclose(b.logprobs, lps, atol=1e-4)
        np.testing.assert_allclose(b.entropies, ents, atol=1e-4)
        np.testing.assert_allclose(r.hidden, hidden, atol=1e-4)
        assert r.n_prompt_tokens == len(job.prompt_ids)
        # greedy: every token (not only the first) is the argmax of the teacher-forced plain forward
        _check_greedy(step_lp, b.token_ids)
        if b.finish_reason == "stop":  # it stopped because an end-of-sequence token was the argmax next
            _, _, after, _ = _forward_logprobs(backend, job.prompt_ids + b.token_ids, [])
            assert int(after.argmax()) in backend.eos_ids


def test_sampled_logprobs_match_log_softmax_at_temperature_one(backend):
    """At T = 1 a sample's recorded log-probs are log_softmax of the plain forward at each sampled token."""
    jobs = [
        Job(backend.encode(c), [Branch(10, 1.0, branch_seed(3, f"q{i}", k)) for k in range(3)])
        for i, c in enumerate(CONVS)
    ]
    for job, r in zip(jobs, backend.run_jobs(jobs)):
        for b in r.branches:
            assert b.token_ids and len(b.logprobs) == len(b.token_ids) == len(b.entropies)
            lps, ents, _, _ = _forward_logprobs(backend, job.prompt_ids, b.token_ids)
            np.testing.assert_allclose(b.logprobs, lps, atol=1e-4)
            np.testing.assert_allclose(b.entropies, ents, atol=1e-4)
        assert len({tuple(b.token_ids) for b in r.branches}) > 1


def test_hidden_layer_convention():
    assert resolve_layer(-8, 30) == 23  # output of the 8th-to-last of 30 layers
    assert resolve_layer(-1, 30) == 30
    assert resolve_layer(0, 30) == 0
    with pytest.raises(ValueError, match="out of range"):
        resolve_layer(-32, 30)
    with pytest.raises(ValueError, match="out of range"):
        resolve_layer(31, 30)


def test_batching_and_padding_do_not_change_results(backend):
    alone = [backend.run_jobs([Job(backend.encode(c), [Branch(10)])])[0] for c in CONVS]
    together = backend.run_jobs([Job(backend.encode(c), [Branch(10)]) for c in CONVS])
    for a, t in zip(alone, together):
        assert a.branches[0].token_ids == t.branches[0].token_ids
        np.testing.assert_allclose(a.branches[0].logprobs, t.branches[0].logprobs, atol=1e-4)


def test_shared_prefix_prefill_matches_separate_runs(backend):
    stem = "Solve the following math problem. Reason briefly, then give the final answer on its own last line. "
    convs = [
        [{"role": "user", "content": stem + q}] for q in ("Problem: 2+2?", "Problem: what is 40 plus 2 in all?", "x")
    ]
    jobs = [Job(backend.encode(c), [Branch(8)], want_hidden=True) for c in convs]
    n0 = common_prefix_len([j.prompt_ids for j in jobs])
    assert n0 > 10
    before = backend.stats["prompt_tokens"]
    together = backend.run_jobs(jobs, hidden_layer=-1)
    assert backend.stats["prompt_tokens"] - before == sum(len(j.prompt_ids) for j in jobs) - 2 * min(
        n0, min(len(j.prompt_ids) for j in jobs) - 1
    )
    for job, t in zip(jobs, together):
        alone = backend.run_jobs([job], hidden_layer=-1)[0]
        assert alone.branches[0].token_ids == t.branches[0].token_ids
        np.testing.assert_allclose(alone.branches[0].logprobs, t.branches[0].logprobs, atol=1e-4)
        np.testing.assert_allclose(alone.hidden, t.hidden, atol=1e-4)


def test_finish_reason_and_budget(backend):
    eos = min(backend.eos_ids)
    res = backend.run_jobs([Job(backend.encode(CONVS[0]), [Branch(3), Branch(40)])])[0]
    short, long = res.branches
    assert short.finish_reason == "length" and len(short.token_ids) == 3
    assert long.finish_reason in ("stop", "length") and len(long.token_ids) <= 40
    assert eos not in long.token_ids
    assert short.token_ids == long.token_ids[:3]  # same greedy path from one shared prefill


def test_samples_differ_and_are_reproducible(backend):
    def run(seed, other_jobs=()):
        job = Job(backend.encode(CONVS[1]), [Branch(8, 1.0, branch_seed(seed, "q1", k)) for k in range(5)])
        res = backend.run_jobs([job, *other_jobs])[0]
        return [tuple(b.token_ids) for b in res.branches]

    a, b = run(7), run(7)
    assert a == b
    assert len(set(a)) > 1  # samples differ from one another
    assert run(8) != a  # another seed, other samples
    # independent of what else shares the batch
    others = [Job(backend.encode(CONVS[0]), [Branch(5, 1.0, 123)]), Job(backend.encode(CONVS[2]), [Branch(6)])]
    assert run(7, others) == a


def test_continuous_batching_matches_jobs_run_alone(tiny_model_dir):
    """A pool much smaller than the work: rows join as others finish, so the pool's cache is
    left-padded both ways, holes are refilled and buffers regrow; results must not change."""
    be = TransformersBackend(tiny_model_dir, batch_size=1, max_batch_rows=3, progress=False)
    be.min_shared_prefix = 1
    convs = CONVS + [[{"role": "user", "content": "word " * k}] for k in (1, 30, 3, 12)]
    budgets = [3, 12, 5, 9, 2, 15, 7]
    jobs = [
        Job(be.encode(c), [Branch(m)] + ([Branch(4, 1.0, 11 + i, entropy=False)] if i % 2 else []), want_hidden=True)
        for i, (c, m) in enumerate(zip(convs, budgets))
    ]
    together = be.run_jobs(jobs, hidden_layer=-1)
    assert be.stats["pool_joins"] >= 3  # new rows really joined a running pool
    for job, t in zip(jobs, together):
        alone = be.run_jobs([job], hidden_layer=-1)[0]
        assert [b.token_ids for b in alone.branches] == [b.token_ids for b in t.branches]
        assert [b.finish_reason for b in alone.branches] == [b.finish_reason for b in t.branches]
        np.testing.assert_allclose(alone.branches[0].logprobs, t.branches[0].logprobs, atol=1e-4)
        np.testing.assert_allclose(alone.branches[0].entropies, t.branches[0].entropies, atol=1e-4)
        np.testing.assert_allclose(alone.hidden, t.hidden, atol=1e-4)


def test_group_prefix_is_prefilled_once(backend):
    stem = "Question: which of these cities is the capital of France? Options: A. Paris B. Rome C. Oslo. "
    convs = [
        [{"role": "user", "content": stem + "Answer with the letter."}],
        [{"role": "user", "content": stem + "Give your answer and a confidence from 0 to 100."}],
    ]
    jobs = [Job(backend.encode(c), [Branch(6)], group="q1") for c in convs]
    solo = [Job(j.prompt_ids, [Branch(6)]) for j in jobs]
    g = common_prefix_len([jobs[0].prompt_ids, jobs[1].prompt_ids])
    before = backend.stats["prompt_tokens"]
    together = backend.run_jobs(jobs)
    spent = backend.stats["prompt_tokens"] - before
    assert spent <= sum(len(j.prompt_ids) for j in jobs) - (g - 1)
    for j, t in zip(solo, together):
        a = backend.run_jobs([j])[0]
        assert a.branches[0].token_ids == t.branches[0].token_ids
        np.testing.assert_allclose(a.branches[0].logprobs, t.branches[0].logprobs, atol=1e-4)


def test_follow_up_jobs_start_from_the_parent_cache(backend):
    t_ids, f_ids = backend.single_token_ids(["True", " True"]), backend.single_token_ids(["False", " False"])
    conv = CONVS[1]

    def follow(res):
        shown = backend.decode(res.branches[0].token_ids)
        turn = [*conv, {"role": "assistant", "content": shown}]
        return [
            Job(
                backend.encode([*turn, {"role": "user", "content": "Is your answer True or False?"}]),
                next_token_groups=[t_ids, f_ids],
                group="q",
            ),
            Job(
                backend.encode([*turn, {"role": "user", "content": "How confident are you, 0 to 100?"}]),
                [Branch(6)],
                group="q",
            ),
        ]

    parent = Job(backend.encode(conv), [Branch(10), Branch(5, 1.0, 3, entropy=False)], follow_up=follow)
    other = Job(backend.encode(CONVS[0]), [Branch(4)])
    before = backend.stats.get("prompt_tokens_reused", 0)
    res = backend.run_jobs([parent, other])
    assert len(res) == 2 and res[1].follow_ups is None
    assert backend.stats["prompt_tokens_reused"] - before >= len(parent.prompt_ids) - 1
    fu = res[0].follow_ups
    assert len(fu) == 2 and fu[0].branches == [] and len(fu[1].branches) == 1
    # the same follow-up prompts run from scratch give the same answers
    fresh = backend.run_jobs(
        [Job(j.prompt_ids, j.branches, next_token_groups=j.next_token_groups) for j in follow(res[0])]
    )
    np.testing.assert_allclose(fu[0].group_probs, fresh[0].group_probs, atol=1e-5)
    assert fu[1].branches[0].token_ids == fresh[1].branches[0].token_ids
    np.testing.assert_allclose(fu[1].branches[0].logprobs, fresh[1].branches[0].logprobs, atol=1e-4)


def test_cache_layers_the_pool_cannot_decode_are_refused():
    from types import SimpleNamespace

    from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

    from uqroute.inference.kvcache import check_layers

    def layer(cls, **kw):
        lay = cls(**kw)
        lay.keys = lay.values = torch.zeros(1, 1, 4, 2)
        return lay

    check_layers(SimpleNamespace(layers=[layer(DynamicLayer)]), 10_000, "m")
    sliding = SimpleNamespace(layers=[layer(DynamicLayer), layer(DynamicSlidingWindowLayer, sliding_window=16)])
    check_layers(sliding, 15, "m")  # never slides: fine
    with pytest.raises(ValueError, match="layer 1 uses sliding-window attention"):
        check_layers(sliding, 40, "m")
    with pytest.raises(TypeError, match="KV-cache layer 0 is a SimpleNamespace"):
        check_layers(SimpleNamespace(layers=[SimpleNamespace(keys=None)]), 10, "m")


def test_prepacked_linear_layers_agree_with_plain_torch(tiny_model_dir):
    from uqroute.inference.packing import packing_available

    plain = TransformersBackend(tiny_model_dir, progress=False, pack_weights=False)
    assert plain.packed_layers == 0
    assert any(type(m) is torch.nn.Linear for m in plain.model.modules())
    packed = TransformersBackend(tiny_model_dir, progress=False)
    if not packing_available():
        pytest.skip("this PyTorch build has no oneDNN prepacked linear")
    assert packed.packed_layers > 0
    assert not any(type(m) is torch.nn.Linear for m in packed.model.modules())
    ids = torch.tensor([plain.encode(CONVS[1]), plain.encode(CONVS[1])])
    with torch.inference_mode():
        for x in (ids, ids[:, :1]):  # a prefill and a one-token step
            a, b = plain.model(x).logits, packed.model(x).logits
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=0, atol=1e-4 * float(a.abs().max()))
    jobs = [Job(plain.encode(c), [Branch(8)]) for c in CONVS]
    for x, y in zip(plain.run_jobs(jobs), packed.run_jobs(jobs)):
        np.testing.assert_allclose(x.branches[0].logprobs[:1], y.branches[0].logprobs[:1], atol=1e-4)


@pytest.mark.parametrize("fail_after", [0, 3])
def test_packing_failure_keeps_plain_linear_layers(fail_after, tiny_model_dir, monkeypatch):
    """A build that cannot pack (the trial layer fails): every layer stays plain. A failure after some
    layers were packed (their plain weights already dropped, to keep the peak memory at one copy): those
    stay packed, the rest plain, and the model still runs."""
    from uqroute.inference import packing

    if not packing.packing_available():
        pytest.skip("this PyTorch build has no oneDNN prepacked linear")
    calls = []
    real = torch.ops.mkldnn._reorder_linear_weight

    def refuse(w, hint):
        calls.append(1)
        if len(calls) > fail_after:
            raise RuntimeError("unsupported weight format")
        return real(w, hint)

    monkeypatch.setattr(torch.ops.mkldnn, "_reorder_linear_weight", refuse)
    be = TransformersBackend(tiny_model_dir, progress=False)
    assert be.packed_layers == fail_after and len(calls) == fail_after + 1
    kinds = [type(m) for m in be.model.modules() if type(m) in (torch.nn.Linear, packing._packed_linear_class())]
    assert kinds.count(packing._packed_linear_class()) == fail_after and kinds.count(torch.nn.Linear) > 0
    assert be.run_jobs([Job(be.encode(CONVS[0]), [Branch(3)])])[0].branches[0].token_ids


def test_branch_seed_is_stable():
    assert branch_seed(0, "gsm8k/test/1", 0) == branch_seed(0, "gsm8k/test/1", 0)
    assert len({branch_seed(0, "gsm8k/test/1", k) for k in range(5)}) == 5
    assert branch_seed(0, "a", 0) != branch_seed(1, "a", 0)


def test_next_token_groups_match_softmax(backend):
    t_ids = backend.single_token_ids(["True", " True"])
    f_ids = backend.single_token_ids(["False", " False"])
    assert t_ids and f_ids
    job = Job(backend.encode(CONVS[0]), next_token_groups=[t_ids, f_ids])
    r = backend.run_jobs([job])[0]
    _, _, first, _ = _forward_logprobs(backend, job.prompt_ids, [])
    p = first.exp()
    assert r.group_probs[0] == pytest.approx(float(p[t_ids].sum()), abs=1e-6)
    assert r.group_probs[1] == pytest.approx(float(p[f_ids].sum()), abs=1e-6)
    assert r.branches == []


def test_generate_protocol(backend):
    from uqroute.inference import ChatBackend

    assert isinstance(backend, ChatBackend)
    out = backend.generate(CONVS[:2], max_new_tokens=5, temperature=1.0, n=3, seed=1, top_logprobs=2)
    assert [len(x) for x in out] == [3, 3]
    g = out[0][0]
    assert len(g.tokens) == len(g.token_logprobs) == len(g.top_logprobs) <= 5
    assert all(len(d) == 2 for d in g.top_logprobs)
    assert "".join(g.tokens) == g.text or g.text  # decoded text
    again = backend.generate(CONVS[:2], max_new_tokens=5, temperature=1.0, n=3, seed=1)
    assert [[x.text for x in y] for y in again] == [[x.text for x in y] for y in out]
    greedy = backend.generate(CONVS[:1], max_new_tokens=5, n=2)
    assert greedy[0][0].text == greedy[0][1].text


def test_bad_inputs(backend, tmp_path):
    with pytest.raises(ValueError, match="empty prompt"):
        backend.run_jobs([Job([], [Branch(3)])])
    with pytest.raises(ValueError, match="max_new_tokens"):
        backend.run_jobs([Job([1, 2], [Branch(0)])])
    with pytest.raises(ValueError, match="hidden_layer"):
        backend.run_jobs([Job([1, 2], want_hidden=True)])
    with pytest.raises(FileNotFoundError, match="config.json"):
        TransformersBackend(tmp_path)
    with pytest.raises(ValueError, match="dtype"):
        _pick_dtype("int3", "cpu")
    assert _pick_dtype("auto", "cpu") == torch.float32 and _pick_dtype("auto", "cuda:0") == torch.bfloat16


# ------------------------------------------------------------------ helpers of run_inference
def test_budgets():
    cfg = {
        "max_new_tokens": {"MCQ": 12, "TF": 8, "FF": 48, "math": 96},
        "sample_max_new_tokens": None,
        "verbal_max_new_tokens": 24,
    }
    assert budgets(cfg, {}, "FF", "math") == {"answer": 96, "sample": 96, "verbal": 24}
    assert budgets(cfg, {}, "FF", "commonsense")["answer"] == 48
    assert budgets({**cfg, "sample_max_new_tokens": 32}, {}, "MCQ", "commonsense") == {
        "answer": 12,
        "sample": 12,
        "verbal": 24,
    }
    assert budgets({**cfg, "sample_max_new_tokens": 32}, {}, "FF", "math") == {"answer": 96, "sample": 32, "verbal": 24}
    assert budgets(cfg, {"max_new_tokens_scale": 2.5}, "TF", "commonsense") == {
        "answer": 20,
        "sample": 20,
        "verbal": 60,
    }


# ------------------------------------------------------------------ run_inference end to end
def _data(tmp_path, n=5, dataset="commonsenseqa"):
    choices = [{"label": l, "text": t} for l, t in zip("ABCDE", ["Paris", "Rome", "Oslo", "Bern", "Nice"])]
    rows = []
    for i in range(n):
        rows.append(
            {
                "id": f"{dataset}/validation/{i}",
                "dataset": dataset,
                "domain": "commonsense",
                "task_type": "MCQ",
                "split": "validation",
                "role": "eval",
                "question": f"Which city number {i}?" + " very" * i,
                "context": None,
                "choices": choices,
                "answer": "A",
                "references": ["A"],
                "prompt": f"Question: Which city number {i}?"
                + " very" * i
                + "\nOptions:\nA. Paris\nB. Rome\nAnswer with the letter.",
            }
        )
    p = tmp_path / f"{dataset}.parquet"
    pl.DataFrame(rows).write_parquet(p)
    return p


CFG = {
    "batch_size": 3,
    "max_new_tokens": {"MCQ": 6, "TF": 4, "FF": 8, "math": 8},
    "num_samples": 3,
    "sample_temperature": 1.0,
    "sample_max_new_tokens": 5,
    "verbal_max_new_tokens": 6,
    "hidden_layer": -2,
    "shard_size": 2,
    "dtype": "float32",
}


def _run(tiny_model_dir, tmp_path, data, role="slm", cfg=CFG, name="out"):
    out = tmp_path / f"{name}.parquet"
    hidden = tmp_path / f"{name}.hidden.safetensors" if role == "slm" else None
    run_inference(
        "tiny",
        {"local_dir": str(tiny_model_dir)},
        str(tiny_model_dir),
        str(data),
        str(out),
        str(hidden) if hidden else None,
        role,
        cfg,
        0,
    )
    return out, hidden


def test_run_inference_slm(tiny_model_dir, tmp_path):
    data = _data(tmp_path)
    out, hidden = _run(tiny_model_dir, tmp_path, data)
    df = pl.read_parquet(out)
    check_frame(df, "generations")
    assert df["id"].to_list() == pl.read_parquet(data)["id"].to_list()
    assert not (tmp_path / "out.parquet.shards").exists()
    for r in df.iter_rows(named=True):
        assert len(r["tokens"]) == len(r["token_logprobs"]) == len(r["token_entropies"]) <= 6
        assert len(r["samples"]) == len(r["sample_answers"]) == 3
        assert 0.0 <= r["ptrue"] <= 1.0
        assert r["verbal_1s_response"] is not None and r["verbal_2s_response"] is not None
        assert r["finish_reason"] in ("stop", "length")
        if r["option_prob"] is not None:
            assert 0 < r["option_prob"] <= 1
    ids, arr, meta = read_hidden_states(hidden)
    assert ids == df["id"].to_list() and arr.shape == (5, 32) and arr.dtype == np.float16
    assert meta["layer"] == "3"  # -2 on a 4-layer model: index 3 of 5 hidden states
    # deterministic under the seed
    out2, hidden2 = _run(tiny_model_dir, tmp_path, data, name="again")
    assert pl.read_parquet(out2).equals(df)
    np.testing.assert_array_equal(read_hidden_states(hidden2)[1], arr)


def test_run_inference_llm_role(tiny_model_dir, tmp_path):
    data = _data(tmp_path, n=3)
    out, _ = _run(tiny_model_dir, tmp_path, data, role="llm")
    df = pl.read_parquet(out)
    check_frame(df, "generations")
    assert df["samples"].null_count() == 3 and df["ptrue"].null_count() == 3
    assert df["verbal_2s_response"].null_count() == 3
    assert df["token_logprobs"].null_count() == 0


def test_shards_resume_after_interruption(tiny_model_dir, tmp_path, monkeypatch):
    from uqroute.inference import run as run_mod

    data = _data(tmp_path, n=5)
    reference, _ = _run(tiny_model_dir, tmp_path, data, name="ref")
    calls = []
    kill = True
    real = run_mod._slm_shard

    class Killed(Exception):
        pass

    def flaky(backend, rows, **kw):
        calls.append([r["id"] for r in rows])
        if kill and len(calls) == 2:
            raise Killed("killed")
        return real(backend, rows, **kw)

    monkeypatch.setattr(run_mod, "_slm_shard", flaky)
    with pytest.raises(Killed):
        _run(tiny_model_dir, tmp_path, data, name="resumed")
    shard_dir = tmp_path / "resumed.parquet.shards"
    assert sorted(p.name for p in shard_dir.glob("shard-*.parquet")) == ["shard-00000.parquet"]
    assert not (tmp_path / "resumed.parquet").exists() and not (tmp_path / "resumed.hidden.safetensors").exists()
    calls.clear()
    kill = False
    _run(tiny_model_dir, tmp_path, data, name="resumed")
    assert [len(c) for c in calls] == [2, 1]  # only shards 1 and 2 were computed again
    assert pl.read_parquet(tmp_path / "resumed.parquet").equals(pl.read_parquet(reference))
    ref_ids, ref_hidden, ref_meta = read_hidden_states(tmp_path / "ref.hidden.safetensors")
    ids, hidden, meta = read_hidden_states(tmp_path / "resumed.hidden.safetensors")
    assert ids == ref_ids and meta == ref_meta
    np.testing.assert_array_equal(hidden, ref_hidden)  # the hidden states of the resumed shards too
    assert not shard_dir.exists()


@pytest.mark.parametrize("change", ["seed", "config", "weights"])
def test_a_changed_seed_config_or_model_discards_old_shards(tiny_model_dir, tmp_path, monkeypatch, change):
    import shutil

    from conftest import build_tiny_model_dir

    from uqroute.inference import run as run_mod

    data = _data(tmp_path, n=5)
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    spec = {"local_dir": str(model)}
    real = run_mod._slm_shard
    calls = []
    kill = [True]

    class Killed(Exception):
        pass

    def flaky(backend, rows, **kw):
        calls.append(kw["seed"])
        if kill[0] and len(calls) == 2:
            raise Killed("killed")
        return real(backend, rows, **kw)

    monkeypatch.setattr(run_mod, "_slm_shard", flaky)
    out = tmp_path / "g.parquet"
    with pytest.raises(Killed):
        run_inference(
            "tiny", spec, str(model), str(data), str(out), str(tmp_path / "g.hidden.safetensors"), "slm", CFG, 0
        )
    assert (tmp_path / "g.parquet.shards" / "shard-00000.parquet").is_file()  # one shard of the old run survives
    seed, cfg = (
        (1, CFG) if change == "seed" else (0, {**CFG, "sample_temperature": 0.7}) if change == "config" else (0, CFG)
    )
    if change == "weights":  # the same directory, other weights (a user replaced the files of a local model)
        other = build_tiny_model_dir(tmp_path / "other", seed=1)
        shutil.copy(other / "model.safetensors", model / "model.safetensors")
    calls.clear()
    kill[0] = False
    run_inference(
        "tiny", spec, str(model), str(data), str(out), str(tmp_path / "g.hidden.safetensors"), "slm", cfg, seed
    )
    assert len(calls) == 3  # every shard computed anew: the old run's shard was discarded
    monkeypatch.setattr(run_mod, "_slm_shard", real)
    fresh = tmp_path / "fresh.parquet"
    run_inference(
        "tiny", spec, str(model), str(data), str(fresh), str(tmp_path / "fresh.hidden.safetensors"), "slm", cfg, seed
    )
    assert pl.read_parquet(out).equals(pl.read_parquet(fresh))
    col = "response" if change == "weights" else "samples"
    assert not pl.read_parquet(out)[col].equals(
        pl.read_parquet(_run(tiny_model_dir, tmp_path, data, name="old")[0])[col]
    )


def test_stale_shards_are_discarded(tiny_model_dir, tmp_path):
    data = _data(tmp_path, n=3)
    shard_dir = tmp_path / "out.parquet.shards"
    shard_dir.mkdir()
    (shard_dir / "fingerprint.json").write_text(json.dumps({"fingerprint": "other-run"}))
    pl.DataFrame({"id": ["bogus"]}).write_parquet(shard_dir / "shard-00000.parquet")
    out, _ = _run(tiny_model_dir, tmp_path, data)
    assert pl.read_parquet(out)["id"].to_list() == pl.read_parquet(data)["id"].to_list()


def test_run_inference_bad_inputs(tiny_model_dir, tmp_path):
    data = _data(tmp_path, n=2)
    with pytest.raises(ValueError, match="role"):
        _run(tiny_model_dir, tmp_path, data, role="judge")
    with pytest.raises(ValueError, match="cannot be an SLM"):
        run_inference(
            "gpt",
            {"api": {"model": "gpt-4.1-mini"}},
            None,
            str(data),
            str(tmp_path / "o.parquet"),
            str(tmp_path / "h.safetensors"),
            "slm",
            CFG,
            0,
        )
    bad = tmp_path / "bad.parquet"
    pl.read_parquet(data).drop("prompt").write_parquet(bad)
    with pytest.raises(ValueError, match="prompt"):
        _run(tiny_model_dir, tmp_path, bad)
    with pytest.raises(ValueError, match="out of range"):
        _run(tiny_model_dir, tmp_path, data, cfg={**CFG, "hidden_layer": -9})
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing"])
def test_a_corrupted_data_input_names_the_file_and_writes_nothing(tiny_model_dir, tmp_path, damage):
    from uqroute.io import ArtifactInputError

    data = _data(tmp_path, n=2)
    if damage == "missing":
        data.unlink()
    else:
        blob = data.read_bytes()
        data.write_bytes(blob[: len(blob) // 2] if damage == "truncate" else b"<html>502 Bad Gateway</html>")
    with pytest.raises(ArtifactInputError, match=rf"infer tiny: data file {data}"):
        _run(tiny_model_dir, tmp_path, data)
    assert not (tmp_path / "out.parquet").exists() and not (tmp_path / "out.parquet.shards").exists()


def test_load_backend(tiny_model_dir):
    be = load_backend({"local_dir": str(tiny_model_dir)}, str(tiny_model_dir), {"batch_size": 2, "dtype": "float32"})
    assert isinstance(be, TransformersBackend) and be.batch_size == 2 and be.dtype == torch.float32
    # stop_tokens: a reply ends where the stop token would have been written (the same greedy path, cut there)
    job = Job(be.encode(CONVS[1]), [Branch(12)])
    full = be.run_jobs([job])[0].branches[0]
    k, text = next(
        (k, be.token_text(t))
        for k, t in enumerate(full.token_ids)
        if k > 0 and be.tokenizer(be.token_text(t), add_special_tokens=False)["input_ids"] == [t]
    )
    assert full.token_ids[k] not in be.eos_ids
    spec = {"local_dir": str(tiny_model_dir), "stop_tokens": [text]}
    st = load_backend(spec, str(tiny_model_dir), {"dtype": "float32"})
    assert st.eos_ids == be.eos_ids | {full.token_ids[k]}
    cut = st.run_jobs([job])[0].branches[0]
    assert cut.token_ids == full.token_ids[: full.token_ids.index(full.token_ids[k])] and cut.finish_reason == "stop"
    with pytest.raises(ValueError, match="stop token 'Paris is' is 3 tokens of its tokenizer, not one"):
        load_backend({**spec, "stop_tokens": ["Paris is"]}, str(tiny_model_dir), {})
    with pytest.raises(ValueError, match="fetched directory"):
        load_backend({"local_dir": "x"}, None, {})


# ------------------------------------------------------------------ the real model
@pytest.mark.slow
def test_real_smollm2_inference(smollm2_dir, tmp_path):
    rows = [
        {
            "id": "boolq/validation/0",
            "dataset": "boolq",
            "domain": "commonsense",
            "task_type": "TF",
            "split": "validation",
            "role": "eval",
            "question": "is the sky blue on a clear day",
            "context": "On a clear day the sky looks blue because of Rayleigh scattering.",
            "choices": [],
            "answer": "True",
            "references": ["True"],
            "prompt": "Passage: On a clear day the sky looks blue because of Rayleigh scattering.\n\n"
            "Question: Is the sky blue on a clear day?\n\nAnswer with True or False only, without any explanation.",
        },
        {
            "id": "boolq/validation/1",
            "dataset": "boolq",
            "domain": "commonsense",
            "task_type": "TF",
            "split": "validation",
            "role": "eval",
            "question": "is water dry",
            "context": None,
            "choices": [],
            "answer": "False",
            "references": ["False"],
            "prompt": "Question: Is water dry?\n\nAnswer with True or False only, without any explanation.",
        },
    ]
    data = tmp_path / "boolq.parquet"
    pl.DataFrame(rows).write_parquet(data)
    # TF budget 128: SmolLM2 explains after its True/False (85 tokens on row 0), and a reply cut off by the
    # budget has no answer
    cfg = {**CFG, "hidden_layer": -8, "max_new_tokens": {"MCQ": 8, "TF": 128, "FF": 8, "math": 8}}
    out, hidden = tmp_path / "g.parquet", tmp_path / "g.hidden.safetensors"
    run_inference("smollm2-135m", {"pypi": {}}, str(smollm2_dir), str(data), str(out), str(hidden), "slm", cfg, 0)
    df = pl.read_parquet(out)
    check_frame(df, "generations")
    first = df.row(0, named=True)
    assert first["parsed_answer"] in ("True", "False")
    assert first["option_prob"] is not None and 0 < first["option_prob"] <= 1
    assert all(0 < p < 1 for p in df["ptrue"].to_list())
    ids, arr, meta = read_hidden_states(hidden)
    assert arr.shape == (2, 576) and meta["layer"] == "23"
    assert math.isfinite(float(np.abs(arr.astype(np.float32)).sum()))


def test_statistics_for_methods():
    from uqroute.inference import STATISTICS, statistics_for

    assert statistics_for(["perplexity", "ood_probe", "mean_token_entropy"]) == ["greedy", "hidden"]
    assert statistics_for(["jaccard_degree"]) == ["greedy", "hidden", "samples"]
    assert statistics_for(["ptrue", "verbal_2s"]) == ["greedy", "hidden", "ptrue", "verbal_2s"]
    assert statistics_for(["verbal_1s", "sample_agreement"]) == ["greedy", "hidden", "samples", "verbal_1s"]
    assert statistics_for(None) == list(STATISTICS)
    # every generations column is filled by exactly one statistic
    from uqroute.schema import ARTIFACTS

    filled = [c for s in STATISTICS.values() for c in s.columns]
    assert sorted(filled) == sorted(ARTIFACTS["generations"].names[1:])


def test_cheap_methods_do_not_pay_for_samples_or_follow_ups(tiny_model_dir, tmp_path, monkeypatch):
    from uqroute.inference import run as run_mod

    data = _data(tmp_path, n=4)
    seen = []
    real = run_mod.load_backend

    def load(*a, **k):
        seen.append(real(*a, **k))
        return seen[-1]

    monkeypatch.setattr(run_mod, "load_backend", load)
    full, _ = _run(tiny_model_dir, tmp_path, data, name="full")
    out = tmp_path / "cheap.parquet"
    run_inference(
        "tiny",
        {"local_dir": str(tiny_model_dir)},
        str(tiny_model_dir),
        str(data),
        str(out),
        str(tmp_path / "cheap.hidden.safetensors"),
        "slm",
        CFG,
        0,
        methods=["perplexity", "ood_probe"],
    )
    cheap_stats, full_stats = seen[1].stats, seen[0].stats
    df = pl.read_parquet(out)
    check_frame(df, "generations")
    for col in (
        "samples",
        "sample_answers",
        "ptrue",
        "verbal_1s_response",
        "verbal_1s_confidence",
        "verbal_2s_response",
        "verbal_2s_confidence",
    ):
        assert df[col].null_count() == df.height, col
    assert df["tokens"].null_count() == 0 and df["token_logprobs"].null_count() == 0
    # only the answer prompts were prefilled, only greedy tokens decoded, no follow-up reused a cache
    assert cheap_stats["prompt_tokens_reused"] == 0 < full_stats["prompt_tokens_reused"]
    assert cheap_stats["generated_tokens"] == int(df["tokens"].list.len().sum())  # greedy tokens only
    assert cheap_stats["generated_tokens"] < full_stats["generated_tokens"]
    assert read_hidden_states(tmp_path / "cheap.hidden.safetensors")[1].shape == (4, 32)


def test_jobs_added_to_a_running_loop_match_a_batch_run(backend):
    """The online face of the engine (a server adds requests while others decode)."""
    jobs = [Job(backend.encode(c), [Branch(6)], want_hidden=True) for c in CONVS]
    ref = backend.run_jobs(jobs, hidden_layer=-2)
    run = backend.engine().start(hidden_layer=-2)
    done = {}
    run.add(jobs[:1], on_done=lambda r: done.setdefault(0, r))
    run.step()
    run.add(jobs[1:], on_done=lambda r: done.setdefault(len(done), r))
    while run.step():
        pass
    run.close()
    assert len(done) == len(jobs)
    got = sorted(done.values(), key=lambda r: r.n_prompt_tokens)
    want = sorted(ref, key=lambda r: r.n_prompt_tokens)
    for g, w in zip(got, want):
        assert g.branches[0].token_ids == w.branches[0].token_ids
        np.testing.assert_allclose(g.branches[0].logprobs, w.branches[0].logprobs, atol=1e-5)
        np.testing.assert_allclose(g.hidden, w.hidden, atol=1e-5)


def test_family_callback_waits_for_follow_ups(backend):
    """on_done fires once the job and the follow-up turns it spawned are all done."""
    parent = Job(
        backend.encode(CONVS[0]), [Branch(4)], follow_up=lambda res: [Job(backend.encode(CONVS[1]), [Branch(3)])]
    )
    run = backend.engine().start()
    fired = []
    run.add([parent], on_done=fired.append)
    while run.step():
        assert not fired or not run.busy
    assert len(fired) == 1 and fired[0].follow_ups and fired[0].follow_ups[0].branches[0] is not None


# ------------------------------------------------------------------ common prefixes (used to compute expected values above)
def test_common_prefix_len():
    assert common_prefix_len([[1, 2, 3], [1, 2, 4], [1, 2, 3, 5]]) == 2
    assert common_prefix_len([[1, 2], [1, 2, 3]]) == 2  # one is a prefix of the other
    assert common_prefix_len([[1, 2, 3], [1, 2, 3]]) == 3  # identical
    assert common_prefix_len([[7, 8, 9]]) == 3  # one sequence: its length
    assert common_prefix_len([[1, 2], [2, 1]]) == 0  # disjoint from the first token
    assert common_prefix_len([[], [1, 2]]) == 0  # an empty sequence
    assert common_prefix_len([(5, 5, 5), [5, 5, 6]]) == 2  # any sequence type, repeated tokens
    with pytest.raises(ValueError, match="at least one"):
        common_prefix_len([])


# ------------------------------------------------------------------ context length
def test_prompts_longer_than_the_context_are_refused(tiny_model_dir, tmp_path):
    be = TransformersBackend(tiny_model_dir, progress=False)
    assert be.context_limit == 1024  # the tiny model's max_position_embeddings
    fits = Job([5] * 1000, [Branch(24)])
    over = Job([5] * 1000, [Branch(8), Branch(25)])
    assert be.run_jobs([fits])[0].branches[0].token_ids
    with pytest.raises(
        ValueError,
        match=r"job 1: its prompt \(1000 tokens\) and budget \(25 new tokens\) exceed the model's context of 1024",
    ):
        be.run_jobs([fits, over])
    with pytest.raises(ValueError, match="context of 1024"):
        be.run_jobs([Job([5] * 1100)])  # a prompt alone
    # run_inference refuses the dataset before generating anything, naming the rows
    data = _data(tmp_path, n=4)
    df = pl.read_parquet(data)
    long_prompt = df["prompt"][2] + " very" * 1100
    df = df.with_columns(
        pl.when(pl.col("id") == df["id"][2]).then(pl.lit(long_prompt)).otherwise(pl.col("prompt")).alias("prompt")
    )
    df.write_parquet(data)
    with pytest.raises(
        ValueError,
        match=r"1 of 4 prompt\(s\) do not fit model tiny's context of 1024 tokens.*commonsenseqa/validation/2 \(\d+\)",
    ):
        _run(tiny_model_dir, tmp_path, data)
    assert not (tmp_path / "out.parquet").exists()
    assert not list((tmp_path / "out.parquet.shards").glob("shard-*"))  # nothing was generated


# ------------------------------------------------------------------ truncated replies (finish_reason "length")
def _branch(be, text, finish):
    from uqroute.inference.jobs import BranchResult

    ids = be.tokenizer(text, add_special_tokens=False)["input_ids"]
    return BranchResult(ids, [-0.5] * len(ids), [0.1] * len(ids), None, finish)


def test_truncated_replies_are_never_parsed_for_an_answer(backend):
    from uqroute.inference.jobs import JobResult
    from uqroute.inference.statistics import STATISTICS, QueryResult, ShardContext

    row = {
        "id": "q",
        "prompt": "Question?",
        "question": "Which?",
        "context": None,
        "choices": [{"label": l, "text": t} for l, t in zip("ABCD", ["Paris", "Rome", "Oslo", "Bern"])],
    }
    ctx = ShardContext(backend, "letter", "MCQ", {"answer": 8, "sample": 8, "verbal": 8}, dict(CFG), 0, {})
    for finish, want in (("stop", "B"), ("length", None)):
        answer = _branch(backend, "The answer is B", finish)
        qr = QueryResult(main=JobResult([answer], 10))
        g = STATISTICS["greedy"].fill(ctx, row, qr)
        assert g["parsed_answer"] == want and g["finish_reason"] == finish
        assert (g["option_prob"] is None) == (want is None)  # no answer, no option token
        qr.branches["samples"] = [
            _branch(backend, "The answer is C", "stop"),
            _branch(backend, "The answer is B", finish),
        ]
        s = STATISTICS["samples"].fill(ctx, row, qr)
        assert s["sample_answers"] == ["C", want] and s["samples_truncated"] == (finish == "length")
        qr.jobs["verbal_1s"] = [JobResult([_branch(backend, "Answer: B\nConfidence: 90%", finish)], 10)]
        v = STATISTICS["verbal_1s"].fill(ctx, row, qr)
        assert v["verbal_1s_finish_reason"] == finish
        assert (v["verbal_1s_answer"], v["verbal_1s_confidence"]) == (("B", 0.9) if want else (None, None))
        assert v["verbal_1s_response"] == "Answer: B\nConfidence: 90%"  # the raw reply is kept


def test_llm_truncated_reply_has_no_answer():
    from uqroute.inference.base import Generation
    from uqroute.inference.run import _llm_shard

    class Fake:
        def generate(self, convs, **kw):
            return [
                [Generation("Steps: 1. add 2 and 3", ["Steps"], [-0.1], None, None, "length", 5)],
                [Generation("The answer is 5", ["The"], [-0.1], None, None, "stop", 5)],
            ]

    rows = [{"id": "a", "prompt": "p", "choices": []}, {"id": "b", "prompt": "p", "choices": []}]
    out = _llm_shard(Fake(), rows, fmt="number", task_type="FF", b={"answer": 4})
    assert [r["parsed_answer"] for r in out] == [None, "5"]
    assert [r["finish_reason"] for r in out] == ["length", "stop"]
    assert out[0]["samples_truncated"] is None and out[0]["verbal_1s_finish_reason"] is None


def test_run_inference_records_truncations(tiny_model_dir, tmp_path):
    data = _data(tmp_path, n=4)
    cfg = {
        **CFG,
        "max_new_tokens": {"MCQ": 2, "TF": 2, "FF": 2, "math": 2},
        "sample_max_new_tokens": 2,
        "verbal_max_new_tokens": 1,
    }
    out, _ = _run(tiny_model_dir, tmp_path, data, cfg=cfg)
    df = pl.read_parquet(out)
    check_frame(df, "generations")
    cut = df.filter(pl.col("finish_reason") == "length")
    assert cut.height > 0 and cut["parsed_answer"].null_count() == cut.height
    for r in df.iter_rows(named=True):
        assert 0 <= r["samples_truncated"] <= 3
        assert r["verbal_1s_finish_reason"] in ("stop", "length")
        if r["verbal_1s_finish_reason"] == "length":
            assert r["verbal_1s_answer"] is None and r["verbal_1s_confidence"] is None
    assert int(df["samples_truncated"].sum()) > 0


# ------------------------------------------------------------------ reasoning models: follow-up turns without thinking
QWEN3_STYLE_TEMPLATE = (  # Qwen3's generation prompt: an empty think block when enable_thinking is false
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}{{ '<think>\n\n</think>\n\n' }}{% endif %}{% endif %}"
)
R1_STYLE_TEMPLATE = (  # DeepSeek-R1 distills: the prompt opens the reasoning, whatever the flag
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n<think>\n' }}{% endif %}"
)


@pytest.mark.parametrize("template", ["qwen3", "ignores_flag", "r1"])
def test_follow_up_turns_of_reasoning_models_start_after_an_empty_think_block(tiny_model_dir, template):
    from conftest import CHATML_TEMPLATE

    from uqroute.inference.statistics import STATISTICS, ShardContext
    from uqroute.parsing import EMPTY_THINK

    be = TransformersBackend(tiny_model_dir, progress=False)
    be.tokenizer.chat_template = {
        "qwen3": QWEN3_STYLE_TEMPLATE,
        "ignores_flag": CHATML_TEMPLATE,
        "r1": R1_STYLE_TEMPLATE,
    }[template]
    conv = [{"role": "user", "content": "Is 2 + 2 = 4?"}]
    text = be.render(conv, thinking=False)
    assert text.endswith("<|im_start|>assistant\n" + EMPTY_THINK) and text.count("<think>") == 1
    assert be.render(conv) == be.tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
    row = {"id": "q", "prompt": "Is 2 + 2 = 4?", "question": "Is 2 + 2 = 4?", "context": None, "choices": []}
    budgets_ = {"answer": 8, "sample": 8, "verbal": 8}
    reasoning = ShardContext(be, "bool", "TF", budgets_, dict(CFG), 0, {"reasoning": True})
    plain = ShardContext(be, "bool", "TF", budgets_, dict(CFG), 0, {})
    tail = be.tokenizer("assistant\n" + EMPTY_THINK, add_special_tokens=False)["input_ids"]
    for name in ("ptrue", "verbal_2s"):
        job = STATISTICS[name].follow_ups(reasoning, row, "True")[0]
        assert job.prompt_ids[-len(tail) :] == tail, name  # the reply starts after the think block: the answer token
        normal = STATISTICS[name].follow_ups(plain, row, "True")[0]  # not a reasoning model: the template as it is
        assert "</think>" not in be.tokenizer.decode(normal.prompt_ids)
    # the three templates differ only in their generation prompt: with thinking off they give the same tokens
    if template != "qwen3":
        be.tokenizer.chat_template = QWEN3_STYLE_TEMPLATE
        want = STATISTICS["ptrue"].follow_ups(reasoning, row, "True")[0].prompt_ids
        be.tokenizer.chat_template = {"ignores_flag": CHATML_TEMPLATE, "r1": R1_STYLE_TEMPLATE}[template]
        assert STATISTICS["ptrue"].follow_ups(reasoning, row, "True")[0].prompt_ids == want


# ------------------------------------------------------------------ a recurrent model: RWKV-7 (flash-linear-attention)
@pytest.fixture(scope="module")
def tiny_rwkv7_dir(tmp_path_factory):
    """A tiny randomly initialised RWKV-7 (fla's RWKV7ForCausalLM: 4 layers, hidden 64, head size 16) with the tiny tokenizer."""
    pytest.importorskip("fla.models", reason="RWKV-7 needs flash-linear-attention (pip install 'uqroute[rwkv]')")
    from conftest import build_tiny_tokenizer
    from fla.models import RWKV7Config, RWKV7ForCausalLM

    tok = build_tiny_tokenizer()
    config = RWKV7Config(
        hidden_size=64,
        num_hidden_layers=4,
        head_dim=16,
        intermediate_size=128,
        vocab_size=len(tok),
        decay_low_rank_dim=8,
        gate_low_rank_dim=16,
        a_low_rank_dim=8,
        v_low_rank_dim=8,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = RWKV7ForCausalLM(config)
    with torch.no_grad():  # RWKV-7's init zeroes several matrices: perturb all, so every path carries signal
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        model.lm_head.weight.normal_(0, 0.6)
    path = tmp_path_factory.mktemp("tiny-rwkv7") / "rwkv7"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def rwkv_backend(tiny_rwkv7_dir):
    be = TransformersBackend(tiny_rwkv7_dir, progress=False)
    assert be.recurrent and type(be.engine()).__name__ == "RecurrentEngine"
    assert be.context_limit is None
    return be


def test_recurrent_engine_matches_plain_forward(rwkv_backend):
    be = rwkv_backend
    t_ids, f_ids = be.single_token_ids(["True", " True"]), be.single_token_ids(["False", " False"])
    jobs = [
        Job(
            be.encode(c),
            [Branch(10), Branch(8, 1.0, branch_seed(0, f"q{i}", 0)), Branch(3)],
            want_hidden=True,
            next_token_groups=[t_ids, f_ids],
        )
        for i, c in enumerate(CONVS)
    ]
    res = be.run_jobs(jobs, hidden_layer=-2)
    layer = resolve_layer(-2, be.n_layers)
    for job, r in zip(jobs, res):
        greedy, sample, short = r.branches
        lps, ents, step_lp, hidden = _forward_logprobs(be, job.prompt_ids, greedy.token_ids, layer, steps=True)
        _check_greedy(step_lp, greedy.token_ids)  # every greedy token is the teacher-forced argmax
        np.testing.assert_allclose(greedy.logprobs, lps, atol=1e-4)
        np.testing.assert_allclose(greedy.entropies, ents, atol=1e-4)
        np.testing.assert_allclose(r.hidden, hidden, atol=1e-4)  # the probe input: layer -2 at the last prompt token
        slps, sents, _, _ = _forward_logprobs(be, job.prompt_ids, sample.token_ids)
        np.testing.assert_allclose(sample.logprobs, slps, atol=1e-4)  # T = 1: log_softmax of the plain forward
        np.testing.assert_allclose(sample.entropies, sents, atol=1e-4)
        assert short.token_ids == greedy.token_ids[:3] and short.finish_reason == "length"
        p = _forward_logprobs(be, job.prompt_ids, [])[2].exp()
        np.testing.assert_allclose(r.group_probs, [float(p[t_ids].sum()), float(p[f_ids].sum())], atol=1e-6)
    # a job's results do not depend on the other jobs of the run
    alone = be.run_jobs([jobs[1]], hidden_layer=-2)[0]
    assert [b.token_ids for b in alone.branches] == [b.token_ids for b in res[1].branches]
    np.testing.assert_allclose(alone.branches[0].logprobs, res[1].branches[0].logprobs, atol=1e-5)


def test_recurrent_engine_follow_ups_and_bad_inputs(rwkv_backend):
    be = rwkv_backend
    conv = CONVS[1]

    def follow(res):
        turn = [
            *conv,
            {"role": "assistant", "content": be.decode(res.branches[0].token_ids)},
            {"role": "user", "content": "How confident are you, 0 to 100?"},
        ]
        return [Job(be.encode(turn), [Branch(5)])]

    res = be.run_jobs([Job(be.encode(conv), [Branch(6)], follow_up=follow), Job(be.encode(CONVS[0]), [Branch(4)])])
    assert res[1].follow_ups is None and len(res[0].follow_ups) == 1
    fresh = be.run_jobs(follow(res[0]))[0]
    assert res[0].follow_ups[0].branches[0].token_ids == fresh.branches[0].token_ids
    with pytest.raises(ValueError, match="hidden_layer"):
        be.run_jobs([Job([1, 2], want_hidden=True)])
    with pytest.raises(ValueError, match="empty prompt"):
        be.run_jobs([Job([], [Branch(3)])])


def test_run_inference_rwkv7_end_to_end(tiny_rwkv7_dir, tmp_path):
    """RWKV-7 through the whole SLM stage: every statistic, the hidden-states file, deterministic reruns."""
    data = _data(tmp_path, n=3)
    outs = []
    for name in ("a", "b"):
        out, hidden = tmp_path / f"{name}.parquet", tmp_path / f"{name}.hidden.safetensors"
        run_inference(
            "rwkv7",
            {"local_dir": str(tiny_rwkv7_dir)},
            str(tiny_rwkv7_dir),
            str(data),
            str(out),
            str(hidden),
            "slm",
            CFG,
            0,
        )
        outs.append((pl.read_parquet(out), read_hidden_states(hidden)))
    df, (ids, arr, meta) = outs[0]
    check_frame(df, "generations")
    for col in (
        "response",
        "tokens",
        "token_logprobs",
        "token_entropies",
        "samples",
        "sample_answers",
        "ptrue",
        "verbal_1s_response",
        "verbal_1s_finish_reason",
        "verbal_2s_response",
        "samples_truncated",
    ):
        assert df[col].null_count() == 0, col
    assert all(len(s) == 3 for s in df["samples"].to_list())
    assert all(0.0 <= p <= 1.0 for p in df["ptrue"].to_list())
    assert ids == df["id"].to_list() and arr.shape == (3, 64) and meta["layer"] == "3"
    assert outs[1][0].equals(df)
    np.testing.assert_array_equal(outs[1][1][1], arr)


def test_recurrent_pool_matches_jobs_run_alone(tiny_rwkv7_dir):
    """A pool smaller than the work: jobs join as rows finish, states of different prompt lengths are
    concatenated and rows leave; every job's results equal its results run alone."""
    be = TransformersBackend(tiny_rwkv7_dir, progress=False, max_batch_rows=4)
    convs = CONVS + [[{"role": "user", "content": "word " * k}] for k in (1, 9, 3)]
    budgets_ = [3, 12, 5, 9, 2, 7]
    jobs = [
        Job(be.encode(c), [Branch(m)] + ([Branch(4, 1.0, 11 + i, entropy=False)] if i % 2 else []), want_hidden=True)
        for i, (c, m) in enumerate(zip(convs, budgets_))
    ]
    together = be.run_jobs(jobs, hidden_layer=-1)
    assert be.stats["pool_joins"] >= 3  # jobs really joined a decoding pool
    for job, t in zip(jobs, together):
        alone = be.run_jobs([job], hidden_layer=-1)[0]
        assert [b.token_ids for b in alone.branches] == [b.token_ids for b in t.branches]
        assert [b.finish_reason for b in alone.branches] == [b.finish_reason for b in t.branches]
        np.testing.assert_allclose(alone.branches[0].logprobs, t.branches[0].logprobs, atol=1e-4)
        np.testing.assert_allclose(alone.branches[0].entropies, t.branches[0].entropies, atol=1e-4)
        np.testing.assert_allclose(alone.hidden, t.hidden, atol=1e-5)


def test_greedy_columns_read_the_answer_after_the_trace():
    """Option token, answer tokens and parsed answer come from the final answer after `</think>`."""
    from uqroute.inference import Generation
    from uqroute.inference.statistics import greedy_columns

    choices = [{"label": l, "text": t} for l, t in zip("ABCD", ["Paris", "Rome", "Oslo", "Bern"])]
    toks = ["<think>", "A", " is", " Rome", "?", " no", "</think>", "\n\n", "B", "."]
    lps = [-0.1, -2.0, -0.1, -0.1, -0.1, -0.1, -0.1, -0.1, -0.7, -0.1]
    g = Generation(text="".join(toks), tokens=toks, token_logprobs=lps, finish_reason="stop", n_prompt_tokens=5)
    cols = greedy_columns(g, "letter", "MCQ", choices)
    assert cols["parsed_answer"] == "B" and cols["answer_start"] == 8
    assert cols["option_prob"] == pytest.approx(math.exp(-0.7))  # not the "A" inside the trace (exp(-2.0))
    # a template that opened <think> in the prompt: the reply holds only the closing tag
    opened = toks[1:]
    g2 = Generation(text="".join(opened), tokens=opened, token_logprobs=lps[1:], finish_reason="stop")
    cols2 = greedy_columns(g2, "letter", "MCQ", choices, think_open=True)
    assert (
        cols2["parsed_answer"] == "B"
        and cols2["answer_start"] == 7
        and cols2["option_prob"] == pytest.approx(math.exp(-0.7))
    )
    # an unfinished trace cut by the budget: no answer, no option token, answer_start at the end
    cut = Generation(text="".join(toks[:5]), tokens=toks[:5], token_logprobs=lps[:5], finish_reason="length")
    cols3 = greedy_columns(cut, "letter", "MCQ", choices)
    assert cols3["parsed_answer"] is None and cols3["option_prob"] is None and cols3["answer_start"] == 5
    # a complete reply without a trace; an API reply without tokens
    plain = Generation(text="B", tokens=["B"], token_logprobs=[-0.2])
    assert greedy_columns(plain, "letter", "MCQ", choices)["answer_start"] == 0
    api = Generation(text="B", tokens=[], token_logprobs=None)
    assert greedy_columns(api, "letter", "MCQ", choices)["answer_start"] is None


def test_training_rows_get_the_greedy_answer_and_hidden_state_only(tiny_model_dir, tmp_path):
    """The in-domain probe needs a training row's hidden state and correctness; nothing evaluates the rest."""
    data = _data(tmp_path, n=4)
    df = pl.read_parquet(data).with_columns(pl.Series("role", ["eval", "train", "eval", "train"]))
    df.write_parquet(data)
    out, hidden = _run(tiny_model_dir, tmp_path, data)
    gen = pl.read_parquet(out)
    check_frame(gen, "generations")
    train, ev = gen.filter(pl.Series([False, True, False, True])), gen.filter(pl.Series([True, False, True, False]))
    for col in ("samples", "sample_answers", "ptrue", "verbal_1s_response", "verbal_2s_response"):
        assert train[col].null_count() == 2 and ev[col].null_count() == 0, col
    assert gen["tokens"].null_count() == 0 and gen["token_logprobs"].null_count() == 0
    ids, arr, _ = read_hidden_states(hidden)
    assert ids == gen["id"].to_list() and np.isfinite(arr.astype(np.float32)).all()


def test_generations_name_the_model_weights_in_their_provenance(tiny_model_dir, tmp_path):
    from uqroute.io import read_provenance
    from uqroute.models import weights_identity

    out, _ = _run(tiny_model_dir, tmp_path, _data(tmp_path, n=2))
    record = read_provenance(out)
    assert record["artifact"] == "generations" and record["uqroute_version"]
    assert record["models"] == {"tiny": weights_identity({"local_dir": str(tiny_model_dir)}, str(tiny_model_dir))}
