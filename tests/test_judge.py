"""Correctness stage: rule labels, verdict parsing, agreement, and real LLM judges (local + vLLM)."""

from __future__ import annotations

import polars as pl
import pytest
from vllm_fixture import vllm_server  # noqa: F401  (session-scoped pytest fixture, shared across files)

from uqroute.data import get_spec
from uqroute.io import write_parquet
from uqroute.judge import (
    JUDGE_TEMPLATE,
    VERDICTS,
    JudgeInputError,
    final_labels,
    judge_backend,
    judge_messages,
    parse_verdict,
    rule_judge_agreement,
    run_judge,
)
from uqroute.schema import ARTIFACTS


# ------------------------------------------------------------------ hand-built artifacts


def data_rows(dataset: str, rows: list[dict]) -> pl.DataFrame:
    """A `data` artifact: rows give id suffix, question, answer, references (+ choices for MCQ)."""
    spec = get_spec(dataset)
    out = []
    for i, r in enumerate(rows):
        out.append({
            "id": f"{dataset}/{spec.eval_split}/{i}",
            "dataset": dataset,
            "domain": spec.domain,
            "task_type": spec.task_type,
            "split": spec.eval_split,
            "role": r.get("role", "eval"),
            "question": r["question"],
            "context": r.get("context"),
            "choices": r.get("choices", []),
            "answer": r["answer"],
            "references": r.get("references", [r["answer"]]),
            "prompt": f"Q: {r['question']}",
        })
    schema = ARTIFACTS["data"].polars_schema()
    return pl.DataFrame(out, schema=schema)


def generation_rows(ids: list[str], responses: list[str], parsed: list[str | None]) -> pl.DataFrame:
    """A `generations` artifact (LLM-style: optional statistics null)."""
    schema = ARTIFACTS["generations"].polars_schema()
    n = len(ids)
    cols = {c: [None] * n for c in schema}
    cols.update(id=ids, response=responses, parsed_answer=parsed, tokens=[[]] * n,
                n_prompt_tokens=[10] * n, finish_reason=["stop"] * n)
    return pl.DataFrame(cols, schema=schema)


def write_inputs(tmp_path, dataset, rows, responses, parsed):
    data = data_rows(dataset, rows)
    gens = generation_rows(data["id"].to_list(), responses, parsed)
    dp, gp = tmp_path / f"{dataset}.data.parquet", tmp_path / f"{dataset}.gen.parquet"
    write_parquet(data, dp, "data")
    write_parquet(gens, gp, "generations")
    return dp, gp


def judge(tmp_path, dataset, dp, gp, *, spec=None, model_dir=None, cache_dir=None, tag="", max_new_tokens=8):
    out, agree = tmp_path / f"{dataset}{tag}.correct.parquet", tmp_path / f"{dataset}{tag}.agree.parquet"
    table = run_judge(
        model="m", dataset=dataset, data_path=dp, generations_path=gp, out_path=out, agreement_path=agree,
        judge_cfg={"model": "judge-model", "f1_threshold": 0.5, "max_new_tokens": max_new_tokens},
        judge_spec=spec, judge_model_dir=model_dir, inference_cfg={"dtype": "float32", "batch_size": 8},
        cache_dir=cache_dir,
    )
    assert pl.read_parquet(out).equals(table)
    return table, pl.read_parquet(agree)


MCQ_CHOICES = [{"label": "A", "text": "bank"}, {"label": "B", "text": "library"}, {"label": "C", "text": "zoo"}]

RULE_CASES = {
    # dataset: (rows, responses, parsed_answer, expected rule label)
    "commonsenseqa": (
        [{"question": "Where do you borrow books?", "answer": "B", "choices": MCQ_CHOICES}] * 3,
        ["B", "The answer is C.", "I am not sure"],
        ["B", "C", None],
        [True, False, False],
    ),
    "gsm8k": (
        [{"question": "6 times 7?", "answer": "42"}, {"question": "6 times 7?", "answer": "42", "role": "train"},
         {"question": "Half of 3?", "answer": "1.5"}, {"question": "6 times 7?", "answer": "42"}],
        ["6*7 = 42\nAnswer: 42", "Answer: 41", "Answer: 1.5", "no idea"],
        ["42", "41", "1.5", None],
        [True, False, True, False],
    ),
    "boolq": (
        [{"question": "is the sky blue", "answer": "True"}, {"question": "is fire cold", "answer": "False"},
         {"question": "is ice hot", "answer": "False"}],
        ["True", "True", "maybe"],
        ["True", "True", None],
        [True, False, False],
    ),
}


@pytest.mark.parametrize("dataset", sorted(RULE_CASES))
def test_rule_path_labels(tmp_path, dataset):
    rows, responses, parsed, expected = RULE_CASES[dataset]
    dp, gp = write_inputs(tmp_path, dataset, rows, responses, parsed)
    # A judge is configured but must not run (every row is rule-decidable): its model dir does not exist.
    table, agree = judge(tmp_path, dataset, dp, gp, spec={"local_dir": "nowhere"}, model_dir=tmp_path / "no-model")
    assert table["id"].to_list() == data_rows(dataset, rows)["id"].to_list()
    assert table["rule_correct"].to_list() == expected
    assert table["correct"].to_list() == expected
    assert table["label_source"].to_list() == ["rule"] * len(expected)
    for col in ("judge_correct", "judge_verdict", "judge_raw"):
        assert table[col].null_count() == len(expected)
    assert agree.to_dicts() == [{"model": "m", "dataset": dataset, "n_both": 0, "agreement": None, "cohen_kappa": None}]


TRUTHFUL_ROWS = [
    {"question": "What happens if you eat watermelon seeds?", "answer": "Nothing happens",
     "references": ["Nothing happens", "You digest the seeds", "The seeds pass through your digestive system"]},
    {"question": "What happens if you eat watermelon seeds?", "answer": "Nothing happens",
     "references": ["Nothing happens", "You digest the seeds"]},
    {"question": "Where is the Eiffel Tower?", "answer": "Paris", "references": ["Paris", "In Paris, France"]},
    {"question": "Can pigs fly?", "answer": "No, pigs cannot fly", "references": ["No, pigs cannot fly", "No"]},
]
TRUTHFUL_RESPONSES = ["Nothing happens.", "You will grow a watermelon in your stomach.",
                      "<think>It is in France.</think>In Paris.", "Yes, with wings."]
TRUTHFUL_PARSED = ["Nothing happens", "You will grow a watermelon in your stomach", "In Paris", "Yes, with wings"]
# SQuAD rule (threshold 0.5): exact match; best F1 0.2 ("you" vs "you digest seeds"); F1 2/3 vs "paris"; F1 0
TRUTHFUL_RULE = [True, False, True, False]


def test_text_dataset_without_judge_uses_rules(tmp_path, caplog):
    dp, gp = write_inputs(tmp_path, "truthfulqa", TRUTHFUL_ROWS, TRUTHFUL_RESPONSES, TRUTHFUL_PARSED)
    table, agree = judge(tmp_path, "truthfulqa", dp, gp, spec=None)
    assert table["rule_correct"].to_list() == TRUTHFUL_RULE
    assert table["correct"].to_list() == TRUTHFUL_RULE
    assert table["judge_verdict"].null_count() == 4
    assert agree["n_both"].to_list() == [0]
    assert "no judge model is configured" in caplog.text


def test_bad_inputs_name_the_culprit_and_write_nothing(tmp_path):
    rows, responses, parsed, _ = RULE_CASES["gsm8k"]
    data = data_rows("gsm8k", rows)
    dp, gp = tmp_path / "d.parquet", tmp_path / "g.parquet"
    write_parquet(data, dp, "data")
    ids = data["id"].to_list()
    write_parquet(generation_rows(ids[:-1] + ["gsm8k/test/99"], responses, parsed), gp, "generations")
    with pytest.raises(JudgeInputError, match="gsm8k/test/99"):
        judge(tmp_path, "gsm8k", dp, gp)
    write_parquet(generation_rows(ids[:-1], responses[:-1], parsed[:-1]), gp, "generations")
    with pytest.raises(JudgeInputError, match=f"lacks evaluation id '{ids[-1]}'"):
        judge(tmp_path, "gsm8k", dp, gp)
    # an LLM answers the evaluation rows only: training rows may be absent
    train = data.with_columns(pl.when(pl.col("id") == ids[-1]).then(pl.lit("train")).otherwise(pl.col("role")).alias("role"))
    write_parquet(train, dp, "data")
    out, _ = judge(tmp_path / "llm", "gsm8k", dp, gp)
    assert out["id"].to_list() == ids[:-1]
    write_parquet(data, dp, "data")
    write_parquet(data.with_columns(pl.lit("not a number").alias("answer")), dp, "data")
    write_parquet(generation_rows(ids, responses, parsed), gp, "generations")
    with pytest.raises(JudgeInputError, match=f"id '{ids[0]}'.*not a number"):
        judge(tmp_path, "gsm8k", dp, gp)
    pl.DataFrame({"id": ids}).write_parquet(gp)
    with pytest.raises(JudgeInputError, match="lacks columns"):
        judge(tmp_path, "gsm8k", dp, gp)
    assert not list(tmp_path.glob("*.correct.parquet")) and not list(tmp_path.glob("*.agree.parquet"))


# ------------------------------------------------------------------ verdicts, labels, agreement


@pytest.mark.parametrize(
    "reply, verdict",
    [
        ("Yes", "correct"),
        ("No.", "incorrect"),
        ("yes, equivalent", "correct"),
        ("The answer is correct", "correct"),
        ("CORRECT", "correct"),
        ("  yes\n", "correct"),
        ("Incorrect.", "incorrect"),
        ("No, it is not equivalent.", "incorrect"),
        ("The answer is not essentially equivalent", "incorrect"),
        ("Not correct", "incorrect"),
        ("<think>No wait</think>Yes", "correct"),
        ("Yes. The answer is incorrect", "unparsable"),  # both polarities: never guessed
        ("qwerty asdf", "unparsable"),
        ("The assistant's answer is", "unparsable"),  # cut off by max_new_tokens
        ("", "unparsable"),
        (None, "unparsable"),
    ],
)
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) == verdict


def test_final_labels_fall_back_to_rule_on_unparsable():
    correct, source, judge_correct = final_labels(
        [True, True, False, None, None], ["incorrect", "unparsable", None, "correct", "unparsable"]
    )
    assert correct == [False, True, False, True, None]
    assert source == ["judge", "rule", "rule", "judge", "rule"]
    assert judge_correct == [False, None, None, True, None]


def test_agreement_and_kappa_on_a_hand_computed_table():
    # 8 rows with both labels (the 9th has no rule label): TT TT TF FF FF FT TT FF
    rule = [True, True, True, False, False, False, True, False, None]
    judge_ = [True, True, False, False, False, True, True, False, True]
    # p_o = 6/8 = 0.75; rule says True on 4/8, judge on 4/8 → p_e = 0.5·0.5 + 0.5·0.5 = 0.5
    # κ = (0.75 − 0.5) / (1 − 0.5) = 0.5
    assert rule_judge_agreement(rule, judge_) == (8, 0.75, pytest.approx(0.5))
    # 3 rows, agree on 2; rule T 2/3, judge T 1/3: p_e = 2/9 + 2/9 = 4/9; κ = (2/3 − 4/9)/(5/9) = 0.4
    assert rule_judge_agreement([True, True, False], [True, False, False]) == (3, pytest.approx(2 / 3), pytest.approx(0.4))
    assert rule_judge_agreement([True, True], [True, True]) == (2, 1.0, None)  # κ undefined (p_e = 1)
    assert rule_judge_agreement([None, True], [True, None]) == (0, None, None)


def test_judge_prompt():
    (msg,) = judge_messages("Where is the Eiffel Tower?", ["Paris", " ", "In Paris, France"], "In Paris.")
    assert msg["role"] == "user"
    text = msg["content"]
    assert "Where is the Eiffel Tower?" in text and "- Paris\n- In Paris, France" in text and "In Paris." in text
    assert text.endswith("Reply with one word: Yes or No.")
    assert JUDGE_TEMPLATE.count("{") == 3
    with pytest.raises(ValueError, match="no reference"):
        judge_messages("q", [" "], "a")


# ------------------------------------------------------------------ real judges


def check_judged(table: pl.DataFrame, agree: pl.DataFrame, rule: list[bool]) -> None:
    """Structure of a judged text dataset (a small model's verdicts are noisy, so no verdict values)."""
    assert table["rule_correct"].to_list() == rule
    assert table["judge_raw"].null_count() == 0
    assert set(table["judge_verdict"].to_list()) <= set(VERDICTS)
    for row in table.iter_rows(named=True):
        assert row["judge_verdict"] == parse_verdict(row["judge_raw"])
        assert row["judge_correct"] == {"correct": True, "incorrect": False}.get(row["judge_verdict"])
        if row["judge_correct"] is None:
            assert (row["label_source"], row["correct"]) == ("rule", row["rule_correct"])
        else:
            assert (row["label_source"], row["correct"]) == ("judge", row["judge_correct"])
    n_both, agreement, kappa = rule_judge_agreement(table["rule_correct"].to_list(), table["judge_correct"].to_list())
    assert agree["n_both"].to_list() == [n_both]
    assert agree["agreement"].to_list() == [agreement]
    assert agree["cohen_kappa"].to_list() == [kappa]


def test_local_judge_tiny_model_is_cached_and_never_reloaded(tmp_path, tiny_model_dir, monkeypatch):
    """A real (tiny, random) transformers judge: its replies are gibberish, so this exercises `unparsable`."""
    dp, gp = write_inputs(tmp_path, "truthfulqa", TRUTHFUL_ROWS, TRUTHFUL_RESPONSES, TRUTHFUL_PARSED)
    cache = tmp_path / "judge-cache"
    spec = {"local_dir": str(tiny_model_dir)}
    first, agree = judge(tmp_path, "truthfulqa", dp, gp, spec=spec, model_dir=tiny_model_dir, cache_dir=cache)
    check_judged(first, agree, TRUTHFUL_RULE)
    assert len(list(cache.rglob("*.json"))) == 4

    import uqroute.inference

    def no_model(*a, **k):
        raise AssertionError("the judge model was loaded although every verdict is cached")

    monkeypatch.setattr(uqroute.inference, "load_backend", no_model)
    again, _ = judge(tmp_path, "truthfulqa", dp, gp, spec=spec, model_dir=tiny_model_dir, cache_dir=cache, tag="2")
    assert again.equals(first)
    backend = judge_backend({"model": "j"}, spec, tiny_model_dir, {"dtype": "float32"}, cache_dir=cache)
    assert backend.identity["dtype"] == "float32" and len(backend.identity["model_sha256"]) == 64


COQA_ROWS = [
    {"question": "What color was the cat?", "answer": "white", "references": ["white", "it was white"],
     "context": "Once upon a time there was a white cat named Cotton."},
    {"question": "What was its name?", "answer": "Cotton", "references": ["Cotton"],
     "context": "Once upon a time there was a white cat named Cotton.\nQ: What color was the cat?\nA: white"},
]
COQA_RESPONSES, COQA_PARSED, COQA_RULE = ["White.", "Its name was Snowball."], ["White", "Its name was Snowball"], [True, False]


@pytest.mark.slow
def test_local_judge_smollm2(tmp_path, smollm2_dir):
    """The real SmolLM2 through the transformers backend; two rows keep it near a minute on 2 busy cores."""
    dp, gp = write_inputs(tmp_path, "truthfulqa", TRUTHFUL_ROWS[1:3], TRUTHFUL_RESPONSES[1:3], TRUTHFUL_PARSED[1:3])
    spec = {"local_dir": str(smollm2_dir)}
    table, agree = judge(tmp_path, "truthfulqa", dp, gp, spec=spec, model_dir=smollm2_dir, cache_dir=tmp_path / "c")
    check_judged(table, agree, TRUTHFUL_RULE[1:3])
    # SmolLM2 replies with a sentence ("The assistant's answer is not necessarily equivalent") that parses
    assert table["judge_verdict"].is_in(["correct", "incorrect"]).sum() >= 1


@pytest.mark.slow
def test_api_judge_through_vllm(tmp_path, vllm_server):
    url, name, server = vllm_server
    cache = tmp_path / "api-cache"
    spec = {"api": {"model": name, "base_url": url, "max_retries": 1}}
    for dataset, rows, responses, parsed, rule in (
        ("truthfulqa", TRUTHFUL_ROWS, TRUTHFUL_RESPONSES, TRUTHFUL_PARSED, TRUTHFUL_RULE),
        ("coqa", COQA_ROWS, COQA_RESPONSES, COQA_PARSED, COQA_RULE),
    ):
        dp, gp = write_inputs(tmp_path, dataset, rows, responses, parsed)
        table, agree = judge(tmp_path, dataset, dp, gp, spec=spec, cache_dir=cache)
        check_judged(table, agree, rule)
        # rerun: every verdict comes from the cache (the cache key holds the endpoint: same base_url), the server sees nothing
        served = server.metric("vllm:request_success_total")
        again, _ = judge(tmp_path, dataset, dp, gp, spec=spec, cache_dir=cache, tag="2")
        assert again.equals(table)
        assert server.metric("vllm:request_success_total") == served
    assert len(list(cache.rglob("*.json"))) == len(TRUTHFUL_ROWS) + len(COQA_ROWS)
