"""The routing and figure rules under Snakemake, on synthetic upstream artifacts (slow: ~1–2 min)."""

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from uqroute.routing.synthetic import write_synthetic
from uqroute.schema import check_frame

REPO = Path(__file__).resolve().parents[1]
RULES = ["routing", "figure_auc_heatmap", "figure_routing_curves", "figure_relative_accuracy", "figure_confidence",
         "figure_proxy_curves", "figure_rms_vs_k"]


@pytest.mark.slow
def test_routing_rules_and_report(tmp_path):
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["datasets"] = ["gsm8k", "svamp", "boolq"]
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    write_synthetic(tmp_path, slms=cfg["slms"], llms=cfg["llms"], datasets=cfg["datasets"], methods=cfg["uq"]["methods"], n=20, null_confidence=0.2)
    slm, llm = cfg["slms"][0], cfg["llms"][0]
    fig = "results/routing/figures"
    targets = [
        "results/routing/tables/table4.md", "results/routing/tables/table5.csv",
        f"{fig}/auc_heatmap/gsm8k.png", f"{fig}/routing_curves/{llm}/svamp.png", f"{fig}/relative_accuracy/{llm}/boolq.png",
        f"{fig}/confidence/{slm}.png", f"{fig}/proxy_curves/{llm}/out_of_domain/gsm8k.png", f"{fig}/rms_vs_k/{llm}.png",
    ]
    snakemake = [str(Path(sys.executable).with_name("snakemake")), "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path)]
    run = subprocess.run(snakemake + ["--cores", "2", *targets, "--allowed-rules", *RULES], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    for t in targets:
        assert (tmp_path / t).stat().st_size > 0, t
    for name in ("auc", "curves", "proxy"):
        check_frame(pl.read_parquet(tmp_path / f"results/routing/{name}.parquet"), name)
    assert pl.read_parquet(tmp_path / "results/routing/summary.parquet").height > 0
    rep = subprocess.run(snakemake + ["--cores", "1", *targets, "--allowed-rules", *RULES, "--report", str(tmp_path / "report.html")],
                         capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr[-3000:]
    html = (tmp_path / "report.html").read_text()
    for needle in ("table4.md", "table5.csv", "auc_heatmap", "rms_vs_k", "Confidence distributions", "Proxy routing data", "Paper Table 4"):
        assert needle in html, needle
