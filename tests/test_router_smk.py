"""Rules router_holdout and router under Snakemake on synthetic upstream artifacts (slow: ~1 min)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from uqroute.io import write_hidden_states
from uqroute.router import read_router_file
from uqroute.routing.synthetic import write_synthetic
from uqroute.schema import ARTIFACTS, check_frame

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
DATASETS = ["gsm8k", "boolq", "openbookqa"]


@pytest.mark.slow
def test_router_rules_write_deterministic_router_files(tmp_path):
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["datasets"] = DATASETS
    cfg["routing"].update(shifts={}, table4={}, table5={}, seeds=[50, 51])
    cfg["router"].update(
        methods=["perplexity", "verbal_2s", "ood_probe"], operating_point={"llm_accuracy_share": 0.9}, mode="fixed"
    )
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    write_synthetic(
        tmp_path,
        slms=cfg["slms"],
        llms=cfg["llms"],
        datasets=DATASETS,
        methods=cfg["uq"]["methods"],
        n=40,
        null_confidence=0.2,
    )
    slm = cfg["slms"][0]
    rng = np.random.default_rng(0)
    for d in DATASETS:  # hidden states for the router's OOD probe (rule router_probe)
        ids = pl.read_parquet(tmp_path / ARTIFACTS["data"].path.format(dataset=d))["id"].to_list()
        write_hidden_states(
            tmp_path / f"results/generations/{slm}/{d}.hidden.safetensors",
            ids,
            rng.normal(size=(len(ids), 8)),
            layer=3,
            model=slm,
            dataset=d,
        )
    targets = [f"results/routers/{slm}/{m}.json" for m in ("perplexity", "verbal_2s", "ood_probe")]
    base = [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--allowed-rules",
        "router_holdout",
        "router_probe",
        "router",
        "--cores",
        "2",
    ]  # --allowed-rules takes every name up to the next option
    run = subprocess.run(base + targets, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    hold = pl.read_parquet(tmp_path / ARTIFACTS["router_holdout"].path.format(slm=slm))
    check_frame(hold, "router_holdout")
    assert sorted(set(hold["method"])) == ["ood_probe", "perplexity", "verbal_2s"] and sorted(set(hold["seed"])) == [
        50,
        51,
    ]
    probe = read_router_file(tmp_path / targets[2])["probe"]
    assert probe["path"] == "ood_probe.safetensors" and probe["training_datasets"] == DATASETS
    assert read_router_file(tmp_path / targets[0])["probe"] is None
    first = {t: (tmp_path / t).read_bytes() for t in targets}
    for t in targets:
        doc = read_router_file(tmp_path / t)
        assert doc["created_by"] == "rule router" and doc["llm"] == cfg["llms"][0] and doc["serving"]["mode"] == "fixed"
        assert doc["holdout"]["sources"] == DATASETS and doc["holdout"]["setting"] == "pooled"
        assert doc["operating_point"]["target"] == {"llm_accuracy_share": 0.9}
        assert doc["slm_model"]["model_dir"] == f"resources/models/{slm}"
        assert doc["curve"]["llm_labels"] == "per query" and set(doc["curve"]["llm_accuracy_by_source"]) == set(
            DATASETS
        )
    run = subprocess.run(base + [*targets, "--forcerun", "router_holdout"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert {t: (tmp_path / t).read_bytes() for t in targets} == first  # same config and seed: identical files
