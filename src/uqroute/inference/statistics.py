"""The statistics one SLM pass can produce, each declared with the work it adds and the columns it fills.

In the way LM-Polygraph's stat calculators declare what they produce, every :class:`Statistic`
says which ``generations`` columns it fills and what it costs, and contributes its work to the
one continuous-batching pass of the engine:

* extra **branches** of the answer job (decoded from the answer prompt's single prefill),
* extra **jobs** (separate prompts, prefilled in the same group as the answer prompt),
* **follow-up** jobs (further turns after the greedy answer, started from its KV cache).

A UQ method names the generations columns it reads (``uqroute.uq.METHODS[m].columns``);
:func:`statistics_for` turns a list of UQ methods into the statistics they need, so a
configuration with only cheap methods (token probabilities, perplexity, entropies, probes)
pays for neither samples nor follow-up turns. The ``greedy`` answer (with its log-probs,
entropies, option probability) and the ``hidden`` state come from the answer prompt's own
prefill and decode and are always produced (correctness and the probes need them).

What each statistic costs per query (KV engine; ``Statistic.cost`` says the same in short):

========== =========================================================================================
greedy     always: the answer prompt's prefill (prefixes shared across the batch and the query's
           group are prefilled once) and one decoding step per answer token; every step takes a
           log-softmax and an entropy over the vocabulary (the entropy pass only where asked).
hidden     free: read off the answer prompt's prefill (``output_hidden_states`` of that pass).
samples    m branches of the answer job: no prefill (the prompt's KV cache is copied to them),
           m × up to the sample budget decoding rows (no entropies), and parsing m replies.
ptrue      one follow-up turn: prefill only (its first-token distribution; no decoding), of the
           turn's tokens beyond what the answer's own KV cache covers (prompt + answer). The turn
           repeats the question and the proposed answer (Kadavath et al.'s format): in the
           SmolLM2 benchmark it was about 40 % of all prefilled tokens (docs/benchmarks.md).
verbal_1s  a second prompt in the query's group (its dataset prompt is the group prefix, so only
           the format instructions are prefilled) and a reply of up to answer + verbal budget tokens.
verbal_2s  one follow-up turn from the answer's KV cache: the confidence question's prefill and a
           reply of up to the verbal budget.
========== =========================================================================================

On the recurrent engine (:mod:`.recurrent`; RWKV-7) no prompt tokens are shared between jobs:
every prompt, including a follow-up turn's prompt + answer, is run in full; samples still start
from the answer prompt's state without running it again, and decoding is batched as above.

Adding a method that needs a new statistic touches this module only: declare the statistic
(its columns in ``uqroute.schema.GENERATIONS`` too) and add it to :data:`STATISTICS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from ..parsing import (
    answer_start,
    find_option_token,
    is_truncated,
    parse_answer,
    parse_confidence,
    parse_verbal_1s,
)
from .jobs import Branch, Job, JobResult
from .prompts import answer_conversation, ptrue_conversation, verbal_1s_conversation, verbal_2s_conversation
from .seeding import branch_seed

__all__ = [
    "Statistic",
    "STATISTICS",
    "ALWAYS",
    "statistics_for",
    "ShardContext",
    "QueryResult",
    "TRUE_VARIANTS",
    "FALSE_VARIANTS",
]

TRUE_VARIANTS = ("True", " True", "true", " true", "TRUE", " TRUE")
FALSE_VARIANTS = ("False", " False", "false", " false", "FALSE", " FALSE")
#: The reasoning trace's tags (Qwen3, DeepSeek-R1, Phi-4-mini-reasoning): budget forcing closes an open trace.
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


@dataclass
class ShardContext:
    """What every statistic of one (model, dataset) shard shares."""

    backend: object  # a TransformersBackend
    fmt: str  # the dataset's answer format
    task_type: str
    budgets: dict  # answer / sample / verbal token budgets
    cfg: dict  # the resolved inference settings
    seed: int
    spec: dict  # the model's config entry
    _tf: tuple | None = None
    _think_open: bool | None = None
    _forcing: dict | None = None

    def with_budgets(self, budgets: dict) -> ShardContext:
        """The same context with other token budgets (the router scores each request at its own budget),
        sharing what was already read off the tokenizer (``true_false_ids``, ``think_open``, forcing)."""
        return replace(self, budgets=budgets)

    def forcing(self) -> dict:
        """:class:`~.jobs.Branch` keyword arguments of budget forcing (s1; the model's ``thinking_budget``) for
        the replies that may reason (the greedy answer, the samples, the verbalization-1s reply); ``{}`` when off."""
        if self._forcing is None:
            budget = self.spec.get("thinking_budget")
            if budget is None:
                self._forcing = {}
            else:
                ids = self.backend.text_ids
                self._forcing = {
                    "thinking_budget": int(budget),
                    "think_open_ids": tuple(ids(THINK_OPEN)),
                    "think_close_ids": tuple(ids(THINK_CLOSE)),
                    "think_in_prompt": self.think_open,
                }
        return self._forcing

    def branch(self, max_new_tokens: int, *args, **kwargs) -> Branch:
        """A continuation of a prompt that may reason: a :class:`~.jobs.Branch` with budget forcing where it is on."""
        return Branch(max_new_tokens, *args, **kwargs, **self.forcing())

    @property
    def think_open(self) -> bool:
        """Whether the model's chat template opens a ``<think>`` block in the answer prompt itself
        (DeepSeek-R1 style): its replies then start inside the trace (:func:`uqroute.parsing.prompt_opens_think`)."""
        if self._think_open is None:
            from ..parsing import prompt_opens_think

            render = getattr(self.backend, "render", None)
            self._think_open = bool(render) and prompt_opens_think(render(answer_conversation("?")))
        return self._think_open

    @property
    def follow_up_thinking(self) -> bool:
        """Whether the follow-up turns (p(True), verbalization-2s) may reason: not for reasoning models, whose
        follow-up prompts end with an empty think block so that the reply starts with the answer
        (:meth:`.transformers_backend.TransformersBackend.render`)."""
        return not self.spec.get("reasoning")

    def true_false_ids(self) -> tuple[list[int], list[int]]:
        if self._tf is None:
            be = self.backend
            t_ids, f_ids = be.single_token_ids(TRUE_VARIANTS), be.single_token_ids(FALSE_VARIANTS)
            if not t_ids or not f_ids:
                raise ValueError(f"model {be.name}: the tokenizer has no single-token 'True'/'False' for p(True)")
            self._tf = (t_ids, f_ids)
        return self._tf


@dataclass
class QueryResult:
    """One query's results: the answer job, and each statistic's jobs and follow-up jobs."""

    main: JobResult
    branches: dict[str, list] = field(default_factory=dict)  # statistic -> its branch results of the answer job
    jobs: dict[str, list[JobResult]] = field(default_factory=dict)
    follow_ups: dict[str, list[JobResult]] = field(default_factory=dict)


class Statistic:
    """One statistic: the generations columns it fills and the work it adds to the pass."""

    name: str = ""
    columns: tuple[str, ...] = ()
    cost: str = ""

    def branches(self, ctx: ShardContext, row: dict) -> list[Branch]:
        """Extra continuations of the answer prompt."""
        return []

    def jobs(self, ctx: ShardContext, row: dict) -> list[Job]:
        """Separate prompts, prefilled in the query's group."""
        return []

    def follow_ups(self, ctx: ShardContext, row: dict, shown_answer: str) -> list[Job]:
        """Turns after the greedy answer (``shown_answer``: its text without a ``<think>`` block)."""
        return []

    @property
    def has_follow_ups(self) -> bool:
        """Whether this statistic adds turns after the greedy answer (its KV cache is then kept for them)."""
        return type(self).follow_ups is not Statistic.follow_ups

    def fill(self, ctx: ShardContext, row: dict, res: QueryResult) -> dict:
        """The columns' values for one query."""
        raise NotImplementedError


def _choices(row) -> list[dict]:
    return [dict(c) for c in (row.get("choices") or [])]


def greedy_columns(g, fmt: str, task_type: str, choices: list[dict], *, think_open: bool = False) -> dict:
    """The ``greedy`` columns of one generation (local or API model).

    The answer is parsed from the final answer after any reasoning trace (never from a truncated
    reply), ``answer_start`` is the index of the answer's first token, and the option token is
    searched in the final answer only (:mod:`uqroute.parsing.tokens`).
    """
    parsed = parse_answer(g.text, fmt, choices, finish_reason=g.finish_reason, think_open=think_open)
    lps = g.token_logprobs
    has_tokens = lps is not None and len(g.tokens) == len(lps)
    start = answer_start(g.tokens, think_open=think_open) if has_tokens else None
    opt = find_option_token(g.tokens, parsed, task_type, start=start, choices=choices) if has_tokens else None
    return {
        "response": g.text,
        "parsed_answer": parsed,
        "tokens": list(g.tokens),
        "token_logprobs": [None if x is None else float(x) for x in lps] if lps is not None else None,
        "token_entropies": list(g.token_entropies) if g.token_entropies is not None else None,
        "answer_start": start,
        "option_prob": math.exp(lps[opt]) if opt is not None and lps[opt] is not None else None,
        "n_prompt_tokens": int(g.n_prompt_tokens),
        "finish_reason": g.finish_reason,
    }


class Greedy(Statistic):
    name = "greedy"
    columns = (
        "response",
        "parsed_answer",
        "tokens",
        "token_logprobs",
        "token_entropies",
        "answer_start",
        "option_prob",
        "n_prompt_tokens",
        "finish_reason",
    )
    cost = (
        "decoding the greedy answer (one prefill of the answer prompt, one step per token); "
        "log-probs and entropies cost one pass over the vocabulary per step; always computed"
    )

    def fill(self, ctx, row, res):
        g = ctx.backend.to_generation(res.main.branches[0], res.main.n_prompt_tokens)
        return greedy_columns(g, ctx.fmt, ctx.task_type, _choices(row), think_open=ctx.think_open)


class Hidden(Statistic):
    name = "hidden"
    columns = ()  # written to the hidden-states file, not a column
    cost = "free: read off the answer prompt's prefill"

    def fill(self, ctx, row, res):
        return {"_hidden": res.main.hidden.astype(np.float32).tolist()}


class Samples(Statistic):
    name = "samples"
    columns = ("samples", "sample_answers", "samples_truncated")
    cost = "m sampled continuations of the answer prompt (its prefill is shared): decoding only"

    def branches(self, ctx, row):
        m, temp = int(ctx.cfg["num_samples"]), float(ctx.cfg["sample_temperature"])
        return [
            ctx.branch(ctx.budgets["sample"], temp, branch_seed(ctx.seed, row["id"], k), entropy=False)
            for k in range(m)
        ]

    def fill(self, ctx, row, res):
        got = res.branches[self.name]
        samples = [ctx.backend.decode(x.token_ids) for x in got]
        return {
            "samples": samples,
            "sample_answers": [
                parse_answer(s, ctx.fmt, _choices(row), finish_reason=x.finish_reason, think_open=ctx.think_open)
                for s, x in zip(samples, got)
            ],
            "samples_truncated": sum(is_truncated(x.finish_reason) for x in got),
        }


class PTrue(Statistic):
    name = "ptrue"
    columns = ("ptrue",)
    cost = "one follow-up turn: prefill only (no decoding), of what the answer's KV cache does not cover"

    def follow_ups(self, ctx, row, shown_answer):
        t_ids, f_ids = ctx.true_false_ids()
        conv = ptrue_conversation(row["prompt"], shown_answer, row["question"], _choices(row), row.get("context"))
        return [
            Job(
                ctx.backend.encode(conv, thinking=ctx.follow_up_thinking),
                next_token_groups=[t_ids, f_ids],
                group=row["id"],
            )
        ]

    def fill(self, ctx, row, res):
        pT, pF = res.follow_ups[self.name][0].group_probs
        return {"ptrue": pT / (pT + pF) if (pT + pF) > 0 else None}


class Verbal1S(Statistic):
    name = "verbal_1s"
    columns = ("verbal_1s_response", "verbal_1s_answer", "verbal_1s_confidence", "verbal_1s_finish_reason")
    cost = (
        "a second prompt (the KV engine prefills its dataset prompt with the answer prompt's, so only its "
        "format instructions) and its reply of up to answer + verbal budget tokens"
    )

    def jobs(self, ctx, row):
        conv = verbal_1s_conversation(row["prompt"])
        return [
            Job(
                ctx.backend.encode(conv),
                [ctx.branch(ctx.budgets["answer"] + ctx.budgets["verbal"], entropy=False)],
                group=row["id"],
            )
        ]

    def fill(self, ctx, row, res):
        b = res.jobs[self.name][0].branches[0]
        text = ctx.backend.decode(b.token_ids)
        ans, conf = parse_verbal_1s(
            text, ctx.fmt, _choices(row), finish_reason=b.finish_reason, think_open=ctx.think_open
        )
        return {
            "verbal_1s_response": text,
            "verbal_1s_answer": ans,
            "verbal_1s_confidence": conf,
            "verbal_1s_finish_reason": b.finish_reason,
        }


class Verbal2S(Statistic):
    name = "verbal_2s"
    columns = ("verbal_2s_response", "verbal_2s_confidence", "verbal_2s_finish_reason")
    cost = "one follow-up turn (prefilled from the answer's KV cache) and its reply of up to the verbal budget"

    def follow_ups(self, ctx, row, shown_answer):
        conv = verbal_2s_conversation(row["prompt"], shown_answer)
        return [
            Job(
                ctx.backend.encode(conv, thinking=ctx.follow_up_thinking),
                [Branch(ctx.budgets["verbal"], entropy=False)],
                group=row["id"],
            )
        ]

    def fill(self, ctx, row, res):
        b = res.follow_ups[self.name][0].branches[0]
        text = ctx.backend.decode(b.token_ids)
        # the follow-up turn starts after a closed (empty) think block, so the reply is the answer
        return {
            "verbal_2s_response": text,
            "verbal_2s_confidence": parse_confidence(text, finish_reason=b.finish_reason),
            "verbal_2s_finish_reason": b.finish_reason,
        }


#: Every statistic, in the order their work joins the pass (the order is part of the results:
#: it fixes the order of branches, jobs and follow-up turns).
STATISTICS: dict[str, Statistic] = {s.name: s for s in (Greedy(), Hidden(), Samples(), PTrue(), Verbal1S(), Verbal2S())}

#: Produced on every pass: the answer itself and the probe input.
ALWAYS = ("greedy", "hidden")


def statistics_for(methods) -> list[str]:
    """The statistics the UQ methods ``methods`` need (always including :data:`ALWAYS`), in pass order.

    A method needs every statistic that fills one of the columns it reads. ``None`` means
    every statistic.
    """
    if methods is None:
        return list(STATISTICS)
    from ..uq import get_methods

    cols = {c for m in get_methods(list(methods)) for c in m.columns}
    need = set(ALWAYS) | {s.name for s in STATISTICS.values() if cols & set(s.columns)}
    return [name for name in STATISTICS if name in need]
