"""Verbalized-confidence parsing (verbalization-1s / -2s, paper §3.1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uqroute.parsing import parse_confidence, parse_verbal_1s

CITIES = [
    {"label": "A", "text": "London"},
    {"label": "B", "text": "Paris"},
    {"label": "C", "text": "Berlin"},
]

CONFIDENCE_CASES = [
    ("Confidence: 80%", 0.8),
    ("80", 0.8),
    ("80%", 0.8),
    ("80 %", 0.8),
    ("0.8", 0.8),
    ("Confidence: 0.8", 0.8),
    ("confidence level: 0.75", 0.75),
    ("Confidence score = 65", 0.65),
    ("8/10", 0.8),
    ("8 out of 10", 0.8),
    ("4 out of 5.", 0.8),
    ("I am 90% confident", 0.9),
    ("I am 90 percent sure that my answer is correct.", 0.9),
    ("I'd say 85.", 0.85),
    ("My confidence that this is correct is 85%", 0.85),
    ("Confidence (0-100): 85", 0.85),
    ("On a scale of 0 to 100, my confidence is 70.", 0.7),
    ("Confidence [0, 1]: 0.9", 0.9),
    ("Confidence 0-100: 85", 0.85),
    ("Confidence: Very high (95%)", 0.95),
    ("My confidence level is 9 out of 10", 0.9),
    ("Confidence: 8.5/10", 0.85),
    ("Probability: 0.7", 0.7),
    ("**Confidence:** 95%", 0.95),
    ("<think>Maybe 50%? I'm fairly sure.</think>\nConfidence: 70%", 0.7),
    ("100%", 1.0),
    ("100", 1.0),
    ("1", 0.01),  # bare integers are percentages (the prompts ask for 0-100) ...
    ("1.0", 1.0),  # ... decimals ≤ 1 are probabilities
    ("0.5", 0.5),
    ("Probability: 1", 1.0),  # Tian et al.'s 0.0-1.0 format
    ("0", 0.0),
    ("0%", 0.0),
    ("Confidence: 1%", 0.01),
    ("The answer uses 50% of the budget; I am 90% confident.", 0.9),
    # no numeric confidence / invalid
    ("confidence level: high", None),  # words are not mapped to numbers
    ("I am very confident.", None),
    ("150", None),
    ("150%", None),
    ("Confidence: 150", None),  # an explicit but out-of-range value is not replaced by another number
    ("11/10", None),
    ("-5%", None),
    ("Between 70 and 80", None),  # two numbers, no marker
    ("", None),
    ("<think>90%</think>", None),
    # coarse values (most verbalized confidences are 90 or 100) are exact
    ("90", 0.9),
    ("100", 1.0),
    ("90.", 0.9),
    ("100.", 1.0),
    ("Confidence: 100", 1.0),
    ("Confidence: 90%.", 0.9),
    ("Confidence: 100%\n", 1.0),
    ("I'm 100% sure.", 1.0),
    # negations: a negated value says what the confidence is not
    ("I am not 100% sure.", None),
    ("I'm not 100% sure, I'd say 90.", 0.9),
    ("I’m not 100% sure, I’d say 90.", 0.9),
    ("Not 100% confident; 80%.", 0.8),
    ("I am not 90% confident, more like 60%", 0.6),
    ("I isn't 100% certain, maybe 80", 0.8),
    ("I'm not quite 100% sure: 95%", 0.95),
    ("I'm not confident.", None),
    ("Not very confident: 30%", 0.3),
    ("I am not sure. 70%", 0.7),
]


@pytest.mark.parametrize("text,expected", CONFIDENCE_CASES)
def test_parse_confidence(text, expected):
    got = parse_confidence(text)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


@settings(deadline=None)
@given(st.integers(0, 10_000).map(lambda k: k / 100))
def test_parse_confidence_percent_property(p):
    assert parse_confidence(f"{p}%") == pytest.approx(p / 100)
    assert parse_confidence(f"Confidence: {p}%") == pytest.approx(p / 100)
    assert parse_confidence(f"I am {p}% confident that the answer is right.") == pytest.approx(p / 100)


@settings(deadline=None)
@given(st.integers(0, 1000).map(lambda k: k / 1000))
def test_parse_confidence_probability_property(x):
    assert parse_confidence(f"Confidence: {x}") == pytest.approx(x)
    assert parse_confidence(f"{x}") == pytest.approx(x)


@settings(deadline=None)
@given(st.floats(min_value=100.01, max_value=1e6, allow_nan=False))
def test_parse_confidence_rejects_values_above_100(x):
    assert parse_confidence(f"{x:.2f}%") is None
    assert parse_confidence(f"Confidence: {x:.2f}") is None


VERBAL_1S_CASES = [
    ("Answer: B\nConfidence: 80%", "letter", ("B", 0.8)),
    ("B 85", "letter", ("B", 0.85)),
    ("B, 85%", "letter", ("B", 0.85)),
    ("B (85)", "letter", ("B", 0.85)),
    ("Answer: B (Confidence: 90%)", "letter", ("B", 0.9)),
    ("Confidence: 90%\nAnswer: C", "letter", ("C", 0.9)),
    ("The answer is (A) London. I am 70% sure.", "letter", ("A", 0.7)),
    ("**Answer:** B\n**Confidence:** 0.95", "letter", ("B", 0.95)),
    ("<think>London or Paris… Paris.</think>\nAnswer: B\nConfidence: 99%", "letter", ("B", 0.99)),
    ("0.9", "letter", (None, None)),
    ("B", "letter", ("B", None)),
    ("True, 90%", "bool", ("True", 0.9)),
    ("Answer: False\nConfidence: 0.6", "bool", ("False", 0.6)),
    ("Answer: 18\nConfidence: 90", "number", ("18", 0.9)),
    ("The answer is 18 and I am 90% confident", "number", ("18", 0.9)),
    ("Answer: 42\n90", "number", ("42", 0.9)),
    ("Answer: 42 85", "number", ("42", 0.85)),
    ("Answer: 3/4\nConfidence: 0.6", "number", ("0.75", 0.6)),
    ("20% of 50 is 10.\nAnswer: 10\nConfidence: 80%", "number", ("10", 0.8)),
    # numbers inside the answer are not confidences
    ("18", "number", ("18", None)),
    ("Answer: 25%", "number", ("25", None)),
    ("20% of 50 is 10.\nAnswer: 10", "number", ("10", None)),
    ("5 + 3 = 8", "number", ("8", None)),
    ("The answer is 10", "number", ("10", None)),
    ("Answer: \\boxed{\\frac{1}{2}}\nConfidence: 95%", "latex", ("\\frac{1}{2}", 0.95)),
    ("The final answer is $100$.\nConfidence: 60", "latex", ("100", 0.6)),
    ("Guess: Paris\nProbability: 0.8", "text", ("Paris", 0.8)),
    ("Paris\n0.9", "text", ("Paris", 0.9)),
    ("Answer: the white house\nConfidence level: high", "text", ("the white house", None)),
    ("", "text", (None, None)),
    # range hints are ignored for the confidence but kept in the answer
    ("The answer is \\boxed{[0, 1]}. Confidence (0-100): 85", "latex", ("[0, 1]", 0.85)),
    ("The sum of the numbers from 1 to 10 is 55.\nConfidence: 90%", "number", ("55", 0.9)),
    ("Paris, 90% confident", "text", ("Paris", 0.9)),
    # coarse values and negations
    ("B, 100%", "letter", ("B", 1.0)),
    ("Answer: 100\nConfidence: 100", "number", ("100", 1.0)),
    ("42 90", "number", ("42", 0.9)),
    ("Answer: 90", "number", ("90", None)),
    ("Answer: B. I'm not 100% sure.", "letter", ("B", None)),
    ("The answer is 90. I'm not 100% sure, I'd say 90%.", "number", ("90", 0.9)),
    ("The answer is not 12, it is 15. Confidence: 80%", "number", ("15", 0.8)),
    ("It isn't true. Confidence: 90", "bool", ("False", 0.9)),
    ("Not true, 100%", "bool", ("False", 1.0)),
    ("I don't think so. Confidence: 70%", "bool", ("False", 0.7)),
]


@pytest.mark.parametrize("text,fmt,expected", VERBAL_1S_CASES)
def test_parse_verbal_1s(text, fmt, expected):
    ans, conf = parse_verbal_1s(text, fmt, CITIES if fmt == "letter" else None)
    assert ans == expected[0]
    if expected[1] is None:
        assert conf is None
    else:
        assert conf == pytest.approx(expected[1])


@settings(deadline=None)
@given(
    st.integers(-(10**6), 10**6),
    st.integers(0, 100),
    st.sampled_from(
        [
            "Answer: {n}\nConfidence: {p}%",
            "The answer is {n}. Confidence: {p}%",
            "Answer: {n}\n{p}%",
            "Answer: {n}\nI am {p}% confident.",
        ]
    ),
)
def test_parse_verbal_1s_number_property(n, p, template):
    ans, conf = parse_verbal_1s(template.format(n=n, p=p), "number")
    assert ans == str(n)
    assert conf == pytest.approx(p / 100)


@settings(deadline=None)
@given(st.sampled_from(["A", "B", "C"]), st.integers(0, 100))
def test_parse_verbal_1s_letter_property(label, p):
    # a bare integer is a percentage ("B 1" → 0.01); a decimal ≤ 1 a probability
    assert parse_verbal_1s(f"{label} {p}", "letter", CITIES) == (label, pytest.approx(p / 100))
    assert parse_verbal_1s(f"{label} {p / 100:.2f}", "letter", CITIES) == (label, pytest.approx(p / 100))
    assert parse_verbal_1s(f"Answer: ({label})\nConfidence: {p}%", "letter", CITIES) == (label, pytest.approx(p / 100))
