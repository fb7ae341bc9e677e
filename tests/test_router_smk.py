"""Rules router_holdout and router under Snakemake on synthetic upstream artifacts (slow: ~1 min)."""

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from uqroute.routing.synthetic import write_synthetic
from uqroute.router import read_router_file
from uqroute.schema import ARTIFACTS, check_frame

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
DATASETS = ["gsm8k", "boolq", "openbookqa"]


@pytest.mark.slow
def test_router_rules_write_deterministic_router_files(tmp_path):
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["datasets"] = DATASETS
    cfg["routing"].update(shifts={}, table4={}, table5={}, seeds=[50, 51])
    cfg["router"].update(methods=["perplexity", "verbal_2s"], operating_point={"llm_accuracy_share": 0.9}, mode="fixed")
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    write_synthetic(tmp_path, slms=cfg["slms"], llms=cfg["llms"], datasets=DATASETS, methods=cfg["uq"]["methods"], n=40, null_confidence=0.2)
    slm = cfg["slms"][0]
    targets = [f"results/routers/{slm}/{m}.json" for m in ("perplexity", "verbal_2s")]
    base = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2", "--allowed-rules", "router_holdout", "router"]
    run = subprocess.run(base + targets, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    hold = pl.read_parquet(tmp_path / ARTIFACTS["router_holdout"].path.format(slm=slm))
    check_frame(hold, "router_holdout")
    assert sorted(set(hold["method"])) == ["perplexity", "verbal_2s"] and sorted(set(hold["seed"])) == [50, 51]
    first = {t: (tmp_path / t).read_bytes() for t in targets}
    for t in targets:
        doc = read_router_file(tmp_path / t)
        assert doc["created_by"] == "rule router" and doc["llm"] == cfg["llms"][0] and doc["serving"]["mode"] == "fixed"
        assert doc["holdout"]["sources"] == DATASETS and doc["holdout"]["setting"] == "pooled"
        assert doc["operating_point"]["target"] == {"llm_accuracy_share": 0.9}
        assert doc["slm_model"]["model_dir"] == f"resources/models/{slm}"
        assert doc["curve"]["llm_labels"] == "per query" and set(doc["curve"]["llm_accuracy_by_source"]) == set(DATASETS)
    run = subprocess.run(base + ["--forcerun", "router_holdout", *targets], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert {t: (tmp_path / t).read_bytes() for t in targets} == first  # same config and seed: identical files
