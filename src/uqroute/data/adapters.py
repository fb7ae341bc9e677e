"""One adapter per dataset: a hub row (a dict with the hub's exact columns) → unified items.

Every quirk of a source lives here and nowhere else. An adapter returns a list of
:class:`Item` (one per query; CoQA gives one per story, its last question, or with
``questions="all"`` one per conversation turn); the builder adds ids, the registry fields and
the prompt (``uqroute.data.build``).

Gold answers are canonical: option letters ``A``, ``B``, … (MCQ), ``True``/``False``
(TF), minimal number strings (``42``, ``0.5``, ``-3``, ``1250``) for numeric math,
LaTeX verbatim for MATH-500 and the reference text for other free-form answers.
A row without a usable label (e.g. the unlabeled test splits of PIQA, WinoGrande
and CommonsenseQA) raises :class:`~uqroute.data.errors.RowError` naming dataset,
split, row and column.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from . import prompts
from .errors import RowError
from .registry import DatasetSpec

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Item:
    """A dataset query before ids and prompts are attached."""

    key: str  # id suffix: the row index, or "{story}/{turn}" for CoQA
    question: str
    answer: str
    context: str | None = None
    choices: tuple[dict, ...] = ()
    references: tuple[str, ...] | None = None  # None → (answer,)
    instruction: str | None = None  # MCQ task statement for the prompt
    question_label: str = "Question"  # MCQ prompt's name for the stem


@dataclass(frozen=True)
class RowRef:
    """Where a row comes from, for error messages."""

    dataset: str
    split: str
    index: int
    where: str = ""  # the file (or hub dataset) the row was read from: ``sources.split_location``

    def fail(self, column: str, problem: str) -> RowError:
        return RowError(
            self.dataset, self.split, self.index, column, f"{problem}, in {self.where}" if self.where else problem
        )


# ------------------------------------------------------------------ helpers
def canonical_number(value, ref: RowRef | None = None, column: str = "answer") -> str:
    """Minimal decimal string for a number: ``5.0`` → ``"5"``, ``"1,250"`` → ``"1250"``, ``0.50`` → ``"0.5"``."""
    if isinstance(value, bool):
        raise (ref.fail(column, f"expected a number, got the boolean {value!r}") if ref else ValueError(value))
    text = repr(value) if isinstance(value, float) else str(value)
    text = text.strip().replace(",", "")
    try:
        d = Decimal(text)
    except InvalidOperation:
        d = None
    if d is None or not d.is_finite():
        msg = f"expected a number, got {value!r}"
        raise ref.fail(column, msg) if ref else ValueError(msg)
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


def lettered(texts: Sequence[str], ref: RowRef, column: str) -> tuple[dict, ...]:
    """Options as ``{label, text}`` with letters A, B, …; empty or missing texts are an error."""
    if not texts:
        raise ref.fail(column, "no options")
    out = []
    for i, t in enumerate(texts):
        if t is None or not str(t).strip():
            raise ref.fail(column, f"option {i} is empty")
        out.append({"label": LETTERS[i], "text": str(t).strip()})
    return tuple(out)


def _text(row: dict, column: str, ref: RowRef) -> str:
    value = row.get(column)
    if value is None or not str(value).strip():
        raise ref.fail(column, "empty or missing")
    return str(value).strip()


def _index_answer(value, n: int, ref: RowRef, column: str, *, base: int) -> str:
    """An option index (``base``-based int or digit string) → its letter."""
    try:
        i = int(value) - base
    except (TypeError, ValueError):
        i = -1
    if not 0 <= i < n:
        raise ref.fail(column, f"label {value!r} is not an option index in {base}..{n - 1 + base} (unlabeled row?)")
    return LETTERS[i]


def _struct_choices(row: dict, answer_col: str, ref: RowRef) -> tuple[tuple[dict, ...], str]:
    """Choices given as a struct of lists ``{label: [...], text: [...]}`` (CSQA, OBQA), re-lettered A.."""
    ch = row.get("choices") or {}
    labels, texts = list(ch.get("label") or []), list(ch.get("text") or [])
    if len(labels) != len(texts):
        raise ref.fail("choices", f"{len(labels)} labels but {len(texts)} texts")
    choices = lettered(texts, ref, "choices")
    key = (row.get(answer_col) or "").strip()
    if key not in labels:
        raise ref.fail(answer_col, f"answer key {key!r} is not one of the option labels {labels} (unlabeled row?)")
    return choices, LETTERS[labels.index(key)]


# ------------------------------------------------------------------ math
_GSM8K_FINAL = re.compile(r"####\s*(.+?)\s*$", re.S)


def gsm8k(row: dict, ref: RowRef) -> list[Item]:
    """GSM8K (Cobbe et al. 2021): the gold number follows ``####`` at the end of ``answer``."""
    m = _GSM8K_FINAL.search(row.get("answer") or "")
    if not m:
        raise ref.fail("answer", "no '#### <number>' final answer")
    return [Item(str(ref.index), _text(row, "question", ref), canonical_number(m.group(1), ref, "answer"))]


_AQUA_OPTION = re.compile(r"^\s*([A-Z])\s*\)\s*(.*)$", re.S)


def aqua(row: dict, ref: RowRef) -> list[Item]:
    """AQuA-RAT (Ling et al. 2017): options are strings ``"A)text"``; ``correct`` is the letter."""
    texts = []
    for i, opt in enumerate(row.get("options") or []):
        m = _AQUA_OPTION.match(opt or "")
        if not m or m.group(1) != LETTERS[i]:
            raise ref.fail("options", f"option {i} {opt!r} does not start with '{LETTERS[i]})'")
        texts.append(m.group(2).strip())
    choices = lettered(texts, ref, "options")
    answer = (row.get("correct") or "").strip()
    if answer not in LETTERS[: len(choices)]:
        raise ref.fail("correct", f"{answer!r} is not one of the option letters {LETTERS[: len(choices)]}")
    return [Item(str(ref.index), _text(row, "question", ref), answer, choices=choices)]


def multiarith(row: dict, ref: RowRef) -> list[Item]:
    """MultiArith (Roy & Roth 2015): the gold number is the string ``final_ans``."""
    return [Item(str(ref.index), _text(row, "question", ref), canonical_number(row.get("final_ans"), ref, "final_ans"))]


def svamp(row: dict, ref: RowRef) -> list[Item]:
    """SVAMP (Patel et al. 2021): question = ``question_concat`` (Body + Question); ``Answer`` is a float."""
    return [
        Item(str(ref.index), _text(row, "question_concat", ref), canonical_number(row.get("Answer"), ref, "Answer"))
    ]


def math500(row: dict, ref: RowRef) -> list[Item]:
    """MATH-500 (Lightman et al. 2023 subset of MATH): the LaTeX ``answer`` is kept verbatim."""
    answer = row.get("answer")
    if answer is None or not str(answer).strip():
        raise ref.fail("answer", "empty or missing")
    return [Item(str(ref.index), _text(row, "problem", ref), str(answer))]


# ------------------------------------------------------------------ commonsense
def boolq(row: dict, ref: RowRef) -> list[Item]:
    """BoolQ (Clark et al. 2019): the passage is the context; the bool ``answer`` → ``True``/``False``."""
    answer = row.get("answer")
    if not isinstance(answer, bool):
        raise ref.fail("answer", f"expected a boolean, got {answer!r}")
    return [Item(str(ref.index), _text(row, "question", ref), str(answer), context=_text(row, "passage", ref))]


def commonsenseqa(row: dict, ref: RowRef) -> list[Item]:
    """CommonsenseQA (Talmor et al. 2019): ``choices`` struct of label/text lists; ``answerKey``."""
    choices, answer = _struct_choices(row, "answerKey", ref)
    return [Item(str(ref.index), _text(row, "question", ref), answer, choices=choices)]


def openbookqa(row: dict, ref: RowRef) -> list[Item]:
    """OpenBookQA (Mihaylov et al. 2018): ``question_stem``, ``choices`` struct, ``answerKey``."""
    choices, answer = _struct_choices(row, "answerKey", ref)
    return [Item(str(ref.index), _text(row, "question_stem", ref), answer, choices=choices)]


def hellaswag(row: dict, ref: RowRef) -> list[Item]:
    """HellaSwag (Zellers et al. 2019): context ``ctx`` (not ``ctx_a + ctx_b``, which the
    offline mirror lacks), four ``endings``, ``label`` the gold index as a string."""
    choices = lettered(list(row.get("endings") or []), ref, "endings")
    answer = _index_answer(row.get("label"), len(choices), ref, "label", base=0)
    return [
        Item(
            str(ref.index),
            _text(row, "ctx", ref),
            answer,
            choices=choices,
            instruction="Choose the ending that most plausibly continues the text.",
            question_label="Text",
        )
    ]


def piqa(row: dict, ref: RowRef) -> list[Item]:
    """PIQA (Bisk et al. 2020): ``goal`` with solutions ``sol1``/``sol2``; ``label`` 0/1 (-1 = unlabeled)."""
    choices = lettered([row.get("sol1"), row.get("sol2")], ref, "sol1/sol2")
    answer = _index_answer(row.get("label"), 2, ref, "label", base=0)
    return [
        Item(
            str(ref.index),
            _text(row, "goal", ref),
            answer,
            choices=choices,
            instruction="Choose the solution that better achieves the goal.",
            question_label="Goal",
        )
    ]


def socialiqa(row: dict, ref: RowRef) -> list[Item]:
    """Social IQa (Sap et al. 2019): ``context`` + ``question``, ``answerA..C``, ``label`` "1".."3"."""
    choices = lettered([row.get("answerA"), row.get("answerB"), row.get("answerC")], ref, "answerA/B/C")
    answer = _index_answer(row.get("label"), 3, ref, "label", base=1)
    return [
        Item(str(ref.index), _text(row, "question", ref), answer, context=_text(row, "context", ref), choices=choices)
    ]


def winogrande(row: dict, ref: RowRef) -> list[Item]:
    """WinoGrande (Sakaguchi et al. 2020): ``sentence`` with a ``_`` blank, ``option1``/``option2``,
    ``answer`` "1"/"2" ("" = unlabeled test row)."""
    sentence = _text(row, "sentence", ref)
    if "_" not in sentence:
        raise ref.fail("sentence", "no '_' blank in the sentence")
    choices = lettered([row.get("option1"), row.get("option2")], ref, "option1/option2")
    answer = _index_answer(row.get("answer"), 2, ref, "answer", base=1)
    return [
        Item(
            str(ref.index),
            sentence,
            answer,
            choices=choices,
            instruction="Choose the option that correctly fills the blank (_) in the sentence.",
            question_label="Sentence",
        )
    ]


def truthfulqa(row: dict, ref: RowRef) -> list[Item]:
    """TruthfulQA generation (Lin et al. 2022): gold = ``best_answer``; references = it plus
    ``correct_answers`` (de-duplicated, order kept)."""
    best = _text(row, "best_answer", ref)
    refs = [best]
    for a in row.get("correct_answers") or []:
        a = (a or "").strip()
        if a and a not in refs:
            refs.append(a)
    return [Item(str(ref.index), _text(row, "question", ref), best, references=tuple(refs))]


# ------------------------------------------------------------------ conversational
def coqa_context(story: str, turns: Sequence[tuple[str, str]]) -> str:
    """CoQA context: the story, then the earlier turns as ``Q: …`` / ``A: …`` lines."""
    if not turns:
        return story
    history = "\n".join(f"Q: {q}\nA: {a}" for q, a in turns)
    return f"{story}\n\n{history}"


#: ``data.coqa_questions``: which questions of a CoQA story are evaluation units.
COQA_QUESTIONS = ("last", "all")


def coqa(row: dict, ref: RowRef, *, questions: str = "last") -> list[Item]:
    """CoQA (Reddy et al. 2019): context = story + the previous Q/A turns; gold = the free-form
    ``answers.input_text`` of the turn (id ``{story}/{turn}``).

    ``questions="last"`` (the default, ``data.coqa_questions``): one item per story, its last
    question with every earlier turn as history, so that a story is one evaluation unit as in the
    paper's Table 2 (500 validation stories); ``"all"``: one item per question. Every turn is
    checked either way."""
    if questions not in COQA_QUESTIONS:
        raise ValueError(f"data.coqa_questions must be one of {COQA_QUESTIONS}, got {questions!r}")
    story = _text(row, "story", ref)
    asked = list(row.get("questions") or [])
    answers = list((row.get("answers") or {}).get("input_text") or [])
    if not asked:
        raise ref.fail("questions", "no questions")
    if len(asked) != len(answers):
        raise ref.fail("answers", f"{len(asked)} questions but {len(answers)} answers.input_text")
    items, turns = [], []
    for t, (q, a) in enumerate(zip(asked, answers)):
        q, a = (q or "").strip(), (a or "").strip()
        if not q:
            raise ref.fail("questions", f"turn {t} is empty")
        if not a:
            raise ref.fail("answers", f"answers.input_text of turn {t} is empty")
        items.append(Item(f"{ref.index}/{t}", q, a, context=coqa_context(story, turns)))
        turns.append((q, a))
    return items if questions == "all" else items[-1:]


# ------------------------------------------------------------------ problem solving
def mmlu(row: dict, ref: RowRef) -> list[Item]:
    """MMLU (Hendrycks et al. 2021): ``choices`` list of 4; ``answer`` a ClassLabel int 0-3."""
    choices = lettered(list(row.get("choices") or []), ref, "choices")
    answer = _index_answer(row.get("answer"), len(choices), ref, "answer", base=0)
    return [Item(str(ref.index), _text(row, "question", ref), answer, choices=choices)]


ADAPTERS: dict[str, Callable[[dict, RowRef], list[Item]]] = {
    "gsm8k": gsm8k,
    "aqua": aqua,
    "multiarith": multiarith,
    "svamp": svamp,
    "math500": math500,
    "boolq": boolq,
    "commonsenseqa": commonsenseqa,
    "hellaswag": hellaswag,
    "openbookqa": openbookqa,
    "piqa": piqa,
    "socialiqa": socialiqa,
    "truthfulqa": truthfulqa,
    "winogrande": winogrande,
    "coqa": coqa,
    "mmlu": mmlu,
}


def make_prompt(spec: DatasetSpec, item: Item) -> str:
    """The user message for ``item``, by task type, domain and answer format (see ``prompts``): every
    math-domain dataset reasons before its answer."""
    if spec.task_type == "MCQ" and spec.domain == "math":  # AQuA: reason, then the letter
        return prompts.math_mcq_prompt(item.question, item.choices)
    if spec.task_type == "MCQ":
        return prompts.mcq_prompt(
            item.question,
            item.choices,
            context=item.context,
            instruction=item.instruction,
            question_label=item.question_label,
        )
    if spec.task_type == "TF":
        return prompts.tf_prompt(item.question, context=item.context)
    if spec.answer_format == "number":
        return prompts.math_prompt(item.question)
    if spec.answer_format == "latex":
        return prompts.latex_prompt(item.question)
    return prompts.short_answer_prompt(item.question, context=item.context)


def adapter_options(data: dict) -> dict[str, dict]:
    """Keyword arguments of the adapters, per dataset, from the ``data`` config section."""
    return {"coqa": {"questions": data.get("coqa_questions", "last")}}


def to_rows(
    spec: DatasetSpec, split: str, role: str, rows: Sequence[dict], where: str = "", *, options: dict | None = None
) -> list[dict]:
    """Adapt every source row of one split into unified rows (the `data` artifact's columns).

    ``where`` (``sources.split_location``) names the file in a bad row's error. ``options``: per
    dataset name, keyword arguments of its adapter (:func:`adapter_options`)."""
    adapter = ADAPTERS[spec.name]
    kwargs = (options or {}).get(spec.name) or {}
    out = []
    for index, row in enumerate(rows):
        for item in adapter(row, RowRef(spec.name, split, index, where), **kwargs):
            out.append(
                {
                    "id": f"{spec.name}/{split}/{item.key}",
                    "dataset": spec.name,
                    "domain": spec.domain,
                    "task_type": spec.task_type,
                    "split": split,
                    "role": role,
                    "question": item.question,
                    "context": item.context,
                    "choices": list(item.choices),
                    "answer": item.answer,
                    "references": list(item.references) if item.references is not None else [item.answer],
                    "prompt": make_prompt(spec, item),
                }
            )
    return out
