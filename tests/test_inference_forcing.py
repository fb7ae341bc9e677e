"""Budget forcing (Muennighoff et al. 2025, "s1: Simple test-time scaling") on the tiny random chat model:
at the thinking budget an open trace is closed with ``</think>`` and the reply goes on within its budget."""

from __future__ import annotations

import math

import pytest
import torch

from uqroute.inference.backends import check_thinking_budget
from uqroute.inference.jobs import Branch, Job, check_job
from uqroute.inference.pool import trace_open
from uqroute.inference.statistics import ShardContext
from uqroute.inference.transformers_backend import TransformersBackend


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def be(tiny_model_dir):
    return TransformersBackend(tiny_model_dir, batch_size=4, progress=False)


PROMPTS = [
    "Solve the following math problem. Reason briefly.",
    "Is the proposed answer True or False?",
    "Question: What is the capital of France?",
]
BUDGET, THINK = 24, 4


def _forced(be, thinking_budget=THINK, *, in_prompt=True, close=None, budget=BUDGET, **kw):
    return Branch(
        budget,
        thinking_budget=thinking_budget,
        think_open_ids=tuple(be.text_ids("<think>")),
        think_close_ids=tuple(close if close is not None else be.text_ids("</think>")),
        think_in_prompt=in_prompt,
        **kw,
    )


def _prompts(be):
    return [be.encode([{"role": "user", "content": p}]) for p in PROMPTS]


def _free(be):
    return [r.branches[0] for r in be.run_jobs([Job(p, [Branch(BUDGET)]) for p in _prompts(be)])]


def test_an_open_trace_is_closed_at_the_thinking_budget_and_the_reply_goes_on(be):
    close = be.text_ids("</think>")
    assert len(close) > 1  # the tiny tokenizer has no </think> token: several byte-level tokens
    free = _free(be)
    assert all(len(f.token_ids) > THINK for f in free), [len(f.token_ids) for f in free]
    before = be.stats.get("forced_tokens", 0)
    # greedy and forced branches of the same prompts, decoded together in one pool
    res = be.run_jobs([Job(p, [Branch(BUDGET), _forced(be)]) for p in _prompts(be)])
    assert be.stats.get("forced_tokens", 0) - before == len(close) * len(PROMPTS)
    for p, f, r in zip(_prompts(be), free, res):
        plain, forced = r.branches
        assert plain.token_ids == f.token_ids  # the unforced branch is untouched
        ids = forced.token_ids
        assert ids[:THINK] == f.token_ids[:THINK]  # the trace before the budget is the model's own
        assert ids[THINK : THINK + len(close)] == close  # then </think>
        assert len(ids) <= BUDGET and (forced.finish_reason == "stop" or len(ids) == BUDGET)
        assert len(ids) > THINK + len(close) or forced.finish_reason == "stop"  # it answers after the tag
        # the forced tokens carry the model's own log-probabilities of them (teacher-forced forward pass)
        with torch.no_grad():
            logits = be.model(input_ids=torch.tensor([p + ids])).logits[0].float()
        lp = torch.log_softmax(logits, -1)
        want = [lp[len(p) - 1 + i, t].item() for i, t in enumerate(ids)]
        assert all(math.isfinite(x) and x <= 0 for x in forced.logprobs)
        assert forced.logprobs == pytest.approx(want, abs=1e-4)


def test_no_forcing_where_the_trace_never_opened_or_closed_in_time(be):
    free = _free(be)
    prompts = _prompts(be)
    before = be.stats.get("forced_tokens", 0)
    # no trace: the prompt did not open one and the reply wrote no <think>
    never = be.run_jobs([Job(p, [_forced(be, in_prompt=False)]) for p in prompts])
    # a trace that closed before the budget: its "closing tag" is the reply's own tokens 1-2
    closed = be.run_jobs([Job(p, [_forced(be, close=f.token_ids[1:3])]) for p, f in zip(prompts, free)])
    # a thinking budget the reply never reaches
    late = be.run_jobs([Job(p, [_forced(be, thinking_budget=BUDGET)]) for p in prompts])
    for f, a, b, c in zip(free, never, closed, late):
        assert a.branches[0].token_ids == b.branches[0].token_ids == c.branches[0].token_ids == f.token_ids
    assert be.stats.get("forced_tokens", 0) == before


def test_forcing_at_zero_and_a_tag_cut_by_the_budget(be):
    close = be.text_ids("</think>")
    p = _prompts(be)[0]
    at0 = be.run_jobs([Job(p, [_forced(be, thinking_budget=0)])])[0].branches[0]
    assert at0.token_ids[: len(close)] == close
    cut = be.run_jobs([Job(p, [_forced(be, budget=THINK + 2)])])[0].branches[0]
    assert cut.token_ids[THINK:] == close[:2] and cut.finish_reason == "length"


@pytest.mark.parametrize(
    "toks, in_prompt, want",
    [
        ([], False, False),
        ([], True, True),
        ([1, 2, 7, 8], False, False),  # no <think> (5) in the reply, none in the prompt
        ([5, 1, 2], False, True),
        ([5, 1, 6, 2], False, False),
        ([5, 6, 5, 3], False, True),
        ([1, 6, 2], True, False),
        ([1, 2], True, True),
        ([6, 5], True, True),
    ],
)
def test_trace_open(toks, in_prompt, want):
    assert trace_open(toks, (5,), (6,), in_prompt) is want


def test_trace_open_with_multi_token_tags():
    assert trace_open([9, 1, 2, 3, 4], (1, 2), (3, 4, 5), False) is True  # the close tag is incomplete
    assert trace_open([9, 1, 2, 3, 4, 5], (1, 2), (3, 4, 5), False) is False
    assert trace_open([1, 9, 2], (1, 2), (3,), False) is False  # not a contiguous open tag


def test_shard_context_gives_forcing_only_where_the_model_sets_a_thinking_budget(be):
    b = {"answer": 20, "sample": 20, "verbal": 8}
    on = ShardContext(be, "number", "FF", b, {}, 0, {"reasoning": True, "thinking_budget": 7}).branch(20, entropy=False)
    assert (on.thinking_budget, on.think_close_ids, on.think_open_ids) == (
        7,
        tuple(be.text_ids("</think>")),
        tuple(be.text_ids("<think>")),
    )
    assert on.think_in_prompt is False and on.max_new_tokens == 20 and on.entropy is False
    off = ShardContext(be, "number", "FF", b, {}, 0, {"reasoning": True}).branch(20)
    assert off == Branch(20)


def test_thinking_budget_needs_room_to_answer_and_the_local_slm_engine():
    b = {"answer": 100, "sample": 100, "verbal": 8}
    check_thinking_budget("m", {"hub": "x", "thinking_budget": 99}, "slm", "gsm8k", b)
    check_thinking_budget("m", {"hub": "x"}, "llm", "gsm8k", b)
    with pytest.raises(ValueError, match=r"model 'm', dataset 'gsm8k': thinking_budget 100 leaves no room to answer"):
        check_thinking_budget("m", {"hub": "x", "thinking_budget": 100}, "slm", "gsm8k", b)
    with pytest.raises(ValueError, match=r"model 'm': thinking_budget \(budget forcing\) is implemented for SLM"):
        check_thinking_budget("m", {"api": {"model": "x"}, "thinking_budget": 10}, "llm", "gsm8k", b)
    with pytest.raises(ValueError, match="transformers backend only"):  # vLLM generates: nothing would force the tag
        check_thinking_budget("m", {"hub": "x", "thinking_budget": 10}, "slm", "gsm8k", b, {"backend": "vllm"})
    with pytest.raises(ValueError, match="transformers backend only"):
        check_thinking_budget("m", {"hub": "x", "backend": "vllm", "thinking_budget": 10}, "slm", "gsm8k", b)
    with pytest.raises(ValueError, match=r"job 0: budget forcing needs a thinking_budget ≥ 0 and the closing tag"):
        check_job(0, Job([1, 2], [Branch(5, thinking_budget=2)]))


# ------------------------------------------------------------------ end to end: rule infer's library call
R1_TEMPLATE = (  # a DeepSeek-R1-distill-style template: the assistant turn opens the trace itself
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n<think>\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def thinking_model_dir(tiny_model_dir, tmp_path_factory):
    import shutil

    from transformers import AutoTokenizer

    path = tmp_path_factory.mktemp("thinking") / "tiny-r1"
    shutil.copytree(tiny_model_dir, path)
    tok = AutoTokenizer.from_pretrained(path)
    tok.chat_template = R1_TEMPLATE
    tok.save_pretrained(path)
    return path


def test_run_inference_forces_the_close_in_greedy_samples_and_verbal_1s(thinking_model_dir, tmp_path):
    import polars as pl

    from uqroute.inference import run_inference
    from uqroute.schema import check_frame

    choices = [{"label": l, "text": t} for l, t in zip("AB", ["Paris", "Rome"])]
    rows = [
        {
            "id": f"commonsenseqa/validation/{i}",
            "dataset": "commonsenseqa",
            "domain": "commonsense",
            "task_type": "MCQ",
            "split": "validation",
            "role": "eval",
            "question": f"Which city {i}?",
            "context": None,
            "choices": choices,
            "answer": "A",
            "references": ["A"],
            "prompt": f"Question: Which city {i}?\nOptions:\nA. Paris\nB. Rome",
        }
        for i in range(3)
    ]
    data = tmp_path / "d.parquet"
    pl.DataFrame(rows).write_parquet(data)
    cfg = {
        "batch_size": 3,
        "max_new_tokens": {"MCQ": 16},
        "num_samples": 2,
        "sample_max_new_tokens": 12,
        "verbal_max_new_tokens": 4,
        "hidden_layer": -2,
        "shard_size": 8,
        "dtype": "float32",
    }

    def run(name, **extra):
        out = tmp_path / f"{name}.parquet"
        run_inference(
            "tiny-r1",
            {"local_dir": str(thinking_model_dir), "reasoning": True, **extra},
            str(thinking_model_dir),
            str(data),
            str(out),
            str(tmp_path / f"{name}.hidden.safetensors"),
            "slm",
            cfg,
            0,
        )
        return check_frame(pl.read_parquet(out), "generations")

    free, forced = run("free"), run("forced", thinking_budget=3)
    n_forced = 0
    for f, g in zip(free.iter_rows(named=True), forced.iter_rows(named=True)):
        assert g["tokens"][:3] == f["tokens"][:3]  # the model's own trace up to the budget
        if len(f["tokens"]) > 3 and "</think>" not in "".join(f["tokens"][:3]):
            n_forced += 1
            assert "".join(g["tokens"][3:]).startswith("</think>")
            assert g["answer_start"] > 3  # the forced tag is trace: the token-level methods never score it
            assert g["response"].count("</think>") >= 1
        assert len(g["tokens"]) <= 16
    assert n_forced >= 1
    # the samples and the verbal-1s replies reason too: forced where they were still in the trace
    assert any("</think>" in s for s in forced["samples"].explode().to_list())
    assert not any("</think>" in s for s in free["samples"].explode().to_list())
    assert any("</think>" in s for s in forced["verbal_1s_response"].to_list())
    assert not any("</think>" in s for s in free["verbal_1s_response"].to_list())
    with pytest.raises(ValueError, match=r"thinking_budget 16 leaves no room to answer within the answer budget of 16"):
        run("toolong", thinking_budget=16)
