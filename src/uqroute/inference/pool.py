"""The decoding pool: continuous batching over one preallocated KV cache.

A :class:`DecodePool` holds at most ``max_rows`` continuation rows (:class:`Row`, one per
branch being decoded). Prefilled rows join it (:meth:`DecodePool.merge`) as others finish;
:meth:`DecodePool.step` chooses every row's next token from the pending logits (greedy or
sampled from the row's own seeded generator), records its log-probability, the entropy of
the full next-token distribution and the top log-probabilities where asked, drops the rows
that finished (moving only the last live rows into their slots) and runs one forward step
through the function it was handed. The pool knows nothing about models or tokenizers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .jobs import Branch, BranchResult
from .kvcache import Prefix, buffered_layer_class, check_layers, layers, snapshot

__all__ = ["Row", "Piece", "DecodePool", "choose_tokens", "trace_open"]


class Row:
    """One branch being decoded."""

    __slots__ = (
        "_gen",
        "branch",
        "ents",
        "finish",
        "forced",
        "forcing_checked",
        "job",
        "keep_cache",
        "lps",
        "snapshot",
        "spec",
        "toks",
        "tops",
    )

    def __init__(self, job: int, branch: int, spec: Branch, keep_cache: bool = False):
        self.job, self.branch, self.spec = job, branch, spec
        self.keep_cache = keep_cache  # snapshot this row's KV cache when it finishes (its job has follow-ups)
        self.snapshot: Prefix | None = None
        self.toks: list[int] = []
        self.lps: list[float] = []
        self.ents: list[float] = []
        self.tops: list[dict] = []
        self.finish = ""
        self._gen = None
        self.forced: list[int] = []  # budget forcing: token ids still to force (the closing tag)
        self.forcing_checked = False

    def next_forced(self) -> int | None:
        """The token id budget forcing imposes at this step, or None (:class:`~.jobs.Branch`)."""
        spec = self.spec
        if spec.thinking_budget is None:
            return None
        if not self.forcing_checked and len(self.toks) >= spec.thinking_budget:
            self.forcing_checked = True
            if trace_open(self.toks, spec.think_open_ids, spec.think_close_ids, spec.think_in_prompt):
                self.forced = list(spec.think_close_ids)
        return self.forced.pop(0) if self.forced else None

    def generator(self):
        """This branch's own generator, seeded by its ``Branch.seed`` (created on first use)."""
        if self._gen is None:
            import torch

            self._gen = torch.Generator(device="cpu").manual_seed(int(self.spec.seed or 0) % (2**63))
        return self._gen

    def result(self) -> BranchResult:
        return BranchResult(
            self.toks,
            self.lps,
            self.ents if self.spec.entropy else None,
            self.tops if self.spec.top_logprobs else None,
            self.finish,
        )


def _last(seq: list[int], sub: tuple[int, ...]) -> int:
    """Start of the last occurrence of ``sub`` in ``seq`` (-1: none)."""
    n = len(sub)
    if not n:
        return -1
    first = sub[0]
    for i in range(len(seq) - n, -1, -1):
        if seq[i] == first and tuple(seq[i : i + n]) == tuple(sub):
            return i
    return -1


def trace_open(toks: list[int], open_ids, close_ids, in_prompt: bool) -> bool:
    """Whether generated ``toks`` end inside a reasoning trace: opened (by the prompt, or by ``open_ids``
    in ``toks``) and not closed by ``close_ids`` after the last opening."""
    o, c = _last(toks, tuple(open_ids)), _last(toks, tuple(close_ids))
    if o >= 0:
        return c < o
    return in_prompt and c < 0


def choose_tokens(rows: list[Row], logits, eos, stats: dict):
    """Every row's next token from its next-token ``logits`` (one row each); returns the chosen token ids.

    Greedy rows take the argmax; sampled rows draw by inverse CDF at their temperature, one
    uniform per row from that row's own seeded generator. Each row records the chosen token's
    log-probability, the entropy of the full next-token distribution (where ``spec.entropy``)
    and its top log-probabilities (where asked), and finishes at an end-of-sequence token
    (``"stop"``, not recorded) or at its budget (``"length"``). Shared by the KV pool and the
    recurrent-state engine, so both produce the same statistics.

    Budget forcing (:class:`~.jobs.Branch`, s1): a row at its thinking budget with its trace still
    open takes the closing tag's tokens instead of its own choice, one per step; each is recorded
    with the model's own log-probability (and entropy) of it, and never ends the row.
    """
    import torch

    dev = logits.device
    logp = torch.log_softmax(logits, dim=-1)
    chosen = logp.argmax(-1)
    need_ent = [r for r, row in enumerate(rows) if row.spec.entropy]
    ent_rows: dict[int, float] = {}
    if need_ent:
        sel = logp.index_select(0, torch.tensor(need_ent, device=dev))
        ent_rows = dict(zip(need_ent, (-torch.xlogy(sel.exp(), sel.exp()).sum(-1)).cpu().tolist()))
    samp = [r for r, row in enumerate(rows) if row.spec.temperature > 0]
    if samp:
        # inverse-CDF sampling, vectorised over rows; one uniform per row from that row's own generator
        ridx = torch.tensor(samp, device=dev)
        temps = torch.tensor([rows[r].spec.temperature for r in samp], device=dev)
        p = torch.softmax(logits.index_select(0, ridx) / temps[:, None], dim=-1)
        cdf = p.cumsum(-1)
        u = torch.cat([torch.rand(1, generator=rows[r].generator()) for r in samp]).to(dev)
        u = u * cdf[:, -1]
        picked = torch.searchsorted(cdf, u[:, None], side="right").clamp(max=cdf.shape[-1] - 1)[:, 0]
        chosen[ridx] = picked
    forced = {r: t for r, t in ((r, row.next_forced()) for r, row in enumerate(rows)) if t is not None}
    if forced:
        at = torch.tensor(list(forced), device=dev)
        chosen[at] = torch.tensor(list(forced.values()), device=dev, dtype=chosen.dtype)
        stats["forced_tokens"] = stats.get("forced_tokens", 0) + len(forced)
    chosen_lp = logp.gather(1, chosen[:, None])[:, 0]
    is_eos = torch.isin(chosen, eos)
    if forced:
        is_eos[at] = False  # a forced token never ends the row
    max_k = max(row.spec.top_logprobs for row in rows)
    if max_k:
        top_v, top_i = logp.topk(max_k, dim=-1)
        top_v, top_i = top_v.cpu().tolist(), top_i.cpu().tolist()
    c_l, lp_l, eos_l = chosen.cpu().tolist(), chosen_lp.cpu().tolist(), is_eos.cpu().tolist()
    for r, row in enumerate(rows):
        if eos_l[r]:
            row.finish = "stop"
        else:
            row.toks.append(c_l[r])
            row.lps.append(lp_l[r])
            if row.spec.entropy:
                row.ents.append(ent_rows[r])
            if row.spec.top_logprobs:
                k = row.spec.top_logprobs
                row.tops.append(dict(zip(top_i[r][:k], top_v[r][:k])))
            if len(row.toks) >= row.spec.max_new_tokens:
                row.finish = "length"
    stats["generated_tokens"] += len(rows) - sum(eos_l)
    return chosen


@dataclass
class Piece:
    """Rows ready to decode: their cache, mask, last positions and pending next-token logits."""

    cache: object
    mask: object
    pos: object
    logits: object
    rows: list


class DecodePool(Piece):
    """The decoding pool (a :class:`Piece` that grows by merging and shrinks as rows finish).

    Args:
        forward: ``forward(input_ids, attention_mask=, position_ids=, past_key_values=)`` → a
            model output with ``logits`` and ``past_key_values`` (one decoding step).
        eos_ids: token ids that end a continuation.
        max_rows: capacity the KV buffers are sized for (more rows grow them).
        name: the model's name, for error messages.
        stats: running counters (``generated_tokens``, ``pool_joins``), updated in place.
    """

    def __init__(self, forward: Callable, eos_ids, *, max_rows: int, name: str, stats: dict):
        super().__init__(None, None, None, None, [])
        self.forward, self.eos_ids, self.max_rows, self.name, self.stats = (
            forward,
            sorted(eos_ids),
            max_rows,
            name,
            stats,
        )
        self._eos_t = None

    def _eos_tensor(self, dev):
        import torch

        if self._eos_t is None or self._eos_t.device != torch.device(dev):
            self._eos_t = torch.tensor(self.eos_ids, device=dev)
        return self._eos_t

    def merge(self, pieces: list[Piece]) -> None:
        """Add new pieces' rows to the pool's preallocated buffers (in place; fresh buffers when empty)."""
        import torch
        import torch.nn.functional as F

        if not pieces:
            return
        if not self.rows:
            first, pieces = pieces[0], pieces[1:]
            cls = buffered_layer_class()
            check_layers(first.cache, first.mask.shape[1], self.name)
            lays = layers(first.cache)
            extra = max(r.spec.max_new_tokens for r in first.rows)
            for i, lay in enumerate(lays):
                lays[i] = cls(lay.keys, lay.values, self.max_rows, right=extra + 64, left=64)
            self.cache, self.mask, self.pos, self.logits, self.rows = (
                first.cache,
                first.mask,
                first.pos,
                first.logits,
                list(first.rows),
            )
        lays = layers(self.cache)
        for p in pieces:
            self.stats["pool_joins"] += 1
            check_layers(p.cache, p.mask.shape[1], self.name)
            L, length = self.mask.shape[1], p.mask.shape[1]
            if length > L:
                for lay in lays:
                    lay.pad_left(length - L)
                self.mask = F.pad(self.mask, (length - L, 0))
                L = length
            for lay, new in zip(lays, layers(p.cache)):
                lay.append_rows(new.keys, new.values)
            self.mask = torch.cat([self.mask, F.pad(p.mask, (L - length, 0))])
            self.pos = torch.cat([self.pos, p.pos])
            self.logits = torch.cat([self.logits, p.logits])
            self.rows += p.rows
        extra = max(r.spec.max_new_tokens - len(r.toks) for r in self.rows)
        check_layers(self.cache, self.mask.shape[1] + extra, self.name)
        for lay in lays:
            lay.reserve(len(self.rows), extra)

    def step(self) -> list[Row]:
        """Choose every row's next token from the pending logits; drop finished rows; run one forward step.

        Returns the rows that finished.
        """
        import torch

        dev = self.logits.device
        rows = self.rows
        chosen = choose_tokens(rows, self.logits, self._eos_tensor(dev), self.stats)
        done = []
        for r, row in enumerate(rows):
            if row.finish:
                done.append(row)
                if row.keep_cache:  # before compaction moves rows
                    row.snapshot = snapshot(self, r)
        keep = [r for r, row in enumerate(rows) if not row.finish]
        if not keep:
            self.rows = []
            return done
        if len(keep) < len(rows):
            # compact: the last live rows move into the holes finished rows left (copies only those rows)
            n = len(keep)
            holes = [r for r in range(n) if rows[r].finish]
            movers = [r for r in range(n, len(rows)) if not rows[r].finish]
            order = list(range(n))
            for h, m in zip(holes, movers):
                order[h] = m
            src, dst = torch.tensor(movers, device=dev), torch.tensor(holes, device=dev)
            for lay in layers(self.cache):
                lay.move_rows(src, dst, n)
            oidx = torch.tensor(order, device=dev)
            self.rows = [rows[r] for r in order]
            chosen = chosen.index_select(0, oidx)
            self.mask = self.mask.index_select(0, oidx)
            self.pos = self.pos.index_select(0, oidx)
            lead = int((self.mask.cumsum(-1) == 0).sum(-1).min())  # left columns that are padding in every row
            if lead:
                self.mask = self.mask[:, lead:]
                for lay in layers(self.cache):
                    lay.trim_left(lead)
        self.mask = torch.cat([self.mask, torch.ones((len(self.rows), 1), dtype=self.mask.dtype, device=dev)], dim=-1)
        self.pos = self.pos + 1
        out = self.forward(
            chosen[:, None], attention_mask=self.mask, position_ids=self.pos[:, None], past_key_values=self.cache
        )
        self.logits = out.logits[:, -1, :].float()
        self.cache = out.past_key_values
        return done
