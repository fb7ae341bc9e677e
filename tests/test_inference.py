"""Inference stage: the batched engine's mechanics on a tiny random model, run_inference, shards."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
import torch

from uqroute.inference import load_backend, run_inference
from uqroute.inference.run import budgets, find_option_token
from uqroute.inference.seeding import branch_seed
from uqroute.inference.prefill import common_prefix_len
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
    [{"role": "user", "content": "Question: What is the capital of France? Options: A. Paris B. Rome C. Oslo D. Bern. "
                                 "Answer with the letter of the correct option only."}],
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


def _forward_logprobs(be, prompt_ids, gen_ids, layer=None):
    ids = torch.tensor([prompt_ids + gen_ids])
    with torch.inference_mode():
        out = be.model(ids, output_hidden_states=True)
    lp = torch.log_softmax(out.logits[0].float(), -1)
    P = len(prompt_ids)
    lps = [lp[P - 1 + k, t].item() for k, t in enumerate(gen_ids)]
    ents = [float(-(lp[P - 1 + k].exp() * lp[P - 1 + k]).sum()) for k in range(len(gen_ids))]
    hidden = out.hidden_states[layer][0, P - 1].numpy() if layer is not None else None
    return lps, ents, lp[P - 1], hidden


def test_greedy_logprobs_entropies_hidden_match_plain_forward(backend):
    jobs = [Job(backend.encode(c), [Branch(12)], want_hidden=True) for c in CONVS]
    res = backend.run_jobs(jobs, hidden_layer=-2)
    layer = resolve_layer(-2, backend.n_layers)
    assert layer == backend.n_layers - 1
    for job, r in zip(jobs, res):
        b = r.branches[0]
        assert 1 <= len(b.token_ids) <= 12 and len(b.logprobs) == len(b.token_ids) == len(b.entropies)
        lps, ents, first, hidden = _forward_logprobs(backend, job.prompt_ids, b.token_ids, layer)
        np.testing.assert_allclose(b.logprobs, lps, atol=1e-4)
        np.testing.assert_allclose(b.entropies, ents, atol=1e-4)
        np.testing.assert_allclose(r.hidden, hidden, atol=1e-4)
        assert r.n_prompt_tokens == len(job.prompt_ids)
        # greedy: each token is the argmax of the plain forward pass
        assert b.token_ids[0] == int(first.argmax())


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
    convs = [[{"role": "user", "content": stem + q}] for q in ("Problem: 2+2?", "Problem: what is 40 plus 2 in all?", "x")]
    jobs = [Job(backend.encode(c), [Branch(8)], want_hidden=True) for c in convs]
    n0 = common_prefix_len([j.prompt_ids for j in jobs])
    assert n0 > 10
    before = backend.stats["prompt_tokens"]
    together = backend.run_jobs(jobs, hidden_layer=-1)
    assert backend.stats["prompt_tokens"] - before == sum(len(j.prompt_ids) for j in jobs) - 2 * min(
        n0, min(len(j.prompt_ids) for j in jobs) - 1)
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
    jobs = [Job(be.encode(c), [Branch(m)] + ([Branch(4, 1.0, 11 + i, entropy=False)] if i % 2 else []), want_hidden=True)
            for i, (c, m) in enumerate(zip(convs, budgets))]
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
    convs = [[{"role": "user", "content": stem + "Answer with the letter."}],
             [{"role": "user", "content": stem + "Give your answer and a confidence from 0 to 100."}]]
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
            Job(backend.encode([*turn, {"role": "user", "content": "Is your answer True or False?"}]),
                next_token_groups=[t_ids, f_ids], group="q"),
            Job(backend.encode([*turn, {"role": "user", "content": "How confident are you, 0 to 100?"}]), [Branch(6)],
                group="q"),
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
    fresh = backend.run_jobs([Job(j.prompt_ids, j.branches, next_token_groups=j.next_token_groups) for j in follow(res[0])])
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


def test_packing_failure_keeps_plain_linear_layers(tiny_model_dir, monkeypatch):
    from uqroute.inference import packing

    if not packing.packing_available():
        pytest.skip("this PyTorch build has no oneDNN prepacked linear")
    calls = []

    def refuse(w, hint):
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("unsupported weight format")
        return w

    monkeypatch.setattr(torch.ops.mkldnn, "_reorder_linear_weight", refuse)
    be = TransformersBackend(tiny_model_dir, progress=False)
    assert be.packed_layers == 0 and len(calls) == 4
    assert all(type(m) is not packing._packed_linear_class() for m in be.model.modules())
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
def test_find_option_token():
    assert find_option_token(["The", " answer", " is", " B", "."], "B", "MCQ") == 3
    assert find_option_token(["A", " person", " would", " pick", " (C)"], "C", "MCQ") == 4
    assert find_option_token(["a", " B"], "A", "MCQ") is None  # the article is not option A
    assert find_option_token(["True", "."], "True", "TF") == 0
    assert find_option_token([" false"], "False", "TF") == 0
    assert find_option_token(["Fal", "se"], "False", "TF") == 0
    assert find_option_token(["B"], None, "MCQ") is None
    assert find_option_token(["42"], "42", "FF") is None


def test_budgets():
    cfg = {"max_new_tokens": {"MCQ": 12, "TF": 8, "FF": 48, "math": 96}, "sample_max_new_tokens": None,
           "verbal_max_new_tokens": 24}
    assert budgets(cfg, {}, "FF", "math") == {"answer": 96, "sample": 96, "verbal": 24}
    assert budgets(cfg, {}, "FF", "commonsense")["answer"] == 48
    assert budgets({**cfg, "sample_max_new_tokens": 32}, {}, "MCQ", "commonsense") == {"answer": 12, "sample": 32, "verbal": 24}
    assert budgets(cfg, {"max_new_tokens_scale": 2.5}, "TF", "commonsense") == {"answer": 20, "sample": 20, "verbal": 60}


# ------------------------------------------------------------------ run_inference end to end
def _data(tmp_path, n=5, dataset="commonsenseqa"):
    choices = [{"label": l, "text": t} for l, t in zip("ABCDE", ["Paris", "Rome", "Oslo", "Bern", "Nice"])]
    rows = []
    for i in range(n):
        rows.append({
            "id": f"{dataset}/validation/{i}", "dataset": dataset, "domain": "commonsense", "task_type": "MCQ",
            "split": "validation", "role": "eval", "question": f"Which city number {i}?" + " very" * i,
            "context": None, "choices": choices, "answer": "A", "references": ["A"],
            "prompt": f"Question: Which city number {i}?" + " very" * i + "\nOptions:\nA. Paris\nB. Rome\nAnswer with the letter.",
        })
    p = tmp_path / f"{dataset}.parquet"
    pl.DataFrame(rows).write_parquet(p)
    return p


CFG = {"batch_size": 3, "max_new_tokens": {"MCQ": 6, "TF": 4, "FF": 8, "math": 8}, "num_samples": 3,
       "sample_temperature": 1.0, "sample_max_new_tokens": 5, "verbal_max_new_tokens": 6, "hidden_layer": -2,
       "shard_size": 2, "dtype": "float32"}


def _run(tiny_model_dir, tmp_path, data, role="slm", cfg=CFG, name="out"):
    out = tmp_path / f"{name}.parquet"
    hidden = tmp_path / f"{name}.hidden.safetensors" if role == "slm" else None
    run_inference("tiny", {"local_dir": str(tiny_model_dir)}, str(tiny_model_dir), str(data), str(out),
                  str(hidden) if hidden else None, role, cfg, 0)
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
    assert not shard_dir.exists()


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
        run_inference("gpt", {"api": {"model": "gpt-4.1-mini"}}, None, str(data), str(tmp_path / "o.parquet"),
                      str(tmp_path / "h.safetensors"), "slm", CFG, 0)
    bad = tmp_path / "bad.parquet"
    pl.read_parquet(data).drop("prompt").write_parquet(bad)
    with pytest.raises(ValueError, match="prompt"):
        _run(tiny_model_dir, tmp_path, bad)
    with pytest.raises(ValueError, match="out of range"):
        _run(tiny_model_dir, tmp_path, data, cfg={**CFG, "hidden_layer": -9})
    assert not (tmp_path / "out.parquet").exists()


def test_load_backend(tiny_model_dir):
    be = load_backend({"local_dir": str(tiny_model_dir)}, str(tiny_model_dir), {"batch_size": 2, "dtype": "float32"})
    assert isinstance(be, TransformersBackend) and be.batch_size == 2 and be.dtype == torch.float32
    with pytest.raises(ValueError, match="fetched directory"):
        load_backend({"local_dir": "x"}, None, {})


# ------------------------------------------------------------------ the real model
@pytest.mark.slow
def test_real_smollm2_inference(smollm2_dir, tmp_path):
    rows = [
        {"id": "boolq/validation/0", "dataset": "boolq", "domain": "commonsense", "task_type": "TF",
         "split": "validation", "role": "eval", "question": "is the sky blue on a clear day",
         "context": "On a clear day the sky looks blue because of Rayleigh scattering.", "choices": [],
         "answer": "True", "references": ["True"],
         "prompt": "Passage: On a clear day the sky looks blue because of Rayleigh scattering.\n\n"
                   "Question: Is the sky blue on a clear day?\n\nAnswer with True or False only, without any explanation."},
        {"id": "boolq/validation/1", "dataset": "boolq", "domain": "commonsense", "task_type": "TF",
         "split": "validation", "role": "eval", "question": "is water dry", "context": None, "choices": [],
         "answer": "False", "references": ["False"],
         "prompt": "Question: Is water dry?\n\nAnswer with True or False only, without any explanation."},
    ]
    data = tmp_path / "boolq.parquet"
    pl.DataFrame(rows).write_parquet(data)
    cfg = {**CFG, "hidden_layer": -8, "max_new_tokens": {"MCQ": 8, "TF": 6, "FF": 8, "math": 8}}
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
    run_inference("tiny", {"local_dir": str(tiny_model_dir)}, str(tiny_model_dir), str(data), str(out),
                  str(tmp_path / "cheap.hidden.safetensors"), "slm", CFG, 0, methods=["perplexity", "ood_probe"])
    cheap_stats, full_stats = seen[1].stats, seen[0].stats
    df, ref = pl.read_parquet(out), pl.read_parquet(full)
    check_frame(df, "generations")
    for col in ("samples", "sample_answers", "ptrue", "verbal_1s_response", "verbal_1s_confidence",
                "verbal_2s_response", "verbal_2s_confidence"):
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
    parent = Job(backend.encode(CONVS[0]), [Branch(4)],
                 follow_up=lambda res: [Job(backend.encode(CONVS[1]), [Branch(3)])])
    run = backend.engine().start()
    fired = []
    run.add([parent], on_done=fired.append)
    while run.step():
        assert not fired or not run.busy
    assert len(fired) == 1 and fired[0].follow_ups and fired[0].follow_ups[0].branches[0] is not None
