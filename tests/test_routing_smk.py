"""The routing, table and figure rules under Snakemake, on synthetic upstream artifacts (slow: ~2–3 min).

One SLM is deliberately broken (a truncated uq file). With --keep-going every other SLM's tables
and figures are written; a second run with `routing.assemble: available` assembles Tables 4/5,
the heatmaps and the report from them and names the missing SLM.
"""

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from uqroute.figures import FIGURES
from uqroute.routing import TABLES, proxy_probe_pairs, scenarios
from uqroute.routing.synthetic import write_synthetic, write_synthetic_proxy_probes
from uqroute.routing.tables import TABLE_FILES
from uqroute.schema import ARTIFACTS, check_frame

REPO = Path(__file__).resolve().parents[1]
RULES = [
    "routing",
    "routing_tables",
    "figure_auc_heatmap",
    "figure_confidence",
    "figures_slm_llm",
]
DATASETS = ["gsm8k", "svamp", "boolq"]
GOOD, BROKEN = ["smollm2-135m", "slm-b"], "slm-c"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def per_slm_targets(slm, llms, settings):
    t = [ARTIFACTS[name].path.format(slm=slm) for name in TABLES.values()]
    t += [FIGURES["routing_curves"].path.format(slm=slm, llm=llm) for llm in llms]
    t += [FIGURES["relative_accuracy"].path.format(slm=slm, llm=llm) for llm in llms]
    t += [FIGURES["rms_vs_k"].path.format(slm=slm, llm=llm) for llm in llms]
    t += [FIGURES["proxy_curves"].path.format(slm=slm, llm=llm, setting=s) for llm in llms for s in settings]
    t += [FIGURES["confidence"].path.format(slm=slm)]
    return t


def assembled_targets():
    return list(TABLE_FILES.values()) + [FIGURES["auc_heatmap"].path.format(slm=s) for s in GOOD]


@pytest.mark.slow
def test_a_broken_slm_leaves_the_others_and_the_report_names_it(tmp_path):
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["datasets"] = DATASETS
    for name in ("slm-b", BROKEN):
        cfg["models"][name] = cfg["models"]["smollm2-135m"]
    cfg["slms"] = GOOD + [BROKEN]
    cfg["routing"].update(
        bootstrap=20,
        random_mc=20,
        k_sweep=[0.05, 0.2],
        seeds=[50, 51],
        shifts={"math_to_commonsense": {"sources": ["gsm8k", "svamp"], "targets": ["boolq"]}},
        table4={"target": "boolq", "llm": cfg["llms"][0], "method": "perplexity"},
        table5={"shifts": ["math_to_commonsense"], "llm": cfg["llms"][0], "method": "perplexity"},
    )
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    write_synthetic(
        tmp_path,
        slms=cfg["slms"],
        llms=cfg["llms"],
        datasets=DATASETS,
        methods=cfg["uq"]["methods"],
        n=20,
        null_confidence=0.2,
    )
    # the leak-free ood_probe scores of the proxy pools (rule proxy_probe needs hidden states, which this test has not)
    write_synthetic_proxy_probes(
        tmp_path,
        slms=cfg["slms"],
        pairs=proxy_probe_pairs(scenarios(DATASETS, cfg["routing"]["shifts"]), DATASETS),
        datasets=DATASETS,
        n=20,
    )
    bad = tmp_path / ARTIFACTS["uq"].path.format(slm=BROKEN, dataset="boolq")
    bad.write_bytes(bad.read_bytes()[:100])
    llms, settings = cfg["llms"], ["partial_in_domain", "math_to_commonsense"]
    base = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--allowed-rules", *RULES]

    # 1. everything, with one broken SLM: the job fails, the others' tables and figures are written
    targets = [t for s in cfg["slms"] for t in per_slm_targets(s, llms, settings)] + assembled_targets()
    run = subprocess.run(base + ["--cores", "2", "--keep-going", *targets], capture_output=True, text=True, timeout=900)
    assert run.returncode != 0, "the broken SLM must fail its job"
    log = (tmp_path / f"logs/routing/{BROKEN}.log").read_text()
    assert f"uq file {bad.relative_to(tmp_path)} cannot be read as parquet" in log
    for slm in GOOD:
        for t in per_slm_targets(slm, llms, settings):
            assert (tmp_path / t).stat().st_size > 0, t
        check_frame(pl.read_parquet(tmp_path / ARTIFACTS["proxy"].path.format(slm=slm)), "proxy")
    assert not any((tmp_path / t).exists() for t in per_slm_targets(BROKEN, llms, settings))

    # 2. assemble what is there: Tables 4/5, heatmaps and the status page name the missing SLM
    available = ["--config", "routing={assemble: available}"]
    targets = [t for s in GOOD for t in per_slm_targets(s, llms, settings)] + assembled_targets()
    run = subprocess.run(base + ["--cores", "2", *targets, *available], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "rule routing:" not in run.stdout + run.stderr  # switching the assembly mode reruns no per-SLM job
    status = (tmp_path / TABLE_FILES["status"]).read_text()
    assert f"**Missing SLMs: {BROKEN}.**" in status and "2 of 3 SLMs" in status
    t4 = pl.read_csv(tmp_path / TABLE_FILES["table4_csv"])
    assert t4.columns == ["routing", *cfg["slms"]] and t4[BROKEN].null_count() == 3 and t4[GOOD[0]].null_count() == 0
    t5 = pl.read_csv(tmp_path / TABLE_FILES["table5_csv"])
    assert t5["shift"].unique().to_list() == ["math_to_commonsense"] and t5["target"].unique().to_list() == ["boolq"]
    for s in GOOD:
        assert (tmp_path / FIGURES["auc_heatmap"].path.format(slm=s)).stat().st_size > 0

    # 3. the report builds from the assembled results and carries the status page
    rep = subprocess.run(
        base + ["--cores", "1", *targets, "--report", str(tmp_path / "report.html"), *available],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rep.returncode == 0, rep.stderr[-3000:]
    html = (tmp_path / "report.html").read_text()
    for needle in (
        "status.md",
        "table4.md",
        "table5.csv",
        "auc_heatmap",
        "rms_vs_k",
        "Confidence distributions",
        "Proxy routing data",
    ):
        assert needle in html, needle


@pytest.mark.slow
def test_assemble_available_without_any_results_stops_with_a_message(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text((REPO / "config/config.yaml").read_text())
    run = subprocess.run(
        [
            SNAKEMAKE,
            "-n",
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--config",
            "routing={assemble: available}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (
        run.returncode != 0
        and "routing.assemble: 'available'" in run.stdout + run.stderr
        and "none has any yet" in run.stdout + run.stderr
    )


@pytest.mark.slow
def test_paper_preset_dry_run_lists_per_slm_routing_jobs_and_the_shifts():
    run = subprocess.run(
        [SNAKEMAKE, "-n", "-s", str(REPO / "Snakefile"), "--directory", str(REPO), "--configfile", "config/paper.yaml"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    slms = yaml.safe_load((REPO / "config/paper.yaml").read_text())["slms"]
    stats = dict(
        line.split()[:2]
        for line in out.splitlines()
        if line.strip() and line.split()[0] in ("routing", "routing_tables", "figures_slm_llm", "proxy_probe")
    )
    # settings: partially in-domain, generic out-of-domain and the three named shifts; the leak-free probes of
    # the 105 dataset pairs, one job per SLM and dataset (each owns 7 pairs)
    assert stats == {
        "routing": str(len(slms)),
        "routing_tables": "1",
        "figures_slm_llm": str(len(slms) * 4),  # one job per (SLM, LLM) draws its 8 figures
        "proxy_probe": str(len(slms) * 15),
    }
    assert f"results/probes/{slms[0]}/proxy/gsm8k.parquet" in out and "/out_of_domain.png" in out
    for slm in slms:
        assert f"results/routing/{slm}/holdout.parquet" in out
    for shift in ("math_to_commonsense", "commonsense_to_math", "commonsense_conversational_to_math"):
        assert f"/{shift}.png" in out


@pytest.mark.slow
def test_lint_reports_nothing_for_the_routing_rules():
    run = subprocess.run(
        [SNAKEMAKE, "--lint", "-s", str(REPO / "Snakefile"), "--directory", str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = run.stdout + run.stderr
    assert "routing.smk" not in text and "routing_common.smk" not in text, text[-3000:]
    for rule in RULES:
        assert f"Lints for rule {rule} " not in text, rule
