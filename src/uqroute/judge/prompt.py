"""The LLM-judge prompt for free-form answers.

The paper judges free-form answers with GPT-4.1 mini, asking "whether a response is
essentially equivalent to the ground truth answer" (Chuang et al., arXiv:2502.04428,
§3.1, citing Zheng et al., 2023). The wording follows the reference-guided grading
prompt of Zheng et al. (2023, *Judging LLM-as-a-Judge with MT-Bench and Chatbot
Arena*, Fig. 10: "Please act as an impartial judge ... [The Start of Assistant's
Answer] ..."), reduced to a binary verdict so that a temperature-0 reply of a few
tokens decides it: the judge answers ``Yes`` or ``No`` (a local judge's choice between those two
next tokens, or a text reply). An API judge asked for a structured verdict gets the same prompt
ending in :data:`JSON_INSTRUCTION` instead (``{"verdict": "correct" | "incorrect"}``, the
``response_format`` of :mod:`.ask`).

Everything goes into one user message (no system message), because some local chat
templates reject a system role.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["JUDGE_TEMPLATE", "TEXT_INSTRUCTION", "JSON_INSTRUCTION", "judge_prompt", "judge_messages"]

#: The last line of the judge prompt: a Yes/No reply (local judges, text fallback) …
TEXT_INSTRUCTION = "Reply with one word: Yes or No."
#: … or a structured verdict (API judges with ``response_format``).
JSON_INSTRUCTION = 'Reply with a JSON object: {"verdict": "correct"} if it is, {"verdict": "incorrect"} if it is not.'

JUDGE_TEMPLATE = """\
Please act as an impartial judge and evaluate whether the answer of an AI assistant to the question below is correct. \
You are given reference answers that are known to be correct. The assistant's answer is correct if it is essentially \
equivalent in meaning to at least one reference answer; differences in wording, formatting or extra detail do not \
matter, but an answer that contradicts the references, gives a different answer, or does not answer the question is \
incorrect.

[Question]
{question}

[Reference answers]
{references}

[The Start of Assistant's Answer]
{response}
[The End of Assistant's Answer]

Is the assistant's answer essentially equivalent to a reference answer? Reply with one word: Yes or No."""


def judge_prompt(question: str, references: Sequence[str], response: str, *, structured: bool = False) -> str:
    """The judge's user message for one (question, references, response); ``structured``: it asks for the JSON
    verdict (:data:`JSON_INSTRUCTION`) instead of ``Yes`` or ``No``."""
    refs = [str(r).strip() for r in references if r is not None and str(r).strip()]
    if not refs:
        raise ValueError(f"judge prompt for question {question[:80]!r}: no reference answer")
    text = JUDGE_TEMPLATE.format(
        question=question.strip(),
        references="\n".join(f"- {r}" for r in refs),
        response=response.strip() or "(empty answer)",
    )
    return text[: -len(TEXT_INSTRUCTION)] + JSON_INSTRUCTION if structured else text


def judge_messages(question: str, references: Sequence[str], response: str, *, structured: bool = False) -> list[dict]:
    """The judge's conversation: one user message."""
    return [{"role": "user", "content": judge_prompt(question, references, response, structured=structured)}]
