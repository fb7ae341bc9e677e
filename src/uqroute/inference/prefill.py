"""Prefill with shared prefixes: every common prompt prefix is computed once.

Prefill shares prefixes at three levels, each prefilled once: (A) the prefix every prompt of
a prefill chunk starts with (system prompt, fixed instructions), (B) the longer prefix the
jobs of one *group* share (a query's answer prompt and its verbalization-1s prompt), then (C)
each prompt's own tokens, in buckets of similar length so that little compute goes to padding
(left padding with explicit ``position_ids``; masked padding may sit between the levels).
Follow-up jobs instead continue their parent's finished KV cache (:func:`.kvcache.snapshot`)
as far as their tokens agree with it.

The prefill also yields, at no extra forward pass, the hidden state of a chosen layer at the
last prompt token (the trained-probe input, paper §3.1) and the next-token distribution there
(p(True), Kadavath et al. 2022). Its output is a list of :class:`.pool.Piece` ready to join
the decoding pool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .jobs import Job, JobResult
from .kvcache import Prefix, gather_cache, stack_prefixes, truncate_prefix
from .pool import Piece, Row

__all__ = ["Prefiller", "buckets", "common_prefix_len"]


class Prefiller:
    """Runs the three-level shared prefill of a chunk of jobs through ``forward``.

    Args:
        forward: ``forward(input_ids, attention_mask=, position_ids=, past_key_values=,
            output_hidden_states=)`` → a model output (logits of the last position,
            ``past_key_values``, ``hidden_states``).
        device: where input tensors go.
        pad_id: token id used for (masked) left padding.
        stats: running counters (``prompt_tokens``, ``prompt_tokens_reused``), updated in place.
        min_shared_prefix: shorter common prefixes are not worth a separate pass.
    """

    def __init__(self, forward: Callable, *, device, pad_id: int, stats: dict, min_shared_prefix: int = 8):
        self.forward, self.device, self.pad_id, self.stats = forward, device, pad_id, stats
        self.min_shared_prefix = min_shared_prefix

    def prefill(
        self,
        chunk: list[int],
        jobs: Sequence[Job],
        results: list[JobResult],
        layer: int | None,
        snaps: dict | None = None,
    ) -> list[Piece]:

        dev = self.device
        prompts = [jobs[i].prompt_ids for i in chunk]
        todo = self._from_snapshots(chunk, prompts, snaps or {})
        if todo is None:
            todo = self._prefix_levels(chunk, prompts, jobs, dev)
        # level C: each prompt's own remaining tokens, in buckets of similar length (little padding)
        pieces = []
        for bucket in buckets(todo, lambda t: len(prompts[t[0]]) - t[3]):
            by_src: dict = {}
            for t in bucket:
                by_src.setdefault(id(t[1]), []).append(t)
            for part in by_src.values():
                src = part[0][1]
                out_src, out = self._extend(
                    src,
                    [t[2] for t in part],
                    [prompts[t[0]][t[3] :] for t in part],
                    want_hidden=layer is not None and any(jobs[chunk[t[0]]].want_hidden for t in part),
                )
                pieces += self._finish_prefill(out_src, out, [chunk[t[0]] for t in part], jobs, results, layer)
        return [p for p in pieces if p.rows]

    def _prefix_levels(self, chunk, prompts, jobs, dev) -> list[tuple]:
        """Levels A and B of the prefill; returns (chunk position, source, source row, tokens covered) per prompt."""
        import torch

        shortest = min(map(len, prompts))
        n0 = common_prefix_len(prompts) if len(chunk) > 1 else 0
        n0 = min(n0, shortest - 1)  # every prompt keeps ≥ 1 own token
        if n0 < self.min_shared_prefix:
            n0 = 0
        # level A: the prefix every prompt of the chunk shares (system prompt, instructions), one row
        src_a = None
        if n0:
            out = self.forward(torch.tensor([prompts[0][:n0]], device=dev))
            src_a = Prefix(
                out.past_key_values,
                torch.ones((1, n0), dtype=torch.long, device=dev),
                torch.tensor([n0 - 1], device=dev),
            )
            self.stats["prompt_tokens"] += n0
        # level B: the longer prefix shared inside each group (a query's prompt before its different endings)
        groups: dict = {}
        for c, i in enumerate(chunk):
            if jobs[i].group is not None:
                groups.setdefault(jobs[i].group, []).append(c)
        g_len = {}
        for key, members in groups.items():
            if len(members) > 1:
                gl = min(common_prefix_len([prompts[c] for c in members]), min(len(prompts[c]) for c in members) - 1)
                if gl - n0 >= self.min_shared_prefix:
                    g_len[key] = gl
        src_b, b_row = None, {}
        if g_len:
            keys = list(g_len)
            b_row = {k: r for r, k in enumerate(keys)}
            segs = [prompts[groups[k][0]][n0 : g_len[k]] for k in keys]
            src_b = self._extend(src_a, [0] * len(keys), segs)[0]
        todo = []
        for c, i in enumerate(chunk):
            key = jobs[i].group
            if key in g_len:
                todo.append((c, src_b, b_row[key], g_len[key]))
            else:
                todo.append((c, src_a, 0, n0))
        return todo

    def _from_snapshots(self, chunk, prompts, snaps) -> list[tuple] | None:
        """Sources from the parents' caches when every prompt of the chunk continues one (else None)."""
        if not snaps or any(i not in snaps for i in chunk):
            return None
        units: dict = {}
        for c, i in enumerate(chunk):
            units.setdefault(id(snaps[i][0]), []).append(c)
        srcs, cover = [], []
        for members in units.values():
            src, toks = snaps[chunk[members[0]]]
            p = min(
                min(common_prefix_len([prompts[c], toks]) for c in members), min(len(prompts[c]) for c in members) - 1
            )
            if p < self.min_shared_prefix:
                return None
            srcs.append(truncate_prefix(src, p))
            cover.append(p)
        stacked = stack_prefixes(srcs)
        todo = []
        for r, members in enumerate(units.values()):
            todo += [(c, stacked, r, cover[r]) for c in members]
        self.stats["prompt_tokens_reused"] += sum(cover[r] * len(m) for r, m in enumerate(units.values()))
        return todo

    def _extend(self, src: Prefix | None, rows: list[int], segs: list[list[int]], want_hidden: bool = False):
        """Prefill token segments ``segs`` after rows ``rows`` of ``src`` (None: from scratch), left-padded.

        Returns the extended source (cache, mask, last positions) and the model output.
        """
        import torch

        dev = self.device
        T = max(map(len, segs))
        ids = torch.full((len(segs), T), self.pad_id, dtype=torch.long)
        smask = torch.zeros((len(segs), T), dtype=torch.long)
        for r, s in enumerate(segs):
            ids[r, T - len(s) :] = torch.tensor(s)
            smask[r, T - len(s) :] = 1
        smask = smask.to(dev)
        if src is None:
            cache, mask, start = None, smask, torch.zeros(len(segs), dtype=torch.long, device=dev)
        else:
            idx = torch.tensor(rows, device=dev)
            cache = gather_cache(src.cache, idx)
            mask = torch.cat([src.mask.index_select(0, idx), smask], dim=-1)
            start = src.pos.index_select(0, idx) + 1
        # positions continue after the source; padding sits between source and segment, masked out
        pos = (start[:, None] + smask.cumsum(-1) - 1).clamp(min=0)
        self.stats["prompt_tokens"] += sum(map(len, segs))
        out = self.forward(
            ids.to(dev), attention_mask=mask, position_ids=pos, past_key_values=cache, output_hidden_states=want_hidden
        )
        return Prefix(out.past_key_values, mask, pos[:, -1]), out

    def _finish_prefill(self, src: Prefix, out, job_ids: list[int], jobs, results, layer) -> list[Piece]:
        """Hidden states and next-token group probabilities of finished prompts; their rows for decoding."""
        import torch

        last = out.logits[:, -1, :].float()
        if out.hidden_states is not None:
            h = out.hidden_states[layer][:, -1, :].float().cpu().numpy()
            for r, i in enumerate(job_ids):
                if jobs[i].want_hidden:
                    results[i].hidden = h[r].copy()
        if any(jobs[i].next_token_groups for i in job_ids):
            probs = torch.softmax(last, dim=-1)
            for r, i in enumerate(job_ids):
                if jobs[i].next_token_groups:
                    results[i].group_probs = [float(probs[r, g].sum()) for g in jobs[i].next_token_groups]
        row_src = [r for r, i in enumerate(job_ids) for _ in jobs[i].branches]
        if not row_src:
            return []
        idx = torch.tensor(row_src, device=last.device)
        rows = [
            Row(i, k, b, keep_cache=k == 0 and jobs[i].follow_up is not None)
            for i in job_ids
            for k, b in enumerate(jobs[i].branches)
        ]
        return [
            Piece(
                gather_cache(src.cache, idx),
                src.mask.index_select(0, idx),
                src.pos.index_select(0, idx),
                last.index_select(0, idx),
                rows,
            )
        ]


def buckets(items: list, length, slack: float = 0.25, min_pad: int = 8) -> list[list]:
    """Split items into runs of similar ``length`` (ascending) so that left padding wastes little.

    A run grows while its padded size stays within ``(1 + slack)`` × its real tokens + ``min_pad`` per row.
    """
    items = sorted(items, key=length)
    out, cur, total = [], [], 0
    for it in items:
        n = length(it)
        if cur and n * (len(cur) + 1) > (1 + slack) * (total + n) + min_pad * (len(cur) + 1):
            out.append(cur)
            cur, total = [], 0
        cur.append(it)
        total += n
    if cur:
        out.append(cur)
    return out


def common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of token sequences (one sequence: its length)."""
    if not seqs:
        raise ValueError("common_prefix_len needs at least one sequence")
    first, n = seqs[0], min(len(x) for x in seqs)
    for i in range(n):
        t = first[i]
        if any(x[i] != t for x in seqs):
            return i
    return n
