"""The real pipeline through a real SLURM cluster, run as README/docs/slurm.md say, gives the same artifacts as a local run.

config/test-slurm.yaml (2 datasets from data/slices, SmolLM2-135M, a few rows) is run from the
raw slices to the UQ scores and the revisions lock twice, in two temporary working directories:

* through `--profile profiles/slurm` on the single-node cluster of scripts/slurm-up.sh, in the two
  documented steps: the prefetch (`--until download download_model`, which runs on the submitting
  node: no sbatch job), then the run, in which no job may download anything (`PIP_NO_INDEX=1`,
  `HF_HUB_OFFLINE=1`): fetch_model → infer → judge → probe → uq are sbatch jobs;
* locally with `--cores 2`.

Every parquet artifact (and every safetensors file) must have the same contents; the `data`
artifacts (provenance included: no timestamps) and the revisions lock the same bytes.

Needs a running SLURM cluster: the test starts one with scripts/slurm-up.sh (idempotent; `make test`
runs it first). If SLURM cannot be started the test is skipped with the reason, or fails when the
`CI` environment variable is set (CI must not silently skip it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
CONFIG = ROOT / "config" / "test-slurm.yaml"
SLURM_UP = ROOT / "scripts" / "slurm-up.sh"
RUN_TIMEOUT_S = 900
JOBNAME_PREFIX = f"uqroutetest{os.getpid()}"


def targets(config: dict) -> list[str]:
    """Everything from the raw slices to the UQ scores of each SLM on each dataset, and the revisions lock."""
    return [f"results/uq/{slm}/{ds}.parquet" for slm in config["slms"] for ds in config["datasets"]] + [
        "results/revisions.lock.yaml"
    ]


def node_state() -> str:
    """The state `sinfo` reports for this node ('' when SLURM does not answer)."""
    if not shutil.which("sinfo"):
        return ""
    proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=30)
    return proc.stdout.split()[0].rstrip("*~#!%$@^-") if proc.returncode == 0 and proc.stdout.split() else ""


def ensure_slurm() -> str | None:
    """None when a SLURM node is up, else the reason.

    Runs scripts/slurm-up.sh first: it returns at once when the local daemons run and the node is
    idle, and restarts what is missing otherwise (slurmctld reports a node idle for minutes after
    its slurmd died). Where the script cannot run (no root, a site's own slurm.conf) an idle node
    reported by `sinfo` is enough.
    """
    try:
        proc = subprocess.run(["bash", str(SLURM_UP)], capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return "scripts/slurm-up.sh did not finish within 600 s"
    state = node_state()
    if state in ("idle", "mixed", "allocated"):
        return None
    return (
        f"scripts/slurm-up.sh exited {proc.returncode}, sinfo node state {state!r}:\n"
        f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    )


def require_slurm() -> None:
    """Skip loudly without a cluster; in CI (`CI` set) fail instead, so it cannot be skipped unnoticed."""
    reason = ensure_slurm()
    if reason is not None:
        message = f"NO SLURM CLUSTER, the SLURM executor test cannot run: {reason}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def slurm_cluster():
    require_slurm()


@pytest.mark.parametrize("ci", [None, "true"])
def test_a_missing_cluster_skips_with_the_reason_or_fails_in_ci(monkeypatch, ci):
    monkeypatch.setattr(sys.modules[__name__], "ensure_slurm", lambda: "slurmctld did not start")
    if ci:
        monkeypatch.setenv("CI", ci)
    else:
        monkeypatch.delenv("CI", raising=False)
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected, match="NO SLURM CLUSTER.*slurmctld did not start"):
        require_slurm()


def write_config(workdir: Path) -> tuple[Path, dict]:
    """config/test-slurm.yaml with slices_dir made absolute (the run's working directory is a temp dir)."""
    config = yaml.safe_load(CONFIG.read_text())
    config["data"]["slices_dir"] = str(ROOT / config["data"]["slices_dir"])
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, config


def run_snakemake(
    workdir: Path, extra: list[str], env_extra: dict | None = None
) -> tuple[subprocess.CompletedProcess, float]:
    configfile, config = write_config(workdir)
    cmd = [
        str(SNAKEMAKE),
        *targets(config),
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        f"--configfile={configfile}",
        *extra,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONHASHSEED": "0", **(env_extra or {})}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=env)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, f"snakemake failed ({' '.join(extra)}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return proc, elapsed


def cancel_our_jobs() -> None:
    """scancel the jobs this test submitted (their names start with JOBNAME_PREFIX), if any are left."""
    if not shutil.which("squeue"):
        return
    listing = subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True).stdout
    ids = [
        line.split()[0]
        for line in listing.splitlines()
        if line.split()[1:2] and line.split()[1].startswith(JOBNAME_PREFIX)
    ]
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True)


def artifacts(workdir: Path) -> dict[str, Path]:
    out = {}
    for pattern in ("*.parquet", "*.safetensors"):
        out.update({str(p.relative_to(workdir)): p for p in (workdir / "results").rglob(pattern)})
    return out


def assert_same_contents(a: Path, b: Path) -> None:
    if a.suffix == ".parquet":
        assert_frame_equal(pl.read_parquet(a), pl.read_parquet(b), check_exact=False, rel_tol=1e-5, abs_tol=1e-6)
    else:
        from safetensors.numpy import load_file

        ta, tb = load_file(a), load_file(b)
        assert sorted(ta) == sorted(tb), a.name
        for key in ta:
            np.testing.assert_allclose(ta[key], tb[key], rtol=1e-5, atol=1e-6, err_msg=f"{a.name}: tensor {key}")


def test_slurm_run_equals_local_run(slurm_cluster, tmp_path):
    slurm_dir, local_dir = tmp_path / "slurm", tmp_path / "local"
    slurm_dir.mkdir()
    local_dir.mkdir()
    profile = [
        "--profile",
        str(ROOT / "profiles" / "slurm"),
        # this cluster has no accounting database (sacct) and no accounts
        "--slurm-status-command",
        "squeue",
        "--slurm-no-account",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--seconds-between-status-checks",
        "1",
        "--slurm-jobname-prefix",
        JOBNAME_PREFIX,
        "--jobs",
        "2",
        "--retries",
        "0",
        "--latency-wait",
        "10",
        "--default-resources",
        "mem_mb=1000",
        "runtime=10",
    ]
    try:
        # 1. prefetch where the internet is (README, "Run on a SLURM cluster")
        prefetch, prefetch_s = run_snakemake(slurm_dir, [*profile, "--until", "download", "download_model"])
        log = prefetch.stdout + prefetch.stderr
        assert "has been submitted with SLURM jobid" not in log, f"the prefetch submitted jobs:\n{log[-3000:]}"
        for rule, n in (("download", 2), ("download_model", 2)):  # the LLM's too: the lock records it
            assert log.count(f"localrule {rule}:") == n, f"prefetch: expected {n} local {rule} jobs:\n{log[-3000:]}"
        assert (slurm_dir / "resources/downloads/smollm2-135m.json").is_file() and not (
            slurm_dir / "resources/models"
        ).exists()
        # 2. the run: no job may reach an index or the hub
        slurm, slurm_s = run_snakemake(slurm_dir, profile, {"PIP_NO_INDEX": "1"})
    finally:
        cancel_our_jobs()
    local, local_s = run_snakemake(local_dir, ["--cores", "2"])
    print(f"\nSLURM prefetch {prefetch_s:.0f} s, SLURM run {slurm_s:.0f} s, local run {local_s:.0f} s")

    log = slurm.stdout + slurm.stderr
    submitted = log.count("has been submitted with SLURM jobid")
    n_jobs = 9  # 1 fetch_model, 2 infer, 2 judge, 2 probe, 2 uq (downloads were prefetched; the lock is local)
    assert submitted == n_jobs, f"expected {n_jobs} sbatch submissions, saw {submitted}:\n{log[-3000:]}"
    assert "localrule revisions_lock:" in log and "localrule download" not in log

    got, want = artifacts(slurm_dir), artifacts(local_dir)
    assert sorted(got) == sorted(want)
    assert any(name.startswith("results/uq/") for name in got)
    for name in sorted(want):
        assert_same_contents(got[name], want[name])
        if name.startswith("results/data/"):
            assert got[name].read_bytes() == want[name].read_bytes(), name
    lock = (slurm_dir / "results/revisions.lock.yaml").read_bytes()
    assert lock == (local_dir / "results/revisions.lock.yaml").read_bytes()
    assert b"b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53" in lock
