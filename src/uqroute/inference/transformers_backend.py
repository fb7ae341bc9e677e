"""Local transformers backend: batched generation that extracts everything the UQ methods need.

One decoding engine serves the pipeline, the judge and the benchmarks:

* prompts are rendered with the model's chat template and **sorted by length**, then
  batched with **left padding** (explicit ``position_ids``), so little compute goes to padding;
* a *job* is one prompt plus any number of *branches* (greedy or sampled continuations).
  The prompt is prefilled **once** and its KV cache is copied to every branch, so the
  greedy answer and the m samples of a query share one prefill (prompt-prefix reuse);
* decoding runs a hand-written loop over the KV cache (``DynamicCache``): each step
  records the chosen token's log-probability and the entropy of the full next-token
  distribution; finished rows are **dropped from the batch** (their cache rows removed,
  all-padding columns trimmed) instead of being decoded as padding to the longest;
* the prefill also yields, at no extra forward pass, the hidden state of a chosen layer
  at the last prompt token (the trained-probe input, paper §3.1) and the next-token
  distribution there (p(True), Kadavath et al. 2022);
* sampling uses one ``torch.Generator`` per branch, seeded by the caller (the pipeline
  seeds it from ``(seed, query id, sample index)``), so a query's samples do not depend on
  which other queries share its batch (up to floating-point differences of batched
  matrix products).

Hidden-state layer convention: ``output_hidden_states`` gives ``n_layers + 1`` tensors;
index 0 is the embedding output, index ``k`` (1 ≤ k ≤ n_layers) the output of
transformer layer ``k`` (1-based; the last one after the final norm). A negative
``hidden_layer`` counts from the end of that tuple, so ``-8`` on a 30-layer model is
index 23: the output of the eighth-to-last transformer layer (layers 23..30 are the last 8).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .base import Conversation, Generation

log = logging.getLogger(__name__)

__all__ = ["Branch", "Job", "BranchResult", "JobResult", "TransformersBackend", "resolve_layer"]

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
        self.n_layers = int(self.model.config.num_hidden_layers)
        self.eos_ids = self._eos_ids()
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else min(self.eos_ids))
        self._decode_cache: dict[int, str] = {}
        # running totals (benchmarks, logs): generated tokens, prompt tokens prefilled, forward passes
        self.stats = {"generated_tokens": 0, "prompt_tokens": 0, "forward_passes": 0}

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
    def _batches(self, order: list[int], jobs: Sequence[Job]) -> list[list[int]]:
        """Consecutive (length-sorted) jobs, at most ``batch_size`` each and ``max_batch_tokens`` padded tokens."""
        batches, cur = [], []
        for i in order:
            longest = max([len(jobs[j].prompt_ids) for j in cur] + [len(jobs[i].prompt_ids)])
            if cur and (len(cur) >= self.batch_size or longest * (len(cur) + 1) > self.max_batch_tokens):
                batches.append(cur)
                cur = []
            cur.append(i)
        if cur:
            batches.append(cur)
        return batches

    def run_jobs(self, jobs: Sequence[Job], *, hidden_layer: int | None = None, desc: str | None = None) -> list[JobResult]:
        """Run every job: one prefill per prompt, then all branches decoded together.

        Returns one :class:`JobResult` per job, in the input order.
        """
        from tqdm.auto import tqdm

        for j, job in enumerate(jobs):
            if not job.prompt_ids:
                raise ValueError(f"job {j}: empty prompt")
            for b in job.branches:
                if b.max_new_tokens < 1:
                    raise ValueError(f"job {j}: max_new_tokens must be ≥ 1, got {b.max_new_tokens}")
        layer = resolve_layer(hidden_layer, self.n_layers) if hidden_layer is not None else None
        if layer is None and any(j.want_hidden for j in jobs):
            raise ValueError("jobs ask for hidden states but no hidden_layer was given")
        order = sorted(range(len(jobs)), key=lambda i: (len(jobs[i].prompt_ids), i))
        results: list[JobResult | None] = [None] * len(jobs)
        batches = self._batches(order, jobs)
        bar = tqdm(total=len(jobs), desc=desc or self.name, unit="prompt", disable=not self.progress, leave=False)
        try:
            for batch in batches:
                for i, r in zip(batch, self._run_batch([jobs[i] for i in batch], layer)):
                    results[i] = r
                bar.update(len(batch))
        finally:
            bar.close()
        return results  # type: ignore[return-value]

    def _run_batch(self, jobs: Sequence[Job], layer: int | None) -> list[JobResult]:
        import torch

        dev = self.device if not hasattr(self.model, "hf_device_map") else self.model.device
        lengths = [len(j.prompt_ids) for j in jobs]
        # shared prefix (system prompt, instructions): prefilled once for the batch, then copied
        n0 = _common_prefix_len([j.prompt_ids for j in jobs]) if len(jobs) > 1 else 0
        n0 = min(n0, min(lengths) - 1)  # every row keeps ≥ 1 own token
        if n0 < self.min_shared_prefix:
            n0 = 0
        T = max(lengths) - n0
        ids = torch.full((len(jobs), T), self.pad_id, dtype=torch.long)
        smask = torch.zeros((len(jobs), T), dtype=torch.long)
        for r, job in enumerate(jobs):
            ids[r, T - (len(job.prompt_ids) - n0):] = torch.tensor(job.prompt_ids[n0:])
            smask[r, T - (len(job.prompt_ids) - n0):] = 1
        # positions continue after the shared prefix; padding sits between prefix and suffix, masked out
        pos = (n0 + smask.cumsum(-1) - 1).clamp(min=0)
        mask = torch.cat([torch.ones((len(jobs), n0), dtype=torch.long), smask], dim=-1)
        want_hidden = layer is not None and any(j.want_hidden for j in jobs)
        self.stats["prompt_tokens"] += sum(lengths) - (len(jobs) - 1) * n0
        self.stats["forward_passes"] += 1 + bool(n0)
        with torch.inference_mode():
            cache = None
            if n0:
                pre = self.model(input_ids=torch.tensor([jobs[0].prompt_ids[:n0]], device=dev), use_cache=True, logits_to_keep=1)
                cache = pre.past_key_values
                _select_cache_rows(cache, torch.zeros(len(jobs), dtype=torch.long, device=dev))
                del pre
            out = self.model(
                input_ids=ids.to(dev),
                attention_mask=mask.to(dev),
                position_ids=pos.to(dev),
                past_key_values=cache,
                use_cache=True,
                output_hidden_states=want_hidden,
                logits_to_keep=1,
            )
            last = out.logits[:, -1, :].float()
            results = [JobResult(branches=[], n_prompt_tokens=n) for n in lengths]
            if want_hidden:
                h = out.hidden_states[layer][:, -1, :].float().cpu().numpy()
                for r, job in enumerate(jobs):
                    if job.want_hidden:
                        results[r].hidden = h[r].copy()
            if any(j.next_token_groups for j in jobs):
                probs = torch.softmax(last, dim=-1)
                for r, job in enumerate(jobs):
                    if job.next_token_groups:
                        results[r].group_probs = [float(probs[r, g].sum()) for g in job.next_token_groups]
            row_job = [r for r, job in enumerate(jobs) for _ in job.branches]
            if row_job:
                branches = [b for job in jobs for b in job.branches]
                outs = self._decode(out.past_key_values, last, mask, pos[:, -1], row_job, branches, dev)
                k = 0
                for r, job in enumerate(jobs):
                    results[r].branches = outs[k:k + len(job.branches)]
                    k += len(job.branches)
            del out
        return results

    def _decode(self, cache, last_logits, mask, last_pos, row_job, branches: list[Branch], dev) -> list[BranchResult]:
        """Decode all branches together from the shared prefill cache, dropping rows as they finish."""
        import torch

        idx = torch.tensor(row_job, device=dev)
        _select_cache_rows(cache, idx)
        _preallocate(cache, max(b.max_new_tokens for b in branches))
        logits = last_logits.index_select(0, idx)
        mask = mask.to(dev).index_select(0, idx)
        pos = last_pos.to(dev).index_select(0, idx)
        R = len(branches)
        toks: list[list[int]] = [[] for _ in range(R)]
        lps: list[list[float]] = [[] for _ in range(R)]
        ents: list[list[float]] = [[] for _ in range(R)]
        tops: list[list[dict] | None] = [[] if b.top_logprobs else None for b in branches]
        finish = [""] * R
        gens = [
            torch.Generator(device="cpu").manual_seed(int(b.seed) % (2**63)) if b.temperature > 0 else None for b in branches
        ]
        present = list(range(R))  # branch index of each row of the current batch
        eos = torch.tensor(sorted(self.eos_ids), device=dev)
        max_k = max(b.top_logprobs for b in branches)
        while True:
            logp = torch.log_softmax(logits, dim=-1)
            chosen = logp.argmax(-1)
            need_ent = [row for row, bi in enumerate(present) if branches[bi].entropy and not finish[bi]]
            ent_rows: dict[int, float] = {}
            if need_ent:
                sel = logp.index_select(0, torch.tensor(need_ent, device=logp.device))
                ent_rows = dict(zip(need_ent, (-torch.xlogy(sel.exp(), sel.exp()).sum(-1)).cpu().tolist()))
            samp = [row for row, bi in enumerate(present) if branches[bi].temperature > 0 and not finish[bi]]
            if samp:
                # inverse-CDF sampling, vectorised over rows; one uniform per row from that row's own generator
                ridx = torch.tensor(samp, device=logits.device)
                temps = torch.tensor([branches[present[r]].temperature for r in samp], device=logits.device)
                p = torch.softmax(logits.index_select(0, ridx) / temps[:, None], dim=-1)
                cdf = p.cumsum(-1)
                u = torch.cat([torch.rand(1, generator=gens[present[r]]) for r in samp]).to(cdf.device)
                u = u * cdf[:, -1]
                picked = torch.searchsorted(cdf, u[:, None], side="right").clamp(max=cdf.shape[-1] - 1)[:, 0]
                chosen[ridx] = picked
            chosen_lp = logp.gather(1, chosen[:, None])[:, 0]
            is_eos = torch.isin(chosen, eos)
            if max_k:
                top_v, top_i = logp.topk(max_k, dim=-1)
                top_v, top_i = top_v.cpu().tolist(), top_i.cpu().tolist()
            c_l, lp_l, eos_l = chosen.cpu().tolist(), chosen_lp.cpu().tolist(), is_eos.cpu().tolist()
            for row, bi in enumerate(present):
                if finish[bi]:
                    continue
                if eos_l[row]:
                    finish[bi] = "stop"
                    continue
                toks[bi].append(c_l[row])
                lps[bi].append(lp_l[row])
                if branches[bi].entropy:
                    ents[bi].append(ent_rows[row])
                if tops[bi] is not None:
                    k = branches[bi].top_logprobs
                    tops[bi].append(dict(zip(top_i[row][:k], top_v[row][:k])))
                if len(toks[bi]) >= branches[bi].max_new_tokens:
                    finish[bi] = "length"
            keep = [row for row, bi in enumerate(present) if not finish[bi]]
            if not keep:
                break
            if len(keep) < len(present):  # drop finished rows: no decoding spent on them
                kidx = torch.tensor(keep, device=dev)
                present = [present[r] for r in keep]
                chosen = chosen.index_select(0, kidx)
                mask = mask.index_select(0, kidx)
                pos = pos.index_select(0, kidx)
                _select_cache_rows(cache, kidx)
                # trim left columns that are padding in every remaining row
                lead = int((mask.cumsum(-1) == 0).sum(-1).min())
                if lead:
                    mask = mask[:, lead:]
                    _trim_cache_left(cache, lead)
            mask = torch.cat([mask, torch.ones((len(present), 1), dtype=mask.dtype, device=dev)], dim=-1)
            pos = pos + 1
            out = self.model(
                input_ids=chosen[:, None],
                attention_mask=mask,
                position_ids=pos[:, None],
                past_key_values=cache,
                use_cache=True,
            )
            logits = out.logits[:, -1, :].float()
            cache = out.past_key_values
            self.stats["forward_passes"] += 1
        self.stats["generated_tokens"] += sum(len(t) for t in toks)
        return [
            BranchResult(toks[i], lps[i], ents[i] if branches[i].entropy else None, tops[i], finish[i]) for i in range(R)
        ]


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


def _buffered_layer_class():
    """:class:`transformers.cache_utils.DynamicLayer` with its keys/values in a preallocated buffer.

    ``DynamicLayer.update`` appends a decoding step with ``torch.cat``, which copies the whole
    cache of every layer at every step: measured on SmolLM2-135M (96 rows, 200 cached positions,
    2-core CPU) that copy was 52 % of a decoding step. Here a step is written in place into
    spare capacity and ``keys``/``values`` are views of the filled part, so a step costs only
    its own new column (the buffer grows by doubling if the capacity runs out).
    """
    from transformers.cache_utils import DynamicLayer

    class BufferedLayer(DynamicLayer):
        def __init__(self, layer, capacity: int):
            super().__init__()
            k, v = layer.keys, layer.values
            self.dtype, self.device, self.is_initialized = k.dtype, k.device, True
            self._n = k.shape[-2]
            self._k = k.new_empty((*k.shape[:2], max(capacity, self._n), k.shape[-1]))
            self._v = v.new_empty((*v.shape[:2], max(capacity, self._n), v.shape[-1]))
            self._k[:, :, : self._n] = k
            self._v[:, :, : self._n] = v
            self._views()

        def _views(self) -> None:
            self.keys, self.values = self._k[:, :, : self._n], self._v[:, :, : self._n]

        def update(self, key_states, value_states, *args, **kwargs):
            n, s = self._n, key_states.shape[-2]
            if n + s > self._k.shape[-2]:  # out of capacity: grow by doubling
                cap = max(2 * self._k.shape[-2], n + s)
                k, v = self._k.new_empty((*self._k.shape[:2], cap, self._k.shape[-1])), self._v.new_empty(
                    (*self._v.shape[:2], cap, self._v.shape[-1])
                )
                k[:, :, :n], v[:, :, :n] = self._k[:, :, :n], self._v[:, :, :n]
                self._k, self._v = k, v
            self._k[:, :, n : n + s] = key_states
            self._v[:, :, n : n + s] = value_states
            self._n = n + s
            self._views()
            return self.keys, self.values

        def select_rows(self, idx) -> None:
            self._k, self._v = self._k.index_select(0, idx), self._v.index_select(0, idx)
            self._views()

        def trim_left(self, n: int) -> None:
            self._k, self._v = self._k[:, :, n:], self._v[:, :, n:]
            self._n -= n
            self._views()

    return BufferedLayer


def _preallocate(cache, extra: int) -> None:
    """Give every plain ``DynamicLayer`` of ``cache`` room for ``extra`` more positions, written in place.

    Layers of other types (sliding-window, linear-attention, ...) keep their own ``update``.
    """
    from transformers.cache_utils import DynamicLayer

    cls = _buffered_layer_class()
    layers = _layers(cache)
    for i, layer in enumerate(layers):
        if type(layer) is DynamicLayer and layer.keys is not None and layer.keys.numel():
            layers[i] = cls(layer, layer.keys.shape[-2] + extra)


def _select_cache_rows(cache, idx) -> None:
    """Keep (and repeat) batch rows ``idx`` of every cache layer, in place."""
    for layer in _layers(cache):
        if hasattr(layer, "select_rows"):
            layer.select_rows(idx)
        elif getattr(layer, "keys", None) is not None and layer.keys.numel():
            layer.keys = layer.keys.index_select(0, idx)
            layer.values = layer.values.index_select(0, idx)


def _trim_cache_left(cache, n: int) -> None:
    """Drop the first ``n`` positions of every cache layer (columns that are padding in every row)."""
    for layer in _layers(cache):
        if hasattr(layer, "trim_left"):
            layer.trim_left(n)
        elif getattr(layer, "keys", None) is not None and layer.keys.numel():
            layer.keys = layer.keys[:, :, n:, :]
            layer.values = layer.values[:, :, n:, :]
