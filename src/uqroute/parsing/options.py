"""Multiple-choice answers: which option letter a reply chose.

Small models rarely answer with the bare letter the prompt asks for: they write
``(B)``, ``B. Paris``, ``The answer is B``, ``**B**``, the option text alone, or a
sentence that starts with the article "A". The parser tries, in order:

1. the whole reply is a label (``B``, ``(b)``, ``B.``, ``**B**``, ``\\boxed{B}``);
2. the *last* explicit answer marker (``answer is``, ``Answer:``, ``correct option
   is``, ``I choose``), followed by a label or by an option's text;
3. a label at the very start of the reply (``B. Paris``, ``B) …``, ``C: …``);
4. the reply equals one option's text (normalised as in SQuAD);
5. the *first* ``Option C`` / ``choice C`` mention;
6. the first upper-case label standing alone in the reply (``I think it's B because…``),
   skipping negated ones (``not A``, ``isn't A``, ``isn’t A``, ``wouldn't pick A``, ``except A``);
7. exactly one option's text occurs in the reply (texts that are contained in a
   longer matching option's text do not count).

Lines that repeat the option list (two or more ``B. Paris`` lines) are ignored
first. A letter claimed by (1)–(3) that is not one of the choices gives ``None``: the
model answered outside the option set. Lower-case labels are accepted only where
they cannot be the English article or pronoun: as the whole reply, bracketed
``(a)``, or followed by ``)``/``.``/``:`` or the end of the text. An upper-case
``A``/``I`` followed by an ordinary word (``A person would…``) is not a label.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ._common import strip_markdown
from .text import normalize_text
from .think import clean_reply

__all__ = ["parse_option", "normalize_choices", "InvalidChoicesError"]


class InvalidChoicesError(ValueError):
    """The ``choices`` argument is not a list of ``{label, text}`` options."""


def normalize_choices(choices) -> list[tuple[str, str]]:
    """``choices`` as ``[(label, text), …]``.

    Accepts dicts with ``label`` and ``text`` keys (the ``choices`` column of the
    ``data`` artifact) or ``(label, text)`` pairs. Raises :class:`InvalidChoicesError`
    naming the offending entry on anything else, on empty labels and on duplicates.
    """
    if choices is None:
        raise InvalidChoicesError("choices are required to parse a multiple-choice answer, got None")
    if isinstance(choices, (str, bytes)):
        raise InvalidChoicesError(f"choices must be a list of {{label, text}} options, got the string {choices!r}")
    out: list[tuple[str, str]] = []
    for i, c in enumerate(choices):
        if isinstance(c, Mapping):
            if "label" not in c:
                raise InvalidChoicesError(f"choice {i} ({c!r}) has no 'label' key")
            label, text = c["label"], c.get("text")
        elif isinstance(c, (tuple, list)) and len(c) == 2:
            label, text = c
        else:
            raise InvalidChoicesError(f"choice {i} ({c!r}) is neither a {{label, text}} dict nor a (label, text) pair")
        label = "" if label is None else str(label).strip()
        if not label:
            raise InvalidChoicesError(f"choice {i} ({c!r}) has an empty label")
        out.append((label, "" if text is None else str(text)))
    labels = [lab.upper() for lab, _ in out]
    dup = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dup:
        raise InvalidChoicesError(f"duplicate choice labels {dup} in {[lab for lab, _ in out]}")
    if not out:
        raise InvalidChoicesError("choices is empty")
    return out


#: How far after a marker/letter the option text is looked for (characters).
_WINDOW = 300
#: Only the last few answer markers are tried (bounds the work on degenerate, repetitive replies).
_MAX_MARKERS = 20

# words that may follow an upper-case "A"/"I" used as an option label
_CONNECTORS = frozenset(
    "is because since as and or seems would with which option choice answer correct "
    "right best here being fits matches was".split()
)
_OPEN = "([{<"
_CLOSE = ")]}>"
_AFTER_OK = set(".):,;!?]}>\n'\"")

_STRONG = re.compile(
    r"(?:\b(?:final\s+|correct\s+|best\s+|right\s+)?(?:answer|option|choice)\s*"
    r"(?:is|would\s+be|should\s+be|will\s+be|:|=|-)\s*:?\s*(?:(?:option|choice|letter)\b\s*)?"
    r"|\banswer\s+(?=[\[(]?[A-Za-z](?![A-Za-z]))"
    r"|\bI\s+(?:would\s+|will\s+|'d\s+|'ll\s+)?(?:choose|pick|select|go\s+with)\s+(?:(?:option|choice)\b\s*)?)",
    re.IGNORECASE,
)
_WEAK = re.compile(r"\b(?:option|choice)\s+(?=[\[(]?[A-Za-z](?![A-Za-z]))", re.IGNORECASE)
# "not A", "isn't A", "isn’t A", "wouldn't pick A", "not choose B", "except C"
_NEGATED = re.compile(
    r"(?:\bnot|\b\w+n['’]t|\bnever)(?:\s+(?:be|pick|choose|select|say|go\s+with))?\s+(?:(?:option|choice)\s+)?[(\[]?$"
    r"|\b(?:excluding|except)\s+(?:(?:option|choice)\s+)?[(\[]?$",
    re.IGNORECASE,
)
_WRAPPERS = re.compile(r"\\(?:boxed|text|textbf|mathrm)\s*\{([^{}]*)\}")


def _clean(text: str) -> str:
    t = strip_markdown(clean_reply(text))
    t = _WRAPPERS.sub(r"\1", t)
    return t.replace("$", "").strip()


def _letter_at(text: str, i: int, choices: list[tuple[str, str]], *, allow_lower: bool) -> str | None:
    """The letter at ``text[i]`` (after an optional opening bracket) if it stands as an option label.

    Returns the letter upper-cased, even if it is not one of the choices (the caller
    decides), or ``None`` when the character there is not a stand-alone label.
    """
    n = len(text)
    while i < n and text[i] in " \t":
        i += 1
    bracketed = False
    if i < n and text[i] in _OPEN:
        bracketed = True
        i += 1
        while i < n and text[i] == " ":
            i += 1
    if i >= n or not text[i].isalpha() or not text[i].isascii():
        return None
    if i > 0 and (text[i - 1].isalnum() or text[i - 1] in "'’"):
        return None
    ch = text[i]
    j = i + 1
    if j < n and (text[j].isalnum() or text[j] in "'’"):
        return None  # part of a word: "Answer: Paris", "it's"
    nxt = text[j] if j < n else ""
    rest = text[j : j + _WINDOW].lstrip(" \t")
    if bracketed:
        return ch.upper() if rest[:1] in tuple(_CLOSE) or rest == "" else None
    if ch.islower():
        if not allow_lower:
            return None
        if nxt == "" or nxt == ")" or (nxt in ".:" and (j + 1 >= n or text[j + 1].isspace())):
            return ch.upper()
        if nxt == "\n":
            return ch.upper()
        return None
    # upper case
    if nxt == "" or nxt in _AFTER_OK:
        if nxt == "." and j + 1 < n and text[j + 1].isalnum():
            return None  # abbreviations such as "U.S."
        return ch.upper()
    if nxt.isspace():
        if ch not in "AI":
            return ch.upper()
        word = re.match(r"[^\s]+", rest)
        w = word.group(0) if word else ""
        if not w or not w[0].isalpha() or w.lower().strip(".,;:!?") in _CONNECTORS or w[0].isupper():
            return ch.upper()
        # "A tall building" is an article unless the option text follows the letter
        for lab, txt in choices:
            if lab.upper() == ch and txt and normalize_text(rest).startswith(normalize_text(txt)):
                return ch.upper()
        return None
    if nxt in "-–—":
        return ch.upper()
    return None


def _resolve(letter: str | None, label_map: dict[str, str]) -> tuple[bool, str | None]:
    """(found, label): ``found`` if a letter was claimed; label is ``None`` when it is not a choice."""
    if letter is None:
        return False, None
    return True, label_map.get(letter.upper())


def _option_text_at(rest: str, choices: list[tuple[str, str]]) -> str | None:
    """The label whose option text the segment ``rest`` starts with (longest text wins)."""
    seg = normalize_text(rest.split("\n", 1)[0])
    if not seg:
        return None
    best = None
    for lab, txt in choices:
        nt = normalize_text(txt)
        if nt and (seg == nt or seg.startswith(nt + " ")):
            if best is None or len(nt) > best[1]:
                best = (lab, len(nt))
    return best[0] if best else None


def _contained_texts(text: str, choices: list[tuple[str, str]]) -> list[str]:
    norm = f" {normalize_text(text)} "
    found = []
    for lab, txt in choices:
        nt = normalize_text(txt)
        if nt and f" {nt} " in norm:
            found.append((lab, nt))
    # drop options whose text is part of another found option's text
    keep = [lab for lab, nt in found if not any(nt != o and f" {nt} " in f" {o} " for _, o in found)]
    return keep


def _drop_echoed_options(t: str, opts: list[tuple[str, str]]) -> str:
    """Remove the option list when the reply repeats it (two or more ``B. Paris`` lines)."""
    texts = {lab.upper(): normalize_text(txt) for lab, txt in opts}
    lines = t.split("\n")
    echoed = []
    for i, line in enumerate(lines):
        m = re.fullmatch(r"\s*[(\[]?([A-Za-z])[)\].:]\s*(.+?)\s*", line)
        if m and texts.get(m.group(1).upper()) and normalize_text(m.group(2)) == texts[m.group(1).upper()]:
            echoed.append(i)
    if len(echoed) < 2:
        return t
    return "\n".join(line for i, line in enumerate(lines) if i not in set(echoed)).strip()


def parse_option(text: str | None, choices: Iterable) -> str | None:
    """The option label (e.g. ``"B"``) a multiple-choice reply chose, or ``None``.

    ``choices`` is a list of ``{"label", "text"}`` dicts or ``(label, text)`` pairs.
    See the module docstring for the rules. The returned label is spelled as in
    ``choices``.
    """
    opts = normalize_choices(choices)
    label_map = {lab.upper(): lab for lab, _ in opts}
    single = all(len(lab) == 1 and lab.isascii() and lab.isalpha() for lab in label_map)
    t = _clean(text or "")
    if not t:
        return None
    if not single:
        return _parse_multichar(t, opts)
    t = _drop_echoed_options(t, opts)
    if not t:
        return None

    # 1. the whole reply is a label
    whole = re.fullmatch(r"[\s(\[{<]*([A-Za-z])[\s)\]}>.:]*", t)
    if whole:
        return label_map.get(whole.group(1).upper())

    # 2. the last strong marker with a letter or an option text after it
    for m in reversed(list(_STRONG.finditer(t))[-_MAX_MARKERS:]):
        found, lab = _resolve(_letter_at(t, m.end(), opts, allow_lower=True), label_map)
        if found:
            return lab
        lab = _option_text_at(t[m.end() : m.end() + _WINDOW], opts)
        if lab is not None:
            return lab

    # 3. a label at the start of the reply (an opening "I"/"A" that is not an option is the
    #    pronoun or article: "I would say B", "I would not choose A, B")
    found, lab = _resolve(_letter_at(t, 0, opts, allow_lower=True), label_map)
    if found and (lab is not None or t.lstrip("([{< \t")[:1] not in ("I", "A")):
        return lab

    # 4. the reply is an option's text
    nt = normalize_text(t)
    exact = [lab for lab, txt in opts if normalize_text(txt) == nt and nt]
    if len(exact) == 1:
        return exact[0]

    # 5. "Option C"
    for m in _WEAK.finditer(t):
        found, lab = _resolve(_letter_at(t, m.end(), opts, allow_lower=True), label_map)
        if found:
            return lab

    # 6. the first upper-case label standing alone
    for m in re.finditer(r"[A-Z]", t):
        if (
            m.group(0) in label_map
            and not _NEGATED.search(t[max(0, m.start() - 40) : m.start()])
            and _letter_at(t, m.start(), opts, allow_lower=False) == m.group(0)
        ):
            return label_map[m.group(0)]

    # 7. exactly one option text occurs in the reply
    contained = _contained_texts(t, opts)
    if len(contained) == 1:
        return contained[0]
    return None


def _parse_multichar(t: str, opts: list[tuple[str, str]]) -> str | None:
    """Labels that are not single letters (e.g. ``"1"``/``"2"``): the whole reply, the token after the
    last answer marker, then the option texts."""
    by_norm = {lab.lower(): lab for lab, _ in opts}
    whole = t.strip(" \t\n()[].:*")
    if whole.lower() in by_norm:
        return by_norm[whole.lower()]
    for m in reversed(list(_STRONG.finditer(t))):
        tok = re.match(r"[\s(\[]*([^\s)\].,:;]+)", t[m.end() : m.end() + _WINDOW])
        if tok and tok.group(1).lower() in by_norm:
            return by_norm[tok.group(1).lower()]
    nt = normalize_text(t)
    exact = [lab for lab, txt in opts if normalize_text(txt) == nt and nt]
    if len(exact) == 1:
        return exact[0]
    contained = _contained_texts(t, opts)
    return contained[0] if len(contained) == 1 else None
