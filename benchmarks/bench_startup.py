#!/usr/bin/env python
"""Benchmark of the workflow's start-up: `snakemake -n --configfile config/paper.yaml` (the paper's DAG,
config validation and the start-up checks included), `snakemake --version` (Snakemake and its plugins
alone), and the start-up checks in a fresh interpreter; prints seconds (median of --repeat runs), the
machine's load and, with --baseline (a checkout of another commit), the ratios baseline / this tree.

    python benchmarks/bench_startup.py [--repeat 3] [--baseline /path/to/old/checkout] [--snakemake BIN]

The paper's config is validated only: nothing is downloaded. `--snakemake` picks the snakemake
executable (e.g. that of a venv where the SLURM plugin is gated, docs/slurm.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHECKS = {
    # the start-up checks of this tree (uqroute.preflight) and of trees before it (uqroute.settings.check_config)
    "preflight": "from uqroute import preflight, settings; c = settings.validate(settings.load_yaml('config/paper.yaml')); "
    "preflight.check(c)",
    "settings": "from uqroute import settings; c = settings.validate(settings.load_yaml('config/paper.yaml')); "
    "settings.check_config(c)",
}


def timed(cmd: list[str], cwd: Path, repeat: int, env: dict | None = None) -> tuple[float, list[float]]:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
        runs.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} (in {cwd}) failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return statistics.median(runs), runs


def measure(tree: Path, snakemake: str, repeat: int) -> dict[str, tuple[float, list[float]]]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    check = CHECKS["preflight"] if (tree / "src" / "uqroute" / "preflight.py").is_file() else CHECKS["settings"]
    return {
        "snakemake -n --configfile config/paper.yaml": timed(
            [snakemake, "-n", "--configfile", "config/paper.yaml"], tree, repeat, env
        ),
        "snakemake --version": timed([snakemake, "--version"], tree, repeat, env),
        "start-up checks, fresh interpreter": timed([sys.executable, "-c", check], tree, repeat, env),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", type=Path, help="a checkout of another commit to compare with")
    ap.add_argument("--snakemake", default=str(Path(sys.executable).with_name("snakemake")))
    args = ap.parse_args()

    print(f"cores: {os.cpu_count()}, load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ours = measure(REPO, args.snakemake, args.repeat)
    base = measure(args.baseline.resolve(), args.snakemake, args.repeat) if args.baseline else None
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"\n| what | this tree (s, median of {args.repeat}) | runs |"
        + (" baseline (s) | runs | baseline / this |" if base else "")
    )
    print("|---|---|---|" + ("---|---|---|" if base else ""))
    for what, (median, runs) in ours.items():
        row = f"| {what} | {median:.2f} | {', '.join(f'{r:.1f}' for r in runs)} |"
        if base:
            bmed, bruns = base[what]
            row += f" {bmed:.2f} | {', '.join(f'{r:.1f}' for r in bruns)} | {bmed / median:.2f}× |"
        print(row)


if __name__ == "__main__":
    main()
