"""The LLM-judge prompt for free-form answers.

The paper judges free-form answers with GPT-4.1 mini, asking "whether a response is
essentially equivalent to the ground truth answer" (Chuang et al., arXiv:2502.04428,
§3.1, citing Zheng et al., 2023). The wording follows the reference-guided grading
prompt of Zheng et al. (2023, *Judging LLM-as-a-Judge with MT-Bench and Chatbot
Arena*, Fig. 10: "Please act as an impartial judge ... [The Start of Assistant's
Answer] ..."), reduced to a binary verdict so that a temperature-0 reply of a few
tokens decides it: the judge answers ``Yes`` or ``No``.

Everything goes into one user message (no system message), because some local chat
templates reject a system role.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["JUDGE_TEMPLATE", "judge_prompt", "judge_messages"]

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


def judge_prompt(question: str, references: Sequence[str], response: str) -> str:
    """The judge's user message for one (question, references, response)."""
    refs = [str(r).strip() for r in references if r is not None and str(r).strip()]
    if not refs:
        raise ValueError(f"judge prompt for question {question[:80]!r}: no reference answer")
    return JUDGE_TEMPLATE.format(
        question=question.strip(),
        references="\n".join(f"- {r}" for r in refs),
        response=response.strip() or "(empty answer)",
    )


def judge_messages(question: str, references: Sequence[str], response: str) -> list[dict]:
    """The judge's conversation: one user message."""
    return [{"role": "user", "content": judge_prompt(question, references, response)}]
