"""A query's plan: the engine jobs of the statistics it needs, and its ``generations`` record from their results.

The pipeline (rule ``infer``: ``run._slm_shard``) and the online router (``uqroute.router``'s SLM
scorer) build and collect a query's work with this one code, as LM-Polygraph's single-query
path (``utils/estimate_uncertainty.py``) runs its batch machinery rather than a copy of it:

* :class:`QueryPlan` — one query (a dataset row, or a chat request turned into a row by
  :func:`chat_row`) and a list of statistics (:data:`.statistics.STATISTICS`): its answer job
  (the greedy answer, every statistic's extra branches, the follow-up turns started from the
  answer's KV cache once it is done) and its separate prompts; :meth:`QueryPlan.collect` turns
  the results of :attr:`QueryPlan.jobs`, in that order, into the query's record.
* :class:`QueryBatch` — the plans of a shard's rows, their jobs in one list for one engine pass
  (every answer job first, then the separate prompts statistic by statistic, so that a shard's
  prompts of one kind are prefilled together) and the records of all of them.

The router runs a plan's jobs on the online engine (:class:`.online.EngineWorker`), the pipeline
a batch's on ``backend.run_jobs``; the engine, the statistics and the record are the same.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..parsing import final_answer_text
from ..schema import ARTIFACTS
from .jobs import Job, JobResult
from .prompts import answer_conversation
from .statistics import ALWAYS, STATISTICS, QueryResult, ShardContext, Statistic

__all__ = ["QueryPlan", "QueryBatch", "chat_row"]


def chat_row(messages: list[dict], query_id: str) -> dict:
    """A chat request as a query row: the conversation is the prompt, its last user message the question
    (what the p(True) turn repeats); no choices, no context."""
    users = [m["content"] for m in messages if m["role"] == "user"]
    return {"id": query_id, "prompt": messages, "question": users[-1] if users else "", "choices": [], "context": None}


def _statistics(stats: Sequence[str | Statistic]) -> list[Statistic]:
    return [STATISTICS[s] if isinstance(s, str) else s for s in stats]


class QueryPlan:
    """One query's jobs for a list of statistics, and its record from their results.

    ``row`` is a query row (``id``, ``prompt``, ``question``, ``choices``, ``context``; a dataset
    row or :func:`chat_row`); a training row (``role == "train"``) gets the :data:`.statistics.ALWAYS`
    statistics only (the in-domain probe needs its hidden state and correctness, nothing evaluates
    the rest). ``answer_entropy``: whether the greedy answer records each step's next-token entropy
    (a pass over the vocabulary per step). ``want_hidden``: whether the answer prompt's hidden state
    is read (default: where the ``hidden`` statistic is among ``stats``).
    """

    def __init__(
        self,
        ctx: ShardContext,
        row: dict,
        stats: Sequence[str | Statistic],
        *,
        answer_entropy: bool = True,
        want_hidden: bool | None = None,
    ):
        chosen = _statistics(stats)
        if row.get("role", "eval") == "train":
            chosen = [st for st in chosen if st.name in ALWAYS]
        self.ctx, self.row, self.stats = ctx, row, chosen
        backend = ctx.backend
        branches = [ctx.branch(ctx.budgets["answer"], entropy=answer_entropy)]
        #: statistic -> (first, end) of its branches of the answer job / of its follow-up turns
        self.branch_spans: dict[str, tuple[int, int]] = {}
        self.follow_spans: dict[str, tuple[int, int]] = {}
        for st in chosen:
            new = st.branches(ctx, row)
            self.branch_spans[st.name] = (len(branches), len(branches) + len(new))
            branches += new
        turns = [st for st in chosen if st.has_follow_ups]
        self.main = Job(
            backend.encode(answer_conversation(row["prompt"])),
            branches,
            want_hidden=any(st.name == "hidden" for st in chosen) if want_hidden is None else want_hidden,
            group=row["id"],
            follow_up=self._follow_ups(turns) if turns else None,
        )
        #: statistic -> its separate prompts (prefilled in the query's group), in the order of ``stats``
        self.extra: dict[str, list[Job]] = {}
        for st in chosen:
            new = st.jobs(ctx, row)
            if new:
                self.extra[st.name] = list(new)

    def _follow_ups(self, turns: list[Statistic]):
        ctx, row = self.ctx, self.row

        def make(res: JobResult) -> list[Job]:  # the follow-up turns after the model's own (think-stripped) answer
            shown = final_answer_text(ctx.backend.decode(res.branches[0].token_ids), think_open=ctx.think_open)
            out: list[Job] = []
            for st in turns:
                new = st.follow_ups(ctx, row, shown)
                self.follow_spans[st.name] = (len(out), len(out) + len(new))
                out += new
            return out

        return make

    @property
    def jobs(self) -> list[Job]:
        """The query's jobs: the answer job first, then each statistic's separate prompts."""
        return [self.main] + [j for js in self.extra.values() for j in js]

    @property
    def columns(self) -> tuple[str, ...]:
        """The ``generations`` columns this plan's statistics fill (the others stay null)."""
        return tuple(c for st in self.stats for c in st.columns)

    def collect(self, results: Sequence[JobResult]) -> dict:
        """The query's ``generations`` record from the results of :attr:`jobs` (in that order): every
        column, null where no statistic of the plan fills it, and ``_hidden`` (the answer prompt's
        hidden state, for the hidden-states file) where the ``hidden`` statistic ran."""
        main = results[0]
        qr = QueryResult(main=main)
        qr.branches = {name: main.branches[a:z] for name, (a, z) in self.branch_spans.items()}
        qr.follow_ups = {name: (main.follow_ups or [])[a:z] for name, (a, z) in self.follow_spans.items()}
        at = 1
        for name, js in self.extra.items():
            qr.jobs[name] = list(results[at : at + len(js)])
            at += len(js)
        if at != len(results):
            raise ValueError(f"query {self.row['id']!r}: {len(results)} results for {at} jobs")
        rec = {c: None for c in ARTIFACTS["generations"].names}
        rec["id"] = self.row["id"]
        for st in self.stats:
            rec.update(st.fill(self.ctx, self.row, qr))
        return rec


class QueryBatch:
    """The plans of several queries, their jobs in one list for one pass of the engine, and their records.

    The order of :attr:`jobs` is part of the results (it fixes how the engine groups prefills and
    decoding rows): every query's answer job, in row order, then the separate prompts statistic by
    statistic (in the order of ``stats``), query by query.
    """

    def __init__(self, ctx: ShardContext, rows: Sequence[dict], stats: Sequence[str | Statistic], **plan_kwargs):
        chosen = _statistics(stats)
        self.plans = [QueryPlan(ctx, r, chosen, **plan_kwargs) for r in rows]
        self.jobs: list[Job] = [p.main for p in self.plans]
        self._where: list[list[int]] = [[q] for q in range(len(self.plans))]  # each plan's jobs in self.jobs
        for st in chosen:
            for q, p in enumerate(self.plans):
                new = p.extra.get(st.name, [])
                self._where[q] += range(len(self.jobs), len(self.jobs) + len(new))
                self.jobs += new

    def collect(self, results: Sequence[JobResult]) -> list[dict]:
        """Every query's record (:meth:`QueryPlan.collect`), in row order, from the results of :attr:`jobs`."""
        if len(results) != len(self.jobs):
            raise ValueError(f"{len(results)} results for {len(self.jobs)} jobs")
        return [p.collect([results[i] for i in where]) for p, where in zip(self.plans, self._where)]
