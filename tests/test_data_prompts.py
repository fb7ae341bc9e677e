"""Each dataset's prompt and token budget against its task in the paper's Table 2, AQuA's reasoning and
final letter, and the verbalization-1s prompt texts (Chuang et al., arXiv:2502.04428, §3.1, Table 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from uqroute.data import get_spec, load_rows, prompts
from uqroute.data.adapters import make_prompt, to_rows
from uqroute.inference import budgets
from uqroute.inference.prompts import VERBAL_1S_INSTRUCTIONS, verbal_1s_conversation
from uqroute.parsing import find_option_token, parse_answer, parse_verbal_1s

ROOT = Path(__file__).resolve().parents[1]
SLICES = ROOT / "data" / "slices"

#: The paper's Table 2: dataset → (type, domain).
TABLE_2 = {
    "gsm8k": ("FF", "math"),
    "aqua": ("MCQ", "math"),
    "multiarith": ("FF", "math"),
    "svamp": ("FF", "math"),
    "math500": ("FF", "math"),
    "boolq": ("TF", "commonsense"),
    "commonsenseqa": ("MCQ", "commonsense"),
    "hellaswag": ("MCQ", "commonsense"),
    "openbookqa": ("MCQ", "commonsense"),
    "piqa": ("MCQ", "commonsense"),
    "socialiqa": ("MCQ", "commonsense"),
    "truthfulqa": ("FF", "commonsense"),
    "winogrande": ("MCQ", "commonsense"),
    "coqa": ("FF", "conversational"),
    "mmlu": ("MCQ", "problem_solving"),
}
CFG = {"max_new_tokens": {"MCQ": 32, "TF": 16, "FF": 128, "math": 512}}
AQUA_CHOICES = [{"label": lab, "text": t} for lab, t in zip("ABCDE", ["10", "20", "30", "40", "50"])]
COQA_ROW = {
    "source": "wikipedia",
    "story": "Anna has a red bike.",
    "questions": ["What does Anna have?", "What color?"],
    "answers": {"input_text": ["a bike", "red"], "answer_start": [0, 0], "answer_end": [1, 1]},
}


def first_prompt(name: str) -> str:
    if name == "coqa":  # not in the slices: the hub's columns, hand-written
        return to_rows(get_spec("coqa"), "validation", "eval", [COQA_ROW])[-1]["prompt"]
    return load_rows(name, source="slices", slices_dir=SLICES, eval_limit=1, train_limit=0)["prompt"][0]


@pytest.mark.parametrize("name", list(TABLE_2))
def test_every_dataset_has_table_2s_type_and_domain_and_its_budget_and_prompt(name):
    task_type, domain = TABLE_2[name]
    spec = get_spec(name)
    assert (spec.task_type, spec.domain) == (task_type, domain)
    want = CFG["max_new_tokens"]["math" if domain == "math" else task_type]
    assert budgets(CFG, {}, spec.task_type, spec.domain)["answer"] == want
    prompt = first_prompt(name)
    if domain == "math":  # every math dataset reasons before its final answer
        assert "Reason briefly" in prompt and "without any explanation" not in prompt
    else:
        assert "Reason" not in prompt and prompt.endswith("without any explanation.")


def test_aqua_gets_the_math_budget_not_the_multiple_choice_one():
    assert budgets(CFG, {}, "MCQ", "math")["answer"] == 512
    assert budgets(CFG, {}, "MCQ", "commonsense")["answer"] == 32
    assert budgets(CFG, {"max_new_tokens_scale": 16}, "MCQ", "math")["answer"] == 8192


def test_aqua_prompt_asks_for_reasoning_then_the_letter():
    row = load_rows("aqua", source="slices", slices_dir=SLICES, eval_limit=1, train_limit=0).row(0, named=True)
    assert row["prompt"] == prompts.math_mcq_prompt(row["question"], row["choices"])
    assert row["prompt"].startswith("Solve the following math problem. Reason briefly, then give the letter")
    assert 'last line in the form "Answer: <letter>" (one of A, B, C, D or E).' in row["prompt"]
    assert row["prompt"].endswith("\n".join(f"{c['label']}. {c['text']}" for c in row["choices"]))
    assert f"Problem: {row['question']}" in row["prompt"]


@pytest.mark.parametrize(
    "reply, want",
    [
        ("Speed = 100/5 = 20 km/h. Option A (10) is too small and option C is 30.\nAnswer: B", "B"),
        ("A train covers 100 km in 5 hours, so its speed is 20 km/h.\n\nAnswer: B", "B"),
        ("Answer: A looks tempting, but 100/5 = 20.\nAnswer: B", "B"),  # the last marker wins
        ("<think>maybe A? the answer is C</think>\n100/5 = 20.\nAnswer: B", "B"),
        ("100/5 = 20, so the answer is (D)", "D"),
        ("100/5 = 20", "B"),  # no letter: the one option text that occurs
        ("I cannot tell.", None),
    ],
)
def test_aqua_reply_parses_the_final_letter_after_the_reasoning(reply, want):
    assert parse_answer(reply, "letter", AQUA_CHOICES) == want


def test_aqua_option_token_is_the_final_letter_not_a_mention_in_the_reasoning():
    tokens = ["Option", " B", " gives", " 20", ",", " option", " A", " gives", " 10", ".", "\n", "Answer", ":", " B"]
    assert parse_answer("".join(tokens), "letter", AQUA_CHOICES) == "B"
    assert find_option_token(tokens, "B", "MCQ", choices=AQUA_CHOICES) == 13
    # a bare letter reply, and a letter then its text: the first token, as before
    assert find_option_token(["B", ".", " 20"], "B", "MCQ", choices=AQUA_CHOICES) == 0
    assert find_option_token(["B", " because", " B", " is", " 20"], "B", "MCQ", choices=AQUA_CHOICES) == 0
    # the last marker names another letter than the parsed one: ignored
    assert find_option_token(["B", ".", " Not", " answer", " C"], "B", "MCQ", choices=AQUA_CHOICES) == 0


# ------------------------------------------------------------------ verbalization-1s prompts
@pytest.mark.parametrize("name", list(TABLE_2))
def test_verbal_1s_keeps_the_dataset_instruction_and_asks_for_answer_and_confidence_at_the_end(name):
    prompt = first_prompt(name)
    (msg,) = verbal_1s_conversation(prompt)
    text = msg["content"]
    assert text == f"{prompt}\n\n{VERBAL_1S_INSTRUCTIONS}"  # the dataset's own instruction, unchanged
    tail = text[len(prompt) :]
    assert "without any explanation" not in tail and "only these two lines" not in tail
    assert "End your reply with your final answer and your confidence" in tail
    assert tail.rstrip().endswith("The confidence is how likely you think your answer is correct.")
    assert "Answer: <your final answer>\nConfidence: <a number from 0 to 100>%" in tail
    if TABLE_2[name][1] == "math":  # math still reasons: nothing forbids it
        assert "Reason briefly" in text and "without any explanation" not in text


def test_verbal_1s_instructions_text():
    assert VERBAL_1S_INSTRUCTIONS == (
        "End your reply with your final answer and your confidence that it is correct, as its last two lines, "
        "in exactly this format:\n"
        "Answer: <your final answer>\n"
        "Confidence: <a number from 0 to 100>%\n"
        "The confidence is how likely you think your answer is correct."
    )


def test_verbal_1s_chat_conversation_gets_the_instructions_on_its_last_user_message():
    conv = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompts.math_prompt("2+2?")}]
    out = verbal_1s_conversation(conv)
    assert out[0] == conv[0] and out[1]["content"] == f"{conv[1]['content']}\n\n{VERBAL_1S_INSTRUCTIONS}"


@pytest.mark.parametrize(
    "reply, fmt, choices, want",
    [
        ("3 + 4 = 7 apples, and 7 + 5 = 12.\nAnswer: 12\nConfidence: 85%", "number", None, ("12", 0.85)),
        ("100/5 = 20 km/h, option B.\nAnswer: B\nConfidence: 70%", "letter", AQUA_CHOICES, ("B", 0.7)),
        ("The sum is \\boxed{5}.\nAnswer: 5\nConfidence: 90%", "latex", None, ("5", 0.9)),
        ("Answer: True\nConfidence: 60%", "bool", None, ("True", 0.6)),
    ],
)
def test_verbal_1s_reply_that_reasons_first_parses_its_final_answer_and_confidence(reply, fmt, choices, want):
    assert parse_verbal_1s(reply, fmt, choices) == want


def test_make_prompt_routes_math_mcq_to_the_reasoning_prompt():
    from uqroute.data.adapters import Item

    item = Item("0", "What is 100/5?", "B", choices=tuple(AQUA_CHOICES))
    assert make_prompt(get_spec("aqua"), item) == prompts.math_mcq_prompt("What is 100/5?", AQUA_CHOICES)
    assert make_prompt(get_spec("mmlu"), item) == prompts.mcq_prompt("What is 100/5?", AQUA_CHOICES)
