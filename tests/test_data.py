"""Dataset stage: registry, adapters (on real mirror rows and hand-written CoQA rows),
prompts, selection, errors, atomic and deterministic builds."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from uqroute.data import (
    ADAPTERS,
    DATASETS,
    CorruptFileError,
    DatasetError,
    EmptySplitError,
    MissingColumnError,
    RowError,
    SplitNotFoundError,
    UnknownDatasetError,
    build_dataset,
    canonical_number,
    get_spec,
    load_rows,
    prompts,
    read_split,
    select_indices,
)
from uqroute.data.adapters import coqa_context, to_rows
from uqroute.schema import ARTIFACTS, check_frame

ROOT = Path(__file__).resolve().parents[1]
SLICES = ROOT / "data" / "slices"
NAMES = [
    "gsm8k",
    "aqua",
    "multiarith",
    "svamp",
    "math500",
    "boolq",
    "commonsenseqa",
    "hellaswag",
    "openbookqa",
    "piqa",
    "socialiqa",
    "truthfulqa",
    "winogrande",
    "coqa",
    "mmlu",
]
MIRRORED = [n for n in NAMES if n != "coqa"]


def find_mirror() -> Path | None:
    """The offline mirror: $UQROUTE_DATASETS_MIRROR, else the repo root's ../shared/datasets."""
    for cand in (os.environ.get("UQROUTE_DATASETS_MIRROR"), ROOT.parent / "shared" / "datasets"):
        if cand and (Path(cand) / "openai__gsm8k").is_dir():
            return Path(cand)
    return None


MIRROR = find_mirror()
needs_mirror = pytest.mark.skipif(
    MIRROR is None, reason="offline datasets mirror not found (../shared/datasets or $UQROUTE_DATASETS_MIRROR)"
)


def mirror_rows(name: str, split: str | None = None, n: int | None = None) -> list[dict]:
    spec = get_spec(name)
    rows = read_split(spec, split or spec.eval_split, source="mirror", mirror_dir=MIRROR)
    return rows[:n] if n else rows


def unified(name: str, split: str | None = None, n: int = 3) -> list[dict]:
    spec = get_spec(name)
    split = split or spec.eval_split
    return to_rows(spec, split, "eval", mirror_rows(name, split, n))


# ------------------------------------------------------------------ registry
def test_registry_has_the_papers_15_datasets_in_config_schema_order():
    assert list(DATASETS) == NAMES
    enum = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())["properties"]["datasets"]["items"]["enum"]
    assert enum == NAMES
    assert set(ADAPTERS) == set(NAMES)


@pytest.mark.parametrize(
    "name, task_type, domain, fmt, eval_split, train_split",
    [
        ("gsm8k", "FF", "math", "number", "test", "train"),
        ("aqua", "MCQ", "math", "letter", "test", "train"),
        ("math500", "FF", "math", "latex", "test", None),
        ("boolq", "TF", "commonsense", "bool", "validation", "train"),
        ("truthfulqa", "FF", "commonsense", "text", "validation", None),
        ("coqa", "FF", "conversational", "text", "validation", "train"),
        ("mmlu", "MCQ", "problem_solving", "letter", "test", "auxiliary_train"),
        ("winogrande", "MCQ", "commonsense", "letter", "validation", "train"),
        ("piqa", "MCQ", "commonsense", "letter", "validation", "train"),
        ("openbookqa", "MCQ", "commonsense", "letter", "test", "train"),
    ],
)
def test_registry_fields_follow_table_2(name, task_type, domain, fmt, eval_split, train_split):
    s = get_spec(name)
    assert (s.task_type, s.domain, s.answer_format, s.eval_split, s.train_split) == (
        task_type,
        domain,
        fmt,
        eval_split,
        train_split,
    )


def test_unknown_dataset_lists_known_names():
    with pytest.raises(UnknownDatasetError, match="unknown dataset 'gsm9k'") as e:
        get_spec("gsm9k")
    for n in NAMES:
        assert n in str(e.value)
    with pytest.raises(UnknownDatasetError):
        load_rows("gsm9k")


def test_spec_rejects_bad_task_type():
    from dataclasses import replace

    with pytest.raises(ValueError, match="task_type 'XX'"):
        replace(get_spec("gsm8k"), task_type="XX")


def test_spec_mirror_paths():
    assert get_spec("gsm8k").split_file("test") == "openai__gsm8k/main/test.parquet"
    assert get_spec("piqa").split_file("validation") == "ybisk__piqa/default/validation.parquet"


# ------------------------------------------------------------------ helpers
@pytest.mark.parametrize(
    "value, expected",
    [
        (5.0, "5"),
        ("1,250", "1250"),
        (0.5, "0.5"),
        ("-3", "-3"),
        ("0.50", "0.5"),
        (1e-05, "0.00001"),
        ("  42 ", "42"),
        (-0.0, "0"),
        ("3.1400", "3.14"),
        (100, "100"),
        ("1e3", "1000"),
    ],
)
def test_canonical_number(value, expected):
    assert canonical_number(value) == expected


@pytest.mark.parametrize("value", ["abc", "", None, float("nan"), float("inf"), True])
def test_canonical_number_rejects_non_numbers(value):
    with pytest.raises(ValueError):
        canonical_number(value)


def test_select_indices_is_seeded_sorted_and_per_dataset():
    a = select_indices(100, 10, seed=0, dataset="gsm8k", role="eval")
    assert list(a) == sorted(set(a.tolist())) and len(a) == 10
    assert list(a) == list(select_indices(100, 10, seed=0, dataset="gsm8k", role="eval"))
    assert list(a) != list(select_indices(100, 10, seed=1, dataset="gsm8k", role="eval"))
    assert list(a) != list(select_indices(100, 10, seed=0, dataset="svamp", role="eval"))
    assert list(select_indices(5, None, seed=0, dataset="x", role="eval")) == [0, 1, 2, 3, 4]


def test_select_indices_limit_larger_than_split_logs(caplog):
    with caplog.at_level(logging.WARNING, logger="uqroute.data"):
        out = select_indices(5, 9, seed=0, dataset="gsm8k", role="eval")
    assert list(out) == [0, 1, 2, 3, 4]
    assert "eval limit 9 exceeds the 5 available rows; using all 5" in caplog.text


# ------------------------------------------------------------------ prompts
def test_mcq_prompt_lists_lettered_options_and_asks_for_letter_only():
    p = prompts.mcq_prompt("Q?", [{"label": "A", "text": "x"}, {"label": "B", "text": "y"}], instruction="Pick.")
    assert p.startswith("Pick.")
    assert "Question: Q?" in p and "\nA. x\nB. y" in p
    assert "letter of the correct option only (A or B)" in p


def test_tf_prompt_asks_true_or_false():
    p = prompts.tf_prompt("is the sky blue", context="The sky is blue.")
    assert "Passage: The sky is blue." in p and "Question: Is the sky blue?" in p
    assert "True or False only" in p


def test_math_and_latex_prompts():
    assert '"Answer: <number>"' in prompts.math_prompt("1+1?")
    assert "\\boxed{}" in prompts.latex_prompt("x?")
    p = prompts.short_answer_prompt("Who?", context="Story.")
    assert "Story." in p and "short answer" in p


# ------------------------------------------------------------------ adapters on real rows
@needs_mirror
def test_gsm8k_answer_after_hashes():
    r = unified("gsm8k")[0]
    assert r["answer"] == "18" and r["question"].startswith("Janet’s ducks lay 16 eggs")
    assert r["choices"] == [] and r["references"] == ["18"] and r["context"] is None
    assert r["id"] == "gsm8k/test/0"
    assert r["prompt"].endswith(r["question"]) and "Answer: <number>" in r["prompt"]
    train = unified("gsm8k", "train", 1)[0]
    assert train["answer"] == "72" and train["id"] == "gsm8k/train/0"


@needs_mirror
def test_gsm8k_thousands_separator_is_dropped():
    rows = unified("gsm8k", n=None)
    raw = mirror_rows("gsm8k")
    i = next(i for i, r in enumerate(raw) if re.search(r"####\s*\d+,\d", r["answer"]))
    assert "," not in rows[i]["answer"] and rows[i]["answer"].isdigit()


@needs_mirror
def test_aqua_options_and_correct_letter():
    r = unified("aqua")[0]
    assert r["answer"] == "A"
    assert [c["label"] for c in r["choices"]] == list("ABCDE")
    assert r["choices"][0]["text"] == "5(√3 + 1)" and r["choices"][4]["text"] == "None of these"
    assert "A. 5(√3 + 1)" in r["prompt"]


@needs_mirror
def test_multiarith_and_svamp_numbers():
    assert unified("multiarith")[0]["answer"] == "39"
    s = unified("svamp")[0]
    assert s["answer"] == "51"  # Answer 51.0
    assert s["question"].startswith("Each pack of dvds costs 76 dollars.") and s["question"].endswith("each pack?")


@needs_mirror
def test_math500_latex_verbatim():
    r = unified("math500")[0]
    assert r["answer"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert r["question"].startswith("Convert the point $(0,3)$") and "\\boxed{}" in r["prompt"]


@needs_mirror
def test_boolq_passage_context_and_bool_answer():
    rows = unified("boolq", n=None)
    raw = mirror_rows("boolq")
    assert rows[0]["answer"] == "False" and rows[0]["context"] == raw[0]["passage"]
    assert {r["answer"] for r in rows} == {"True", "False"}
    assert sum(r["answer"] == "True" for r in rows) == sum(r["answer"] for r in raw)
    assert rows[0]["task_type"] == "TF" and "True or False" in rows[0]["prompt"]


@needs_mirror
def test_commonsenseqa_and_openbookqa_struct_choices():
    c = unified("commonsenseqa")[0]
    assert c["answer"] == "A" and c["choices"][0] == {"label": "A", "text": "bank"} and len(c["choices"]) == 5
    o = unified("openbookqa")[0]
    assert o["answer"] == "B" and o["choices"][1]["text"] == "quit eating lunch out"
    assert o["question"].startswith("A person wants to start saving money")


@needs_mirror
def test_hellaswag_ctx_endings_string_label():
    r = unified("hellaswag")[0]
    assert r["question"] == "A man is sitting on a roof. he"
    assert r["answer"] == "D" and r["choices"][3]["text"] == "starts pulling up roofing on a roof."
    assert "most plausibly continues" in r["prompt"] and "Text: A man is sitting on a roof. he\n" in r["prompt"]


@needs_mirror
def test_piqa_socialiqa_winogrande_labels():
    p = unified("piqa")[0]
    assert p["answer"] == "A" and len(p["choices"]) == 2 and p["question"].startswith("How do I ready a guinea pig")
    s = unified("socialiqa")[0]
    assert s["answer"] == "C" and s["choices"][2]["text"] == "Find somewhere to go"
    assert s["context"] == "Tracy didn't go home that evening and resisted Riley's attacks."
    assert "Context: Tracy" in s["prompt"]
    w = unified("winogrande")[0]
    assert w["answer"] == "B" and [c["text"] for c in w["choices"]] == ["Sarah", "Maria"]
    assert "_" in w["question"] and "fills the blank" in w["prompt"]
    assert f"Sentence: {w['question']}" in w["prompt"] and "Question:" not in w["prompt"]
    assert f"Goal: {p['question']}" in p["prompt"]


@needs_mirror
def test_truthfulqa_best_answer_and_references():
    r = unified("truthfulqa")[0]
    assert r["answer"] == "The watermelon seeds pass through your digestive system"
    assert r["references"][0] == r["answer"] and "Nothing happens" in r["references"]
    assert len(r["references"]) == len(set(r["references"]))


@needs_mirror
def test_mmlu_classlabel_int_answer():
    r = unified("mmlu")[0]
    assert r["answer"] == "B" and [c["text"] for c in r["choices"]] == ["0", "4", "2", "6"]


@needs_mirror
@pytest.mark.parametrize(
    "name, split, column",
    [("commonsenseqa", "test", "answerKey"), ("piqa", "test", "label"), ("winogrande", "test", "answer")],
)
def test_unlabeled_test_splits_are_rejected_with_row_and_column(name, split, column):
    with pytest.raises(RowError, match=rf"dataset '{name}', split '{split}', row 0, column '{column}'"):
        unified(name, split, 1)


# ------------------------------------------------------------------ CoQA (hub schema, hand-written)
COQA_ROWS = [
    {
        "source": "wikipedia",
        "story": "Anna has a red bike. She rides it to school every day.",
        "questions": ["What does Anna have?", "What color is it?", "Where does she ride it?"],
        "answers": {
            "input_text": ["a bike", "red", "to school"],
            "answer_start": [6, 12, 30],
            "answer_end": [18, 15, 50],
        },
    },
    {
        "source": "cnn",
        "story": "The match ended 2-1.",
        "questions": ["What was the score?"],
        "answers": {"input_text": ["2-1"], "answer_start": [16], "answer_end": [19]},
    },
]


def test_coqa_all_questions_one_row_per_question_with_history():
    rows = to_rows(get_spec("coqa"), "validation", "eval", COQA_ROWS, options={"coqa": {"questions": "all"}})
    assert [r["id"] for r in rows] == [
        "coqa/validation/0/0",
        "coqa/validation/0/1",
        "coqa/validation/0/2",
        "coqa/validation/1/0",
    ]
    assert [r["answer"] for r in rows] == ["a bike", "red", "to school", "2-1"]
    assert rows[0]["context"] == COQA_ROWS[0]["story"]
    assert rows[2]["context"] == (
        "Anna has a red bike. She rides it to school every day.\n\n"
        "Q: What does Anna have?\nA: a bike\nQ: What color is it?\nA: red"
    )
    assert rows[3]["context"] == "The match ended 2-1."  # history does not leak across stories
    assert rows[1]["references"] == ["red"] and rows[1]["domain"] == "conversational"
    assert rows[2]["prompt"].endswith(
        "Question: Where does she ride it?\n\nAnswer with a short answer (a few words or one sentence), without any explanation."
    )
    assert "Q: What color is it?\nA: red" in rows[2]["prompt"]


def test_coqa_one_unit_per_story_its_last_question_with_the_whole_conversation():
    rows = to_rows(get_spec("coqa"), "validation", "eval", COQA_ROWS)  # default: data.coqa_questions last
    assert [r["id"] for r in rows] == ["coqa/validation/0/2", "coqa/validation/1/0"]
    assert [r["question"] for r in rows] == ["Where does she ride it?", "What was the score?"]
    assert [r["answer"] for r in rows] == ["to school", "2-1"]
    assert rows[0]["context"] == (
        "Anna has a red bike. She rides it to school every day.\n\n"
        "Q: What does Anna have?\nA: a bike\nQ: What color is it?\nA: red"
    )
    assert rows[1]["context"] == "The match ended 2-1."
    last = to_rows(get_spec("coqa"), "validation", "eval", COQA_ROWS, options={"coqa": {"questions": "last"}})
    every = to_rows(get_spec("coqa"), "validation", "eval", COQA_ROWS, options={"coqa": {"questions": "all"}})
    assert last == rows and [r for r in every if r["id"] in {x["id"] for x in rows}] == rows


def test_coqa_every_turn_is_checked_even_when_only_the_last_is_kept():
    bad = dict(COQA_ROWS[0], questions=["", "What color is it?", "Where does she ride it?"])
    with pytest.raises(RowError, match=r"row 0, column 'questions': turn 0 is empty"):
        to_rows(get_spec("coqa"), "validation", "eval", [bad])
    with pytest.raises(ValueError, match=r"data.coqa_questions must be one of \('last', 'all'\), got 'first'"):
        to_rows(get_spec("coqa"), "validation", "eval", COQA_ROWS, options={"coqa": {"questions": "first"}})


def test_coqa_mismatched_answers_is_a_row_error():
    bad = dict(COQA_ROWS[0], answers={"input_text": ["a bike"], "answer_start": [0], "answer_end": [1]})
    with pytest.raises(
        RowError, match=r"dataset 'coqa', split 'validation', row 0, column 'answers': 3 questions but 1"
    ):
        to_rows(get_spec("coqa"), "validation", "eval", [bad])


def test_coqa_context_helper():
    assert coqa_context("S", []) == "S"
    assert coqa_context("S", [("q", "a")]) == "S\n\nQ: q\nA: a"


COQA_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("story", pa.string()),
        ("questions", pa.list_(pa.string())),
        (
            "answers",
            pa.struct(
                [
                    ("input_text", pa.list_(pa.string())),
                    ("answer_start", pa.list_(pa.int32())),
                    ("answer_end", pa.list_(pa.int32())),
                ]
            ),
        ),
    ]
)


def write_split(root: Path, name: str, split: str, table: pa.Table) -> Path:
    path = root / get_spec(name).split_file(split)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def test_coqa_through_the_mirror_code_path(tmp_path):
    write_split(tmp_path, "coqa", "validation", pa.Table.from_pylist(COQA_ROWS, schema=COQA_SCHEMA))
    write_split(tmp_path, "coqa", "train", pa.Table.from_pylist(COQA_ROWS[:1], schema=COQA_SCHEMA))
    df = load_rows("coqa", source="mirror", mirror_dir=tmp_path, train_limit=2, seed=0)
    check_frame(df, "data")
    # one evaluation unit per story (Table 2 counts stories): the last question of each
    assert df.filter(pl.col("role") == "eval")["id"].to_list() == ["coqa/validation/0/2", "coqa/validation/1/0"]
    train = df.filter(pl.col("role") == "train")
    assert train["id"].to_list() == ["coqa/train/0/2"] and set(train["split"]) == {"train"}
    every = load_rows("coqa", source="mirror", mirror_dir=tmp_path, train_limit=2, seed=0, coqa_questions="all")
    check_frame(every, "data")
    assert every.filter(pl.col("role") == "eval").height == 4
    assert every.filter(pl.col("role") == "train").height == 2


def test_coqa_500_stories_give_500_evaluation_units(tmp_path):
    """A synthetic frame in the hub's exact columns (stanfordnlp/coqa: source, story, questions,
    answers{input_text, answer_start, answer_end}) with the validation split's 500 stories."""
    stories = [
        {
            "source": "mctest",
            "story": f"Story {i}: Tom has {i} apples.",
            "questions": [f"Who is in story {i}?", "How many apples?", "Does he share them?"][: 1 + i % 3],
            "answers": {
                "input_text": ["Tom", str(i), "no"][: 1 + i % 3],
                "answer_start": [0, 1, 2][: 1 + i % 3],
                "answer_end": [3, 4, 5][: 1 + i % 3],
            },
        }
        for i in range(500)
    ]
    table = pa.Table.from_pylist(stories, schema=COQA_SCHEMA)
    assert table.schema.names == ["source", "story", "questions", "answers"]
    write_split(tmp_path, "coqa", "validation", table)
    df = load_rows("coqa", source="mirror", mirror_dir=tmp_path, seed=0)
    assert df.height == 500 and df["id"].n_unique() == 500
    assert df["id"][7] == "coqa/validation/7/1" and df["question"][7] == "How many apples?" and df["answer"][7] == "7"
    assert df["context"][8] == "Story 8: Tom has 8 apples.\n\nQ: Who is in story 8?\nA: Tom\nQ: How many apples?\nA: 8"
    assert load_rows("coqa", source="mirror", mirror_dir=tmp_path, seed=0, coqa_questions="all").height == sum(
        1 + i % 3 for i in range(500)
    )


# ------------------------------------------------------------------ hub path (datasets.load_dataset stubbed)
def test_hub_source_calls_load_dataset_with_id_config_split_revision(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, name=None, *, split=None, revision=None, **kw):
        calls.append((path, name, split, revision))
        if split != "test":
            raise ValueError(f"Unknown split \"{split}\". Should be one of ['test'].")
        return datasets.Dataset.from_list([{"question": "What is 1+1?", "answer": "1+1=2\n#### 2", "extra": 1}] * 3)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr("uqroute.data.build.resolve_hub_commit", lambda spec, revision: None)  # offline: no commit
    df = load_rows("gsm8k", source="hub", eval_limit=2, train_limit=1)
    assert calls == [("openai/gsm8k", "main", "test", None), ("openai/gsm8k", "main", "train", None)]
    assert df["answer"].to_list() == ["2", "2"] and set(df["role"]) == {"eval"}


def test_hub_source_missing_column(monkeypatch):
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_list([{"question": "q"}]))
    monkeypatch.setattr("uqroute.data.build.resolve_hub_commit", lambda spec, revision: None)
    with pytest.raises(
        MissingColumnError, match="dataset 'gsm8k', split 'test': hub dataset openai/gsm8k/main has no column 'answer'"
    ):
        load_rows("gsm8k", source="hub")


# ------------------------------------------------------------------ sources and errors (hand-built mirrors)
def gsm8k_table(n: int) -> pa.Table:
    return pa.table({"question": [f"q{i}?" for i in range(n)], "answer": [f"step\n#### {i}" for i in range(n)]})


def test_missing_eval_file_names_dataset_split_file(tmp_path):
    (tmp_path / "other").mkdir()
    with pytest.raises(
        SplitNotFoundError, match=r"dataset 'gsm8k', split 'test': file .*openai__gsm8k/main/test\.parquet not found"
    ):
        load_rows("gsm8k", source="mirror", mirror_dir=tmp_path)


def test_missing_mirror_dir(tmp_path):
    with pytest.raises(SplitNotFoundError, match="mirror directory .*nope does not exist"):
        load_rows("gsm8k", source="mirror", mirror_dir=tmp_path / "nope")
    with pytest.raises(DatasetError, match="mirror_dir is not set"):
        load_rows("gsm8k", source="mirror", mirror_dir=None)


def test_missing_column_names_dataset_split_file_column(tmp_path):
    path = write_split(tmp_path, "gsm8k", "test", pa.table({"question": ["q"], "answr": ["#### 1"]}))
    with pytest.raises(MissingColumnError) as e:
        load_rows("gsm8k", source="mirror", mirror_dir=tmp_path)
    msg = str(e.value)
    assert "dataset 'gsm8k'" in msg and "split 'test'" in msg and str(path) in msg and "no column 'answer'" in msg


def test_binary_text_columns_are_decoded_not_turned_into_repr(tmp_path, caplog):
    """A mirror whose text is stored as parquet binary gives the same rows as one with strings."""
    strings = gsm8k_table(3)
    write_split(tmp_path / "s", "gsm8k", "test", strings)
    binary = pa.table(
        {c: pa.array([v.encode() for v in strings[c].to_pylist()], pa.binary()) for c in strings.column_names}
    )
    write_split(tmp_path / "b", "gsm8k", "test", binary)
    with caplog.at_level(logging.WARNING, logger="uqroute.data"):
        got = load_rows("gsm8k", source="mirror", mirror_dir=tmp_path / "b")
    assert got.equals(load_rows("gsm8k", source="mirror", mirror_dir=tmp_path / "s"))
    assert not any("b'" in text for text in got["question"].to_list() + got["prompt"].to_list())
    assert "column 'question'" in caplog.text and "binary" in caplog.text


def test_binary_inside_a_struct_is_decoded(tmp_path):
    """Nested binary (CommonsenseQA's choices struct) is decoded too."""
    row = {
        "question": b"Where?",
        "answerKey": b"B",
        "choices": {"label": [b"A", b"B"], "text": [b"home", b"caf\xc3\xa9"]},
    }
    schema = pa.schema(
        [
            ("question", pa.binary()),
            ("answerKey", pa.binary()),
            ("choices", pa.struct([("label", pa.list_(pa.binary())), ("text", pa.list_(pa.binary()))])),
        ]
    )
    write_split(tmp_path, "commonsenseqa", "validation", pa.Table.from_pylist([row], schema=schema))
    df = load_rows("commonsenseqa", source="mirror", mirror_dir=tmp_path)
    assert df["choices"][0].to_list() == [{"label": "A", "text": "home"}, {"label": "B", "text": "café"}]
    assert df["answer"][0] == "B" and df["question"][0] == "Where?"


@pytest.mark.parametrize("kind", ["binary", "string"])
def test_invalid_utf8_names_dataset_split_row_column_and_file(tmp_path, kind):
    values = [b"q0?", b"q1?", b"caf\xff q2?"]
    arr = pa.array(values, pa.binary())
    if kind == "string":  # a string column whose bytes are not UTF-8 (written by a careless tool)
        arr = pa.Array.from_buffers(pa.string(), len(values), arr.buffers())
    path = write_split(tmp_path, "gsm8k", "test", pa.table({"question": arr, "answer": ["#### 1"] * 3}))
    with pytest.raises(
        RowError,
        match=rf"dataset 'gsm8k', split 'test', row 2, column 'question': .*not valid UTF-8.*{re.escape(str(path))}",
    ):
        load_rows("gsm8k", source="mirror", mirror_dir=tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_parquet_names_dataset_split_and_file(tmp_path, damage):
    path = write_split(tmp_path, "gsm8k", "test", gsm8k_table(50))
    blob = path.read_bytes()
    path.write_bytes({"truncate": blob[: len(blob) // 2], "garbage": b"<html>404</html>", "empty": b""}[damage])
    out = tmp_path / "results" / "data" / "gsm8k.parquet"
    with pytest.raises(
        CorruptFileError,
        match=rf"dataset 'gsm8k', split 'test': mirror file {re.escape(str(path))} cannot be read as parquet",
    ):
        build_dataset("gsm8k", out, source="mirror", mirror_dir=tmp_path)
    assert not out.exists()


def test_corrupt_column_chunk_names_the_file(tmp_path):
    """A file whose footer is intact but whose data pages are damaged."""
    path = write_split(tmp_path, "gsm8k", "test", gsm8k_table(2000))
    blob = bytearray(path.read_bytes())
    for i in range(200, 2200):  # inside the first column chunk, far from the footer
        blob[i] ^= 0x5A
    path.write_bytes(bytes(blob))
    with pytest.raises(DatasetError, match=re.escape(str(path))):
        load_rows("gsm8k", source="mirror", mirror_dir=tmp_path)


def test_empty_split(tmp_path):
    write_split(tmp_path, "gsm8k", "test", gsm8k_table(0))
    with pytest.raises(EmptySplitError, match="dataset 'gsm8k', split 'test' .*no rows"):
        load_rows("gsm8k", source="mirror", mirror_dir=tmp_path)


def _boolq_table(**answer) -> pa.Table:
    rows = [{"question": f"is it {i}", "answer": True, "passage": f"passage {i}"} for i in range(3)]
    rows[1].update(answer)
    return pa.Table.from_pylist(rows)


@pytest.mark.parametrize(
    "name, split, table, row, column, problem",
    [
        (
            "gsm8k",
            "test",
            pa.table({"question": ["q0?", "  "], "answer": ["#### 1", "#### 2"]}),
            1,
            "question",
            "empty or missing",
        ),
        ("boolq", "validation", _boolq_table(answer=None), 1, "answer", "expected a boolean, got None"),
        (
            "boolq",
            "validation",
            pa.table({"question": ["a", "b"], "answer": ["yes", "no"], "passage": ["p", "q"]}),
            0,
            "answer",
            "expected a boolean, got 'yes'",
        ),
        (
            "svamp",
            "test",
            pa.table(
                {"question_concat": ["q"], "Answer": [None]},
                schema=pa.schema([("question_concat", pa.string()), ("Answer", pa.float64())]),
            ),
            0,
            "Answer",
            "expected a number, got None",
        ),
        ("gsm8k", "test", gsm8k_table(0), None, None, "the split has no rows"),
    ],
    ids=["empty-question", "null-answer", "wrong-type-answer", "null-number", "zero-rows"],
)
@pytest.mark.parametrize("source", ["mirror", "slices"])
def test_row_errors_name_dataset_split_row_column_and_file(source, name, split, table, row, column, problem, tmp_path):
    """A bad row (or a file without rows) is named by dataset, split, row, column and the file it is in."""
    path = write_split(tmp_path, name, split, table)
    where = rf"in file {re.escape(str(path))}$"
    if row is None:
        match = rf"dataset '{name}', split '{split}' \({source}\): {problem}, {where}"
        error = EmptySplitError
    else:
        match = rf"dataset '{name}', split '{split}', row {row}, column '{column}': {re.escape(problem)}.*, {where}"
        error = RowError
    with pytest.raises(error, match=match):
        load_rows(name, source=source, **{f"{source}_dir": tmp_path}, train_limit=0)


def test_missing_train_split_warns_and_gives_no_train_rows(tmp_path, caplog):
    write_split(tmp_path, "gsm8k", "test", gsm8k_table(4))
    with caplog.at_level(logging.WARNING, logger="uqroute.data"):
        df = load_rows("gsm8k", source="mirror", mirror_dir=tmp_path, train_limit=10)
    assert df.height == 4 and set(df["role"]) == {"eval"}
    assert "split 'train'" in caplog.text and "writing no training rows" in caplog.text


def test_limits_and_roles(tmp_path, caplog):
    write_split(tmp_path, "gsm8k", "test", gsm8k_table(10))
    write_split(tmp_path, "gsm8k", "train", gsm8k_table(6))
    with caplog.at_level(logging.WARNING, logger="uqroute.data"):
        df = load_rows("gsm8k", source="mirror", mirror_dir=tmp_path, eval_limit=4, train_limit=50, seed=3)
    ev, tr = df.filter(pl.col("role") == "eval"), df.filter(pl.col("role") == "train")
    assert ev.height == 4 and tr.height == 6
    assert "train limit 50 exceeds the 6 available rows; using all 6" in caplog.text
    idx = [int(i.rsplit("/", 1)[1]) for i in ev["id"]]
    assert idx == sorted(idx)  # source order
    assert ev["answer"].to_list() == [str(i) for i in idx]  # rows stay aligned with their ids
    assert df["role"].to_list() == ["eval"] * 4 + ["train"] * 6


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"eval_limit": 0}, "eval_limit must be an integer ≥ 1"),
        ({"train_limit": -1}, "train_limit must be an integer ≥ 0"),
        ({"source": "ftp"}, "unknown data.source 'ftp'"),
    ],
)
def test_bad_arguments(kw, match):
    with pytest.raises(DatasetError, match=match):
        load_rows("gsm8k", **kw)


def test_failed_build_leaves_no_partial_artifact(tmp_path):
    t = gsm8k_table(5)
    bad = pa.table({"question": t["question"], "answer": t["answer"].to_pylist()[:4] + ["no final answer"]})
    write_split(tmp_path / "m", "gsm8k", "test", bad)
    out = tmp_path / "results" / "data" / "gsm8k.parquet"
    with pytest.raises(RowError, match=r"dataset 'gsm8k', split 'test', row 4, column 'answer'"):
        build_dataset(
            "gsm8k",
            out,
            seed=0,
            source="mirror",
            mirror_dir=tmp_path / "m",
            slices_dir=None,
            eval_limit=None,
            train_limit=0,
        )
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


# ------------------------------------------------------------------ slices and determinism
def test_slices_build_valid_artifacts_deterministically(tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    kw = dict(seed=0, source="slices", mirror_dir=None, slices_dir=SLICES, eval_limit=20, train_limit=16)
    df = build_dataset("commonsenseqa", a, **kw)
    build_dataset("commonsenseqa", b, **kw)
    assert a.read_bytes() == b.read_bytes()
    back = pl.read_parquet(a)
    check_frame(back, "data")
    assert back.equals(df)
    assert (back["role"] == "eval").sum() == 20 and (back["role"] == "train").sum() == 16
    other = load_rows("commonsenseqa", **dict(kw, seed=1))
    assert other["id"].to_list() != back["id"].to_list()


@pytest.mark.parametrize("name", MIRRORED)
def test_every_slice_loads_as_a_valid_artifact(name):
    df = load_rows(name, source="slices", slices_dir=SLICES, train_limit=40)
    check_frame(df, ARTIFACTS["data"])
    spec = get_spec(name)
    if spec.eval_share:  # TruthfulQA: the 40-row slice divided in the share 164 / 817
        assert ((df["role"] == "eval").sum(), (df["role"] == "train").sum()) == (8, 32)
        return
    assert (df["role"] == "eval").sum() == 40
    has_train = (SLICES / spec.split_file(spec.train_split)).is_file() if spec.train_split else False
    assert (df["role"] == "train").sum() == (40 if has_train else 0)


def test_slices_are_small():
    total = sum(p.stat().st_size for p in SLICES.rglob("*.parquet"))
    assert 0 < total < 2 * 1024 * 1024


@needs_mirror
@pytest.mark.parametrize("name", MIRRORED)
def test_slices_are_real_mirror_rows_with_the_mirrors_schema(name):
    spec = get_spec(name)
    for split in (spec.eval_split, spec.train_split):
        if split is None or not (MIRROR / spec.split_file(split)).is_file():
            continue
        sl = pq.read_table(SLICES / spec.split_file(split))
        full = pq.read_table(MIRROR / spec.split_file(split))
        assert sl.schema.equals(full.schema, check_metadata=True), f"{name}/{split}: schema differs from the mirror"
        assert sl.num_rows == min(40, full.num_rows)
        full_rows = {repr(r) for r in full.to_pylist()}
        assert all(repr(r) in full_rows for r in sl.to_pylist()), f"{name}/{split}: slice row not in the mirror"


# ------------------------------------------------------------------ TruthfulQA: our seeded 164 / 653 split
def test_holdout_split_is_seeded_disjoint_and_complete():
    from uqroute.data.build import holdout_split

    ev, tr = holdout_split(817, (164, 817), dataset="truthfulqa")
    assert len(ev) == 164 and len(tr) == 653
    assert sorted(set(ev) | set(tr)) == list(range(817)) and not set(ev) & set(tr)
    assert list(ev) == sorted(ev) and list(tr) == sorted(tr)
    again = holdout_split(817, (164, 817), dataset="truthfulqa")
    assert (again[0] == ev).all() and (again[1] == tr).all()
    assert not (holdout_split(817, (164, 817), dataset="other")[0] == ev).all()  # per dataset
    # another number of rows keeps the share; degenerate sizes keep one row on each side
    assert [len(x) for x in holdout_split(40, (164, 817), dataset="truthfulqa")] == [8, 32]
    assert [len(x) for x in holdout_split(2, (164, 817), dataset="truthfulqa")] == [1, 1]
    assert [len(x) for x in holdout_split(3, (2, 3), dataset="truthfulqa")] == [2, 1]
    with pytest.raises(DatasetError, match=r"dataset 'truthfulqa': 1 row\(s\) cannot be divided"):
        holdout_split(1, (164, 817), dataset="truthfulqa")


def test_truthfulqa_registry_holds_out_164_of_the_validation_split():
    spec = get_spec("truthfulqa")
    assert spec.eval_share == (164, 817) and spec.train_split is None and spec.eval_split == "validation"


TQA_SCHEMA = pa.schema(
    [
        ("type", pa.string()),
        ("category", pa.string()),
        ("question", pa.string()),
        ("best_answer", pa.string()),
        ("correct_answers", pa.list_(pa.string())),
        ("incorrect_answers", pa.list_(pa.string())),
        ("source", pa.string()),
    ]
)


def test_truthfulqa_164_evaluated_653_train_the_probe_whatever_the_run_seed(tmp_path):
    rows = [
        {
            "type": "Adversarial",
            "category": "Misc",
            "question": f"Question {i}?",
            "best_answer": f"answer {i}",
            "correct_answers": [f"answer {i}"],
            "incorrect_answers": ["no"],
            "source": "x",
        }
        for i in range(817)
    ]
    write_split(tmp_path, "truthfulqa", "validation", pa.Table.from_pylist(rows, schema=TQA_SCHEMA))
    df = load_rows("truthfulqa", source="mirror", mirror_dir=tmp_path, train_limit=1000, seed=0)
    check_frame(df, "data")
    ev, tr = df.filter(pl.col("role") == "eval"), df.filter(pl.col("role") == "train")
    assert ev.height == 164 and tr.height == 653
    assert set(ev["split"]) == set(tr["split"]) == {"validation"}
    assert not set(ev["id"]) & set(tr["id"]) and df["id"].n_unique() == 817
    other = load_rows("truthfulqa", source="mirror", mirror_dir=tmp_path, train_limit=1000, seed=7)
    assert other.filter(pl.col("role") == "eval")["id"].to_list() == ev["id"].to_list()  # the split does not move
    small = load_rows("truthfulqa", source="mirror", mirror_dir=tmp_path, eval_limit=10, train_limit=20, seed=0)
    assert set(small.filter(pl.col("role") == "eval")["id"]) <= set(ev["id"])
    assert set(small.filter(pl.col("role") == "train")["id"]) <= set(tr["id"])
    assert small.height == 30
    assert load_rows("truthfulqa", source="mirror", mirror_dir=tmp_path, train_limit=0, seed=0).height == 164
