"""What the engine is asked to do and what it returns: jobs, branches and their results.

A *job* is one prompt (token ids) plus any number of *branches* (greedy or sampled
continuations of it), and what to extract at the end of the prompt (the hidden state of a
layer, the summed next-token probability of token groups). Jobs with the same ``group`` key
share their common prompt prefix in the prefill; a job's ``follow_up`` builds further jobs
(a second turn after its greedy answer) once it has finished, which start from its KV cache.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Branch", "Job", "BranchResult", "JobResult", "check_job"]


@dataclass
class Branch:
    """One continuation of a job's prompt: greedy (``temperature == 0``) or sampled."""

    max_new_tokens: int
    temperature: float = 0.0
    seed: int | None = None  # seeds this branch's own torch.Generator (sampling only)
    top_logprobs: int = 0
    entropy: bool = True  # record the next-token entropy at each step (costs a pass over the vocabulary)
    # Budget forcing (Muennighoff et al. 2025, "s1: Simple test-time scaling"): when the branch has
    # generated ``thinking_budget`` tokens and its reasoning trace is still open (the prompt opened it,
    # ``think_in_prompt``, or the branch wrote ``think_open_ids`` and no ``think_close_ids`` after
    # them), the next tokens are forced to ``think_close_ids`` (``</think>``) and the branch goes on
    # answering within ``max_new_tokens``. None = off.
    thinking_budget: int | None = None
    think_open_ids: tuple[int, ...] = ()
    think_close_ids: tuple[int, ...] = ()
    think_in_prompt: bool = False


@dataclass
class Job:
    """A prompt (token ids) and what to extract from it."""

    prompt_ids: list[int]
    branches: list[Branch] = field(default_factory=list)
    want_hidden: bool = False
    # groups of token ids whose next-token probabilities are summed at the end of the prompt
    next_token_groups: list[list[int]] | None = None
    # jobs with the same group key (e.g. one query's prompts) are prefilled together and their
    # common prompt prefix only once
    group: Hashable | None = None
    # follow-up jobs built from this job's finished result (a second turn after its greedy answer):
    # they join the same decoding pool as soon as this job is done, and their prefill starts from
    # the KV cache of this job's first branch (prompt + generated tokens) as far as their tokens agree
    follow_up: Callable[[JobResult], Sequence[Job]] | None = None


@dataclass
class BranchResult:
    token_ids: list[int]
    logprobs: list[float]
    entropies: list[float] | None
    top_logprobs: list[dict[int, float]] | None
    finish_reason: str


@dataclass
class JobResult:
    branches: list[BranchResult]
    n_prompt_tokens: int
    hidden: np.ndarray | None = None
    group_probs: list[float] | None = None
    follow_ups: list[JobResult] | None = None  # results of the jobs ``Job.follow_up`` returned


def check_job(j: int, job: Job, context: int | None = None) -> None:
    """Reject a job the engine cannot run: an empty prompt, a branch without budget, or (``context``: the
    model's context length in tokens) a prompt that with its longest budget does not fit the context."""
    if not job.prompt_ids:
        raise ValueError(f"job {j}: empty prompt")
    for b in job.branches:
        if b.max_new_tokens < 1:
            raise ValueError(f"job {j}: max_new_tokens must be ≥ 1, got {b.max_new_tokens}")
        if b.thinking_budget is not None and (b.thinking_budget < 0 or not b.think_close_ids):
            raise ValueError(
                f"job {j}: budget forcing needs a thinking_budget ≥ 0 and the closing tag's token ids, "
                f"got {b.thinking_budget} and {b.think_close_ids!r}"
            )
    need = len(job.prompt_ids) + max((b.max_new_tokens for b in job.branches), default=0)
    if context is not None and need > context:
        raise ValueError(
            f"job {j}: its prompt ({len(job.prompt_ids)} tokens) and budget "
            f"({need - len(job.prompt_ids)} new tokens) exceed the model's context of {context} tokens"
        )
