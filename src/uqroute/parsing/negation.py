"""Negation-aware polarity: which truth value a short reply states, and how sure we can be of it.

Shared by the true/false answer parser (:func:`uqroute.parsing.parse_bool`) and the judge's
verdict parser (:func:`uqroute.judge.parse_verdict`). Both used to look for polar words
(``correct``, ``true``) and a literal ``not`` in front of them, so a contraction was read as
its opposite (``isn't correct`` → correct). Here negation is handled in these steps:

1. :func:`normalize_negations` — lower-case, curly apostrophes (``’``, ``‘``, ``ʼ``) made
   straight, and every negative contraction written out: ``isn't`` → ``is not``,
   ``can't``/``cannot`` → ``can not``, ``won't`` → ``will not``, ``ain't`` → ``is not``, and the
   apostrophe-less forms small models write (``isnt``, ``dont``, ``doesnt``…).
2. :func:`polarities` — the reply is split into clauses (at ``. , ; : ! ?``, new lines and
   brackets). In each clause a *negator* (``not``, ``no``, ``never``, ``neither``, ``nor``,
   ``hardly``, ``barely``, ``without``) flips the next polar word of the lexicon after it; its
   scope ends at that word or at a conjunction (``and``, ``or``, ``but``, ``because``…). Two
   negators flip twice, so double negatives come out right (``not incorrect`` → positive,
   ``I don't think it's incorrect`` → positive).
3. Answer particles and elliptical replies: ``yes``/``yep``/``yeah`` are positive; ``no``/
   ``nope``/``nah`` are negative when they stand alone in their clause or open it before a
   pronoun or article (``No, …``, ``No it isn't``); otherwise ``no`` is a negator before a polar
   word (``no difference``) and indirect negation before any other word (below). A clause whose
   negator has no polar word after it is an elliptical negative when only filler follows
   (``probably not``, ``not really``, ``it is not``, ``I don't think so``); ``I think so`` and a
   clause that is only an emphatic word (``Absolutely.``, ``Of course.``, ``Definitely.``) are
   elliptical positives. Fixed phrases (``no doubt``, ``without a doubt``, ``not only``) are
   removed first.
4. Doubt, degree and indirect negation state no polarity: from ``not sure``, ``unsure``,
   ``unclear``, ``I don't know``, ``hard to say``, ``not necessarily``, ``doubt``, ``depends``,
   ``none``, ``nothing``, ``far from``, ``fails to``, ``lacks``, ``partially``/``partly`` and ``no``
   before a non-polar word (``no evidence that``) to the end of the scope (clause or conjunction),
   no polar word counts: ``I'm not sure it is correct``, ``None of it is true``, ``Far from
   correct``, ``The response fails to match`` state nothing (never the opposite of what they mean).
   ``I'm not sure, but probably yes`` is positive: the conjunction ends the doubt.
5. A question states nothing: a clause ending in ``?`` is skipped (``Correct? No.`` is negative,
   ``True? I'm not sure`` states nothing). A short label ending in ``:`` (at most three words) is
   skipped when a later clause states a polarity (``Equivalent: No`` is negative; ``Incorrect: it
   should be 42`` keeps its label). ``the correct answer`` at the start of a clause names an
   answer and is not a verdict (``Incorrect. The correct answer is 42.`` is negative).

A hedge does not hide the polarity it qualifies (``probably not`` → negative, ``likely
correct`` → positive). Callers decide what to do with several polarities (the verdict parser
and ``parse_bool`` return nothing when they disagree: never a guess).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["normalize_negations", "polarities", "Polarity", "NEGATORS"]

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "´": "'", "`": "'"})

# irregular negative contractions first, then the regular "<aux>n't"
_IRREGULAR = (
    (re.compile(r"\bcan'?t\b"), "can not"),
    (re.compile(r"\bcannot\b"), "can not"),
    (re.compile(r"\bwon'?t\b"), "will not"),
    (re.compile(r"\bshan'?t\b"), "shall not"),
    (re.compile(r"\bain'?t\b"), "is not"),
)
_REGULAR = re.compile(r"\b([a-z]+)n't\b")
# apostrophe-less forms of the common auxiliaries ("isnt", "dont")
_BARE = re.compile(r"\b(is|are|was|were|do|does|did|has|have|had|could|would|should|must|need|might)nt\b")

#: Words that negate the next polar word of their clause.
NEGATORS = frozenset({"not", "no", "never", "neither", "nor", "hardly", "barely", "without"})
_POSITIVE_PARTICLES = frozenset({"yes", "yep", "yeah", "yup", "indeed", "affirmative"})
_NEGATIVE_PARTICLES = frozenset({"no", "nope", "nah"})
# after a clause-initial "no", these words make it an answer particle ("No it isn't", "No, the …")
_AFTER_PARTICLE = frozenset(
    "it its it's that this they the he she i we you there because since as but and so answer "
    "assistant response reference model".split()
)
# conjunctions end a negator's scope
_SCOPE_END = frozenset("and or but because since although though while whereas however yet".split())
# what may follow an unattached negator in an elliptical negative ("probably not", "it is not",
# "not really", "not at all", "I do not think so", "not the case")
_ELLIPSIS_TAIL = frozenset(
    "really at all quite exactly entirely completely fully the case i would do does is are it "
    "that this actually likely to me sadly unfortunately".split()
)
# verbs allowed in the tail only before a final "so" ("I do not think so", "I would not say so")
_SO_VERBS = frozenset("think believe guess suppose say hope expect".split())
# fixed phrases: no polarity, and their negators are not negations (removed first)
_FIXED = re.compile(r"\b(?:no\s+(?:doubt|question)|without\s+(?:a\s+)?doubt|not\s+only)\b")
# doubt, degree and indirect negation: a clause states no polarity from here to the end of its scope
# ("I'm not sure it is correct", "unclear whether it's true", "not necessarily", "far from correct",
# "none of it is true", "nothing suggests", "fails to match", "partially correct")
_DOUBT = re.compile(
    r"\b(?:not\s+(?:entirely\s+|completely\s+|totally\s+|100\s*%\s*|quite\s+)?(?:sure|certain|clear)"
    r"|unsure|uncertain|unclear|(?:do|can)\s+not\s+(?:really\s+)?(?:know|tell|say\s+for\s+sure|determine|be\s+sure)"
    r"|hard\s+to\s+(?:say|tell|determine)|not\s+necessarily|doubt(?:s|ful)?|depends|none|nothing|nobody|nowhere"
    r"|far\s+from|fail(?:s|ed|ing)?\s+to|lack(?:s|ed|ing)?|partially|partly)\b"
)
#: the word :data:`_DOUBT` matches are replaced by (the lexicon never holds it)
_BLOCK = "uqdoubt"
# a whole clause that is an emphatic yes ("Absolutely.", "Of course.")
_EMPHATIC = re.compile(r"^(?:absolutely|definitely|certainly|surely|exactly|precisely|of\s+course|sure)$")
# "the correct answer is 42" names an answer, it does not judge one
_ANSWER_NOUNS = frozenset("answer answers one response value result solution option choice reply".split())
_CLAUSES = re.compile(r"[.;:!?,()\[\]{}\"\n]+|\s[-–—]+\s")
_WORDS = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_THINK_SO = re.compile(r"^(?:i\s+)?(?:really\s+)?(?:think|believe|guess|suppose)\s+so$")


def normalize_negations(text: str | None) -> str:
    """``text`` lower-cased, with straight apostrophes and every negative contraction written out.

    >>> normalize_negations("It isn’t correct, and I can't say it won't")
    'it is not correct, and i can not say it will not'
    """
    t = ("" if text is None else str(text)).translate(_APOSTROPHES).lower()
    for pattern, repl in _IRREGULAR:
        t = pattern.sub(repl, t)
    t = _REGULAR.sub(r"\1 not", t)
    return _BARE.sub(r"\1 not", t)


@dataclass(frozen=True)
class Polarity:
    """One polarity stated in a reply.

    ``value``: the stated truth value after negation; ``word``: the polar word, particle or
    ``"(ellipsis)"``; ``clause``: the clause index; ``index``: the word's index in its clause;
    ``negations``: how many negators flipped it; ``words``: the clause's words.
    """

    value: bool
    word: str
    clause: int
    index: int
    negations: int
    words: tuple[str, ...]


def _clauses(text: str) -> list[tuple[list[str], str]]:
    """The clauses of ``text``: (words, the punctuation that ends the clause)."""
    parts, ends = _CLAUSES.split(text), _CLAUSES.findall(text) + [""]
    return [(_WORDS.findall(c), e) for c, e in zip(parts, ends)]


#: a clause ending in ``:`` with at most this many words is a label ("Equivalent: No")
_LABEL_WORDS = 3


def polarities(text: str | None, lexicon: dict[str, bool], *, normalized: bool = False) -> list[Polarity]:
    """Every polarity stated in ``text``, in reading order (rules in the module docstring).

    ``lexicon`` maps polar words (lower case, single words; hyphenated words count as one)
    to their positive (True) or negative (False) value. Answer particles (``yes``, ``no``…)
    are always recognised. ``normalized``: ``text`` already went through
    :func:`normalize_negations`.
    """
    t = text if normalized else normalize_negations(text)
    t = _FIXED.sub(" ", t or "")
    t = _DOUBT.sub(f" {_BLOCK} ", t)
    found: list[tuple[list[Polarity], str, int]] = []
    for ci, (words, end) in enumerate(_clauses(t)):
        if words:
            found.append((_clause_polarities(ci, words, lexicon), end, len(words)))
    out: list[Polarity] = []
    for k, (pols, end, n_words) in enumerate(found):
        if "?" in end:
            continue  # a question states nothing ("Correct? No.", "True or false?")
        if ":" in end and n_words <= _LABEL_WORDS and any(p for p, _, _ in found[k + 1 :]):
            continue  # a label before the value it names ("Equivalent: No")
        out.extend(pols)
    return out


def _clause_polarities(ci: int, words: list[str], lexicon: dict[str, bool]) -> list[Polarity]:
    ws = tuple(words)
    joined = " ".join(words)
    if _THINK_SO.match(joined) or _EMPHATIC.match(joined):
        return [Polarity(True, "(ellipsis)", ci, len(words) - 1, 0, ws)]
    out: list[Polarity] = []
    pending: list[int] = []  # indices of negators waiting for their polar word
    blocked = False  # after doubt or indirect negation, up to the end of its scope
    for i, w in enumerate(words):
        if w in _SCOPE_END:
            pending, blocked = [], False
            continue
        if blocked:
            continue
        if w == _BLOCK:
            pending, blocked = [], True
            continue
        if w in _NEGATIVE_PARTICLES and _is_particle(words, i):
            out.append(Polarity(False, w, ci, i, 0, ws))
            continue
        if w in _POSITIVE_PARTICLES:
            out.append(Polarity(True, w, ci, i, 0, ws))
            continue
        if w == "no" and i + 1 < len(words) and words[i + 1] not in lexicon and words[i + 1] not in NEGATORS:
            pending, blocked = [], True  # "no evidence that it is true": no statement about the polar word
            continue
        if w in NEGATORS:
            pending.append(i)
            continue
        if w in lexicon:
            if _names_an_answer(words, i):
                continue
            n = len(pending)
            out.append(Polarity(lexicon[w] ^ (n % 2 == 1), w, ci, i, n, ws))
            pending = []
    for j in pending[:1]:
        if _elliptical(words, j, len(words)):
            out.append(Polarity(False, "(ellipsis)", ci, j, 1, ws))
    return out


def _names_an_answer(words: list[str], i: int) -> bool:
    """``words[i]`` is the adjective of "the correct answer (is 42)" at the start of its clause."""
    return (
        0 < i < len(words) - 1
        and words[i - 1] in ("the", "a", "an")
        and words[i + 1] in _ANSWER_NOUNS
        and all(w in _HEDGES or w in _SCOPE_END for w in words[: i - 1])
    )


def _is_particle(words: list[str], i: int) -> bool:
    """``no`` at ``words[i]`` is an answer particle (not a determiner such as "no difference")."""
    if i + 1 == len(words):
        return True
    before = words[:i]
    opens = all(w in _ELLIPSIS_TAIL or w in _HEDGES for w in before)
    return opens and words[i + 1] in _AFTER_PARTICLE


_HEDGES = frozenset(
    "probably likely most very maybe perhaps definitely certainly absolutely surely well hmm ok okay so "
    "i think believe guess would say answer my final verdict the is clearly obviously".split()
)


def _elliptical(words: list[str], j: int, end: int) -> bool:
    """The negator at ``words[j]`` ends its clause up to filler (``not really``, ``do not think so``)."""
    tail = words[j + 1 : end]
    if tail and tail[-1] == "so":
        return all(w in _ELLIPSIS_TAIL or w in _SO_VERBS for w in tail[:-1])
    return all(w in _ELLIPSIS_TAIL for w in tail)
