"""The benchmark scripts keep running: each is run in its quick CPU form and its printed figures are parsed."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "TOKENIZERS_PARALLELISM": "false"}
    p = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout


def test_gpu_check_runs_tiny_on_cpu():
    out = _run("gpu_check.py", "--device", "cpu", "--tiny")
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 9 and cells[1].isdigit():
            rows[cells[0]] = cells
    assert set(rows) == {"naive generate loop", "ours: greedy only", "ours: full SLM stage"}, out
    for name, (_, tokens, secs, rate, passes, ms, floor, peak, _note) in rows.items():
        assert int(tokens) > 0 and int(passes) > 0, name
        for v in (secs, rate, ms, floor, peak):
            assert math.isfinite(float(v)) and float(v) > 0, (name, v)
    # the greedy-only row decodes the same prompts greedily as the naive loop: its token count is the same
    assert rows["ours: greedy only"][1] == rows["naive generate loop"][1]
    figures = dict(re.findall(r"^(?:figure|ratio) (\w+): ([-\d.e+]+)$", out, flags=re.M))
    for key in (
        "weight_gib",
        "bandwidth_gbps",
        "floor_step_ms",
        "floor_tokens_per_s_batch1",
        "ours_greedy_vs_naive",
        "ours_full_vs_naive",
        "naive_step_vs_floor",
        "ours_greedy_pass_vs_floor",
    ):
        assert key in figures, (key, out)
        assert math.isfinite(float(figures[key])) and float(figures[key]) > 0, (key, figures[key])
    # the floor is a floor: no step can read the weights faster than the measured bandwidth allows
    assert float(figures["naive_step_vs_floor"]) > 1
