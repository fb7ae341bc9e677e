"""Cost of the leak-free proxy probes (rule ``proxy_probe``, docs/routing.md "Leak-free proxy probes").

The proxy study scores source S of target T with an OOD probe trained without S and without T,
one probe per unordered pair of datasets: N·(N−1)/2 per SLM (105 for the paper's 15 datasets),
beside the N leave-one-dataset-out probes of rule ``probe``. This script times one pair probe and
one leave-one-dataset-out probe with the paper's settings (hidden sizes 256/128/64, 20 epochs,
batch 32, lr 1e-4) on synthetic hidden states of the paper's shape and prints the per-probe
times (the fastest of ``--repeat``, after a warm-up fit), their ratio and the projected totals for the grid. Hidden states are random: training
time does not depend on their values.

    .venv/bin/python benchmarks/bench_proxy_probes.py                      # paper shape (d 4096, 15 × 1500 rows)
    .venv/bin/python benchmarks/bench_proxy_probes.py --dim 576 --rows 110 --datasets 4   # the demo's shape
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from uqroute.probes import fit_probe
from uqroute.settings import defaults


def _time_fit(n_rows: int, dim: int, seed: int) -> tuple[float, float]:
    """(wall s, CPU s) of one probe fit on ``n_rows`` random hidden states."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_rows, dim)).astype(np.float32)
    y = (rng.random(n_rows) < 0.5).astype(np.float64)
    cfg = defaults("probe")
    t0, c0 = time.perf_counter(), time.process_time()
    fit_probe(
        x,
        y,
        hidden_sizes=cfg["hidden_sizes"],
        epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        lr=cfg["ood_lr"],
        seed=seed,
    )
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=int, default=15, help="datasets in the run (paper: 15)")
    ap.add_argument(
        "--rows", type=int, default=1500, help="labelled rows per dataset (paper preset: ~500 eval + 1000 train)"
    )
    ap.add_argument("--dim", type=int, default=4096, help="hidden size (Llama-3.1-8B: 4096)")
    ap.add_argument("--slms", type=int, default=15, help="SLMs in the grid (paper: 15)")
    ap.add_argument("--repeat", type=int, default=1, help="timings per probe kind; the fastest is printed")
    a = ap.parse_args()
    n = a.datasets
    load = os.getloadavg()
    _time_fit(64, a.dim, 2)  # warm-up: torch's one-time set-up is not a probe's cost
    pair = min((_time_fit((n - 2) * a.rows, a.dim, 0) for _ in range(a.repeat)), key=lambda t: t[1])
    lodo = min((_time_fit((n - 1) * a.rows, a.dim, 1) for _ in range(a.repeat)), key=lambda t: t[1])
    pairs = n * (n - 1) // 2
    print(f"shape: {n} datasets × {a.rows} rows, hidden size {a.dim}, probe settings {defaults('probe')}")
    print(f"load average at start (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    print(f"one pair probe (trained on {(n - 2) * a.rows} rows): {pair[0]:.1f} s wall, {pair[1]:.1f} s CPU")
    print(
        f"one leave-one-dataset-out probe (trained on {(n - 1) * a.rows} rows): {lodo[0]:.1f} s wall, {lodo[1]:.1f} s CPU"
        f"  (pair/LODO CPU ratio {pair[1] / lodo[1]:.2f})"
    )
    print(
        f"pair probes per SLM: {pairs} ({pairs / n:.1f}× the {n} LODO probes): {pairs * pair[1] / 60:.1f} CPU-min per SLM"
    )
    print(
        f"grid of {a.slms} SLMs: {a.slms * pairs} pair probes, {a.slms * pairs * pair[1] / 3600:.1f} CPU-hours (jobs are independent)"
    )


if __name__ == "__main__":
    main()
