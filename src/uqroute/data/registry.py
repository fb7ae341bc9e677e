"""The paper's 15 benchmark datasets (Chuang et al., arXiv:2502.04428, §3.1 and Table 2).

Each :class:`DatasetSpec` says where the rows live on the Hugging Face hub, which
split is evaluated (it must carry gold labels) and which split trains the
in-domain probe, plus the task type, domain and gold-answer format the rest of the
pipeline relies on.

Revisions: the hub's commit shas cannot be looked up offline, so ``revision`` is
``None`` (= the hub's latest) for every dataset; set a sha here to pin one, or per run with the
config key ``data.revisions``. Rule ``download`` resolves the revision to a commit, records it in
the ``data`` artifact's provenance and in ``results/revisions.lock.yaml`` (``uqroute.revisions``).

Hub loading scripts: ``datasets`` ≥ 4 no longer runs dataset loading scripts.
Hub datasets that still rely on one (``ybisk/piqa`` did when this was written)
can be read from the hub's automatic parquet conversion by setting
``revision="refs/convert/parquet"`` (and that branch's config name, e.g.
``plain_text`` for PIQA); this could not be checked offline.

Differences from the paper's Table 2 that are deliberate:

* TruthfulQA: the paper reports 653 train / 164 test, a split of the 817
  ``generation/validation`` rows that it does not publish. The split here is ours: a
  seeded shuffle (:data:`HOLDOUT_SEED`, the same for every run and every ``seed``) evaluates
  164 rows (``eval_share`` 164 of 817; a copy with another number of rows, such as the shipped
  40-row slice, keeps that share) and gives the other 653 to the in-domain probe as its
  training rows (``uqroute.data.build``).
* CoQA: the paper counts stories (7,199 / 500), so one evaluation unit is one story. The
  paper does not say which of a story's questions it asks; we ask the story's **last**
  question, with the story and every earlier turn as its conversation history (the unit
  that needs the whole conversation). ``data.coqa_questions: all`` makes one row per
  question instead (about 8,000 evaluation rows).
* MMLU: the training split is ``auxiliary_train`` (99,842 rows, as in Table 2).
* WinoGrande: ``winogrande_xl`` (train 40,398); Table 2's 2,558 matches the smaller
  ``winogrande_m`` configuration. Evaluation (validation, 1,267) is the same.
* PIQA, WinoGrande, CommonsenseQA, HellaSwag, BoolQ, Social IQa: evaluated on the
  validation split, the largest split with public labels (Table 2's "test" counts).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UnknownDatasetError

#: Seed of the evaluation/training division of a dataset with ``eval_share`` (TruthfulQA): fixed, so
#: that every run, whatever its ``seed``, evaluates the same rows.
HOLDOUT_SEED = 0

DOMAINS = ("math", "commonsense", "conversational", "problem_solving")
TASK_TYPES = ("FF", "MCQ", "TF")
ANSWER_FORMATS = ("letter", "bool", "number", "latex", "text")


@dataclass(frozen=True)
class DatasetSpec:
    """One benchmark dataset.

    Attributes:
        name: pipeline name (config key, wildcard, file name).
        hub_id: Hugging Face hub dataset id.
        hub_config: hub configuration name (``None`` = the dataset's only/default one).
        revision: pinned hub revision (commit sha or tag); ``None`` = latest.
        eval_split: evaluated split; must carry labels.
        train_split: split sampled to train the in-domain probe; ``None`` if the
            dataset has none.
        domain: ``math``, ``commonsense``, ``conversational`` or ``problem_solving``.
        task_type: ``FF``, ``MCQ`` or ``TF``.
        answer_format: form of the gold answer, used by ``uqroute.parsing``:
            ``letter``, ``bool``, ``number``, ``latex`` or ``text``.
        columns: hub columns the adapter reads (checked on every source).
        description: one line, from Table 2.
        eval_share: ``(a, b)``: the evaluation split is divided by a seeded shuffle: ``a`` of every
            ``b`` rows are evaluated (exactly ``a`` when the split has ``b`` rows) and the rest are
            the training rows (``train_split`` must be ``None``); TruthfulQA's ``(164, 817)``
            (Table 2: 164 test, 653 train).
    """

    name: str
    hub_id: str
    hub_config: str | None
    revision: str | None
    eval_split: str
    train_split: str | None
    domain: str
    task_type: str
    answer_format: str
    columns: tuple[str, ...]
    description: str
    eval_share: tuple[int, int] | None = None

    def __post_init__(self):
        if self.eval_share is not None:
            a, b = self.eval_share
            if self.train_split is not None or not 0 < a < b:
                raise ValueError(
                    f"dataset {self.name!r}: eval_share {self.eval_share!r} needs train_split None and 0 < a < b"
                )
        for field, value, allowed in (
            ("domain", self.domain, DOMAINS),
            ("task_type", self.task_type, TASK_TYPES),
            ("answer_format", self.answer_format, ANSWER_FORMATS),
        ):
            if value not in allowed:
                raise ValueError(f"dataset {self.name!r}: {field} {value!r} is not one of {allowed}")

    @property
    def mirror_subdir(self) -> str:
        """Directory of this dataset in a mirror: ``<owner>__<name>/<config>``."""
        return f"{self.hub_id.replace('/', '__')}/{self.hub_config or 'default'}"

    def split_file(self, split: str) -> str:
        """Path of a split's parquet file relative to a mirror (or slices) root."""
        return f"{self.mirror_subdir}/{split}.parquet"


_SPECS = (
    DatasetSpec(
        "gsm8k",
        "openai/gsm8k",
        "main",
        None,
        "test",
        "train",
        "math",
        "FF",
        "number",
        ("question", "answer"),
        "Grade school math word problems",
    ),
    DatasetSpec(
        "aqua",
        "deepmind/aqua_rat",
        "raw",
        None,
        "test",
        "train",
        "math",
        "MCQ",
        "letter",
        ("question", "options", "correct"),
        "Algebraic word problems",
    ),
    DatasetSpec(
        "multiarith",
        "ChilleD/MultiArith",
        None,
        None,
        "test",
        "train",
        "math",
        "FF",
        "number",
        ("question", "final_ans"),
        "Arithmetic word problems",
    ),
    DatasetSpec(
        "svamp",
        "ChilleD/SVAMP",
        None,
        None,
        "test",
        "train",
        "math",
        "FF",
        "number",
        ("question_concat", "Answer"),
        "Arithmetic word problems with structural variations",
    ),
    DatasetSpec(
        "math500",
        "HuggingFaceH4/MATH-500",
        None,
        None,
        "test",
        None,
        "math",
        "FF",
        "latex",
        ("problem", "answer"),
        "Competition mathematics (500-problem subset of MATH)",
    ),
    DatasetSpec(
        "boolq",
        "google/boolq",
        None,
        None,
        "validation",
        "train",
        "commonsense",
        "TF",
        "bool",
        ("question", "answer", "passage"),
        "Yes/no questions about a Wikipedia passage",
    ),
    DatasetSpec(
        "commonsenseqa",
        "tau/commonsense_qa",
        None,
        None,
        "validation",
        "train",
        "commonsense",
        "MCQ",
        "letter",
        ("question", "choices", "answerKey"),
        "Questions assessing commonsense knowledge",
    ),
    DatasetSpec(
        "hellaswag",
        "Rowan/hellaswag",
        None,
        None,
        "validation",
        "train",
        "commonsense",
        "MCQ",
        "letter",
        ("ctx", "endings", "label"),
        "Sentence completion based on narrative understanding",
    ),
    DatasetSpec(
        "openbookqa",
        "allenai/openbookqa",
        "main",
        None,
        "test",
        "train",
        "commonsense",
        "MCQ",
        "letter",
        ("question_stem", "choices", "answerKey"),
        "Open-book science and commonsense questions",
    ),
    DatasetSpec(
        "piqa",
        "ybisk/piqa",
        None,
        None,
        "validation",
        "train",
        "commonsense",
        "MCQ",
        "letter",
        ("goal", "sol1", "sol2", "label"),
        "Physical commonsense reasoning",
    ),
    DatasetSpec(
        "socialiqa",
        "allenai/social_i_qa",
        None,
        None,
        "validation",
        "train",
        "commonsense",
        "MCQ",
        "letter",
        ("context", "question", "answerA", "answerB", "answerC", "label"),
        "Social commonsense intelligence questions",
    ),
    DatasetSpec(
        "truthfulqa",
        "truthfulqa/truthful_qa",
        "generation",
        None,
        "validation",
        None,
        "commonsense",
        "FF",
        "text",
        ("question", "best_answer", "correct_answers"),
        "Questions that some humans would answer falsely",
        eval_share=(164, 817),
    ),
    DatasetSpec(
        "winogrande",
        "allenai/winogrande",
        "winogrande_xl",
        None,
        "validation",
        "train",
        "commonsense",
        "MCQ",
        "letter",
        ("sentence", "option1", "option2", "answer"),
        "Pronoun/blank resolution with commonsense reasoning",
    ),
    DatasetSpec(
        "coqa",
        "stanfordnlp/coqa",
        None,
        None,
        "validation",
        "train",
        "conversational",
        "FF",
        "text",
        ("story", "questions", "answers"),
        "Conversational questions on text passages",
    ),
    DatasetSpec(
        "mmlu",
        "cais/mmlu",
        "all",
        None,
        "test",
        "auxiliary_train",
        "problem_solving",
        "MCQ",
        "letter",
        ("question", "choices", "answer"),
        "Problem solving across 57 subjects",
    ),
)

DATASETS: dict[str, DatasetSpec] = {s.name: s for s in _SPECS}


def get_spec(name: str) -> DatasetSpec:
    """The spec of dataset ``name``; an unknown name raises an error listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise UnknownDatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}") from None
