"""The engine for models whose cache is a recurrent state (RWKV-7 and other linear-attention/SSM models).

The KV engine (:mod:`.engine`, :mod:`.prefill`, :mod:`.pool`) shares prompt prefixes and pads
rows of different lengths into one KV cache; neither works for a recurrent state, which cannot
be truncated to a shorter prefix. But a recurrent state has the same size for every row, so rows
of different lengths need no padding at all to be decoded together. :class:`RecurrentEngine`
runs the same :class:`~.jobs.Job` list to the same :class:`~.jobs.JobResult` list:

1. each job's prompt is run once, alone (no padding, nothing shared with other prompts); that
   pass yields the hidden state of the chosen layer at the last prompt token and the next-token
   group probabilities, as in the KV prefill;
2. the resulting state is copied to each of the job's branches (``Cache.batch_repeat_interleave``)
   and its rows join one decoding pool of at most ``max_batch_rows`` rows (continuous batching:
   a job is admitted when its rows fit, the states are concatenated row-wise); every step chooses
   the tokens with the same function as the KV pool (:func:`.pool.choose_tokens`: greedy or
   seeded inverse-CDF sampling, log-probs, entropies), and finished rows leave the pool
   (``Cache.batch_select_indices``);
3. a job's follow-up jobs (p(True), verbalization-2s) are built from its result as soon as it is
   done and run from their own full prompt (the state after prompt + answer is not reused: the
   re-rendered conversation need not tokenize to exactly prompt + generated tokens).

A job's results therefore do not depend on which other jobs run with it (up to the
floating-point differences of batched matrix products). The cache must be a transformers
``Cache`` that implements ``batch_repeat_interleave`` and ``batch_select_indices``
(flash-linear-attention's ``FLACache`` does, as do transformers' own recurrent caches); states
from different jobs are concatenated where the cache keeps them as fla does (a ``state`` per
layer: nested tensors with the batch first), otherwise jobs decode one at a time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from .jobs import Job, JobResult, check_job
from .pool import Row, choose_tokens

__all__ = ["RecurrentEngine", "is_recurrent_cache", "merge_caches", "mergeable"]


def is_recurrent_cache(cache) -> bool:
    """Whether ``cache`` holds a state the KV pool cannot decode but :class:`RecurrentEngine` can."""
    from transformers.cache_utils import DynamicLayer

    lays = getattr(cache, "layers", None)
    if lays is not None and lays and all(isinstance(lay, DynamicLayer) for lay in lays):
        return False
    return callable(getattr(cache, "batch_repeat_interleave", None)) and callable(
        getattr(cache, "batch_select_indices", None)
    )


def _cat(x, y):
    """Two nested state structures (tensors with the batch first, dicts, tuples, lists, None) concatenated row-wise."""
    import torch

    if x is None and y is None:
        return None
    if isinstance(x, torch.Tensor):
        return torch.cat([x, y])
    if isinstance(x, dict):
        return {k: _cat(x[k], y[k]) for k in x}
    if isinstance(x, (list, tuple)):
        return type(x)(_cat(a, b) for a, b in zip(x, y))
    raise TypeError(f"cannot concatenate recurrent states of type {type(x).__name__}")


def mergeable(cache) -> bool:
    """Whether states of ``cache`` from different jobs can be concatenated (fla's layout: a ``state`` per layer)."""
    lays = getattr(cache, "layers", None)
    return bool(lays) and all(hasattr(lay, "state") for lay in lays)


def merge_caches(into, other) -> None:
    """Append ``other``'s rows to ``into`` (in place), layer by layer."""
    if len(into.layers) != len(other.layers):
        raise ValueError(f"cannot merge caches of {len(into.layers)} and {len(other.layers)} layers")
    for a, b in zip(into.layers, other.layers):
        a.state = _cat(a.state, b.state)


class RecurrentEngine:
    """Runs jobs on a recurrent-state model: prompts one at a time, their rows decoded in one pool (module docstring).

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
        max_batch_rows: most rows decoded together (a job with more branches still runs, alone).
    """

    def __init__(
        self,
        forward: Callable,
        *,
        device,
        eos_ids,
        n_layers: int,
        stats: dict,
        name: str,
        progress: bool = True,
        context: int | None = None,
        max_batch_rows: int = 128,
    ):
        self.forward, self.device, self.eos_ids, self.n_layers = forward, device, sorted(eos_ids), n_layers
        self.stats, self.name, self.progress, self.context = stats, name, progress, context
        self.max_batch_rows = max_batch_rows

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
        left = [len(job.branches) for job in jobs]
        n = len(jobs)
        queue = deque(range(n))
        bar = tqdm(total=n, desc=desc or self.name, unit="prompt", disable=not self.progress, leave=False)

        def done(i: int) -> None:
            bar.update(1)
            if jobs[i].follow_up is None:
                return
            results[i].follow_ups = []
            for nj in jobs[i].follow_up(results[i]):
                self._check(len(jobs), nj, layer)
                jobs.append(nj)
                results.append(JobResult(branches=[None] * len(nj.branches), n_prompt_tokens=len(nj.prompt_ids)))
                left.append(len(nj.branches))
                results[i].follow_ups.append(results[-1])
                queue.append(len(jobs) - 1)
                bar.total += 1

        cache, logits, rows, merge = None, None, [], True
        try:
            with torch.inference_mode():
                while queue or rows:
                    # admit jobs while their rows fit (a job's rows are never split; one job at a time where
                    # the cache's states cannot be concatenated)
                    while queue and (
                        not rows or (merge and len(rows) + len(jobs[queue[0]].branches) <= self.max_batch_rows)
                    ):
                        i = queue.popleft()
                        new_cache, new_logits = self._prefill(jobs[i], results[i], layer)
                        if not jobs[i].branches:
                            done(i)
                            continue
                        new_rows = [Row(i, k, b) for k, b in enumerate(jobs[i].branches)]
                        if len(new_rows) > 1:
                            new_cache.batch_repeat_interleave(len(new_rows))
                            new_logits = new_logits.expand(len(new_rows), -1)
                        if not rows:
                            cache, logits, rows, merge = new_cache, new_logits, new_rows, mergeable(new_cache)
                        else:
                            merge_caches(cache, new_cache)
                            logits, rows = torch.cat([logits, new_logits]), rows + new_rows
                            self.stats["pool_joins"] += 1
                    if rows:
                        cache, logits, rows = self._step(cache, logits, rows, results, left, done)
        finally:
            bar.close()
        return results[:n]

    def _check(self, j: int, job: Job, layer) -> None:
        check_job(j, job, self.context)
        if job.want_hidden and layer is None:
            raise ValueError("jobs ask for hidden states but no hidden_layer was given")

    def _prefill(self, job: Job, result: JobResult, layer: int | None):
        """Run one job's prompt alone: its hidden state and group probabilities; returns its state and last logits."""
        import torch

        out = self.forward(torch.tensor([job.prompt_ids], device=self.device), output_hidden_states=job.want_hidden)
        self.stats["prompt_tokens"] += len(job.prompt_ids)
        logits = out.logits[:, -1, :].float()
        if job.want_hidden:
            result.hidden = out.hidden_states[layer][0, -1, :].float().cpu().numpy().copy()
        if job.next_token_groups:
            probs = torch.softmax(logits, dim=-1)
            result.group_probs = [float(probs[0, g].sum()) for g in job.next_token_groups]
        if job.branches and not is_recurrent_cache(out.past_key_values):
            raise TypeError(
                f"model {self.name}: the recurrent engine needs a cache with batch_repeat_interleave and "
                f"batch_select_indices, got {type(out.past_key_values).__name__}"
            )
        return out.past_key_values, logits

    def _step(self, cache, logits, rows, results, left, done):
        """One decoding step of the pool; returns its new cache, logits and rows (empty when all finished)."""
        import torch

        chosen = choose_tokens(rows, logits, torch.tensor(self.eos_ids, device=logits.device), self.stats)
        keep = []
        for r, row in enumerate(rows):
            if not row.finish:
                keep.append(r)
                continue
            results[row.job].branches[row.branch] = row.result()
            left[row.job] -= 1
            if left[row.job] == 0:
                done(row.job)
        if not keep:
            return None, None, []
        if len(keep) < len(rows):
            idx = torch.tensor(keep, device=chosen.device)
            cache.batch_select_indices(idx)
            chosen = chosen.index_select(0, idx)
            rows = [rows[r] for r in keep]
        out = self.forward(chosen[:, None], past_key_values=cache)
        return out.past_key_values, out.logits[:, -1, :].float(), rows
