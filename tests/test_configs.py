"""Every shipped config validates against config/schema.yaml; config/paper.yaml is the paper's grid.

The paper (Chuang et al., arXiv:2502.04428, §3.1) evaluates 12 SLMs and 4 LLMs on 15 datasets;
`snakemake -n --configfile config/paper.yaml` must list that whole DAG offline.
"""

from __future__ import annotations

import copy
import math
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "config" / "schema.yaml"
CONFIGS = sorted(p for p in (ROOT / "config").glob("*.yaml") if p != SCHEMA)
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

PAPER_SLMS = {
    "meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-3B-Instruct", "microsoft/Phi-3.5-mini-instruct",
    "mistralai/Mistral-7B-Instruct-v0.3", "Qwen/Qwen2.5-7B-Instruct", "meta-llama/Llama-3.1-8B-Instruct",
    "ibm-granite/granite-3.1-8b-instruct", "Qwen/Qwen3-0.6B", "Qwen/Qwen3-1.7B", "Qwen/Qwen3-4B",
    "microsoft/Phi-4-mini-reasoning", "fla-hub/rwkv7-2.9B-world",
}
PAPER_LLMS = {"meta-llama/Llama-3.1-70B-Instruct", "Qwen/Qwen3-32B", "deepseek-ai/DeepSeek-R1", "gpt-4.1-mini"}
REASONING = {"Qwen/Qwen3-0.6B", "Qwen/Qwen3-1.7B", "Qwen/Qwen3-4B", "microsoft/Phi-4-mini-reasoning",
             "Qwen/Qwen3-32B", "deepseek-ai/DeepSeek-R1"}


def load(path: Path) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def model_id(spec: dict) -> str:
    return spec["hub"] if "hub" in spec else spec["api"]["model"]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_validates_against_schema(path):
    config = load(path)
    validate(copy.deepcopy(config), schema=str(SCHEMA))
    for name in config["slms"] + config["llms"] + ([config["judge"]["model"]] if config.get("judge", {}).get("model") else []):
        assert name in config["models"], f"{path.name}: {name!r} is used but not defined under models"


def test_schema_rejects_an_unknown_key():
    """The validation above can fail: a misspelt key is an error, not silently ignored."""
    config = load(ROOT / "config" / "paper.yaml")
    config["resources"]["gpus_per_jbo"] = 1
    with pytest.raises(Exception, match="gpus_per_jbo"):
        validate(config, schema=str(SCHEMA))


def test_paper_config_is_the_papers_grid():
    config = load(ROOT / "config" / "paper.yaml")
    models = config["models"]
    assert len(config["datasets"]) == 15
    assert {model_id(models[m]) for m in config["slms"]} == PAPER_SLMS
    assert {model_id(models[m]) for m in config["llms"]} == PAPER_LLMS
    assert model_id(models[config["judge"]["model"]]) == "gpt-4.1-mini"
    for name, spec in models.items():
        if "hub" in spec:
            assert spec.get("revision"), f"{name}: hub model without an explicit revision"
        if "hub" in spec or name != "gpt-4.1-mini":
            assert spec.get("params_b", 0) > 0, f"{name}: params_b is needed to size cluster requests"
        is_reasoning = model_id(spec) in REASONING
        assert bool(spec.get("reasoning")) == is_reasoning, name
        assert (spec.get("max_new_tokens_scale", 1) > 1) == is_reasoning, name
    assert models["rwkv7-2.9b"].get("trust_remote_code") is True
    for name in config["llms"]:
        assert "api" in models[name], f"{name}: the paper's LLMs are API models in paper.yaml"


def dry_run(configfile: Path, workdir: Path) -> tuple[str, float, float]:
    """`snakemake -n` of the real workflow in an empty workdir; (stdout, wall s, CPU s)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [str(SNAKEMAKE), "-n", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
         f"--configfile={configfile}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr, wall, cpu


def job_counts(output: str) -> dict[str, int]:
    table = output[output.rindex("Job stats:"):]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def job_resources(output: str, rule: str, wildcards: str) -> dict[str, str]:
    """The `resources:` line of the dry-run job of `rule` with exactly these wildcards."""
    for block in re.split(r"^\[.*\]$|^$", output, flags=re.M):
        if re.search(rf"^rule {rule}:$", block, re.M) and re.search(rf"^\s+wildcards: {re.escape(wildcards)}$", block, re.M):
            line = re.search(r"^\s+resources: (.*)$", block, re.M).group(1)
            return dict(kv.split("=", 1) for kv in line.split(", "))
    raise AssertionError(f"no dry-run job of rule {rule} with wildcards {wildcards}")


@pytest.fixture(scope="module")
def paper_dry_run(tmp_path_factory):
    return dry_run(ROOT / "config" / "paper.yaml", tmp_path_factory.mktemp("paper-dag"))


def test_paper_dag_lists_the_full_grid(paper_dry_run):
    output, wall, cpu = paper_dry_run
    counts = job_counts(output)
    print(f"\nsnakemake -n --configfile config/paper.yaml: {counts.get('total')} jobs, {wall:.1f} s wall, {cpu:.1f} s CPU")
    n_datasets, n_slms, n_llms = 15, 12, 4
    assert counts["download"] == n_datasets
    assert counts["fetch_model"] == n_slms  # the LLMs and the judge are API models: nothing to fetch
    assert counts["infer"] == n_slms * n_datasets
    assert counts["infer_llm"] == n_llms * n_datasets
    assert counts["judge"] == (n_slms + n_llms) * n_datasets
    assert counts["probe"] == n_slms * n_datasets
    assert counts["uq"] == n_slms * n_datasets
    # A generous guard only (the target is ≤ 10 s on an idle machine); CPU time, as wall time
    # depends on what else runs. The printed figures are the measurement.
    assert cpu <= 30, f"dry-run of the paper grid took {cpu:.1f} s CPU"


def test_paper_resources_scale_with_the_model(paper_dry_run):
    output, _, _ = paper_dry_run
    big = job_resources(output, "infer", "slm=granite-3.1-8b, dataset=gsm8k")
    small = job_resources(output, "infer", "slm=qwen3-0.6b, dataset=gsm8k")
    api = job_resources(output, "infer_llm", "llm=gpt-4.1-mini, dataset=gsm8k")
    judge = job_resources(output, "judge", "model=qwen3-0.6b, dataset=gsm8k")
    config = load(ROOT / "config" / "paper.yaml")
    res = config["resources"]
    assert big["gpu"] == small["gpu"] == str(res["gpus_per_job"]) != "0"
    assert int(big["mem_mb"]) == math.ceil(res["mem_mb_base"] + res["mem_mb_per_b"] * 8.17)
    assert int(big["mem_mb"]) > int(small["mem_mb"])
    assert int(big["gpu_mem_mb"]) == math.ceil(res["gpu_mem_per_b_mb"] * 8.17)
    # reasoning models get their token budget scale on the runtime
    assert int(small["runtime"]) == math.ceil((res["runtime_min_base"] + res["runtime_min_per_b"] * 0.6) * 16)
    # API models and the API judge stay on CPU with the base request
    for job in (api, judge):
        assert job["gpu"] == "0" and job["gpu_model"] == ""
        assert int(job["mem_mb"]) == res["mem_mb_base"]


class _FakeJob:
    """The two things snakemake-executor-plugin-slurm reads from a job to build its GPU flags."""

    def __init__(self, resources):
        class _Res(dict):
            __getattr__ = dict.__getitem__

        self.resources = _Res(resources)


@pytest.mark.parametrize(
    ("resources", "flag"),
    [({"gpu": 1, "gpu_model": "a100"}, " --gpus=a100:1"), ({"gpu": 2, "gpu_model": ""}, " --gpus=2"),
     ({"gpu": 0, "gpu_model": ""}, "")],
)
def test_gpu_resources_become_the_slurm_gpu_flag(resources, flag):
    """The resource names the rules set (gpu, gpu_model) are the ones the SLURM plugin turns into --gpus."""
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    assert set_gres_string(_FakeJob(resources)) == flag
