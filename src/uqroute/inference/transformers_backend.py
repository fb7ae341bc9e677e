"""Local transformers backend: a causal LM behind :class:`~.base.ChatBackend`, decoded by the engine.

This module owns the model side — loading (dtype, device, ``device_map``, oneDNN weight
prepacking on a CPU), the tokenizer and chat templates, end-of-turn tokens, and turning
engine results into :class:`~.base.Generation` objects. Scheduling, prefill and decoding are
the engine's (:mod:`.engine`, :mod:`.prefill`, :mod:`.pool`, :mod:`.kvcache`), which only see
the model's forward function:

* a *job* (:mod:`.jobs`) is one prompt plus any number of *branches* (greedy or sampled
  continuations); the prompt is prefilled **once** and its KV cache copied to every branch,
  so the greedy answer and the m samples of a query share one prefill;
* prefill shares prefixes at three levels (chunk, group, each prompt's own tokens);
* **follow-up jobs** (p(True) and verbalization-2s after the greedy answer) start from the
  parent's own KV cache as soon as it finishes;
* decoding is **continuous batching** over one pool of at most ``max_batch_rows`` rows with
  preallocated KV buffers; each step records the chosen token's log-probability and the
  entropy of the full next-token distribution;
* the prefill also yields the hidden state of a chosen layer at the last prompt token and the
  next-token distribution there;
* sampling uses one ``torch.Generator`` per branch, seeded by the caller (the pipeline seeds
  it from ``(seed, query id, sample index)``), so a query's samples do not depend on which
  other queries share its batch (up to floating-point differences of batched matrix products).

The pool decodes models whose KV-cache layers are transformers ``DynamicLayer``s (full
attention; sliding-window layers while the window is not exceeded). A model whose cache is a
recurrent state (RWKV-7 and other linear-attention models; found by one probing forward step
at load) runs on :class:`.recurrent.RecurrentEngine` instead: the same jobs and results, each
prompt run alone (no shared prefixes), the rows of many jobs decoded in one pool.
flash-linear-attention models on a CPU are loaded with its PyTorch reference ops (:mod:`.fla_cpu`).

Hidden-state layer convention: ``output_hidden_states`` gives ``n_layers + 1`` tensors;
index 0 is the embedding output, index ``k`` (1 ≤ k ≤ n_layers) the output of
transformer layer ``k`` (1-based; the last one after the final norm). A negative
``hidden_layer`` counts from the end of that tuple, so ``-8`` on a 30-layer model is
index 23: the output of the eighth-to-last transformer layer (layers 23..30 are the last 8).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ..parsing import think_prefill
from .base import Conversation, Generation
from .engine import Engine, resolve_layer
from .fla_cpu import LOAD_KWARGS as FLA_CPU_LOAD_KWARGS
from .fla_cpu import install as install_fla_cpu
from .fla_cpu import is_fla_model
from .jobs import Branch, BranchResult, Job, JobResult
from .recurrent import RecurrentEngine, is_recurrent_cache

log = logging.getLogger(__name__)

# Branch, Job, BranchResult, JobResult and resolve_layer are re-exported: their historical home.
__all__ = ["Branch", "BranchResult", "Job", "JobResult", "TransformersBackend", "resolve_layer"]

# End-of-turn markers of common chat templates: generation stops at any of them that the
# tokenizer knows as a single token, in addition to the model's own eos ids.
_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|end_of_text|>")


def _pick_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    except KeyError:
        raise ValueError(f"inference.dtype {dtype!r} is not one of auto, float32, bfloat16, float16") from None


def _load_config(model_dir: Path, trust_remote_code: bool, name: str):
    """The model's config; an architecture that flash-linear-attention registers (RWKV-7) imports it first."""
    import json

    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    except (ValueError, KeyError) as e:
        model_type = json.loads((model_dir / "config.json").read_text()).get("model_type")
        try:
            import fla.models  # noqa: F401  (registers its architectures with transformers' Auto classes)
        except ImportError:
            raise ValueError(
                f"model {name}: transformers does not know the architecture {model_type!r}; RWKV-7 and other "
                "linear-attention models need flash-linear-attention (pip install 'uqroute[rwkv]')"
            ) from e
        return AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)


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
        stop_tokens: texts that end a reply besides the end-of-sequence tokens, each one token of
            the tokenizer (config ``models.<name>.stop_tokens``; RWKV World: ``"\n\n"``).
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
        stop_tokens: Sequence[str] | None = None,
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
        config = _load_config(model_dir, trust_remote_code, self.name)
        on_cpu = not device_map and str(self.device) == "cpu"
        kw = {"dtype": self.dtype, "trust_remote_code": trust_remote_code}
        if attn_implementation:
            kw["attn_implementation"] = attn_implementation
        if device_map:
            kw["device_map"] = device_map
        if on_cpu and is_fla_model(config):
            kw.update(FLA_CPU_LOAD_KWARGS)  # fla's fused norms are Triton kernels (a GPU)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, **kw)
        if not device_map:
            self.model.to(self.device)
        self.model.eval()
        if on_cpu and is_fla_model(self.model):
            install_fla_cpu(self.model)
            log.info(
                "%s: flash-linear-attention model on a CPU: fla's PyTorch reference ops replace its Triton kernels",
                self.name,
            )
        self.packed_layers = 0
        if pack_weights and on_cpu:
            from .packing import pack_linear_layers

            self.packed_layers = pack_linear_layers(self.model)
            log.info("%s: %d linear layers prepacked for oneDNN", self.name, self.packed_layers)
        self.n_layers = int(self.model.config.num_hidden_layers)
        self.eos_ids = self._eos_ids()
        for text in stop_tokens or ():
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(ids) != 1:
                raise ValueError(
                    f"model {self.name}: stop token {text!r} is {len(ids)} tokens of its tokenizer, not one"
                )
            self.eos_ids.add(int(ids[0]))
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else min(self.eos_ids))
        self._decode_cache: dict[int, str] = {}
        # running totals (benchmarks, logs): generated tokens, prompt tokens prefilled, forward passes
        self.stats = {
            "generated_tokens": 0,
            "prompt_tokens": 0,
            "prompt_tokens_reused": 0,
            "forward_passes": 0,
            "pool_joins": 0,
        }
        self.recurrent = self._probe_recurrent()
        # a recurrent state has no positions: its config's max_position_embeddings (fla sets 2048) limits nothing
        self.context_limit = None if self.recurrent else self._context_limit()
        if self.recurrent:
            log.info(
                "%s: recurrent-state cache (%s): jobs run one at a time on the recurrent engine",
                self.name,
                type(self._probe_cache).__name__,
            )
        del self._probe_cache

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

    def render(self, conversation: Conversation, *, thinking: bool = True, **template_kwargs) -> str:
        """The conversation as text, with the model's chat template and the generation prompt.

        ``thinking=False`` (a reasoning model's follow-up turns) asks the template for no reasoning
        (``enable_thinking=False``) and makes sure the prompt ends with an empty think block
        (:func:`uqroute.parsing.think_prefill`), so the reply's first token is the answer even where the template
        ignores the flag.
        """
        if not thinking:
            template_kwargs.setdefault("enable_thinking", False)
        if self.tokenizer.chat_template:
            text = self.tokenizer.apply_chat_template(
                list(conversation), tokenize=False, add_generation_prompt=True, **template_kwargs
            )
        else:  # no template (a base model): a plain transcript
            turns = [f"{m['role'].capitalize()}: {m['content']}" for m in conversation]
            text = "\n\n".join(turns) + "\n\nAssistant:"
        return text if thinking else text + think_prefill(text)

    def encode(self, conversation: Conversation, *, thinking: bool = True, **template_kwargs) -> list[int]:
        """Prompt token ids of a conversation (chat template applied; no extra special tokens)."""
        text = self.render(conversation, thinking=thinking, **template_kwargs)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def text_ids(self, text: str) -> list[int]:
        """Token ids of a plain text (no template, no extra special tokens), e.g. ``</think>`` for budget forcing."""
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
                Branch(
                    max_new_tokens, temperature, branch_seed(seed, str(i), k) if temperature > 0 else None, top_logprobs
                )
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
                [{self.token_text(t): lp for t, lp in d.items()} for d in b.top_logprobs]
                if b.top_logprobs is not None
                else None
            ),
            finish_reason=b.finish_reason,
            n_prompt_tokens=n_prompt_tokens,
        )

    def close(self) -> None:
        self.model = None
        import gc

        gc.collect()

    # ------------------------------------------------------------ engine
    def _context_limit(self) -> int | None:
        """The model's context in tokens: the smallest of ``max_position_embeddings`` (config or text config)
        and the tokenizer's ``model_max_length`` that are set; None when none is."""
        limits = []
        for conf in (self.model.config, getattr(self.model.config, "text_config", None)):
            v = getattr(conf, "max_position_embeddings", None) if conf is not None else None
            if isinstance(v, int) and v > 0:
                limits.append(v)
        m = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(m, int) and 0 < m < 10**9:  # transformers uses 1e30 for "not set"
            limits.append(m)
        return min(limits) if limits else None

    def _probe_recurrent(self) -> bool:
        """One forward step on one token: does the model's cache hold KV layers (the KV engine) or a recurrent state?"""
        import torch

        with torch.inference_mode():
            out = self.model(
                input_ids=torch.tensor([[self.pad_id]], device=self._dev()), use_cache=True, logits_to_keep=1
            )
        self._probe_cache = out.past_key_values
        return is_recurrent_cache(out.past_key_values)

    def engine(self) -> Engine | RecurrentEngine:
        """The engine over this model, with this backend's current settings: the continuous-batching KV
        engine, or the :class:`.recurrent.RecurrentEngine` for a model whose cache is a recurrent state."""
        if self.recurrent:
            return RecurrentEngine(
                self._forward,
                device=self._dev(),
                eos_ids=self.eos_ids,
                n_layers=self.n_layers,
                stats=self.stats,
                name=self.name,
                progress=self.progress,
                context=self.context_limit,
                max_batch_rows=self.max_batch_rows,
            )
        return Engine(
            self._forward,
            device=self._dev(),
            pad_id=self.pad_id,
            eos_ids=self.eos_ids,
            n_layers=self.n_layers,
            batch_size=self.batch_size,
            max_batch_tokens=self.max_batch_tokens,
            max_batch_rows=self.max_batch_rows,
            min_shared_prefix=self.min_shared_prefix,
            stats=self.stats,
            name=self.name,
            progress=self.progress,
            context=self.context_limit,
        )

    def run_jobs(
        self, jobs: Sequence[Job], *, hidden_layer: int | None = None, desc: str | None = None
    ) -> list[JobResult]:
        """Run every job (and the follow-up jobs they spawn); one :class:`JobResult` per job, in input order
        (see :meth:`.engine.Engine.run`)."""
        return self.engine().run(jobs, hidden_layer=hidden_layer, desc=desc)

    def _forward(self, input_ids, **kw):
        self.stats["forward_passes"] += 1
        return self.model(input_ids=input_ids, use_cache=True, logits_to_keep=1, **kw)

    def _dev(self):
        return self.model.device if hasattr(self.model, "hf_device_map") else self.device
