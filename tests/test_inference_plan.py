"""The query plan (tiny random model, fast): one query's jobs for a set of statistics and its record,
the same code for the pipeline's shards (QueryBatch) and the router's requests (QueryPlan, chat_row)."""

from __future__ import annotations

import pytest

from uqroute.inference import (
    STATISTICS,
    QueryBatch,
    QueryPlan,
    ShardContext,
    TransformersBackend,
    answer_budgets,
    budgets,
    chat_row,
    resolve_settings,
)
from uqroute.schema import ARTIFACTS

CFG = resolve_settings({"num_samples": 3, "sample_max_new_tokens": 6, "verbal_max_new_tokens": 5})
B = {"answer": 8, "sample": 6, "verbal": 5}


@pytest.fixture(scope="module")
def be(tiny_model_dir):
    backend = TransformersBackend(tiny_model_dir, progress=False)
    yield backend
    backend.close()


def _row(i, role="eval"):
    q = f"Question {i}: what is {i} + {i}?"
    return {"id": f"d/{i}", "role": role, "question": q, "context": None, "choices": [], "prompt": q}


def _ctx(be, b=B):
    return ShardContext(be, "text", "FF", b, CFG, 0, {})


def test_a_batch_puts_every_answer_job_first_then_the_separate_prompts_statistic_by_statistic(be):
    rows = [_row(0), _row(1, "train"), _row(2)]
    batch = QueryBatch(_ctx(be), rows, list(STATISTICS))
    mains = batch.jobs[:3]
    assert [j.group for j in mains] == ["d/0", "d/1", "d/2"]
    # an evaluation row: greedy + 3 samples from one prefill, follow-up turns (ptrue, verbal_2s) after its answer
    assert len(mains[0].branches) == 1 + 3 and mains[0].follow_up is not None and mains[0].want_hidden
    assert [b.temperature for b in mains[0].branches] == [0.0, 1.0, 1.0, 1.0]
    # a training row: the greedy answer and the hidden state only
    assert len(mains[1].branches) == 1 and mains[1].follow_up is None and mains[1].want_hidden
    assert [p.stats for p in batch.plans][1] == [STATISTICS["greedy"], STATISTICS["hidden"]]
    # then verbal_1s's second prompts, of the evaluation rows only, in row order
    assert [j.group for j in batch.jobs[3:]] == ["d/0", "d/2"] and len(batch.jobs) == 5
    # a query's jobs are the same whether it is planned alone (the router) or in a batch (the pipeline)
    alone = QueryPlan(_ctx(be), rows[2], list(STATISTICS)).jobs
    assert [(j.prompt_ids, j.branches, j.group) for j in alone] == [
        (j.prompt_ids, j.branches, j.group) for j in (batch.jobs[2], batch.jobs[4])
    ]


def test_the_batchs_records_are_each_plans_own(be):
    rows = [_row(0), _row(1, "train")]
    batch = QueryBatch(_ctx(be), rows, list(STATISTICS))
    results = be.run_jobs(batch.jobs, hidden_layer=-2)
    recs = batch.collect(results)
    assert [r["id"] for r in recs] == ["d/0", "d/1"]
    names = ARTIFACTS["generations"].names
    assert set(recs[0]) == set(names) | {"_hidden"} and set(recs[1]) == set(names) | {"_hidden"}
    ev, tr = recs
    assert len(ev["samples"]) == 3 and ev["verbal_1s_finish_reason"] and ev["verbal_2s_finish_reason"]
    assert ev["ptrue"] is None or 0 <= ev["ptrue"] <= 1
    # a training row fills the greedy columns and the hidden state; everything else stays null
    assert tr["response"] is not None and len(tr["_hidden"]) == 32
    assert all(tr[c] is None for c in ("samples", "ptrue", "verbal_1s_response", "verbal_2s_response"))
    # the evaluation row planned alone, collected from its own jobs' results in the batch, is the same record
    plan = batch.plans[0]
    assert plan.collect([results[0], results[2]]) == ev


def test_collect_refuses_results_that_are_not_its_jobs(be):
    batch = QueryBatch(_ctx(be), [_row(0)], list(STATISTICS))
    results = be.run_jobs(batch.jobs, hidden_layer=-2)
    with pytest.raises(ValueError, match="1 results for 2 jobs"):
        batch.collect(results[:1])
    with pytest.raises(ValueError, match=r"query 'd/0': 1 results for 2 jobs"):
        batch.plans[0].collect(results[:1])
    with pytest.raises(ValueError, match=r"query 'd/0': 3 results for 2 jobs"):
        batch.plans[0].collect([*results, results[0]])


def test_only_the_statistics_asked_for_fill_columns_and_the_hidden_state_only_when_asked(be):
    plan = QueryPlan(_ctx(be), _row(0), ["greedy"], answer_entropy=False)
    assert len(plan.jobs) == 1 and not plan.main.want_hidden and plan.main.follow_up is None
    assert plan.main.branches[0].entropy is False and plan.columns == STATISTICS["greedy"].columns
    rec = plan.collect(be.run_jobs(plan.jobs))
    assert "_hidden" not in rec and rec["token_entropies"] is None and rec["token_logprobs"]
    assert rec["samples"] is None and rec["ptrue"] is None


def test_a_chat_is_a_row_whose_question_is_the_last_user_message(be):
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "What is 2+2?"},
    ]
    row = chat_row(msgs, "req-1")
    assert row == {"id": "req-1", "prompt": msgs, "question": "What is 2+2?", "choices": [], "context": None}
    assert chat_row([{"role": "system", "content": "x"}], "r")["question"] == ""
    # the answer prompt is the conversation rendered with the chat template, exactly as a row's prompt string is
    single = QueryPlan(
        _ctx(be), chat_row([{"role": "user", "content": "Question 0: what is 0 + 0?"}], "d/0"), ["greedy"]
    )
    assert single.main.prompt_ids == QueryPlan(_ctx(be), _row(0), ["greedy"]).main.prompt_ids


def test_answer_budgets_follow_the_answer_budget_as_the_datasets_budgets_do():
    cfg = resolve_settings({"max_new_tokens": {"FF": 40}, "sample_max_new_tokens": 16, "verbal_max_new_tokens": 7})
    assert answer_budgets(40, cfg) == budgets(cfg, {}, "FF", "commonsense") == {"answer": 40, "sample": 16, "verbal": 7}
    # the sample budget never outgrows the answer budget; null sample budget: the answer budget
    assert answer_budgets(10, cfg) == {"answer": 10, "sample": 10, "verbal": 7}
    assert answer_budgets(10, {**cfg, "sample_max_new_tokens": None}) == {"answer": 10, "sample": 10, "verbal": 7}
    assert answer_budgets(1, cfg) == {"answer": 1, "sample": 1, "verbal": 7}
    # a model's scale scales the sample and verbal budgets, rounding up
    assert answer_budgets(100, cfg, 1.5) == budgets(
        cfg, {"max_new_tokens": {"FF": 100}, "max_new_tokens_scale": 1.5}, "FF", "x"
    )
    assert answer_budgets(100, cfg, 1.5) == {"answer": 100, "sample": 24, "verbal": 11}


def test_a_context_with_other_budgets_keeps_what_it_read_off_the_tokenizer(be):
    ctx = _ctx(be)
    tf = ctx.true_false_ids()
    other = ctx.with_budgets({"answer": 3, "sample": 2, "verbal": 1})
    assert other.budgets == {"answer": 3, "sample": 2, "verbal": 1} and ctx.budgets == B
    assert other.true_false_ids() is tf and other.think_open == ctx.think_open
    assert QueryPlan(other, _row(0), ["greedy"]).main.branches[0].max_new_tokens == 3
