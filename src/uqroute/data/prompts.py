"""Prompts, one function per task type, stored as the plain user message.

Chat templates are applied later by the inference stage. The formats follow the
paper's setup (Chuang et al., arXiv:2502.04428, §3.1): multiple-choice questions
are answered with the option letter (whose token probability is the
"average token probability" confidence for MCQ), true/false questions with
``True``/``False`` (the same tokens p(True) uses), math word problems with a
brief reasoning and a final numeric line, MATH-500 with a ``\\boxed{}`` answer
(the convention of the MATH benchmark, Hendrycks et al. 2021), and the other
free-form tasks (CoQA, TruthfulQA) with a short answer.

Every dataset of the paper's mathematical-reasoning domain (Table 2: AQuA, GSM8K, MultiArith,
SVAMP, MATH-500) is asked to reason before it answers, whatever its answer format: AQuA is
multiple choice (Table 2's type MCQ) but a math word problem, so :func:`math_mcq_prompt` asks for
brief reasoning and a final ``Answer: <letter>`` line (the parser reads the letter after the
reasoning: the last answer marker), and it gets the math token budget
(``uqroute.inference.budgets``). The other domains are answered without explanation.

The final-line formats here are what ``uqroute.parsing`` extracts: ``Answer: <n>``
for numbers, ``\\boxed{...}`` for LaTeX, a single letter (or ``Answer: <letter>`` after
reasoning), ``True``/``False``.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["mcq_prompt", "math_mcq_prompt", "tf_prompt", "math_prompt", "latex_prompt", "short_answer_prompt"]


def _letters_phrase(labels: Sequence[str]) -> str:
    if len(labels) == 1:
        return labels[0]
    return ", ".join(labels[:-1]) + f" or {labels[-1]}"


def mcq_prompt(
    question: str,
    choices: Sequence[dict],
    *,
    context: str | None = None,
    instruction: str | None = None,
    question_label: str = "Question",
) -> str:
    """Multiple choice (MCQ): options listed as ``A. text``; the reply is the letter only.

    ``instruction`` states the task and ``question_label`` names the stem when the
    "question" is not a question (HellaSwag text, WinoGrande sentence with a blank,
    PIQA goal).
    """
    labels = [c["label"] for c in choices]
    parts = []
    if instruction:
        parts.append(instruction)
    if context:
        parts.append(f"Context: {context}")
    parts.append(f"{question_label}: {question}")
    parts.append("Options:\n" + "\n".join(f"{c['label']}. {c['text']}" for c in choices))
    parts.append(
        f"Answer with the letter of the correct option only ({_letters_phrase(labels)}), without any explanation."
    )
    return "\n\n".join(parts)


def math_mcq_prompt(question: str, choices: Sequence[dict]) -> str:
    """Multiple-choice math word problem (MCQ in the math domain; AQuA): brief reasoning, then the letter
    on a final line ``Answer: <letter>``."""
    labels = [c["label"] for c in choices]
    return (
        "Solve the following math problem. Reason briefly, then give the letter of the correct option "
        f'on its own last line in the form "Answer: <letter>" (one of {_letters_phrase(labels)}).\n\n'
        f"Problem: {question}\n\n"
        "Options:\n" + "\n".join(f"{c['label']}. {c['text']}" for c in choices)
    )


def tf_prompt(question: str, *, context: str | None = None) -> str:
    """True/false (TF), e.g. BoolQ: the reply is ``True`` or ``False`` only."""
    q = question.strip()
    if q and not q.endswith("?"):
        q += "?"
    q = q[:1].upper() + q[1:]
    parts = []
    if context:
        parts.append(f"Passage: {context}")
    parts.append(f"Question: {q}")
    parts.append("Answer with True or False only, without any explanation.")
    return "\n\n".join(parts)


def math_prompt(question: str) -> str:
    """Math word problem with a numeric answer (FF; GSM8K, MultiArith, SVAMP).

    Asks for brief reasoning and a final line ``Answer: <number>``.
    """
    return (
        "Solve the following math problem. Reason briefly, then give the final answer "
        'on its own last line in the form "Answer: <number>" (a number only, no units).\n\n'
        f"Problem: {question}"
    )


def latex_prompt(question: str) -> str:
    """Competition math with a LaTeX answer (FF; MATH-500): final answer in ``\\boxed{}``."""
    return (
        "Solve the following math problem. Reason briefly, then put the final answer "
        "in \\boxed{}.\n\n"
        f"Problem: {question}"
    )


def short_answer_prompt(question: str, *, context: str | None = None) -> str:
    """Free-form question (FF; CoQA, TruthfulQA): a short answer of a few words or one sentence.

    For CoQA ``context`` is the story followed by the earlier question/answer turns.
    """
    parts = []
    if context:
        parts.append(f"Read the passage and the conversation so far.\n\n{context}")
    parts.append(f"Question: {question}")
    parts.append("Answer with a short answer (a few words or one sentence), without any explanation.")
    return "\n\n".join(parts)
