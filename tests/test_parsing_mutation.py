"""Tests written for the survivors of the mutation run over ``uqroute.parsing`` (docs/reliability.md,
"Mutation run"). Each test names the behaviour it pins; each was checked to fail on the mutant it is
for and to pass on the code.
"""

from __future__ import annotations

import pytest

from uqroute.judge import parse_verdict
from uqroute.parsing import (
    InvalidGoldError,
    find_option_token,
    is_correct,
    parse_bool,
    parse_confidence,
    parse_number,
    parse_option,
    parse_verbal_1s,
    prompt_opens_think,
    think_prefill,
)
from uqroute.parsing.answers import numbers_equal
from uqroute.parsing.think import EMPTY_THINK


# ------------------------------------------------------------------ negation: elliptical negatives
@pytest.mark.parametrize(
    ("reply", "value"),
    [
        ("I do not really think so", False),  # filler before the verb of "think so" still counts
        ("I do not really mean so", None),  # "mean" is neither filler nor a verb of "think so"
        ("I don't think he said so", None),  # not an elliptical negative: "he said" is not filler
    ],
)
def test_elliptical_negative_before_so_needs_filler_and_a_so_verb(reply, value):
    assert parse_bool(reply) is value
    assert parse_verdict(reply) == {True: "correct", False: "incorrect", None: "unparsable"}[value]


# ------------------------------------------------------------------ options with multi-character labels
_MULTI = [("a1", "Paris"), ("b2", "London"), ("c3", "New York")]


@pytest.mark.parametrize(
    ("reply", "label"),
    [
        ("A1", "a1"),  # the whole reply is a label, in another case: spelled as in the choices
        ("(B2).", "b2"),
        ("The answer is B2.", "b2"),  # the token after the last marker, case-insensitive
        ("The answer is:", None),  # a marker with nothing after it
        ("I pick paris", "a1"),  # one option's text in the reply
        ("Paris or London", None),  # two options' texts: no answer
        ("Rome", None),
    ],
)
def test_multichar_labels(reply, label):
    assert parse_option(reply, _MULTI) == label


def test_multichar_labels_never_pick_among_equal_texts_or_a_lone_wrong_option():
    assert parse_option("Paris", [("a1", "Paris"), ("b2", "Paris")]) is None
    assert parse_option("Rome", [("a1", "Paris")]) is None
    assert parse_option("Paris", [("a1", "Paris")]) == "a1"


# ------------------------------------------------------------------ think prefill
@pytest.mark.parametrize(
    ("prompt", "prefill"),
    [
        (None, EMPTY_THINK),
        ("", EMPTY_THINK),
        ("x<think>", "\n\n</think>\n\n"),  # the rest of EMPTY_THINK
        ("x<think>\n", "\n</think>\n\n"),
        ("<think>abc", "\n</think>\n\n"),  # an open block with text in it: close it
        ("<think></think><think>", "\n\n</think>\n\n"),
        ("<think>\n\n</think>\n\n", ""),
    ],
)
def test_think_prefill_completes_what_the_prompt_opened(prompt, prefill):
    assert think_prefill(prompt) == prefill
    assert prompt_opens_think(prompt) is (prefill not in ("", EMPTY_THINK))


# ------------------------------------------------------------------ confidence, numbers, correctness
def test_a_confidence_over_a_denominator_of_one():
    assert parse_confidence("Confidence: 1/1") == 1.0
    assert parse_confidence("Confidence: 0.5/1") == 0.5
    assert parse_confidence("Confidence: 0/0") is None  # no denominator, no division by zero
    assert parse_confidence("Confidence: 1.5") == 0.015  # a decimal above 1 is a percentage


def test_a_guess_line_gives_the_verbal_1s_answer():
    choices = [("A", "Paris"), ("B", "London")]
    assert parse_verbal_1s("I first thought A.\nGuess: B\nProbability: 0.7", "letter", choices) == ("B", 0.7)
    reply = "I first thought London.\nGuess: Paris\nProbability: 0.7"
    assert parse_verbal_1s(reply, "letter", choices) == ("A", 0.7)


def test_numbers_equal_has_an_absolute_tolerance_near_zero():
    assert numbers_equal(1e-12, 0.0)
    assert not numbers_equal(1e-6, 0.0)


def test_a_numeric_gold_answer_is_a_number_and_a_bool_is_not():
    assert is_correct("42", 42, "number") is True
    assert is_correct("42.5", 42.5, "number") is True
    with pytest.raises(InvalidGoldError):
        is_correct("1", True, "number")


def test_text_correctness_uses_the_references_and_skips_blank_ones():
    # the references, not gold, are compared with when given
    assert is_correct("Paris", "London", "text", references=["Paris", None, " "]) is True
    # only blank or null references: gold is the reference
    assert is_correct("Paris", "Paris", "text", references=[" ", None]) is True
    assert is_correct("Paris", "Paris", "text", references=None) is True


@pytest.mark.parametrize(
    ("reply", "number"),
    [
        ("Answer: x = 3 + 2 = 5", 5.0),  # an equation: the number after its last "="
        ("Answer: 3+2=5", 5.0),
        ("Answer:\n3 + 2 = 5\nSo x = 9", 5.0),  # the line after an empty marker line, not the rest
        ("The answer is:\n42\n\n7 apples", 42.0),  # the first non-empty line after the marker
        ("$-\\frac{-3}{4}$", 0.75),  # two minus signs cancel
        ("Answer: -\\frac{-3}{4}", 0.75),
    ],
)
def test_numbers_after_a_marker(reply, number):
    assert parse_number(reply) == number


# ------------------------------------------------------------------ true/false copula statements
@pytest.mark.parametrize(
    ("reply", "value"),
    [
        ("Having read the passage: is completely accurate", True),  # copula opening the clause
        ("Is entirely inaccurate.", False),
        ("Looking at it, mostly accurate", None),  # no copula, a hedge: no statement
    ],
)
def test_copula_statements(reply, value):
    assert parse_bool(reply) is value


# ------------------------------------------------------------------ "the correct answer is …" names an answer
@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("Incorrect. The correct answer", "incorrect"),  # at the end of its clause
        ("Incorrect. A correct answer would be 42", "incorrect"),
        ("Incorrect. An accurate answer is 42.", "incorrect"),
        ("Incorrect; probably the correct answer is 42", "incorrect"),  # after a hedge
        ("Incorrect, but the correct answer is 42", "incorrect"),  # after a conjunction
        ("Incorrect; here is the correct answer", "unparsable"),  # not at the start of its clause
    ],
)
def test_the_correct_answer_names_an_answer_and_is_no_verdict(reply, verdict):
    assert parse_verdict(reply) == verdict


# ------------------------------------------------------------------ an option's text after the answer marker
_TEXTS = [("A", "Paris"), ("B", "London"), ("C", "New"), ("D", "New York")]


@pytest.mark.parametrize(
    ("reply", "label"),
    [
        ("The answer is Paris.", "A"),
        ("The answer is Paris, not London", "A"),  # the text the marker's segment starts with
        ("The answer is New York, I think", "D"),  # the longest text wins
        ("The answer is New\nYork\nmaybe", "C"),  # only the marker's own line
    ],
)
def test_option_text_after_the_marker(reply, label):
    assert parse_option(reply, _TEXTS) == label


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("Probably no it is not correct", "incorrect"),  # "no" after a hedge is an answer particle
        ("Actually no it is not correct", "incorrect"),  # … and after filler
        ("Probably no it is correct", "unparsable"),
    ],
)
def test_no_after_a_hedge_or_filler_is_an_answer_particle(reply, verdict):
    assert parse_verdict(reply) == verdict


# ------------------------------------------------------------------ the option token
def test_option_token_of_a_true_false_word_split_over_tokens():
    assert find_option_token(["Tr", "ue"], "True", "TF") == 0  # a prefix of two letters states it
    assert find_option_token(["I", " think", " True"], "True", "TF") == 2  # not the first token


def test_option_token_skips_a_negated_label_and_looks_40_characters_back():
    assert find_option_token(["Not", " A"], "A", "MCQ") is None  # "not" at the very start
    assert find_option_token(["Not", " A", ".", " A", "."], "A", "MCQ") == 3  # the next mention
    assert find_option_token(["not" + " " * 38, "A"], "A", "MCQ") == 1  # "not" 41 characters back


# ------------------------------------------------------------------ LaTeX answers
def test_math_equivalent_verifies_up_to_the_length_cap_and_not_past_it():
    from uqroute.parsing.mathexpr import MAX_VERIFY_CHARS, math_equivalent

    at_cap = "0.5" + "0" * (MAX_VERIFY_CHARS - 3)
    past_cap = at_cap + "0"
    assert len(at_cap) == MAX_VERIFY_CHARS
    assert math_equivalent(at_cap, "\\frac{1}{2}") and math_equivalent("\\frac{1}{2}", at_cap)
    assert not math_equivalent(past_cap, "\\frac{1}{2}") and not math_equivalent("\\frac{1}{2}", past_cap)
    assert not math_equivalent(None, "None")  # no answer is never equivalent, not even to "None"


def test_only_math_verifys_timeout_warning_is_dropped():
    import logging

    from uqroute.parsing.mathexpr import _NoTimeoutWarning

    def record(msg):
        return logging.LogRecord("math_verify", logging.WARNING, __file__, 1, msg, None, None)

    f = _NoTimeoutWarning()
    assert not f.filter(record("Timeout is disabled as we are not in the main thread"))
    assert f.filter(record("Something else"))


def test_balanced_brace():
    from uqroute.parsing._common import balanced_brace

    assert balanced_brace("{a}b", 0) == ("a", 3)  # the content and the index after "}"
    assert balanced_brace("{a\\}b}", 0) == ("a\\}b", 6)  # an escaped brace does not close
    assert balanced_brace("ab", 5) is None and balanced_brace("a", 1) is None  # past the end
    assert balanced_brace("{a", 0) is None


@pytest.mark.parametrize(
    ("reply", "answer"),
    [
        ("Answer: $x$.", "x"),  # a period after the math span, then the delimiters
        ("Answer: x.", "x"),  # a sentence period
        ("Answer: a.b.", "a.b"),
        ("Answer: $5", "$5"),  # an unclosed delimiter is kept
        ("\\boxed{$\\(x\\)$}", "x"),  # nested delimiters, all removed
        ("\\boxed{x .}", "x"),
        ("\\boxed{$$}", None),  # only delimiters: no answer
        ("The final answer is $x$ and y", "x"),  # the math span after the marker, not the line
    ],
)
def test_math_answer_cleaning(reply, answer):
    from uqroute.parsing.mathexpr import extract_math_answer

    assert extract_math_answer(reply) == answer


def test_normalize_latex():
    from uqroute.parsing.mathexpr import normalize_latex

    text = " \\left( \\dfrac{1}{2} \\right)\\!\\,\\; $ + \\tfrac{a}{b}$"
    assert normalize_latex(text) == "(\\frac{1}{2})+\\frac{a}{b}"


@pytest.mark.parametrize(
    ("reply", "value"),
    [
        # rule 4: no marker, no opening value, no copula: every true/false in the reply, when they agree
        ("Based on the passage, I'd go with true.", True),
        ("Based on the passage, I'd go with false.", False),
        ("Based on the passage, I'd go with true, not false.", True),
        ("Probably correct", True),  # rule 2 after a hedge, with a word rule 4 does not read
    ],
)
def test_true_false_words_anywhere_in_the_reply(reply, value):
    assert parse_bool(reply) is value


def test_the_opening_value_is_read_from_its_own_clause():
    assert parse_bool("True. Some would say false.") is True
    assert parse_bool("Not really. Some would say true.") is False


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("Is it equivalent: No", "incorrect"),  # a label of three words, a verdict after it
        ("No. Equivalent:", "unparsable"),  # a label with no verdict after it counts
    ],
)
def test_a_short_label_before_the_verdict_is_skipped(reply, verdict):
    assert parse_verdict(reply) == verdict


@pytest.mark.parametrize(
    ("reply", "number"),
    [
        ("Answer: \u20135", -5.0),  # an en dash is a minus
        ("Answer: -\\$5", -5.0),  # a minus before an escaped dollar
        ("Answer: \\$5", 5.0),
        ("Answer: 1\\!000", 1000.0),  # LaTeX's negative thin space inside a number
        ("Answer: 1\u202f000", 1000.0),  # a narrow no-break space between thousands
    ],
)
def test_numbers_written_with_latex_or_typographic_signs(reply, number):
    assert parse_number(reply) == number


@pytest.mark.parametrize(
    ("reply", "answer"),
    [
        ("Answer: Paris;", "Paris"),
        ("Answer: Paris:", "Paris"),
        ("Answer: Paris...", "Paris..."),  # an ellipsis is kept
        ("Answer: Paris .", "Paris"),
        ("XParisX", "XParisX"),
    ],
)
def test_text_answer_trailing_punctuation(reply, answer):
    from uqroute.parsing.answers import parse_text_answer

    assert parse_text_answer(reply) == answer
