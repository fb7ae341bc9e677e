#!/usr/bin/env python
"""GPU check of our inference engine: a random ~1B Llama in bf16 vs the naive loop and the bandwidth floor.

Meant for a borrowed GPU machine that has PyTorch (CUDA) and transformers but no vLLM, no
network and nothing downloaded: the model is a randomly initialised Llama-style network
(TinyLlama-1.1B's shape: 22 layers, width 2048, MLP 5632, 32 query / 4 KV heads; about 1B
parameters) in bf16, and the tokenizer a byte-level BPE trained in a second on the prompts
themselves. The weights do not matter for throughput; a random model rarely emits its
end-of-turn token, so every reply runs to its budget and the token counts are the budgets.

In one run, on the same chat-templated prompts (real CommonsenseQA and GSM8K rows from
``data/slices``, which travel with the tree):

1. **naive**: one ``model.generate`` call per query (greedy, batch 1, KV cache);
2. **ours, greedy only**: ``TransformersBackend.run_jobs`` on the same prompts;
3. **ours, full SLM stage**: ``uqroute.inference.run_inference`` (greedy answer with log-probs and
   entropies, hidden states, 5 samples, p(True), verbalization-1s and -2s, parsing, artifacts);
4. **peak GPU memory** of each (``torch.cuda.max_memory_allocated``; on a CPU the process's peak RSS);
5. **the memory-bandwidth floor of a decoding step**: weight bytes / device bandwidth, the
   bandwidth measured with a large device-to-device copy (bytes read + bytes written / time).
   At batch 1 no decoder can take a step faster than reading every weight once.

Prints a table and ``ratio <name>: <value>`` lines. Run from the repository root::

    python benchmarks/gpu_check.py                      # on a GPU (≤ 8 minutes on an H100)
    python benchmarks/gpu_check.py --device cpu --tiny  # seconds: a 2-layer model, a few queries

Figures from a GPU are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

#: TinyLlama-1.1B's shape (vocabulary: that of the tokenizer trained here)
SHAPE_1B = dict(
    hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4
)
SHAPE_TINY = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
)
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def load_frames(n_csqa: int, n_gsm8k: int):
    import polars as pl

    from uqroute.data import load_rows

    kw = dict(seed=0, source="slices", slices_dir=str(REPO / "data" / "slices"))
    return [
        load_rows(d, eval_limit=n, train_limit=0, **kw).filter(pl.col("role") == "eval")
        for d, n in (("commonsenseqa", n_csqa), ("gsm8k", n_gsm8k))
    ]


def make_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer trained on ``texts``, with a ChatML template (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None, unk_token=None
    )
    fast.chat_template = CHAT_TEMPLATE
    # True / False as single tokens, as p(True) needs
    fast.add_tokens(
        [t for t in ("True", " True", "False", " False") if len(fast(t, add_special_tokens=False)["input_ids"]) != 1]
    )
    return fast


def build_model(model_dir: Path, tokenizer, shape: dict, device: str, dtype):
    """A randomly initialised Llama in ``dtype`` on ``device``, saved (with the tokenizer) to ``model_dir``."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    conf = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        **shape,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(conf).to(dtype).eval()
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return model


def bandwidth(device: str, gib: float) -> float:
    """Device memory bandwidth in bytes/s: a copy of ``gib`` GiB reads and writes it once (best of 5)."""
    import torch

    n = int(gib * 2**30)
    src = torch.empty(n, dtype=torch.uint8, device=device)
    src.fill_(1)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(6):
        sync(device)
        t0 = time.perf_counter()
        dst.copy_(src)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    del src, dst
    return 2 * n / best


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float:
    """Peak device memory since the last reset (GPU), or the process's peak resident memory (CPU)."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def count_new(ids, eos) -> int:
    n = 0
    for t in ids:
        if t in eos:
            break
        n += 1
    return n


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="a 2-layer model and a few queries (a CPU check in seconds)")
    ap.add_argument("--n-csqa", type=int, default=None, help="CommonsenseQA queries (default 48; tiny 2)")
    ap.add_argument("--n-gsm8k", type=int, default=None, help="GSM8K queries (default 16; tiny 1)")
    ap.add_argument("--mcq-tokens", type=int, default=None, help="greedy MCQ budget (default 16; tiny 4)")
    ap.add_argument("--math-tokens", type=int, default=None, help="greedy math budget (default 128; tiny 8)")
    ap.add_argument("--max-batch-rows", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=None, help="tokenizer vocabulary to train (default 8192; tiny 512)")
    args = ap.parse_args(argv)
    tiny = args.tiny
    n_csqa = args.n_csqa if args.n_csqa is not None else (2 if tiny else 48)
    n_gsm8k = args.n_gsm8k if args.n_gsm8k is not None else (1 if tiny else 16)
    math_tokens = args.math_tokens or (8 if tiny else 128)
    vocab = args.vocab or (512 if tiny else 8192)
    mcq_tokens = args.mcq_tokens or (4 if tiny else 16)

    import torch

    from uqroute.inference import run as run_mod
    from uqroute.inference.jobs import Branch, Job
    from uqroute.inference.prompts import answer_conversation
    from uqroute.inference.transformers_backend import TransformersBackend

    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --device cpu (and --tiny for a quick check)")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="uqroute-gpu-check-"))
    try:
        frames = load_frames(n_csqa, n_gsm8k)
        queries = [r for f in frames for r in f.iter_rows(named=True)]
        tok = make_tokenizer([r["prompt"] for r in queries] + [r["question"] for r in queries], vocab)
        model_dir = work / "model"
        model = build_model(model_dir, tok, SHAPE_TINY if tiny else SHAPE_1B, device, dtype)
        n_params = sum(p.numel() for p in model.parameters())
        weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        bw = bandwidth(device, 0.05 if tiny else 2.0)
        floor_step = weight_bytes / bw
        prompt_ids = [
            list(
                tok.apply_chat_template(
                    answer_conversation(r["prompt"]), tokenize=True, add_generation_prompt=True, return_dict=False
                )
            )
            for r in queries
        ]
        budgets = [math_tokens if r["task_type"] == "FF" else mcq_tokens for r in queries]
        eos = {tok.eos_token_id}
        print(
            f"device {device} ({torch.cuda.get_device_name() if device.startswith('cuda') else 'cpu'}); model: random "
            f"Llama, {n_params / 1e9:.3f}B parameters, {weight_bytes / 2**30:.2f} GiB in {str(dtype).split('.')[-1]}; "
            f"vocabulary {len(tok)}; {len(queries)} prompts ({n_csqa} commonsenseqa, {n_gsm8k} gsm8k), "
            f"mean prompt {sum(map(len, prompt_ids)) / len(prompt_ids):.0f} tokens; budgets MCQ {mcq_tokens} / "
            f"math {math_tokens}",
            flush=True,
        )
        print(
            f"bandwidth {bw / 1e9:.1f} GB/s; floor of one decoding step (weights read once) {floor_step * 1e3:.3f} ms",
            flush=True,
        )
        rows = []  # (name, tokens, seconds, decoding steps or None, peak GiB, note)

        # ---- naive generate loop (batch 1)
        reset_peak(device)
        with torch.inference_mode():
            x = torch.tensor([prompt_ids[0]], device=device)
            model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=2, do_sample=False)  # warm-up
            sync(device)
            t0, tokens, steps = time.perf_counter(), 0, 0
            naive_ids = []
            for ids, m in zip(prompt_ids, budgets):
                x = torch.tensor([ids], device=device)
                y = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=m, do_sample=False)
                out = y[0, len(ids) :].tolist()
                naive_ids.append(out[: count_new(out, eos)])
                tokens += len(naive_ids[-1])
                steps += len(out)
            sync(device)
        rows.append(("naive generate loop", tokens, time.perf_counter() - t0, steps, peak_gib(device), "batch 1"))
        print(f"naive: {tokens} tokens in {rows[-1][2]:.1f}s", flush=True)
        del model, x, y
        reset_peak(device)

        # ---- ours, greedy only
        be = TransformersBackend(
            model_dir,
            batch_size=16,
            max_batch_rows=args.max_batch_rows,
            device=device,
            progress=False,
            pack_weights=False,
            name="random-llama",
        )
        jobs = [Job(ids, [Branch(m)]) for ids, m in zip(prompt_ids, budgets)]
        be.run_jobs(jobs[:2])  # warm-up
        reset_peak(device)
        passes0 = be.stats["forward_passes"]
        sync(device)
        t0 = time.perf_counter()
        res = be.run_jobs(jobs)
        sync(device)
        secs = time.perf_counter() - t0
        ours_ids = [r.branches[0].token_ids[: count_new(r.branches[0].token_ids, eos)] for r in res]
        same = sum(a == b for a, b in zip(ours_ids, naive_ids))
        rows.append(
            (
                "ours: greedy only",
                sum(map(len, ours_ids)),
                secs,
                be.stats["forward_passes"] - passes0,
                peak_gib(device),
                f"log-probs + entropies; identical to naive: {same}/{len(jobs)}",
            )
        )
        print(f"ours greedy: {rows[-1][1]} tokens in {secs:.1f}s", flush=True)
        be.close()
        del be
        reset_peak(device)

        # ---- ours, the full SLM stage
        cfg = {
            "batch_size": 16,
            "max_batch_rows": args.max_batch_rows,
            "pack_weights": False,
            "max_new_tokens": {"MCQ": mcq_tokens, "TF": 8, "FF": 64, "math": math_tokens},
            "num_samples": 5,
            "sample_temperature": 1.0,
            "sample_max_new_tokens": 32,
            "verbal_max_new_tokens": 24,
            "hidden_layer": -1 if tiny else -8,
            "shard_size": 1024,
        }
        captured = {}
        real_load = run_mod.load_backend

        def load(*a, **k):
            captured["be"] = real_load(*a, **k)
            captured["be"].progress = False
            return captured["be"]

        run_mod.load_backend = load
        spec = {"source": "local", "local_dir": str(model_dir)}
        tokens, secs, passes = 0, 0.0, 0
        try:
            for f in frames:
                d = f["dataset"][0]
                data = work / f"{d}.parquet"
                f.write_parquet(data)
                sync(device)
                t0 = time.perf_counter()
                run_mod.run_inference(
                    "random-llama",
                    spec,
                    str(model_dir),
                    str(data),
                    str(work / f"gen-{d}.parquet"),
                    str(work / f"gen-{d}.hidden.safetensors"),
                    "slm",
                    cfg,
                    0,
                )
                sync(device)
                secs += time.perf_counter() - t0
                tokens += captured["be"].stats["generated_tokens"]
                passes += captured["be"].stats["forward_passes"]
        finally:
            run_mod.load_backend = real_load
        rows.append(
            (
                "ours: full SLM stage",
                tokens,
                secs,
                passes,
                peak_gib(device),
                "greedy + 5 samples + verbal-1s + p(True) + verbal-2s + hidden states + artifacts; incl. model load",
            )
        )
        print(f"full stage: {tokens} tokens in {secs:.1f}s", flush=True)

        print()
        print(
            "| run | generated tokens | seconds | tokens/s | forward passes | ms / pass | × floor | peak GiB | notes |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for name, tok_n, s, steps, peak, note in rows:
            ms = 1e3 * s / steps
            print(
                f"| {name} | {tok_n} | {s:.2f} | {tok_n / s:.1f} | {steps} | {ms:.3f} | {ms / (floor_step * 1e3):.1f} | "
                f"{peak:.2f} | {note} |"
            )
        rate = {name: tok_n / s for name, tok_n, s, *_ in rows}
        naive = rate["naive generate loop"]
        print()
        print(f"figure weight_gib: {weight_bytes / 2**30:.4f}")
        print(f"figure bandwidth_gbps: {bw / 1e9:.2f}")
        print(f"figure floor_step_ms: {floor_step * 1e3:.4f}")
        print(f"figure floor_tokens_per_s_batch1: {1 / floor_step:.1f}")
        print(f"ratio ours_greedy_vs_naive: {rate['ours: greedy only'] / naive:.3f}")
        print(f"ratio ours_full_vs_naive: {rate['ours: full SLM stage'] / naive:.3f}")
        print(f"ratio naive_step_vs_floor: {(rows[0][2] / rows[0][3]) / floor_step:.3f}")
        print(f"ratio ours_greedy_pass_vs_floor: {(rows[1][2] / rows[1][3]) / floor_step:.3f}")
        print(f"ratio ours_greedy_vs_floor_batch1_rate: {rate['ours: greedy only'] * floor_step:.3f}")
        print(f"total {time.perf_counter() - t_start:.1f}s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
