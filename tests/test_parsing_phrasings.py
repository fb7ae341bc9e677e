"""Phrasing tables: what the true/false parser and the judge's text-verdict parser read from replies
of the kind real models give.

Each row is (reply, expected reading). ``None`` / ``unparsable`` is an allowed expectation (a hedge,
a question, no answer): the caller then uses another label. A flipped polarity never is: the
``test_*_never_flips`` tests check that, for every row whose reply has a meaning, the parser gives
that meaning or nothing, so a change that flips a hedge fails twice.

Hedges read as no answer: "I'm not sure it's true", "It's unclear whether it's true", "Not
necessarily", and indirect negation ("None of it is true", "Far from true", "Nothing suggests it is
true", "fails to match"), which states a doubt or a degree rather than a verdict.
"""

from __future__ import annotations

import pytest

from uqroute.judge import parse_verdict
from uqroute.parsing import parse_bool

T, F, N = True, False, None

# (reply, expected, meaning): meaning is the truth value a reader takes from the reply (None: none),
# expected what the parser must return; expected is meaning or None, never the opposite.
BOOL_PHRASINGS = [
    # plain words and markers
    ("True", T, T),
    ("False", F, F),
    ("true.", T, T),
    ("FALSE", F, F),
    ("Answer: True", T, T),
    ("Answer: False", F, F),
    ("The answer is True.", T, T),
    ("The answer is false because the passage says otherwise.", F, F),
    ("**True**", T, T),
    ("\\boxed{False}", F, F),
    ("Final answer: True", T, T),
    ("My answer is False.", F, F),
    ("Answer: true\nExplanation: the passage says so.", T, T),
    ("Based on the passage, the answer is true.", T, T),
    ("Based on the passage, the answer is no.", F, F),
    # answer particles
    ("Yes", T, T),
    ("No", F, F),
    ("yes.", T, T),
    ("Yes!", T, T),
    ("No!", F, F),
    ("Nope.", F, F),
    ("Yes, the statement is true.", T, T),
    ("No, it is not.", F, F),
    ("Yes, because the passage says so.", T, T),
    ("No, because the passage says otherwise.", F, F),
    # an answer, then an explanation
    ("True. The passage states that the river flows north.", T, T),
    ("False. According to the passage, the film was released in 1999.", F, F),
    ("False, the passage says the opposite.", F, F),
    # statements
    ("The statement is true.", T, T),
    ("The statement is false.", F, F),
    ("The claim is not true.", F, F),
    ("The claim is false.", F, F),
    ("This statement is accurate.", T, T),
    ("This statement is not accurate", F, F),
    ("The statement is inaccurate.", F, F),
    ("That's correct.", T, T),
    ("That's incorrect.", F, F),
    ("Correct.", T, T),
    ("Incorrect", F, F),
    ("Right.", T, T),
    ("Wrong.", F, F),
    ("It isn't true.", F, F),
    ("Not true.", F, F),
    ("Not false.", T, T),
    ("It is not false.", T, T),
    # plain words the parser used to miss
    ("Untrue", F, F),
    ("That is untrue.", F, F),
    ("Absolutely", T, T),
    ("Absolutely.", T, T),
    ("Certainly.", T, T),
    ("Of course.", T, T),
    ("Of course not.", F, F),
    ("Absolutely not.", F, F),
    ("Definitely true.", T, T),
    ("Definitely not.", F, F),
    ("Not at all.", F, F),
    # hedges that keep their polarity
    ("Probably true.", T, T),
    ("Probably false.", F, F),
    ("Probably not.", F, F),
    ("Most likely true.", T, T),
    ("I believe it's true.", T, T),
    ("I don't think it's true.", F, F),
    ("I don't think so.", F, F),
    ("I think so.", T, T),
    # a question, then the answer
    ("Is it true? Yes.", T, T),
    ("Is it true? No.", F, F),
    ("True? I'm not sure.", N, N),
    # hedges: no answer, never the opposite
    ("Not necessarily", N, N),
    ("Not necessarily true.", N, N),
    ("I'm not sure it's true", N, N),
    ("It's unclear whether it's true", N, N),
    ("None of it is true", N, F),
    ("Far from true", N, F),
    ("Nothing suggests it is true", N, N),
    ("I'm not sure.", N, N),
    ("It depends.", N, N),
    ("It's hard to say whether it's true.", N, N),
    ("I cannot determine whether it is true.", N, N),
    ("I doubt it is true.", N, N),
    ("There is no evidence that it is true.", N, N),
    ("Maybe.", N, N),
    ("Uncertain.", N, N),
    ("Partly true, partly false.", N, N),
    ("Partially true.", N, N),
    ("The passage does not say.", N, N),
    ("True or False?", N, N),
    ("Yes and no.", N, N),
]


@pytest.mark.parametrize("text, expected, meaning", BOOL_PHRASINGS)
def test_parse_bool_phrasings(text, expected, meaning):
    assert parse_bool(text) is expected


def test_bool_table_is_large_and_never_expects_a_flip():
    assert len(BOOL_PHRASINGS) >= 60
    assert len({t for t, _, _ in BOOL_PHRASINGS}) == len(BOOL_PHRASINGS)
    for text, expected, meaning in BOOL_PHRASINGS:
        assert expected is None or expected is meaning, text


@pytest.mark.parametrize("text, meaning", [(t, m) for t, _, m in BOOL_PHRASINGS if m is not None])
def test_parse_bool_never_flips(text, meaning):
    assert parse_bool(text) in (meaning, None)


C, I, U = "correct", "incorrect", "unparsable"
_OPPOSITE = {C: I, I: C}

# (reply, expected, meaning) as above, for the judge's text-verdict fallback
VERDICT_PHRASINGS = [
    # plain
    ("Yes", C, C),
    ("Yes.", C, C),
    ("yes", C, C),
    ("YES", C, C),
    ("**Yes**", C, C),
    ("No", I, I),
    ("No.", I, I),
    ("no", I, I),
    ("Nope.", I, I),
    ("Correct", C, C),
    ("Correct.", C, C),
    ("Incorrect.", I, I),
    ("Wrong.", I, I),
    ("Equivalent.", C, C),
    ("Not equivalent.", I, I),
    ("Not correct.", I, I),
    ("Not incorrect.", C, C),
    # sentences
    ("The answer is correct.", C, C),
    ("The answer is incorrect.", I, I),
    ("Yes, the answer is correct.", C, C),
    ("Yes, it is equivalent.", C, C),
    ("It is not equivalent.", I, I),
    ("It isn't correct.", I, I),
    ("No, it is not correct.", I, I),
    ("No, the answer is wrong.", I, I),
    ("No, they are different.", I, I),
    ("The assistant's answer is essentially equivalent to the reference.", C, C),
    ("Yes, they match.", C, C),
    ("It matches the reference answer.", C, C),
    ("The answers are the same.", C, C),
    ("The answers differ.", I, I),
    ("The answer does not match the reference.", I, I),
    ("The response is inaccurate.", I, I),
    ("The assistant's answer contradicts the reference.", I, I),
    ("Yes - the answer is right.", C, C),
    ("Yes\n\nThe assistant names Paris, as the reference does.", C, C),
    ("No. The reference says Paris, the assistant says London.", I, I),
    # a verdict, then the right answer: "the correct answer is" states an answer, not a verdict
    ("Incorrect. The correct answer is 42.", I, I),
    ("Incorrect, the right answer is Paris.", I, I),
    ("No. The correct answer is Paris.", I, I),
    ("Wrong; the correct answer is 7.", I, I),
    # a question or a label, then the verdict
    ("Correct? No.", I, I),
    ("Correct? Yes.", C, C),
    ("Equivalent: No", I, I),
    ("Equivalent: Yes", C, C),
    ("Verdict: correct", C, C),
    ("Verdict: incorrect", I, I),
    ("Is it equivalent? No, it is not.", I, I),
    ("Incorrect: the answer should be 42", I, I),
    # emphatic and elliptical
    ("Absolutely.", C, C),
    ("Definitely.", C, C),
    ("Absolutely not.", I, I),
    ("Probably not.", I, I),
    ("I don't think so.", I, I),
    ("I think so.", C, C),
    # hedges: never correct
    ("I'm not sure it is correct", U, U),
    ("Unclear whether it's correct", U, U),
    ("The response fails to match the reference", U, I),
    ("Far from correct", U, I),
    ("None of it is correct", U, I),
    ("The answer fails to be correct", U, I),
    ("Nothing suggests it is correct", U, U),
    ("I'm not sure.", U, U),
    ("Hard to say.", U, U),
    ("Maybe.", U, U),
    ("It depends on the interpretation.", U, U),
    ("Partially correct.", U, U),
    ("Not necessarily.", U, U),
    ("The answer is not necessarily equivalent.", U, U),
    ("I cannot determine whether it is correct.", U, U),
    ("I doubt it is correct.", U, U),
    ("Correct?", U, U),
    # no verdict, or both
    ("Yes and no.", U, U),
    ("Yes. The answer is incorrect", U, U),
    ("The assistant's answer is", U, U),
    ("", U, U),
    ("qwerty", U, U),
]


@pytest.mark.parametrize("reply, expected, meaning", VERDICT_PHRASINGS)
def test_parse_verdict_phrasings(reply, expected, meaning):
    assert parse_verdict(reply) == expected


def test_verdict_table_is_large_and_never_expects_a_flip():
    assert len(VERDICT_PHRASINGS) >= 60
    assert len({t for t, _, _ in VERDICT_PHRASINGS}) == len(VERDICT_PHRASINGS)
    for reply, expected, meaning in VERDICT_PHRASINGS:
        assert expected in (meaning, U), reply


@pytest.mark.parametrize("reply, meaning", [(r, m) for r, _, m in VERDICT_PHRASINGS if m != U])
def test_parse_verdict_never_flips(reply, meaning):
    assert parse_verdict(reply) != _OPPOSITE[meaning]
