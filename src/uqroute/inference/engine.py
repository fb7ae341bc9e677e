"""The scheduler: continuous batching of jobs (and the follow-up jobs they spawn) over one pool.

:class:`Engine` holds the scheduling settings and the model-facing functions; :meth:`Engine.run`
runs a batch of jobs to completion. Underneath, a :class:`Run` is the state of one scheduling
loop that jobs can be *added* to while it runs (an online server adds requests as they
arrive): each :meth:`Run.step` chunks waiting follow-up jobs, admits prefill chunks into the
decoding pool while their rows fit under ``max_batch_rows`` (a group is never split), runs one
decoding step and hands finished branches back to their jobs. A job whose branches are all done
spawns its follow-up jobs (which start from its KV cache); a job *family* (a job added with
:meth:`Run.add` and every follow-up below it) is complete when all of them are done, and its
``on_done`` callback is called then.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from ..models import resolve_layer  # re-exported: its historical home
from .jobs import Job, JobResult, check_job
from .kvcache import Prefix
from .pool import DecodePool
from .prefill import Prefiller

__all__ = ["Engine", "Run", "resolve_layer"]


class Engine:
    """Continuous-batching scheduler over one model's forward function.

    Args:
        forward: the model's forward pass (see :class:`.prefill.Prefiller` and :class:`.pool.DecodePool`).
        device: where input tensors go.
        pad_id, eos_ids: padding token and end-of-sequence tokens.
        n_layers: transformer layers of the model (for ``hidden_layer``).
        batch_size: prompts per prefill chunk.
        max_batch_tokens: padded prompt tokens per prefill chunk.
        max_batch_rows: most continuation rows decoded together.
        min_shared_prefix: shorter common prefixes are not prefilled separately.
        stats: running counters, updated in place.
        name: the model's name (progress bars, errors).
        progress: show a tqdm bar per run.
        context: the model's context length in tokens (None: unknown); a job whose prompt and longest
            budget exceed it is refused (:func:`.jobs.check_job`).
    """

    def __init__(
        self,
        forward: Callable,
        *,
        device,
        pad_id: int,
        eos_ids,
        n_layers: int,
        batch_size: int,
        max_batch_tokens: int,
        max_batch_rows: int,
        min_shared_prefix: int,
        stats: dict,
        name: str,
        progress: bool = True,
        context: int | None = None,
    ):
        self.forward, self.device, self.pad_id, self.eos_ids, self.n_layers = forward, device, pad_id, eos_ids, n_layers
        self.batch_size, self.max_batch_tokens, self.max_batch_rows = batch_size, max_batch_tokens, max_batch_rows
        self.min_shared_prefix, self.stats, self.name, self.progress = min_shared_prefix, stats, name, progress
        self.context = context

    def chunks(self, jobs: Sequence[Job], which) -> list[list[int]]:
        """Prefill chunks: whole groups (jobs sharing a ``group`` key), shortest prompts first.

        A chunk holds at most ``batch_size`` prompts, ``max_batch_tokens`` padded prompt tokens and
        ``max_batch_rows`` continuation rows (a single group larger than that stays whole).
        """
        units: dict = {}
        for i in which:
            job = jobs[i]
            units.setdefault(("g", job.group) if job.group is not None else ("j", i), []).append(i)
        order = sorted(units.values(), key=lambda u: (max(len(jobs[i].prompt_ids) for i in u), u[0]))
        chunks, cur, longest, rows = [], [], 0, 0
        for unit in order:
            u_long = max(len(jobs[i].prompt_ids) for i in unit)
            u_rows = sum(len(jobs[i].branches) for i in unit)
            if cur and (
                len(cur) + len(unit) > self.batch_size
                or max(longest, u_long) * (len(cur) + len(unit)) > self.max_batch_tokens
                or rows + u_rows > self.max_batch_rows
            ):
                chunks.append(cur)
                cur, longest, rows = [], 0, 0
            cur.extend(unit)
            longest, rows = max(longest, u_long), rows + u_rows
        if cur:
            chunks.append(cur)
        return chunks

    def start(self, *, hidden_layer: int | None = None, desc: str | None = None, total: int = 0) -> Run:
        """A new, empty scheduling loop (add jobs, then step it)."""
        layer = resolve_layer(hidden_layer, self.n_layers) if hidden_layer is not None else None
        return Run(self, layer, desc=desc, total=total)

    def run(self, jobs: Sequence[Job], *, hidden_layer: int | None = None, desc: str | None = None) -> list[JobResult]:
        """Run every job (and the follow-up jobs they spawn); one :class:`JobResult` per job, in input order.

        Continuous batching: prefill chunks of jobs are admitted into one decoding pool whenever
        their continuation rows fit under ``max_batch_rows``, so rows that finish early are
        replaced by new work instead of leaving the batch to decode a few long tails alone.
        """
        jobs = list(jobs)
        run = self.start(hidden_layer=hidden_layer, desc=desc, total=len(jobs))
        try:
            run.add(jobs)
            while run.step():
                pass
        finally:
            run.close()
        return run.results[: len(jobs)]


class Run:
    """The state of one scheduling loop (see the module docstring). Not thread-safe: one thread steps it."""

    def __init__(self, engine: Engine, layer: int | None, *, desc: str | None = None, total: int = 0):
        from tqdm.auto import tqdm

        self.engine, self.layer = engine, layer
        self.jobs: list[Job] = []
        self.results: list[JobResult] = []
        self.left: list[int] = []  # unfinished branches per job
        self.root: list[int] = []  # the job each job's family started from
        self.open: dict[int, int] = {}  # family root -> jobs of the family not yet done
        self.callbacks: dict[int, Callable[[JobResult], None]] = {}
        self.pending: deque[list[int]] = deque()
        self.follow: list[int] = []  # follow-up jobs waiting to be chunked
        self.snaps: dict[int, tuple] = {}  # job -> (prefix source, its tokens) of its parent's first branch
        self.parent_snap: dict[int, Prefix] = {}  # job -> KV snapshot of its finished first branch
        self.pool = DecodePool(
            engine.forward, engine.eos_ids, max_rows=engine.max_batch_rows, name=engine.name, stats=engine.stats
        )
        self.prefiller = Prefiller(
            engine.forward,
            device=engine.device,
            pad_id=engine.pad_id,
            stats=engine.stats,
            min_shared_prefix=engine.min_shared_prefix,
        )
        self.bar = tqdm(total=total, desc=desc or engine.name, unit="prompt", disable=not engine.progress, leave=False)

    def _append(self, job: Job, root: int | None) -> int:
        i = len(self.jobs)
        check_job(i, job, self.engine.context)
        if job.want_hidden and self.layer is None:
            raise ValueError("jobs ask for hidden states but no hidden_layer was given")
        self.jobs.append(job)
        self.results.append(JobResult(branches=[None] * len(job.branches), n_prompt_tokens=len(job.prompt_ids)))
        self.left.append(len(job.branches))
        r = i if root is None else root
        self.root.append(r)
        self.open[r] = self.open.get(r, 0) + 1
        return i

    def add(self, jobs: Sequence[Job], on_done: Callable[[JobResult], None] | None = None) -> list[int]:
        """Queue new jobs; ``on_done(result)`` is called for each once its whole family is done."""
        jobs = list(jobs)
        for j, job in enumerate(jobs):  # check all before queueing any
            check_job(len(self.jobs) + j, job, self.engine.context)
            if job.want_hidden and self.layer is None:
                raise ValueError("jobs ask for hidden states but no hidden_layer was given")
        idx = [self._append(job, None) for job in jobs]
        if on_done is not None:
            for i in idx:
                self.callbacks[i] = on_done
        if self.bar.total < len(self.jobs):
            self.bar.total = len(self.jobs)
        self.pending.extend(self.engine.chunks(self.jobs, idx))
        return idx

    @property
    def busy(self) -> bool:
        """Whether any job is queued or decoding."""
        return bool(self.pending or self.follow or self.pool.rows)

    def _done(self, i: int) -> None:
        self.bar.update(1)
        job = self.jobs[i]
        if job.follow_up is not None:
            new = list(job.follow_up(self.results[i]))
            self.results[i].follow_ups = []
            snap = self.parent_snap.pop(i, None)
            if snap is not None:  # the parent's first branch: prompt + the generated tokens its cache holds
                snap = (snap, (job.prompt_ids + self.results[i].branches[0].token_ids)[: snap.mask.shape[1]])
            for nj in new:
                if nj.want_hidden and self.layer is None:
                    raise ValueError("a follow-up job asks for hidden states but no hidden_layer was given")
                k = self._append(nj, self.root[i])
                if snap is not None:
                    self.snaps[k] = snap
                self.follow.append(k)
                self.results[i].follow_ups.append(self.results[k])
            self.bar.total += len(new)
        r = self.root[i]
        self.open[r] -= 1
        if self.open[r] == 0:
            del self.open[r]
            cb = self.callbacks.pop(r, None)
            if cb is not None:
                cb(self.results[r])

    def step(self) -> bool:
        """One scheduling iteration (prefill what fits, one decoding step); returns whether work remains."""
        import torch

        with torch.inference_mode():
            return self._step()

    def _step(self) -> bool:
        e = self.engine
        # follow-ups are chunked once a batch of them is ready, or when nothing else is left
        if self.follow and (len(self.follow) >= e.batch_size or not self.pending):
            for ch in reversed(e.chunks(self.jobs, self.follow)):
                self.pending.appendleft(ch)
            self.follow.clear()
        # admit new work while it fits (the first chunk always: a group is never split)
        pieces, n_new = [], 0
        while self.pending and (
            (not self.pool.rows and not pieces)
            or len(self.pool.rows) + n_new + sum(len(self.jobs[i].branches) for i in self.pending[0])
            <= e.max_batch_rows
        ):
            chunk = self.pending.popleft()
            pieces += self.prefiller.prefill(chunk, self.jobs, self.results, self.layer, self.snaps)
            n_new += sum(len(self.jobs[i].branches) for i in chunk)
            for i in chunk:
                self.snaps.pop(i, None)
                if not self.jobs[i].branches:
                    self._done(i)
        self.pool.merge(pieces)
        if not self.pool.rows:
            return bool(self.pending or self.follow)
        for row in self.pool.step():
            if row.snapshot is not None:
                self.parent_snap[row.job], row.snapshot = row.snapshot, None
            self.results[row.job].branches[row.branch] = row.result()
            self.left[row.job] -= 1
            if self.left[row.job] == 0:
                self._done(row.job)
        return self.busy

    def close(self) -> None:
        self.bar.close()
