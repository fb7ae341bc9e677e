"""Local transformers backend: batched generation that extracts everything the UQ methods need.

One decoding engine serves the pipeline, the judge and the benchmarks:

* prompts are rendered with the model's chat template; a *job* is one prompt plus any number
  of *branches* (greedy or sampled continuations). The prompt is prefilled **once** and its KV
  cache copied to every branch, so the greedy answer and the m samples of a query share one
  prefill;
* prefill shares prefixes at three levels, each prefilled once: the prefix every prompt of a
  prefill batch starts with (system prompt, fixed instructions), the longer prefix the jobs of
  one *group* share (a query's answer prompt and its verbalization-1s prompt), then each
  prompt's own tokens, in buckets of similar length so that little compute goes to padding
  (left padding with explicit ``position_ids``; masked padding may sit between the levels);
* **follow-up jobs** (p(True) and verbalization-2s after the greedy answer) are created the
  moment their parent finishes and start from the parent's own KV cache (prompt + generated
  answer, as far as their re-rendered tokens agree), instead of prefilling the conversation
  again in a second pass;
* decoding is **continuous batching** over one pool of at most ``max_batch_rows`` rows:
  new prefilled rows join as others finish; the pool's KV cache lives in preallocated buffers
  (a step is written in place instead of ``DynamicCache``'s ``torch.cat`` copy of the whole
  cache, joins pad on the left in place, finished rows' slots are refilled by moving only the
  last rows); each step records the chosen token's log-probability and the entropy of the
  full next-token distribution;
* the prefill also yields, at no extra forward pass, the hidden state of a chosen layer
  at the last prompt token (the trained-probe input, paper §3.1) and the next-token
  distribution there (p(True), Kadavath et al. 2022);
* sampling uses one ``torch.Generator`` per branch, seeded by the caller (the pipeline
  seeds it from ``(seed, query id, sample index)``), so a query's samples do not depend on
  which other queries share its batch (up to floating-point differences of batched
  matrix products).

The pool decodes models whose KV-cache layers are transformers ``DynamicLayer``s (full
attention; sliding-window layers while the window is not exceeded); other cache types
(recurrent / linear-attention models) are refused with a clear error.

Hidden-state layer convention: ``output_hidden_states`` gives ``n_layers + 1`` tensors;
index 0 is the embedding output, index ``k`` (1 ≤ k ≤ n_layers) the output of
transformer layer ``k`` (1-based; the last one after the final norm). A negative
``hidden_layer`` counts from the end of that tuple, so ``-8`` on a 30-layer model is
index 23: the output of the eighth-to-last transformer layer (layers 23..30 are the last 8).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .base import Conversation, Generation

log = logging.getLogger(__name__)

__all__ = ["Branch", "BranchResult", "Job", "JobResult", "TransformersBackend", "resolve_layer"]

# End-of-turn markers of common chat templates: generation stops at any of them that the
# tokenizer knows as a single token, in addition to the model's own eos ids.
_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|end_of_text|>")


@dataclass
class Branch:
    """One continuation of a job's prompt: greedy (``temperature == 0``) or sampled."""

    max_new_tokens: int
    temperature: float = 0.0
    seed: int | None = None  # seeds this branch's own torch.Generator (sampling only)
    top_logprobs: int = 0
    entropy: bool = True  # record the next-token entropy at each step (costs a pass over the vocabulary)


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


def _check_job(j: int, job: Job) -> None:
    if not job.prompt_ids:
        raise ValueError(f"job {j}: empty prompt")
    for b in job.branches:
        if b.max_new_tokens < 1:
            raise ValueError(f"job {j}: max_new_tokens must be ≥ 1, got {b.max_new_tokens}")


def resolve_layer(hidden_layer: int, n_layers: int) -> int:
    """Absolute index into ``output_hidden_states`` (``n_layers + 1`` entries, 0 = embeddings)."""
    n = n_layers + 1
    idx = hidden_layer if hidden_layer >= 0 else n + hidden_layer
    if not 0 <= idx < n:
        raise ValueError(f"hidden_layer {hidden_layer} is out of range for a model with {n_layers} layers ({n} hidden states)")
    return idx


def _pick_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    except KeyError:
        raise ValueError(f"inference.dtype {dtype!r} is not one of auto, float32, bfloat16, float16") from None


class TransformersBackend:
    """A local causal LM (a from_pretrained directory) behind the :class:`ChatBackend` interface.

    Args:
        model_dir: directory written by ``uqroute.models.fetch_model`` (or any from_pretrained dir).
        dtype: ``auto`` (float32 on CPU, bfloat16 on CUDA), ``float32``, ``bfloat16`` or ``float16``.
        batch_size: prompts per batch (rows decoded together are prompts × branches).
        device: ``cpu``, ``cuda``, ... (None = CUDA when available).
        attn_implementation: passed to ``from_pretrained`` (None = library default, sdpa).
        max_batch_tokens: cap on padded prompt tokens per prefill batch (bounds memory for long prompts).
        max_batch_rows: most continuation rows (branches) decoded together in the decoding pool.
        pack_weights: on a CPU, prepack the linear layers' weights for oneDNN (:mod:`.packing`;
            1.5× faster decoding steps here); no effect on other devices.
        progress: show a tqdm bar per call.
    """

    def __init__(
        self,
        model_dir,
        *,
        dtype: str = "auto",
        batch_size: int = 16,
        device: str | None = None,
        attn_implementation: str | None = None,
        max_batch_tokens: int = 8192,
        max_batch_rows: int = 128,
        pack_weights: bool = True,
        progress: bool = True,
        name: str | None = None,
        device_map: str | None = None,
        trust_remote_code: bool = False,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"model directory {model_dir} has no config.json (run rule fetch_model first)")
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        self.name = name or model_dir.name
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = _pick_dtype(dtype, self.device)
        self.batch_size = int(batch_size)
        self.max_batch_tokens = int(max_batch_tokens)
        if max_batch_rows < 1:
            raise ValueError(f"max_batch_rows must be ≥ 1, got {max_batch_rows}")
        self.max_batch_rows = int(max_batch_rows)
        self.min_shared_prefix = 8  # tokens; shorter common prefixes are not worth a separate pass
        self.progress = progress
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
        kw = {"dtype": self.dtype, "trust_remote_code": trust_remote_code}
        if attn_implementation:
            kw["attn_implementation"] = attn_implementation
        if device_map:
            kw["device_map"] = device_map
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, **kw)
        if not device_map:
            self.model.to(self.device)
        self.model.eval()
        self.packed_layers = 0
        if pack_weights and not device_map and str(self.device) == "cpu":
            from .packing import pack_linear_layers

            self.packed_layers = pack_linear_layers(self.model)
            log.info("%s: %d linear layers prepacked for oneDNN", self.name, self.packed_layers)
        self.n_layers = int(self.model.config.num_hidden_layers)
        self.eos_ids = self._eos_ids()
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else min(self.eos_ids))
        self._decode_cache: dict[int, str] = {}
        # running totals (benchmarks, logs): generated tokens, prompt tokens prefilled, forward passes
        self.stats = {"generated_tokens": 0, "prompt_tokens": 0, "prompt_tokens_reused": 0, "forward_passes": 0,
                      "pool_joins": 0}

    # ------------------------------------------------------------ tokenization
    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        for x in [gen_eos, self.tokenizer.eos_token_id]:
            if x is None:
                continue
            ids.update([x] if isinstance(x, int) else list(x))
        vocab = self.tokenizer.get_vocab()
        for t in _END_OF_TURN:
            if t in vocab:
                ids.add(int(vocab[t]))
        if not ids:
            raise ValueError(f"model {self.name}: the tokenizer defines no end-of-sequence token")
        return ids

    def render(self, conversation: Conversation, **template_kwargs) -> str:
        """The conversation as text, with the model's chat template and the generation prompt."""
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(
                list(conversation), tokenize=False, add_generation_prompt=True, **template_kwargs
            )
        # no template (a base model): a plain transcript
        turns = [f"{m['role'].capitalize()}: {m['content']}" for m in conversation]
        return "\n\n".join(turns) + "\n\nAssistant:"

    def encode(self, conversation: Conversation, **template_kwargs) -> list[int]:
        """Prompt token ids of a conversation (chat template applied; no extra special tokens)."""
        text = self.render(conversation, **template_kwargs)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def token_text(self, token_id: int) -> str:
        """One token decoded on its own (cached)."""
        s = self._decode_cache.get(token_id)
        if s is None:
            s = self.tokenizer.decode([token_id], skip_special_tokens=False)
            self._decode_cache[token_id] = s
        return s

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def single_token_ids(self, variants: Sequence[str]) -> list[int]:
        """Ids of those ``variants`` that the tokenizer encodes as exactly one token (deduplicated)."""
        out: list[int] = []
        for v in variants:
            ids = self.tokenizer(v, add_special_tokens=False)["input_ids"]
            if len(ids) == 1 and ids[0] not in out:
                out.append(int(ids[0]))
        return out

    # ------------------------------------------------------------ ChatBackend
    def generate(
        self,
        conversations: Sequence[Conversation],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        n: int = 1,
        seed: int | None = None,
        top_logprobs: int = 0,
    ) -> list[list[Generation]]:
        """:class:`ChatBackend` generation; sampled branch k of conversation i is seeded by ``(seed, i, k)``."""
        from .seeding import branch_seed

        jobs = []
        for i, conv in enumerate(conversations):
            n_run = 1 if temperature == 0 else n
            branches = [
                Branch(max_new_tokens, temperature, branch_seed(seed, str(i), k) if temperature > 0 else None, top_logprobs)
                for k in range(n_run)
            ]
            jobs.append(Job(self.encode(conv), branches))
        results = self.run_jobs(jobs, desc=f"{self.name}: generate")
        out = []
        for res in results:
            gens = [self.to_generation(b, res.n_prompt_tokens) for b in res.branches]
            out.append(gens if len(gens) == n else [gens[0]] * n)
        return out

    def to_generation(self, b: BranchResult, n_prompt_tokens: int) -> Generation:
        return Generation(
            text=self.decode(b.token_ids),
            tokens=[self.token_text(t) for t in b.token_ids],
            token_logprobs=list(b.logprobs),
            token_entropies=list(b.entropies) if b.entropies is not None else None,
            top_logprobs=(
                [{self.token_text(t): lp for t, lp in d.items()} for d in b.top_logprobs] if b.top_logprobs is not None else None
            ),
            finish_reason=b.finish_reason,
            n_prompt_tokens=n_prompt_tokens,
        )

    def close(self) -> None:
        self.model = None
        import gc

        gc.collect()

    # ------------------------------------------------------------ engine
    def _chunks(self, jobs: Sequence[Job], which) -> list[list[int]]:
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

    def run_jobs(self, jobs: Sequence[Job], *, hidden_layer: int | None = None, desc: str | None = None) -> list[JobResult]:
        """Run every job (and the follow-up jobs they spawn); one :class:`JobResult` per job, in input order.

        Continuous batching: prefill chunks of jobs are admitted into one decoding pool whenever
        their continuation rows fit under ``max_batch_rows``, so rows that finish early are
        replaced by new work instead of leaving the batch to decode a few long tails alone.
        """
        from tqdm.auto import tqdm

        jobs = list(jobs)
        for j, job in enumerate(jobs):
            _check_job(j, job)
        layer = resolve_layer(hidden_layer, self.n_layers) if hidden_layer is not None else None
        if layer is None and any(j.want_hidden for j in jobs):
            raise ValueError("jobs ask for hidden states but no hidden_layer was given")
        n_input = len(jobs)
        results = [JobResult(branches=[None] * len(j.branches), n_prompt_tokens=len(j.prompt_ids)) for j in jobs]
        left = [len(j.branches) for j in jobs]  # unfinished branches per job
        pending = deque(self._chunks(jobs, range(n_input)))
        follow: list[int] = []  # follow-up jobs waiting to be chunked
        snaps: dict[int, tuple] = {}  # job -> (prefix source, its tokens) of its parent's first branch
        parent_snap: dict[int, _Src] = {}  # job -> KV snapshot of its finished first branch
        bar = tqdm(total=n_input, desc=desc or self.name, unit="prompt", disable=not self.progress, leave=False)
        pool = _Pool()

        def done(i: int) -> None:
            bar.update(1)
            job = jobs[i]
            if job.follow_up is None:
                return
            new = list(job.follow_up(results[i]))
            results[i].follow_ups = []
            snap = parent_snap.pop(i, None)
            if snap is not None:  # the parent's first branch: prompt + the generated tokens its cache holds
                snap = (snap, (job.prompt_ids + results[i].branches[0].token_ids)[: snap.mask.shape[1]])
            for nj in new:
                _check_job(len(jobs), nj)
                if nj.want_hidden and layer is None:
                    raise ValueError("a follow-up job asks for hidden states but no hidden_layer was given")
                if snap is not None:
                    snaps[len(jobs)] = snap
                follow.append(len(jobs))
                jobs.append(nj)
                results.append(JobResult(branches=[None] * len(nj.branches), n_prompt_tokens=len(nj.prompt_ids)))
                results[i].follow_ups.append(results[-1])
                left.append(len(nj.branches))
            bar.total += len(new)

        import torch

        try:
            with torch.inference_mode():
                while True:
                    # follow-ups are chunked once a batch of them is ready, or when nothing else is left
                    if follow and (len(follow) >= self.batch_size or not pending):
                        for ch in reversed(self._chunks(jobs, follow)):
                            pending.appendleft(ch)
                        follow.clear()
                    # admit new work while it fits (the first chunk always: a group is never split)
                    pieces, n_new = [], 0
                    while pending and (
                        (not pool.rows and not pieces)
                        or len(pool.rows) + n_new + sum(len(jobs[i].branches) for i in pending[0]) <= self.max_batch_rows
                    ):
                        chunk = pending.popleft()
                        pieces += self._prefill(chunk, jobs, results, layer, snaps)
                        n_new += sum(len(jobs[i].branches) for i in chunk)
                        for i in chunk:
                            snaps.pop(i, None)
                            if not jobs[i].branches:
                                done(i)
                    if pieces:
                        pool = self._merge(pool, pieces)
                    if not pool.rows:
                        if pending or follow:
                            continue
                        break
                    for row in self._step(pool):
                        if row.snapshot is not None:
                            parent_snap[row.job], row.snapshot = row.snapshot, None
                        results[row.job].branches[row.branch] = row.result()
                        left[row.job] -= 1
                        if left[row.job] == 0:
                            done(row.job)
        finally:
            bar.close()
        return results[:n_input]

    # -- prefill: chunk prefix (once) -> group prefixes (once per group) -> each prompt's own suffix
    def _prefill(self, chunk: list[int], jobs: Sequence[Job], results: list[JobResult], layer: int | None,
                 snaps: dict | None = None) -> list[_Piece]:

        dev = self._dev()
        prompts = [jobs[i].prompt_ids for i in chunk]
        todo = self._from_snapshots(chunk, prompts, snaps or {})
        if todo is None:
            todo = self._prefix_levels(chunk, prompts, jobs, dev)
        # level C: each prompt's own remaining tokens, in buckets of similar length (little padding)
        pieces = []
        for bucket in _buckets(todo, lambda t: len(prompts[t[0]]) - t[3]):
            by_src: dict = {}
            for t in bucket:
                by_src.setdefault(id(t[1]), []).append(t)
            for part in by_src.values():
                src = part[0][1]
                out_src, out = self._extend(src, [t[2] for t in part], [prompts[t[0]][t[3]:] for t in part],
                                            want_hidden=layer is not None and any(jobs[chunk[t[0]]].want_hidden for t in part))
                pieces += self._finish_prefill(out_src, out, [chunk[t[0]] for t in part], jobs, results, layer)
        return [p for p in pieces if p.rows]

    def _prefix_levels(self, chunk, prompts, jobs, dev) -> list[tuple]:
        """Levels A and B of the prefill; returns (chunk position, source, source row, tokens covered) per prompt."""
        import torch

        shortest = min(map(len, prompts))
        n0 = _common_prefix_len(prompts) if len(chunk) > 1 else 0
        n0 = min(n0, shortest - 1)  # every prompt keeps ≥ 1 own token
        if n0 < self.min_shared_prefix:
            n0 = 0
        # level A: the prefix every prompt of the chunk shares (system prompt, instructions), one row
        src_a = None
        if n0:
            out = self._forward(torch.tensor([prompts[0][:n0]], device=dev))
            src_a = _Src(out.past_key_values, torch.ones((1, n0), dtype=torch.long, device=dev),
                         torch.tensor([n0 - 1], device=dev))
            self.stats["prompt_tokens"] += n0
        # level B: the longer prefix shared inside each group (a query's prompt before its different endings)
        groups: dict = {}
        for c, i in enumerate(chunk):
            if jobs[i].group is not None:
                groups.setdefault(jobs[i].group, []).append(c)
        g_len = {}
        for key, members in groups.items():
            if len(members) > 1:
                gl = min(_common_prefix_len([prompts[c] for c in members]), min(len(prompts[c]) for c in members) - 1)
                if gl - n0 >= self.min_shared_prefix:
                    g_len[key] = gl
        src_b, b_row = None, {}
        if g_len:
            keys = list(g_len)
            b_row = {k: r for r, k in enumerate(keys)}
            segs = [prompts[groups[k][0]][n0:g_len[k]] for k in keys]
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
            p = min(min(_common_prefix_len([prompts[c], toks]) for c in members), min(len(prompts[c]) for c in members) - 1)
            if p < self.min_shared_prefix:
                return None
            srcs.append(_truncate_src(src, p))
            cover.append(p)
        stacked = _stack_srcs(srcs)
        todo = []
        for r, members in enumerate(units.values()):
            todo += [(c, stacked, r, cover[r]) for c in members]
        self.stats["prompt_tokens_reused"] += sum(
            cover[r] * len(m) for r, m in enumerate(units.values()))
        return todo

    def _extend(self, src: _Src | None, rows: list[int], segs: list[list[int]], want_hidden: bool = False):
        """Prefill token segments ``segs`` after rows ``rows`` of ``src`` (None: from scratch), left-padded.

        Returns the extended source (cache, mask, last positions) and the model output.
        """
        import torch

        dev = self._dev()
        T = max(map(len, segs))
        ids = torch.full((len(segs), T), self.pad_id, dtype=torch.long)
        smask = torch.zeros((len(segs), T), dtype=torch.long)
        for r, s in enumerate(segs):
            ids[r, T - len(s):] = torch.tensor(s)
            smask[r, T - len(s):] = 1
        smask = smask.to(dev)
        if src is None:
            cache, mask, start = None, smask, torch.zeros(len(segs), dtype=torch.long, device=dev)
        else:
            idx = torch.tensor(rows, device=dev)
            cache = _gather_cache(src.cache, idx)
            mask = torch.cat([src.mask.index_select(0, idx), smask], dim=-1)
            start = src.pos.index_select(0, idx) + 1
        # positions continue after the source; padding sits between source and segment, masked out
        pos = (start[:, None] + smask.cumsum(-1) - 1).clamp(min=0)
        self.stats["prompt_tokens"] += sum(map(len, segs))
        out = self._forward(ids.to(dev), attention_mask=mask, position_ids=pos, past_key_values=cache,
                            output_hidden_states=want_hidden)
        return _Src(out.past_key_values, mask, pos[:, -1]), out

    def _finish_prefill(self, src: _Src, out, job_ids: list[int], jobs, results, layer) -> list[_Piece]:
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
        rows = [_Row(i, k, b, keep_cache=k == 0 and jobs[i].follow_up is not None)
                for i in job_ids for k, b in enumerate(jobs[i].branches)]
        return [_Piece(_gather_cache(src.cache, idx), src.mask.index_select(0, idx), src.pos.index_select(0, idx),
                       last.index_select(0, idx), rows)]

    def _merge(self, pool: _Pool, pieces: list[_Piece]) -> _Pool:
        """Add new pieces' rows to the pool's preallocated buffers (in place; a fresh pool on the first)."""
        import torch
        import torch.nn.functional as F

        if not pool.rows:
            first, pieces = pieces[0], pieces[1:]
            cls = _buffered_layer_class()
            _check_layers(first.cache, first.mask.shape[1], self.name)
            layers = _layers(first.cache)
            extra = max(r.spec.max_new_tokens for r in first.rows)
            for i, lay in enumerate(layers):
                layers[i] = cls(lay.keys, lay.values, self.max_batch_rows, right=extra + 64, left=64)
            pool = _Pool(first.cache, first.mask, first.pos, first.logits, list(first.rows))
        layers = _layers(pool.cache)
        for p in pieces:
            self.stats["pool_joins"] += 1
            _check_layers(p.cache, p.mask.shape[1], self.name)
            L, length = pool.mask.shape[1], p.mask.shape[1]
            if length > L:
                for lay in layers:
                    lay.pad_left(length - L)
                pool.mask = F.pad(pool.mask, (length - L, 0))
                L = length
            for lay, new in zip(layers, _layers(p.cache)):
                lay.append_rows(new.keys, new.values)
            pool.mask = torch.cat([pool.mask, F.pad(p.mask, (L - length, 0))])
            pool.pos = torch.cat([pool.pos, p.pos])
            pool.logits = torch.cat([pool.logits, p.logits])
            pool.rows += p.rows
        extra = max(r.spec.max_new_tokens - len(r.toks) for r in pool.rows)
        _check_layers(pool.cache, pool.mask.shape[1] + extra, self.name)
        for lay in layers:
            lay.reserve(len(pool.rows), extra)
        return pool

    # -- decoding
    def _step(self, pool: _Pool) -> list[_Row]:
        """Choose every row's next token from ``pool.logits``; drop finished rows; run one forward step.

        Returns the rows that finished.
        """
        import torch

        dev = pool.logits.device
        rows = pool.rows
        logits = pool.logits
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
        chosen_lp = logp.gather(1, chosen[:, None])[:, 0]
        is_eos = torch.isin(chosen, self._eos_tensor(dev))
        max_k = max(row.spec.top_logprobs for row in rows)
        if max_k:
            top_v, top_i = logp.topk(max_k, dim=-1)
            top_v, top_i = top_v.cpu().tolist(), top_i.cpu().tolist()
        c_l, lp_l, eos_l = chosen.cpu().tolist(), chosen_lp.cpu().tolist(), is_eos.cpu().tolist()
        done = []
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
            if row.finish:
                done.append(row)
                if row.keep_cache:  # before compaction moves rows
                    row.snapshot = _snapshot(pool, r)
        self.stats["generated_tokens"] += len(rows) - sum(eos_l)
        keep = [r for r, row in enumerate(rows) if not row.finish]
        if not keep:
            pool.rows = []
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
            for lay in _layers(pool.cache):
                lay.move_rows(src, dst, n)
            oidx = torch.tensor(order, device=dev)
            pool.rows = [rows[r] for r in order]
            chosen = chosen.index_select(0, oidx)
            pool.mask = pool.mask.index_select(0, oidx)
            pool.pos = pool.pos.index_select(0, oidx)
            lead = int((pool.mask.cumsum(-1) == 0).sum(-1).min())  # left columns that are padding in every row
            if lead:
                pool.mask = pool.mask[:, lead:]
                for lay in _layers(pool.cache):
                    lay.trim_left(lead)
        pool.mask = torch.cat([pool.mask, torch.ones((len(pool.rows), 1), dtype=pool.mask.dtype, device=dev)], dim=-1)
        pool.pos = pool.pos + 1
        out = self._forward(chosen[:, None], attention_mask=pool.mask, position_ids=pool.pos[:, None],
                            past_key_values=pool.cache)
        pool.logits = out.logits[:, -1, :].float()
        pool.cache = out.past_key_values
        return done

    def _forward(self, input_ids, **kw):
        self.stats["forward_passes"] += 1
        return self.model(input_ids=input_ids, use_cache=True, logits_to_keep=1, **kw)

    def _dev(self):
        return self.model.device if hasattr(self.model, "hf_device_map") else self.device

    def _eos_tensor(self, dev):
        import torch

        t = getattr(self, "_eos_t", None)
        if t is None or t.device != torch.device(dev):
            t = self._eos_t = torch.tensor(sorted(self.eos_ids), device=dev)
        return t


@dataclass
class _Src:
    """A prefilled prefix: its KV cache, attention mask and each row's last position."""

    cache: object
    mask: object
    pos: object


class _Row:
    """One branch being decoded."""

    __slots__ = ("_gen", "branch", "ents", "finish", "job", "keep_cache", "lps", "snapshot", "spec", "toks", "tops")

    def __init__(self, job: int, branch: int, spec: Branch, keep_cache: bool = False):
        self.job, self.branch, self.spec = job, branch, spec
        self.keep_cache = keep_cache  # snapshot this row's KV cache when it finishes (its job has follow-ups)
        self.snapshot: _Src | None = None
        self.toks: list[int] = []
        self.lps: list[float] = []
        self.ents: list[float] = []
        self.tops: list[dict] = []
        self.finish = ""
        self._gen = None

    def generator(self):
        """This branch's own generator, seeded by its ``Branch.seed`` (created on first use)."""
        if self._gen is None:
            import torch

            self._gen = torch.Generator(device="cpu").manual_seed(int(self.spec.seed or 0) % (2**63))
        return self._gen

    def result(self) -> BranchResult:
        return BranchResult(self.toks, self.lps, self.ents if self.spec.entropy else None,
                            self.tops if self.spec.top_logprobs else None, self.finish)


@dataclass
class _Piece:
    """Rows ready to decode: their cache, mask, last positions and pending next-token logits."""

    cache: object
    mask: object
    pos: object
    logits: object
    rows: list


class _Pool(_Piece):
    """The decoding pool (a :class:`_Piece` that grows by merging and shrinks as rows finish)."""

    def __init__(self, cache=None, mask=None, pos=None, logits=None, rows=None):
        super().__init__(cache, mask, pos, logits, rows or [])


def _buckets(items: list, length, slack: float = 0.25, min_pad: int = 8) -> list[list]:
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


def _common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of token sequences."""
    first, n = seqs[0], min(len(x) for x in seqs)
    for i in range(n):
        t = first[i]
        if any(x[i] != t for x in seqs):
            return i
    return n


def _layers(cache):
    layers = getattr(cache, "layers", None)
    if layers is None:
        raise TypeError(f"unsupported KV cache type {type(cache).__name__} (expected a transformers DynamicCache)")
    return layers


_BUFFERED = None


def _buffered_layer_class():
    """:class:`transformers.cache_utils.DynamicLayer` with its keys/values in a preallocated buffer.

    ``DynamicLayer.update`` appends a decoding step with ``torch.cat``, which copies the whole
    cache of every layer at every step: measured on SmolLM2-135M (96 rows, 200 cached positions,
    2-core CPU) that copy was 52 % of a decoding step. Here a step is written in place into
    spare capacity and ``keys``/``values`` are views of the filled part, so a step costs only
    its own new column (the buffer grows by doubling if the capacity runs out).
    """
    global _BUFFERED
    if _BUFFERED is not None:
        return _BUFFERED
    import torch
    from transformers.cache_utils import DynamicLayer

    class BufferedLayer(DynamicLayer):
        """Rows ``[0, r)`` and columns ``[s, s + n)`` of preallocated buffers hold the cache.

        Spare columns on the right take decoding steps in place; spare columns on the left let
        longer rows join by padding the others (zeros, never uninitialised memory: a masked
        0 × NaN would poison attention); spare rows take new rows in place.
        """

        def __init__(self, keys, values, rows_cap: int, right: int, left: int = 0):
            super().__init__()
            self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
            self._r, self._n, self._s = keys.shape[0], keys.shape[-2], left
            cap = (max(rows_cap, self._r), keys.shape[1], left + self._n + right, keys.shape[-1])
            self._k, self._v = keys.new_empty(cap), values.new_empty(cap[:3] + (values.shape[-1],))
            self._k[: self._r, :, left : left + self._n] = keys
            self._v[: self._r, :, left : left + self._n] = values
            self._views()

        def _views(self) -> None:
            r, s, n = self._r, self._s, self._n
            self.keys, self.values = self._k[:r, :, s : s + n], self._v[:r, :, s : s + n]

        def _realloc(self, rows_cap: int, left: int, right: int) -> None:
            r, s, n = self._r, self._s, self._n
            cap = (max(rows_cap, r), self._k.shape[1], left + n + right, self._k.shape[-1])
            k, v = self._k.new_empty(cap), self._v.new_empty(cap[:3] + (self._v.shape[-1],))
            k[:r, :, left : left + n], v[:r, :, left : left + n] = self._k[:r, :, s : s + n], self._v[:r, :, s : s + n]
            self._k, self._v, self._s = k, v, left

        def reserve(self, rows: int, right: int) -> None:
            """Room for ``rows`` rows in all and ``right`` more columns."""
            spare = self._k.shape[2] - self._s - self._n
            if rows > self._k.shape[0] or right > spare:  # grow with headroom: reallocations copy everything
                self._realloc(max(rows, self._k.shape[0]), max(self._s, 64), max(right + 64, spare))
                self._views()

        def update(self, key_states, value_states, *args, **kwargs):
            m = key_states.shape[-2]
            if self._s + self._n + m > self._k.shape[2]:  # out of columns: grow by doubling
                self._realloc(self._k.shape[0], self._s, max(self._n, m))
            e = self._s + self._n
            self._k[: self._r, :, e : e + m] = key_states
            self._v[: self._r, :, e : e + m] = value_states
            self._n += m
            self._views()
            return self.keys, self.values

        def pad_left(self, d: int) -> None:
            """``d`` more (zero) columns on the left of every row."""
            if d > self._s:  # headroom for later joins too: reallocations copy everything
                self._realloc(self._k.shape[0], 2 * d + 64, self._k.shape[2] - self._s - self._n)
            self._k[: self._r, :, self._s - d : self._s].zero_()
            self._v[: self._r, :, self._s - d : self._s].zero_()
            self._s -= d
            self._n += d
            self._views()

        def append_rows(self, keys, values) -> None:
            """New rows, right-aligned with the current columns (zeros before them)."""
            m, length = keys.shape[0], keys.shape[-2]
            if length > self._n:
                raise ValueError(f"rows of length {length} cannot join a cache of length {self._n}")
            if self._r + m > self._k.shape[0]:
                self._realloc(2 * (self._r + m), self._s, self._k.shape[2] - self._s - self._n)
            r, s, n = self._r, self._s, self._n
            self._k[r : r + m, :, s : s + n - length].zero_()
            self._v[r : r + m, :, s : s + n - length].zero_()
            self._k[r : r + m, :, s + n - length : s + n] = keys
            self._v[r : r + m, :, s + n - length : s + n] = values
            self._r += m
            self._views()

        def move_rows(self, src, dst, keep: int) -> None:
            """Copy rows ``src`` onto rows ``dst`` (filling holes), then keep the first ``keep`` rows."""
            s, n = self._s, self._n
            if len(src):
                self._k[dst, :, s : s + n] = self._k[src, :, s : s + n]
                self._v[dst, :, s : s + n] = self._v[src, :, s : s + n]
            self._r = keep
            self._views()

        def trim_left(self, d: int) -> None:
            self._s += d
            self._n -= d
            self._views()

    del torch
    _BUFFERED = BufferedLayer
    return BufferedLayer


def _check_layers(cache, length: int, model: str) -> None:
    """The decoding pool handles full-attention KV layers, and sliding-window ones that never slide."""
    from transformers.cache_utils import DynamicLayer

    for i, layer in enumerate(_layers(cache)):
        if not isinstance(layer, DynamicLayer) or layer.keys is None:
            raise TypeError(
                f"model {model}: KV-cache layer {i} is a {type(layer).__name__}; the transformers backend decodes "
                "models whose cache layers are transformers DynamicLayers (full attention)"
            )
        window = getattr(layer, "sliding_window", None)
        if getattr(layer, "is_sliding", False) and window is not None and length > int(window) - 1:
            raise ValueError(
                f"model {model}: layer {i} uses sliding-window attention (window {window}) and this batch needs "
                f"{length} positions; prompts + budgets beyond the window are not supported"
            )


def _plain_layer(keys, values):
    from transformers.cache_utils import DynamicLayer

    lay = DynamicLayer()
    lay.dtype, lay.device, lay.is_initialized = keys.dtype, keys.device, True
    lay.keys, lay.values = keys, values
    return lay


def _snapshot(pool, r: int) -> _Src:
    """Row ``r`` of the pool as a one-row prefix source: its cached (unmasked) positions, contiguous."""
    import copy

    import torch

    cols = pool.mask[r].nonzero()[:, 0]
    new = copy.copy(pool.cache)
    new.layers = [_plain_layer(lay.keys[r : r + 1].index_select(2, cols), lay.values[r : r + 1].index_select(2, cols))
                  for lay in _layers(pool.cache)]
    n = int(cols.numel())
    return _Src(new, torch.ones((1, n), dtype=pool.mask.dtype, device=pool.mask.device),
                torch.tensor([n - 1], device=pool.pos.device))


def _truncate_src(src: _Src, n: int) -> _Src:
    """The first ``n`` positions of a one-row (unpadded) prefix source."""
    import copy

    new = copy.copy(src.cache)
    new.layers = [_plain_layer(lay.keys[:, :, :n], lay.values[:, :, :n]) for lay in _layers(src.cache)]
    return _Src(new, src.mask[:, :n], src.pos.new_full((1,), n - 1))


def _stack_srcs(srcs: list[_Src]) -> _Src:
    """Prefix sources stacked into one, each row left-padded (masked zeros) to the longest."""
    import copy

    import torch

    L = max(s.mask.shape[1] for s in srcs)
    per_layer = zip(*[_layers(s.cache) for s in srcs])
    new = copy.copy(srcs[0].cache)
    new.layers = []

    def pad(x):  # left-pad the position axis with zeros (finite: masked 0 × NaN would poison attention)
        return torch.nn.functional.pad(x, (0, 0, L - x.shape[-2], 0))

    for lays in per_layer:
        new.layers.append(_plain_layer(torch.cat([pad(x.keys) for x in lays]), torch.cat([pad(x.values) for x in lays])))
    mask = torch.cat([torch.cat([s.mask.new_zeros((s.mask.shape[0], L - s.mask.shape[1])), s.mask], dim=-1) for s in srcs])
    return _Src(new, mask, torch.cat([s.pos for s in srcs]))


def _gather_cache(cache, idx):
    """A new cache holding (and repeating) rows ``idx`` of ``cache``; ``cache`` itself is unchanged."""
    import copy

    new = copy.copy(cache)
    new.layers = []
    for layer in _layers(cache):
        lay = copy.copy(layer)
        if getattr(layer, "keys", None) is not None and layer.keys.numel():
            lay.keys, lay.values = layer.keys.index_select(0, idx), layer.values.index_select(0, idx)
        new.layers.append(lay)
    return new

