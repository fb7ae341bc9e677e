"""Prompts of the follow-up turns and the one-step verbalized-confidence prompt.

* p(True) (Kadavath et al. 2022, "Language Models (Mostly) Know What They Know"):
  after the model's own greedy answer, a second user turn shows the question and
  the proposed answer and asks whether it is true; the first reply token's
  probabilities of ``True`` and ``False`` are normalised (paper §3.1, method 3).
* Verbalization-2s (Tian et al. 2023, "Just Ask for Calibration"): a follow-up turn
  after the greedy answer asks for a confidence from 0 to 100 (paper §3.1, method 5).
* Verbalization-1s (Xiong et al. 2024, "Can LLMs Express Their Uncertainty?"): one
  separate prompt asks for the answer and a 0–100 confidence in a fixed format in
  the same response (paper §3.1, method 4). The paper asks only for "both the answer and
  numeric confidence in one step"; the dataset's own instruction is kept as it is (math
  prompts still ask the model to reason; multiple-choice, true/false and short-answer prompts
  still ask for the answer alone), and :data:`VERBAL_1S_INSTRUCTIONS` asks for the final answer
  and the confidence as the reply's last two lines. They never forbid the reasoning a dataset
  prompt asks for, so the answers scored are those the dataset prompt elicits.

The dataset prompt (``data.prompt``) is the plain user message of the first turn;
chat templates are applied by the backend. A router scores chat conversations instead: wherever a
function takes ``prompt``, a list of messages (``{"role", "content"}``) may stand for it; it is
then the conversation before the answer (the follow-up turns come after it, and verbalization-1s
appends its instructions to its last user message). A string behaves exactly as before.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "PTRUE_TEMPLATE",
    "VERBAL_2S_PROMPT",
    "VERBAL_1S_INSTRUCTIONS",
    "question_block",
    "answer_conversation",
    "ptrue_conversation",
    "verbal_2s_conversation",
    "verbal_1s_conversation",
]

PTRUE_TEMPLATE = (
    "Question: {question}\n"
    "Proposed answer: {answer}\n"
    "Is the proposed answer:\n"
    " True\n"
    " False\n"
    "Answer with True or False only."
)

VERBAL_2S_PROMPT = (
    "How confident are you that your answer is correct? "
    "Reply with a number from 0 to 100 only, where 0 means surely wrong and 100 means surely correct."
)

#: Appended to the dataset prompt; it adds only the ending, so the dataset's instruction (reason
#: first, or answer alone) still holds.
VERBAL_1S_INSTRUCTIONS = (
    "End your reply with your final answer and your confidence that it is correct, as its last two lines, "
    "in exactly this format:\n"
    "Answer: <your final answer>\n"
    "Confidence: <a number from 0 to 100>%\n"
    "The confidence is how likely you think your answer is correct."
)


def question_block(question: str, choices: Sequence[dict] | None = None, context: str | None = None) -> str:
    """The question as shown in the p(True) turn: context, question and lettered options."""
    parts = []
    if context:
        parts.append(f"{context.strip()}\n")
    parts.append(question.strip())
    for c in choices or ():
        parts.append(f"{c['label']}. {c['text']}")
    return "\n".join(parts)


def answer_conversation(prompt: str | Sequence[dict]) -> list[dict]:
    """The first turn: the dataset's plain user prompt (or, for a list of messages, that conversation)."""
    if not isinstance(prompt, str):
        return [{"role": m["role"], "content": m["content"]} for m in prompt]
    return [{"role": "user", "content": prompt}]


def _after_answer(prompt: str | Sequence[dict], response: str, follow_up: str) -> list[dict]:
    return [
        *answer_conversation(prompt),
        {"role": "assistant", "content": response},
        {"role": "user", "content": follow_up},
    ]


def ptrue_conversation(prompt: str, response: str, question: str, choices=None, context=None) -> list[dict]:
    """p(True) follow-up: the model's own answer, then the Kadavath-style True/False turn.

    ``response`` is the greedy reply with any ``<think>`` block stripped (it is also
    the proposed answer shown in the question).
    """
    body = PTRUE_TEMPLATE.format(question=question_block(question, choices, context), answer=response.strip())
    return _after_answer(prompt, response, body)


def verbal_2s_conversation(prompt: str, response: str) -> list[dict]:
    """Verbalization-2s: the confidence question as a second turn after the greedy answer."""
    return _after_answer(prompt, response, VERBAL_2S_PROMPT)


def verbal_1s_conversation(prompt: str | Sequence[dict]) -> list[dict]:
    """Verbalization-1s: the dataset prompt followed by the answer-and-confidence format instructions
    (for a list of messages: appended to its last user message)."""
    if not isinstance(prompt, str):
        conv = answer_conversation(prompt)
        last = max((i for i, m in enumerate(conv) if m["role"] == "user"), default=None)
        if last is None:
            raise ValueError("verbal_1s_conversation: the conversation has no user message")
        conv[last] = {"role": "user", "content": f"{conv[last]['content']}\n\n{VERBAL_1S_INSTRUCTIONS}"}
        return conv
    return [{"role": "user", "content": f"{prompt}\n\n{VERBAL_1S_INSTRUCTIONS}"}]
