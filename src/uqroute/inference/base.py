"""The interface every generation backend implements (transformers, OpenAI-compatible API).

A backend turns chat conversations into :class:`Generation` objects. The inference
stage, the LLM judge and the benchmarks only talk to this interface, so a local
model and a served one are interchangeable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..parsing import CONTENT_FILTER, TRUNCATED

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}
Conversation = Sequence[Message]


#: OpenAI caps ``top_logprobs`` at 20 (vLLM follows).
MAX_TOP_LOGPROBS = 20


def normalise_messages(conv: Conversation, index: int) -> list[dict]:
    msgs = []
    for j, m in enumerate(conv):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ValueError(f"conversation {index}, message {j}: expected {{'role': str, 'content': str}}, got {m!r}")
        msgs.append({"role": m["role"], "content": m["content"]})
    if not msgs:
        raise ValueError(f"conversation {index} is empty")
    return msgs


def check_generation_args(max_new_tokens: int, temperature: float, n: int, top_logprobs: int) -> None:
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature!r}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if not isinstance(top_logprobs, int) or not 0 <= top_logprobs <= MAX_TOP_LOGPROBS:
        raise ValueError(f"top_logprobs must be an integer in [0, {MAX_TOP_LOGPROBS}], got {top_logprobs!r}")


@dataclass
class Generation:
    """One generated continuation of one conversation."""

    text: str
    tokens: list[str] = field(default_factory=list)
    # natural-log probability of each generated token (None where the backend gives none)
    token_logprobs: list[float] | None = None
    # entropy (nats) of the full next-token distribution at each position (local models only)
    token_entropies: list[float] | None = None
    # per position: {token string: logprob} of the k most likely tokens (where requested)
    top_logprobs: list[dict[str, float]] | None = None
    finish_reason: str = "stop"  # one of FINISH_REASONS
    n_prompt_tokens: int = 0


#: What a :class:`Generation`'s ``finish_reason`` can be: ``stop`` (end of sequence), ``length``
#: (the token budget, :data:`uqroute.parsing.TRUNCATED`) and ``content_filter`` (an API provider's
#: filter stopped the reply, :data:`uqroute.parsing.CONTENT_FILTER`). Other values a server sends are stored as ``stop``.
FINISH_REASONS = ("stop", TRUNCATED, CONTENT_FILTER)


@runtime_checkable
class ChatBackend(Protocol):
    """Generate continuations for a batch of conversations.

    ``generate`` returns, for each conversation, ``n`` generations. ``temperature=0``
    means greedy decoding. ``seed`` makes sampling reproducible. ``top_logprobs=k``
    asks for the k most likely tokens at each position (0 = none).
    """

    name: str

    def generate(
        self,
        conversations: Sequence[Conversation],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        n: int = 1,
        seed: int | None = None,
        top_logprobs: int = 0,
    ) -> list[list[Generation]]: ...

    def close(self) -> None: ...
