"""Declared resources hold what a job uses: a real inference job runs within the `mem_mb` the workflow declares.

The limit is the one the workflow computes for the job (read from `snakemake -n`, so the formula in
workflow/rules/common.smk is what is tested, not a copy of it), set as the child's data-segment limit
(`RLIMIT_DATA`: every private writable mapping counts, the memory-mapped checkpoint included, whether
resident or not; address space only reserved, as torch and glibc do, does not).
benchmarks/mem_inference.py measures the peaks of the demo's jobs (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

CHILD = r"""
import json, resource, sys
a = json.loads(sys.argv[1])
limit = a["limit_mb"] << 20
resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))  # before torch is imported: everything counts
from uqroute.inference import run_inference
run_inference(model=a["model"], spec=a["spec"], model_dir=a["model_dir"], data_path=a["data"], out_path=a["out"],
              hidden_path=a["hidden"], role="slm", cfg=a["cfg"], seed=0, statistics=None)
"""


def declared_mem_mb(workdir: Path, target: str, rule: str) -> int:
    """The mem_mb Snakemake declares for ``rule``'s job making ``target`` with the demo config."""
    proc = subprocess.run(
        [
            str(SNAKEMAKE),
            "-n",
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--configfile",
            str(ROOT / "config" / "config.yaml"),
            "--directory",
            str(workdir),
            target,
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    block = out[out.index(f"rule {rule}:") :]
    return int(re.search(r"resources: .*\bmem_mb=(\d+)", block).group(1))


@pytest.mark.slow
def test_an_slm_inference_job_runs_within_its_declared_memory(tmp_path):
    """The demo's SLM (SmolLM2-135M) on BoolQ, every statistic, in a child limited to the declared mem_mb;
    the same job under a quarter of it fails (so the limit is real)."""
    from uqroute.data import build_dataset
    from uqroute.models import fetch_model
    from uqroute.settings import defaults

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    model = config["slms"][0]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "slices").symlink_to(ROOT / "data" / "slices")
    mem_mb = declared_mem_mb(tmp_path, f"results/generations/{model}/boolq.parquet", "infer")

    data = tmp_path / "boolq.parquet"
    build_dataset("boolq", data, seed=config["seed"], **{**config["data"], "slices_dir": str(ROOT / "data" / "slices")})
    spec = config["models"][model]
    model_dir = fetch_model(model, spec, tmp_path / "resources" / "models" / model)

    def run(limit_mb: int, tag: str) -> subprocess.CompletedProcess:
        a = {
            "limit_mb": limit_mb,
            "model": model,
            "spec": spec,
            "model_dir": str(model_dir),
            "data": str(data),
            "out": str(tmp_path / f"{tag}.parquet"),
            "hidden": str(tmp_path / f"{tag}.hidden.safetensors"),
            "cfg": {**defaults("inference"), **config["inference"]},
        }
        return subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(a)],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )

    proc = run(mem_mb, "within")
    assert proc.returncode == 0, f"mem_mb={mem_mb}:\n{proc.stderr[-3000:]}"
    assert (tmp_path / "within.parquet").is_file()
    proc = run(mem_mb // 4, "quarter")
    assert proc.returncode != 0 and re.search(
        r"MemoryError|Cannot allocate memory|std::bad_alloc|failed to allocate|"
        r"out of memory|DefaultCPUAllocator",
        proc.stderr,
        re.I,
    ), proc.stderr[-2000:]
    assert not (tmp_path / "quarter.parquet").exists()
