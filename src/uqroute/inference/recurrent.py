"""The engine for models whose cache is a recurrent state (RWKV-7 and other linear-attention/SSM models).

The KV engine (:mod:`.engine`, :mod:`.prefill`, :mod:`.pool`) shares prompt prefixes and pads
rows of different lengths into one KV cache; neither works for a recurrent state, which has a
fixed size per row and cannot be truncated to a shorter prefix. :class:`RecurrentEngine` runs
the same :class:`~.jobs.Job` list to the same :class:`~.jobs.JobResult` list, one job at a time:

1. the job's prompt is run once, alone (no padding, nothing shared with other prompts); that
   pass yields the hidden state of the chosen layer at the last prompt token and the next-token
   group probabilities, as in the KV prefill;
2. the resulting state is copied to each branch (``Cache.batch_repeat_interleave``) and the
   branches decode together, one token per step, choosing tokens with the same function as the
   KV pool (:func:`.pool.choose_tokens`: greedy or seeded inverse-CDF sampling, log-probs,
   entropies); finished branches leave the batch (``Cache.batch_select_indices``);
3. a job's follow-up jobs (p(True), verbalization-2s) are built from its result as soon as it is
   done and run from their own full prompt (the state after prompt + answer is not reused: the
   re-rendered conversation need not tokenize to exactly prompt + generated tokens).

Every job's results therefore do not depend on which other jobs run with it. The cache must be
a transformers ``Cache`` that implements ``batch_repeat_interleave`` and ``batch_select_indices``
(flash-linear-attention's ``FLACache`` does, as do transformers' own recurrent caches).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from .jobs import Job, JobResult, check_job
from .pool import Row, choose_tokens

__all__ = ["RecurrentEngine", "is_recurrent_cache"]


def is_recurrent_cache(cache) -> bool:
    """Whether ``cache`` holds a state the KV pool cannot decode but :class:`RecurrentEngine` can."""
    from transformers.cache_utils import DynamicLayer

    lays = getattr(cache, "layers", None)
    if lays is not None and lays and all(isinstance(lay, DynamicLayer) for lay in lays):
        return False
    return callable(getattr(cache, "batch_repeat_interleave", None)) and callable(getattr(cache, "batch_select_indices", None))


class RecurrentEngine:
    """Runs jobs on a recurrent-state model, one job at a time (see the module docstring).

    Args:
        forward: ``forward(input_ids, past_key_values=, output_hidden_states=)`` → a model output
            with ``logits`` (last position), ``past_key_values`` (the updated state) and
            ``hidden_states``.
        device: where input tensors go.
        eos_ids: token ids that end a continuation.
        n_layers: layers of the model (for ``hidden_layer``).
        stats: running counters, updated in place.
        name: the model's name (progress bars, errors).
        progress: show a tqdm bar per run.
        context: the model's context length in tokens, if it declares one (see :class:`.engine.Engine`).
    """

    def __init__(self, forward: Callable, *, device, eos_ids, n_layers: int, stats: dict, name: str,
                 progress: bool = True, context: int | None = None):
        self.forward, self.device, self.eos_ids, self.n_layers = forward, device, sorted(eos_ids), n_layers
        self.stats, self.name, self.progress, self.context = stats, name, progress, context

    def run(self, jobs: Sequence[Job], *, hidden_layer: int | None = None, desc: str | None = None) -> list[JobResult]:
        """Run every job (and the follow-up jobs they spawn); one :class:`JobResult` per job, in input order."""
        import torch
        from tqdm.auto import tqdm

        from .engine import resolve_layer

        layer = resolve_layer(hidden_layer, self.n_layers) if hidden_layer is not None else None
        jobs = list(jobs)
        for j, job in enumerate(jobs):  # check all before running any
            self._check(j, job, layer)
        results = [JobResult(branches=[None] * len(job.branches), n_prompt_tokens=len(job.prompt_ids)) for job in jobs]
        n = len(jobs)
        queue = deque(range(n))
        bar = tqdm(total=n, desc=desc or self.name, unit="prompt", disable=not self.progress, leave=False)
        try:
            with torch.inference_mode():
                while queue:
                    i = queue.popleft()
                    self._run_job(i, jobs[i], results[i], layer)
                    bar.update(1)
                    if jobs[i].follow_up is not None:
                        results[i].follow_ups = []
                        for nj in jobs[i].follow_up(results[i]):
                            self._check(len(jobs), nj, layer)
                            jobs.append(nj)
                            results.append(JobResult(branches=[None] * len(nj.branches), n_prompt_tokens=len(nj.prompt_ids)))
                            results[i].follow_ups.append(results[-1])
                            queue.append(len(jobs) - 1)
                            bar.total += 1
        finally:
            bar.close()
        return results[:n]

    def _check(self, j: int, job: Job, layer) -> None:
        check_job(j, job, self.context)
        if job.want_hidden and layer is None:
            raise ValueError("jobs ask for hidden states but no hidden_layer was given")

    def _run_job(self, i: int, job: Job, result: JobResult, layer: int | None) -> None:
        import torch

        dev = self.device
        out = self.forward(torch.tensor([job.prompt_ids], device=dev), output_hidden_states=job.want_hidden)
        self.stats["prompt_tokens"] += len(job.prompt_ids)
        logits = out.logits[:, -1, :].float()
        if job.want_hidden:
            result.hidden = out.hidden_states[layer][0, -1, :].float().cpu().numpy().copy()
        if job.next_token_groups:
            probs = torch.softmax(logits, dim=-1)
            result.group_probs = [float(probs[0, g].sum()) for g in job.next_token_groups]
        if not job.branches:
            return
        cache = out.past_key_values
        if not is_recurrent_cache(cache):
            raise TypeError(f"model {self.name}: the recurrent engine needs a cache with batch_repeat_interleave and "
                            f"batch_select_indices, got {type(cache).__name__}")
        rows = [Row(i, k, b) for k, b in enumerate(job.branches)]
        if len(rows) > 1:
            cache.batch_repeat_interleave(len(rows))
            logits = logits.expand(len(rows), -1)
        eos = torch.tensor(self.eos_ids, device=logits.device)
        while True:
            chosen = choose_tokens(rows, logits, eos, self.stats)
            keep = [r for r, row in enumerate(rows) if not row.finish]
            for row in rows:
                if row.finish:
                    result.branches[row.branch] = row.result()
            if not keep:
                return
            if len(keep) < len(rows):
                idx = torch.tensor(keep, device=chosen.device)
                cache.batch_select_indices(idx)
                chosen = chosen.index_select(0, idx)
                rows = [rows[r] for r in keep]
            out = self.forward(chosen[:, None], past_key_values=cache)
            cache = out.past_key_values
            logits = out.logits[:, -1, :].float()
