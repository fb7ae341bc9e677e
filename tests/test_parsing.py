"""Answer parsing and rule-based correctness (uqroute.parsing).

Table-driven: each row is a reply as small instruction models (SmolLM2, Qwen2.5,
Qwen3 with <think>, Llama-3.2) actually write them, plus adversarial cases.
"""

from __future__ import annotations

import math
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uqroute.parsing import (
    ANSWER_FORMATS,
    InvalidChoicesError,
    InvalidGoldError,
    UnknownAnswerFormatError,
    best_f1,
    exact_match,
    extract_math_answer,
    format_number,
    is_correct,
    math_equivalent,
    normalize_choices,
    normalize_text,
    parse_answer,
    parse_bool,
    parse_number,
    parse_option,
    strip_think,
    token_f1,
)
from uqroute.parsing.mathexpr import MAX_VERIFY_CHARS

CITIES = [
    {"label": "A", "text": "London"},
    {"label": "B", "text": "Paris"},
    {"label": "C", "text": "Berlin"},
    {"label": "D", "text": "Madrid"},
]
# CommonsenseQA-like options whose texts start with articles / contain each other
PLACES = [
    {"label": "A", "text": "a towel"},
    {"label": "B", "text": "kitchen"},
    {"label": "C", "text": "kitchen cabinet"},
    {"label": "D", "text": "garage"},
    {"label": "E", "text": "bathroom"},
]

# MMLU-like options whose texts are numbers
NUMS = [
    {"label": "A", "text": "4"},
    {"label": "B", "text": "8"},
    {"label": "C", "text": "16"},
    {"label": "D", "text": "32"},
]

# ------------------------------------------------------------------ strip_think
THINK_CASES = [
    ("<think>2+2=4</think>\n\nAnswer: 4", "Answer: 4"),
    ("<think>\nLet me think.\n</think>\nB", "B"),
    ("<THINK>upper</THINK>True", "True"),
    ("okay so the options are A and B...</think>\n\nB", "B"),  # opening tag was in the prompt
    ("<think>I am still reasoning about whether", ""),  # never closed (finish_reason=length)
    ("<think>a</think>B<think>c</think>D", "BD"),
    ("<think>a</think>  ", ""),
    ("No reasoning at all.", "No reasoning at all."),
    ("  spaced  ", "spaced"),
    ("", ""),
    (None, ""),
    ("<think></think>42", "42"),
    ("<think>x</think>y</think>z", "z"),  # stray closing tag: everything before it is reasoning
    ("<thi<think>x</think>nk>tail", ""),  # removal re-forms an unclosed <think>: removed too
    ("Answer: C\n<think>second thoughts", "Answer: C"),
    ("<think>multi\nline\n<think>nested</think>still</think>Final: 7", "Final: 7"),
]


@pytest.mark.parametrize("text,expected", THINK_CASES)
def test_strip_think(text, expected):
    assert strip_think(text) == expected


_think_alphabet = st.sampled_from(["<think>", "</think>", "<thi", "nk>", "</", "a", "B", " ", "\n", "42"])


@settings(deadline=None)
@given(st.lists(_think_alphabet, max_size=12).map("".join))
def test_strip_think_idempotent_and_tag_free(text):
    once = strip_think(text)
    assert strip_think(once) == once
    assert "<think>" not in once.lower() and "</think>" not in once.lower()


# ------------------------------------------------------------------ options
OPTION_CASES = [
    # negated labels are not the answer; an opening pronoun "I" is not option I
    ("The answer isn't A, it's B", CITIES, "B"),
    ("The answer isn’t A. B.", CITIES, "B"),
    ("I wouldn't pick A; B", CITIES, "B"),
    ("I would not choose A, B", CITIES, "B"),
    ("I would say B", CITIES, "B"),
    ("B, not A", CITIES, "B"),
    ("B", CITIES, "B"),
    ("(B)", CITIES, "B"),
    ("B.", CITIES, "B"),
    ("B)", CITIES, "B"),
    ("B. Paris", CITIES, "B"),
    ("B: Paris", CITIES, "B"),
    ("B - Paris", CITIES, "B"),
    ("Answer: B", CITIES, "B"),
    ("The answer is (B)", CITIES, "B"),
    ("The correct answer is B. Paris is the capital of France.", CITIES, "B"),
    ("**B**", CITIES, "B"),
    ("The answer is: **B) Paris**", CITIES, "B"),
    ("\\boxed{B}", CITIES, "B"),
    ("I think it's B because Paris is the capital of France.", CITIES, "B"),
    ("Paris", CITIES, "B"),
    ("paris.", CITIES, "B"),
    ("The answer is: Paris", CITIES, "B"),
    ("Paris is the capital of France.", CITIES, "B"),
    ("b", CITIES, "B"),
    ("(c)", CITIES, "C"),
    ("the answer is b.", CITIES, "B"),
    ("a", CITIES, "A"),
    ("a) London", CITIES, "A"),
    ("A", CITIES, "A"),
    ("A. London", CITIES, "A"),
    ("Option C", CITIES, "C"),
    ("Option C is correct.", CITIES, "C"),
    ("I would choose D.", CITIES, "D"),
    ("I'll go with option C", CITIES, "C"),
    ("Answer: A because London is in England", CITIES, "A"),
    ("The answer is D) Madrid", CITIES, "D"),
    ("<think>Is it A or B? London is in the UK, so B.</think>\nC", CITIES, "C"),
    ("A. London\nB. Paris\nC. Berlin\nD. Madrid\nAnswer: B", CITIES, "B"),
    ("B\n\nExplanation: Option A is wrong because London is in the UK.", CITIES, "B"),
    ("I think the answer is not A. It is C.", CITIES, "C"),
    ("Answer: I think it is D", CITIES, "D"),
    # adversarial
    ("E", CITIES, None),  # a letter outside the choices
    ("Answer: E", CITIES, None),
    ("E. None of the above", CITIES, None),
    ("A. London\nB. Paris\nC. Berlin\nD. Madrid", CITIES, None),  # only echoes the options
    ("London or Paris", CITIES, None),  # two option texts, no choice
    ("I don't know.", CITIES, None),
    ("", CITIES, None),
    ("<think>B</think>", CITIES, None),
    ("answer is a tall building", CITIES, None),  # article "a", not option A
    ("A person would dry their hands with a towel.", PLACES, "A"),  # "A person": text match, not the letter
    ("A person would keep it in the kitchen cabinet.", PLACES, "C"),  # "kitchen" ⊂ "kitchen cabinet"
    ("kitchen", PLACES, "B"),
    ("I think the best place is the garage", PLACES, "D"),
    ("a towel", PLACES, "A"),
    ("I am not sure, maybe the bathroom or the garage", PLACES, None),
    ("8", NUMS, "B"),
    ("The answer is 16.", NUMS, "C"),
    ("C. 16", NUMS, "C"),
    ("I think it is 32", NUMS, "D"),
    ("2 × 4 = 8", NUMS, None),  # two option texts appear: no guess
    ("Paris (B)", CITIES, "B"),
    ("The answer is clearly B", CITIES, "B"),
    ("It's B.", CITIES, "B"),
    ("The correct answer is: B) Paris", CITIES, "B"),
]


@pytest.mark.parametrize("text,choices,expected", OPTION_CASES)
def test_parse_option(text, choices, expected):
    assert parse_option(text, choices) == expected


def test_parse_option_accepts_tuples_and_keeps_label_spelling():
    assert parse_option("answer: b", [("a", "yes"), ("b", "no")]) == "b"
    assert parse_option("(2)", [{"label": "1", "text": "up"}, {"label": "2", "text": "down"}]) == "2"
    assert parse_option("The answer is 1", [("1", "up"), ("2", "down")]) == "1"
    assert parse_option("down", [("1", "up"), ("2", "down")]) == "2"


@pytest.mark.parametrize(
    "choices,match",
    [
        (None, "required"),
        ("ABCD", "string"),
        ([{"text": "x"}], "no 'label'"),
        ([("A", "x"), ("a", "y")], "duplicate"),
        ([("", "x")], "empty label"),
        ([], "empty"),
        ([42], "neither"),
    ],
)
def test_normalize_choices_errors_name_the_culprit(choices, match):
    with pytest.raises(InvalidChoicesError, match=match):
        normalize_choices(choices)


_labels = st.integers(min_value=2, max_value=8).map(lambda n: [chr(ord("A") + i) for i in range(n)])


@settings(deadline=None)
@given(_labels, st.data())
def test_parse_option_property(labels, data):
    choices = [{"label": lab, "text": f"option number {i} text"} for i, lab in enumerate(labels)]
    i = data.draw(st.integers(0, len(labels) - 1))
    lab = labels[i]
    template = data.draw(
        st.sampled_from(["{L}", "({L})", "{L}.", "{L})", "Answer: {L}", "The answer is ({L}).", "**{L}**", "{L}. {T}"])
    )
    assert parse_option(template.format(L=lab, T=choices[i]["text"]), choices) == lab


# ------------------------------------------------------------------ bool
BOOL_CASES = [
    ("True", True),
    ("False", False),
    ("false.", False),
    ("TRUE", True),
    ("Yes, because the passage says that the river flows north.", True),
    ("No", False),
    ("No.", False),
    ("Answer: True", True),
    ("Answer: false", False),
    ("**False**", False),
    ("The statement is false.", False),
    ("The statement is not true.", False),
    ("It is not true that cats bark.", False),
    ("Based on the passage, the answer is yes.", True),
    ("Correct", True),
    ("Incorrect.", False),
    ("\\boxed{True}", True),
    ("<think>The passage says 1990, the question says 1991, so no.</think>\nFalse", False),
    ("True or False? True", True),
    ("Yes.\nAnswer: False", False),  # the explicit marker wins
    ("According to the passage, this is correct, so True.", True),
    # adversarial
    ("True or False", None),
    ("true and false", None),
    ("Yes or no?", None),
    ("The passage does not say.", None),
    ("It is true that A, but it is false that B.", None),
    ("", None),
    ("<think>True</think>", None),
]


@pytest.mark.parametrize("text,expected", BOOL_CASES)
def test_parse_bool(text, expected):
    assert parse_bool(text) is expected


@settings(deadline=None)
@given(st.booleans(), st.sampled_from(["{}", "{}.", "Answer: {}", "**{}**", "{}\n\nThe passage says so."]))
def test_parse_bool_property(value, template):
    assert parse_bool(template.format(value)) is value
    assert parse_bool(template.format(str(value).lower())) is value


# ------------------------------------------------------------------ numbers
NUMBER_CASES = [
    ("#### 1,234", 1234),
    ("Natalia sold 48/2 = 24 clips in May.\nShe sold 48+24 = 72 clips.\n#### 72", 72),
    ("$1,234.50", 1234.5),
    ("42 apples", 42),
    ("The answer is 18.", 18),
    ("Answer: -3", -3),
    ("The balance is -$5.", -5),
    ("Answer: −3", -3),  # unicode minus
    ("3/4", 0.75),
    ("\\boxed{42}", 42),
    ("So the total is \\boxed{1,250} dollars.", 1250),
    ("1,000,000", 1_000_000),
    ("0.5", 0.5),
    (".5", 0.5),
    ("50%", 50),
    ("Answer: 18.", 18),
    ("Answer: $18.00.", 18),
    ("x = 5", 5),
    ("The distance is 12 km", 12),
    ("She has 5 apples and buys 3 more, so 5 + 3 = 8.\nAnswer: 8", 8),
    ("Answer: 5 + 3 = 8", 8),
    ("Answer: 8 apples (5 + 3)", 8),
    ("The answer is:\n\n**18**", 18),
    ("First 10 - 3 = 7, then 7 * 2 = 14. The answer is 14, not 7.", 14),
    ("James runs 3 sprints 3 times a week, 60 meters each: 3*3*60 = 540 meters.", 540),
    ("The answer is \\frac{3}{4}", 0.75),
    ("\\boxed{-\\frac{1}{2}}", -0.5),
    ("Answer: 1\\,000", 1000),
    ("The final answer is 1{,}000.", 1000),
    ("<think>maybe 12? no, 15</think>\nAnswer: 16", 16),
    ("Answer: five", 5),
    ("I answered 3 questions. The result is 7", 7),
    ("The price went from $20 to $25, an increase of 25%.", 25),
    ("Answer:\n\n42", 42),
    ("10-3=7", 7),
    # adversarial
    ("I cannot solve this problem.", None),
    ("", None),
    ("<think>It is 42</think>", None),
    ("Answer: 1/0", None),  # division by zero is not a number
    # a negated marker does not state the answer
    ("The answer is not 12, it is 15.", 15),
    ("The answer isn't 12. It is 15", 15),
    ("The answer isn’t 12. It is 15", 15),
    ("The answer is 12, not 15", 12),
]


@pytest.mark.parametrize("text,expected", NUMBER_CASES)
def test_parse_number(text, expected):
    got = parse_number(text)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


@settings(deadline=None)
@given(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.booleans(),
    st.sampled_from(
        [
            "{}",
            "#### {}",
            "The answer is {}.",
            "Answer: {}",
            "So she pays ${} in total.",
            "\\boxed{{{}}}",
            "Step 1: 2 + 2 = 4.\nAnswer: {}",
        ]
    ),
)
def test_parse_number_roundtrips_integers(n, thousands, template):
    s = f"{n:,}" if thousands else str(n)
    assert parse_number(template.format(s)) == n


@settings(deadline=None)
@given(st.decimals(min_value=-(10**6), max_value=10**6, places=3, allow_nan=False, allow_infinity=False))
def test_parse_number_roundtrips_decimals(d):
    assert parse_number(f"Answer: {d}") == pytest.approx(float(d))
    assert format_number(parse_number(str(d))) == format_number(float(d))


@pytest.mark.parametrize(
    "x,expected",
    [
        (5.0, "5"),
        (0.5, "0.5"),
        (-3.0, "-3"),
        (1250.0, "1250"),
        (-0.0, "0"),
        (0.75, "0.75"),
        (1 / 3, "0.333333333333"),
        (1e20, "100000000000000000000"),
        (1.5e-7, "0.00000015"),
        (-2.50, "-2.5"),
    ],
)
def test_format_number(x, expected):
    assert format_number(x) == expected


@settings(deadline=None)
@given(st.floats(min_value=-1e15, max_value=1e15, allow_nan=False, allow_infinity=False))
def test_format_number_is_read_back(x):
    s = format_number(x)
    assert "e" not in s
    assert parse_number(s) == pytest.approx(x, rel=1e-11, abs=1e-12)


def test_format_number_rejects_non_finite():
    with pytest.raises(ValueError, match="non-finite"):
        format_number(float("nan"))


# ------------------------------------------------------------------ MATH-500
MATH_EXTRACT_CASES = [
    ("So the answer is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
    ("\\boxed{\\dfrac{\\sqrt{3}}{2}}", "\\dfrac{\\sqrt{3}}{2}"),
    ("The final answer is $x=2$. I hope it is correct.", "x=2"),
    ("Final Answer: The final answer is $(1,2)$. I hope it is correct.", "(1,2)"),
    ("The solution set is \\boxed{[2, 5)}", "[2, 5)"),
    ("\\boxed{\\text{(C)}}", "\\text{(C)}"),
    ("Answer: $[2, 5)$", "[2, 5)"),
    ("Answer: 42.", "42"),
    ("first \\boxed{1}, then corrected: \\boxed{\\{1,2\\}}", "\\{1,2\\}"),
    ("\\boxed{\\frac{a^{2}}{b_{1}}}", "\\frac{a^{2}}{b_{1}}"),
    ("$\\boxed{3}$", "3"),
    ("\\boxed 5", "5"),
    ("\\fbox{7}", "7"),
    ("The answer is \\(\\frac{3}{4}\\).", "\\frac{3}{4}"),
    ("<think>\\boxed{1}</think>\\boxed{2}", "2"),
    ("We get $$\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}$$", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
    ("no answer here, just $x^2$", None),
    ("\\boxed{\\frac{1}{2}", None),  # unbalanced: no answer rather than a wrong one
    ("", None),
]


@pytest.mark.parametrize("text,expected", MATH_EXTRACT_CASES)
def test_extract_math_answer(text, expected):
    assert extract_math_answer(text) == expected


MATH_EQUIV_CASES = [
    ("\\frac12", "0.5", True),
    ("\\dfrac{1}{2}", "\\frac{1}{2}", True),
    ("0.5", "\\frac{1}{2}", True),
    ("(1, 2)", "(1,2)", True),
    ("x=2", "2", True),
    ("\\text{(C)}", "C", True),
    ("\\dfrac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}{2}", True),
    ("[2,5)", "[2, 5)", True),
    ("\\{2,1\\}", "\\{1,2\\}", True),
    ("1+2x", "2x+1", True),
    ("90^\\circ", "90", True),
    ("3", "4", False),
    ("[1,2]", "(1,2)", False),
    ("\\frac{", "1", False),  # unparsable: False, never raises
    ("}}}{{{", "}}}", False),
    ("", "1", False),
    (None, "1", False),
    ("1", None, False),
]


@pytest.mark.parametrize("pred,gold,expected", MATH_EQUIV_CASES)
def test_math_equivalent(pred, gold, expected):
    assert math_equivalent(pred, gold) is expected


def test_math_equivalent_works_outside_the_main_thread():
    # math-verify's SIGALRM timeout cannot be installed in a worker thread; we must not raise.
    out = []
    th = threading.Thread(target=lambda: out.extend([math_equivalent("\\frac12", "0.5"), math_equivalent("3", "4")]))
    th.start()
    th.join(timeout=30)
    assert out == [True, False]


def test_math_equivalent_times_out_to_false():
    # SymPy would try to evaluate 99999999! ; math-verify's SIGALRM timeout stops it (main thread)
    t0 = time.perf_counter()
    assert math_equivalent("99999999!", "1", timeout_s=1) is False
    assert time.perf_counter() - t0 < 15.0  # two 1 s timeouts (parse, verify), generous for a loaded machine


def test_math_equivalent_bounds_long_inputs():
    long = "+".join(["x"] * (MAX_VERIFY_CHARS // 2 + 1))
    t0 = time.process_time()
    assert math_equivalent(long, "y") is False
    assert math_equivalent(long, long) is True  # identical strings need no SymPy
    assert time.process_time() - t0 < 1.0


# ------------------------------------------------------------------ text (SQuAD)
@pytest.mark.parametrize(
    "s,expected",
    [
        ("The Cat!", "cat"),
        ("  a  b  ", "b"),
        ("An apple, the pear.", "apple pear"),
        ("Theory", "theory"),  # articles only as whole words
        ("", ""),
        (None, ""),
    ],
)
def test_normalize_text(s, expected):
    assert normalize_text(s) == expected


def test_token_f1_values():
    assert token_f1("the cat sat", "a cat sat down") == pytest.approx(2 * (2 / 2) * (2 / 3) / (2 / 2 + 2 / 3))
    assert token_f1("Paris", "paris.") == 1.0
    assert token_f1("", "") == 1.0
    assert token_f1("the", "a") == 1.0  # both normalise to nothing
    assert token_f1("x", "") == 0.0
    assert token_f1("dog", "cat") == 0.0
    assert best_f1("white house", ["the White House", "house"]) == 1.0
    assert best_f1("x", []) == 0.0
    assert exact_match("The White House.", ["white house"]) is True
    assert exact_match("white", ["white house"]) is False
    assert exact_match(None, ["x"]) is False


@settings(deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_token_f1_properties(a, b):
    f = token_f1(a, b)
    assert 0.0 <= f <= 1.0
    assert f == pytest.approx(token_f1(b, a))
    assert normalize_text(normalize_text(a)) == normalize_text(a)
    if normalize_text(a):
        assert token_f1(a, a) == 1.0


# ------------------------------------------------------------------ parse_answer
PARSE_ANSWER_CASES = [
    ("The answer is (C).", "letter", CITIES, "C"),
    ("<think>London? no.</think>B", "letter", CITIES, "B"),
    ("Yes, it is.", "bool", None, "True"),
    ("The statement is false.", "bool", None, "False"),
    ("Answer: 5.0", "number", None, "5"),
    ("#### 1,250", "number", None, "1250"),
    ("Answer: 0.50", "number", None, "0.5"),
    ("Answer: -3", "number", None, "-3"),
    ("The answer is \\boxed{\\frac{1}{2}}", "latex", None, "\\frac{1}{2}"),
    ("Answer: In the kitchen.", "text", None, "In the kitchen"),
    ('"white house"', "text", None, "white house"),
    ("**A:** yes, she did\n\nExplanation: the story says so", "text", None, "yes, she did"),
    ("Guess: Paris", "text", None, "Paris"),
    ("<think>hmm</think>\n\n  \nTwo dogs\n", "text", None, "Two dogs"),
    ("I have no idea", "number", None, None),
    ("<think>unfinished", "text", None, None),
]


@pytest.mark.parametrize("text,fmt,choices,expected", PARSE_ANSWER_CASES)
def test_parse_answer(text, fmt, choices, expected):
    assert parse_answer(text, fmt, choices) == expected


def test_parse_answer_errors():
    with pytest.raises(UnknownAnswerFormatError, match="'mcq'"):
        parse_answer("B", "mcq")
    with pytest.raises(InvalidChoicesError, match="required"):
        parse_answer("B", "letter")
    assert set(ANSWER_FORMATS) == {"letter", "bool", "number", "latex", "text"}


# ------------------------------------------------------------------ is_correct
IS_CORRECT_CASES = [
    # letter
    ("B", "B", "letter", (), True),
    ("b", "B", "letter", (), True),
    ("C", "B", "letter", (), False),
    (None, "B", "letter", (), False),
    # bool
    ("True", "True", "bool", (), True),
    ("False", "True", "bool", (), False),
    ("True", "true", "bool", (), True),
    (None, "False", "bool", (), False),
    # number
    ("1250", "1,250", "number", (), True),
    ("0.5", "1/2", "number", (), True),
    ("18", "18.0", "number", (), True),
    ("18.0000001", "18", "number", (), True),
    ("18.01", "18", "number", (), False),
    ("999999", "1000000", "number", (), False),  # integers compare exactly
    ("0.3333333333", "0.333333333", "number", (), True),
    ("-3", "3", "number", (), False),
    ("0", "0", "number", (), True),
    (None, "18", "number", (), False),
    # latex
    ("\\frac12", "0.5", "latex", (), True),
    ("\\dfrac{1}{2}", "\\frac{1}{2}", "latex", (), True),
    ("(1,2)", "(1, 2)", "latex", (), True),
    ("\\text{(C)}", "\\text{(C)}", "latex", (), True),
    ("3", "4", "latex", (), False),
    (None, "4", "latex", (), False),
    # text
    ("Paris", "paris", "text", (), True),
    ("the city of Paris", "Paris", "text", ("Paris", "Paris, France"), True),  # F1 = 0.67 ≥ 0.5
    ("London", "Paris", "text", ("Paris",), False),
    ("He went to the store to buy some milk", "milk", "text", (), False),  # F1 = 0.22
    ("to buy milk", "milk", "text", ("buy milk", "milk"), True),
    ("anything", "", "text", (), None),  # no reference at all
    (None, "Paris", "text", (), False),
    (None, "", "text", (), None),
]


@pytest.mark.parametrize("parsed,gold,fmt,refs,expected", IS_CORRECT_CASES)
def test_is_correct(parsed, gold, fmt, refs, expected):
    assert is_correct(parsed, gold, fmt, references=refs) is expected


def test_is_correct_f1_threshold():
    assert is_correct("the city of Paris", "Paris", "text", f1_threshold=0.5) is True
    assert is_correct("the city of Paris", "Paris", "text", f1_threshold=0.9) is False


@pytest.mark.parametrize(
    "gold,fmt,match",
    [
        ("abc", "number", "'abc' is not a number"),
        ("maybe", "bool", "not True/False"),
        ("", "letter", "option label"),
        ("  ", "latex", "empty"),
    ],
)
def test_is_correct_bad_gold_names_it(gold, fmt, match):
    with pytest.raises(InvalidGoldError, match=match):
        is_correct("1", gold, fmt)


def test_is_correct_unknown_format():
    with pytest.raises(UnknownAnswerFormatError, match="'free'"):
        is_correct("x", "x", "free")


@settings(max_examples=50, deadline=None)
@given(st.integers(-(10**9), 10**9))
def test_is_correct_number_end_to_end(n):
    reply = f"Let me compute step by step. 2 + 2 = 4.\nAnswer: {n:,}"
    assert is_correct(parse_answer(reply, "number"), str(n), "number") is True
    assert is_correct(parse_answer(reply, "number"), str(n + 1), "number") is False


def test_parse_answer_then_is_correct_end_to_end_letter_and_bool():
    assert is_correct(parse_answer("The answer is (b) Paris", "letter", CITIES), "B", "letter") is True
    assert is_correct(parse_answer("<think>...</think>No.", "bool"), "False", "bool") is True
    assert math.isclose(float(parse_answer("\\boxed{0.75}", "number")), 0.75)


# ------------------------------------------------------------------ realistic long replies
GSM8K_COT = (
    "To determine how much Janet makes every day at the farmers' market, we need to follow these steps:\n\n"
    "1. **Calculate the total number of eggs laid per day:**\n   Janet's ducks lay 16 eggs per day.\n\n"
    "2. **Calculate the number of eggs Janet eats and uses for baking:**\n"
    "   - She eats 3 eggs for breakfast.\n   - She bakes muffins with 4 eggs.\n"
    "   - Total eggs used: \\( 3 + 4 = 7 \\) eggs.\n\n"
    "3. **Calculate the number of eggs left to sell:**\n   \\[\n   16 - 7 = 9\n   \\]\n\n"
    "4. **Calculate the daily earnings:**\n   \\[\n   9 \\times 2 = 18\n   \\]\n\n"
    "Therefore, Janet makes \\(\\boxed{18}\\) dollars every day at the farmers' market."
)
SMOL_MCQ_CONTINUES = "B) Paris\n\nQuestion: What is the capital of Germany?\nA) London\nB) Paris\nC) Berlin\nD) Madrid\nAnswer: C) Berlin"


@pytest.mark.parametrize(
    "text,fmt,choices,expected",
    [
        (GSM8K_COT, "number", None, "18"),
        ("The answer is 18.\n\nQuestion: Tom has 20 apples. How many does he have?\nAnswer: 20", "number", None, "18"),
        (SMOL_MCQ_CONTINUES, "letter", CITIES, "B"),
        ("Question: Where is the Eiffel Tower?\nAnswer: B", "letter", CITIES, "B"),  # restated question is kept
        ("True<|im_end|>\n<|im_start|>user\nIs it false?", "bool", None, "True"),
        ("Answer: False\nHuman: are you sure?\nAssistant: True", "bool", None, "False"),
        ("To find the answer, we add 3 and 4 to get 7. Then we double it: 14.", "number", None, "14"),
        ("<think>\nOkay, 48/2 = 24, 48 + 24 = 72.\n</think>\n\nNatalia sold **72** clips.", "number", None, "72"),
        ("\\boxed{} The final answer is $3$", "latex", None, "3"),
    ],
)
def test_realistic_replies(text, fmt, choices, expected):
    assert parse_answer(text, fmt, choices) == expected


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200), st.sampled_from(["letter", "bool", "number", "latex", "text"]))
def test_parsers_never_raise_on_arbitrary_text(text, fmt):
    got = parse_answer(text, fmt, CITIES)
    assert got is None or isinstance(got, str)
    if fmt == "letter":
        assert got in (None, "A", "B", "C", "D")
    if fmt == "bool":
        assert got in (None, "True", "False")
    if fmt == "number" and got is not None:
        assert math.isfinite(float(got))
    if fmt != "latex":  # latex equivalence runs SymPy: covered by the table above
        assert is_correct(got, {"letter": "A", "bool": "True", "number": "1", "text": "x"}[fmt], fmt) in (True, False)


@pytest.mark.parametrize(
    "unit",
    ["answer is ", "*a ", "1,", "<think>", "\\boxed{", "5% ", "(", "confidence ", "A. ", "True or "],
)
def test_parsers_are_fast_on_degenerate_replies(unit):
    from uqroute.parsing import parse_confidence, parse_verbal_1s

    text = unit * (20_000 // len(unit))
    t0 = time.process_time()
    for fmt in ("letter", "bool", "number", "latex", "text"):
        parse_answer(text, fmt, CITIES)
    parse_confidence(text)
    parse_verbal_1s(text, "number")
    strip_think(text)
    assert time.process_time() - t0 < 3.0
