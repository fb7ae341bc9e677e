"""Negation in the two parsers that read a polarity: the judge's verdict and true/false answers.

Contractions were read as their opposite ("isn't correct" → correct). Each table row
is one phrasing; the tables cover contractions (straight and curly apostrophes, and the
apostrophe-less forms small models write), "not", "no,", double negatives, hedges and doubt.
"""

from __future__ import annotations

import pytest

from uqroute.judge import parse_verdict
from uqroute.parsing import normalize_negations, parse_bool, polarities

C, I, U = "correct", "incorrect", "unparsable"

VERDICT_CASES = [
    # plain
    ("Yes", C),
    ("YES", C),
    ("No", I),
    ("No.", I),
    ("NO", I),
    ("Nope", I),
    ("nah", I),
    ("Correct.", C),
    ("Incorrect.", I),
    ("Wrong", I),
    ("Right.", C),
    ("That's right.", C),
    ("Equivalent.", C),
    ("The answer is accurate.", C),
    ("The answer is inaccurate.", I),
    ("Yes, it is correct.", C),
    ("Yes, they're the same.", C),
    # contractions
    ("It isn't correct.", I),
    ("It isn’t correct.", I),
    ("It is not correct", I),
    ("It's not correct", I),
    ("The answer isn't equivalent.", I),
    ("They aren't equivalent", I),
    ("They aren’t equivalent", I),
    ("The answer wasn't right.", I),
    ("It doesn't match the reference.", I),
    ("The answers don't match.", I),
    ("It can't be considered correct.", I),
    ("It cannot be considered correct.", I),
    ("I can’t say it’s correct.", I),
    ("That won't be correct.", I),
    ("It shouldn't be marked correct.", I),
    ("It shouldn’t be marked correct.", I),
    ("isnt correct", I),
    ("doesnt match", I),
    ("The answer is not essentially equivalent", I),
    ("Not equivalent.", I),
    ("not correct", I),
    ("They are not the same.", I),
    # "no," and "no" as a determiner
    ("No, it's not equivalent.", I),
    ("No, it isn't.", I),
    ("No it isn't", I),
    ("No, it is not equivalent.", I),
    ("There is no difference.", C),
    ("No difference in meaning; correct.", C),
    ("The answers differ.", I),
    ("The answers don't differ.", C),
    ("It contradicts the reference.", I),
    ("It doesn't contradict the reference.", C),
    # double negatives
    ("Not incorrect.", C),
    ("It is not incorrect.", C),
    ("I don't think it is incorrect.", C),
    ("I wouldn't say it's wrong.", C),
    ("It is not not correct.", C),
    ("It isn't wrong.", C),
    # negated belief and elliptical replies
    ("I don't think it's correct.", I),
    ("I don’t think it’s correct.", I),
    ("I don't think so.", I),
    ("I think so.", C),
    ("It is not the case that the answer is correct.", I),
    ("It's neither correct nor complete.", I),
    ("Not exactly.", I),
    ("Not really.", I),
    # hedges
    ("Probably not.", I),
    ("probably not", I),
    ("Absolutely not.", I),
    ("Probably yes.", C),
    ("Likely correct.", C),
    ("I'm not sure, but probably yes.", C),
    ("Without a doubt, correct.", C),
    ("No doubt it is correct.", C),
    ("Definitely.", C),
    ("Correct? No.", I),
    # doubt, no verdict, or both verdicts: never guessed
    ("The assistant's answer is not necessarily equivalent", U),
    ("Not necessarily equivalent.", U),  # hedges
    ("I'm not sure.", U),
    ("Not sure.", U),
    ("Hard to say.", U),
    ("I don't know.", U),
    ("Yes. The answer is incorrect", U),
    ("Yes or No", U),
    ("qwerty", U),
    ("", U),
    (None, U),
    ("The assistant's answer is", U),
    # reasoning removed first
    ("<think>No, wait, it isn't</think>Yes", C),
]


@pytest.mark.parametrize("reply, verdict", VERDICT_CASES)
def test_parse_verdict_reads_negation(reply, verdict):
    assert parse_verdict(reply) == verdict


BOOL_CASES = [
    ("True", True),
    ("False", False),
    ("Yes, it is.", True),
    ("Nope.", False),
    ("Yep, true.", True),
    # contractions
    ("It isn't true.", False),
    ("It isn’t true.", False),
    ("It is not true.", False),
    ("It wasn't true.", False),
    ("It isn’t true that cats bark.", False),
    ("That can't be true.", False),
    ("That can’t be true.", False),
    ("The answer isn't true.", False),
    ("Answer: isn't true", False),
    ("The statement isn't correct.", False),
    ("Doesn't seem true.", False),
    ("I don’t think it’s true.", False),
    ("It doesn't.", False),
    ("It does not.", False),
    # "no,"
    ("No, it isn't.", False),
    ("No it isn't", False),
    ("No, because the passage says otherwise.", False),
    ("No evidence, so false.", False),
    # double negatives
    ("That's not false.", True),
    ("It's not false.", True),
    ("Not false.", True),
    ("It can't be false.", True),
    ("The answer is not false.", True),
    ("The statement isn't incorrect.", True),
    ("True, it isn't false.", True),
    # hedges and elliptical replies
    ("Probably not.", False),
    ("Definitely not", False),
    ("Not really", False),
    ("I don't think so.", False),
    ("I think so.", True),
    ("Not true.", False),
    ("It is not entirely true.", False),
    ("False, it isn't.", False),
    # no answer, or both
    ("I'm not sure.", None),
    ("The passage does not say.", None),
    ("There is no evidence for it.", None),
    ("It's not true that A, it is true that B.", None),
    ("true and false", None),
    ("Yes or no?", None),
    ("It does.", None),
]


@pytest.mark.parametrize("text, expected", BOOL_CASES)
def test_parse_bool_reads_negation(text, expected):
    assert parse_bool(text) is expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("It isn't", "it is not"),
        ("It isn’t", "it is not"),
        ("can't", "can not"),
        ("cannot", "can not"),
        ("won't", "will not"),
        ("shan't", "shall not"),
        ("ain't", "is not"),
        ("doesn't", "does not"),
        ("shouldn’t", "should not"),
        ("dont", "do not"),
        ("isnt", "is not"),
        ("Wasn't", "was not"),
        ("don't", "do not"),
        ("aren't", "are not"),
        ("None", "none"),
    ],
)
def test_normalize_negations(text, expected):
    assert normalize_negations(text) == expected


def test_polarities_scope_ends_at_a_conjunction_and_at_the_first_polar_word():
    lex = {"correct": True, "wrong": False}
    # "not" flips "correct" only; "wrong" after "and" keeps its own polarity
    assert [p.value for p in polarities("it is not correct and it is wrong", lex)] == [False, False]
    # a negator's scope ends at a conjunction: "right" after "but" is not negated
    assert [p.value for p in polarities("not because of that, but correct", lex)] == [True]
    assert [(p.word, p.negations) for p in polarities("not not correct", lex)] == [("correct", 2)]
