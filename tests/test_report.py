"""The report's pages (uqroute.figures.pages), the per-query loaders (uqroute.results) and the report
under Snakemake: the tables are HTML pages in report.html, with the run's size and its warnings."""

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from uqroute import io
from uqroute.figures.pages import PAGES, quality_table, quality_warnings, run_summary, write_pages
from uqroute.results import common_rows, correctness, holdout_rows, per_query, tidy
from uqroute.routing.synthetic import write_synthetic
from uqroute.schema import ARTIFACTS

REPO = Path(__file__).resolve().parents[1]
SLMS, LLMS, DATASETS = ["slm-a"], ["llm-x"], ["gsm8k", "boolq"]
METHODS = ["perplexity", "verbal_1s", "verbal_2s"]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def quality_row(model, dataset, *, n=20, truncated=0, unparsable=0, samples=None, bad_samples=0, v1=None, v1_bad=0):
    slm = samples is not None
    row = {c.name: None for c in ARTIFACTS["quality"].columns}
    row.update(
        model=model,
        dataset=dataset,
        n_rows=n,
        n_truncated=truncated,
        truncated_fraction=truncated / n,
        n_unparsable_answers=unparsable,
        n_samples=samples,
        n_unparsable_samples=bad_samples if slm else None,
        n_verbal_1s=v1,
        n_verbal_1s_truncated=0 if slm else None,
        n_unparsable_verbal_1s_answers=v1_bad if slm else None,
        n_unparsable_verbal_1s_confidences=v1_bad if slm else None,
        n_judged=0,
        n_unparsable_verdicts=0,
        n_verdict_fallbacks=0,
        n_content_filtered=0,
        warnings=[],
    )
    return row


def write_upstream(root, n=20):
    """Synthetic data/uq/correctness (uqroute.routing.synthetic) plus generations and quality files: SLM
    samples on gsm8k mostly unparsable, verbal_1s mostly without a confidence."""
    write_synthetic(root, slms=SLMS, llms=LLMS, datasets=DATASETS, methods=METHODS, n=n, null_confidence=0.2)
    for d in DATASETS:
        uq_path = root / ARTIFACTS["uq"].path.format(slm=SLMS[0], dataset=d)
        uq = pl.read_parquet(uq_path)
        io.write_parquet(
            uq.with_columns(
                pl.when(pl.int_range(pl.len()) < n - 2).then(None).otherwise(pl.col("verbal_1s")).alias("verbal_1s")
            ),
            uq_path,
            "uq",
        )
        for model in SLMS + LLMS:
            ids = pl.read_parquet(root / ARTIFACTS["correctness"].path.format(model=model, dataset=d))["id"]
            gen = pl.DataFrame(
                {
                    "id": ids,
                    "response": [f"The answer is A ({i})" for i in ids],
                    "parsed_answer": ["A"] * len(ids),
                    "tokens": [["A"]] * len(ids),
                    "n_prompt_tokens": [5] * len(ids),
                    "finish_reason": ["stop"] * len(ids),
                }
            )
            gen = gen.with_columns(
                [
                    pl.lit(None, dtype=t).alias(c)
                    for c, t in ARTIFACTS["generations"].polars_schema().items()
                    if c not in gen.columns
                ]
            )
            io.write_parquet(
                gen.select(list(ARTIFACTS["generations"].polars_schema())),
                root / ARTIFACTS["generations"].path.format(model=model, dataset=d),
                "generations",
            )
            slm = model in SLMS
            row = quality_row(
                model,
                d,
                n=n,
                samples=5 * n if slm else None,
                bad_samples=(4 * n if d == "gsm8k" else 0),
                v1=n if slm else None,
                v1_bad=n - 2 if slm else 0,
            )
            io.write_parquet(
                pl.DataFrame([row], schema=ARTIFACTS["quality"].polars_schema()),
                root / ARTIFACTS["quality"].path.format(model=model, dataset=d),
                "quality",
            )


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    write_upstream(root)
    return root


def test_quality_table_and_warnings_name_the_culprits():
    q = pl.DataFrame(
        [
            quality_row("s", "gsm8k", n=10, truncated=6, samples=50, bad_samples=41, v1=10, v1_bad=1),
            quality_row("s", "boolq", n=10, truncated=1, samples=50, bad_samples=5, v1=10, v1_bad=0),
            quality_row("l", "boolq", n=10),
        ],
        schema=ARTIFACTS["quality"].polars_schema(),
    )
    t = quality_table(q, warn_share=0.1)
    g = t.filter((pl.col("model") == "s") & (pl.col("dataset") == "gsm8k") & (pl.col("statistic") == "greedy")).row(
        0, named=True
    )
    assert g["truncated_share"] == 0.6 and "truncated 60%" in g["warning"]
    assert t.filter(pl.col("model") == "l")["statistic"].to_list() == ["greedy"]  # no samples/verbal rows for an LLM
    assert t.filter((pl.col("dataset") == "boolq") & (pl.col("model") == "s") & (pl.col("statistic") == "verbal_1s"))[
        "warning"
    ].to_list() == [None]
    missing = pl.DataFrame(
        {
            "slm": ["s"] * 4,
            "dataset": ["gsm8k", "boolq"] * 2,
            "method": ["verbal_1s"] * 2 + ["ptrue"] * 2,
            "n": [10] * 4,
            "n_missing": [10, 10, 0, 10],
        }
    )
    w = quality_warnings(q, missing)
    assert any(
        line.startswith("s: verbal_1s has no confidence on 20 of 20 queries (100%; gsm8k 10/10, boolq 10/10)")
        for line in w
    ), w
    assert not any("ptrue" in line for line in w)  # exactly half is not "more than half"
    assert any(line.startswith("s on gsm8k: 41 of 50 sampled replies (82%)") for line in w), w
    assert any(line.startswith("s on gsm8k: 6 of 10 greedy replies (60%)") for line in w), w
    assert not any("boolq: " in line and "sampled" in line for line in w)
    assert quality_warnings(q.filter(pl.col("model") == "l"), missing.filter(pl.col("method") == "none")) == []
    assert quality_warnings(None, None) == []


def test_correctness_rows_carry_their_split(root, tmp_path):
    import shutil

    shutil.copytree(root / "results", tmp_path / "results")
    data_path = tmp_path / ARTIFACTS["data"].path.format(dataset="boolq")
    data = pl.read_parquet(data_path)
    extra = data.head(3).with_columns(pl.format("train/{}", "id").alias("id"), pl.lit("train").alias("role"))
    io.write_parquet(pl.concat([data, extra]), data_path, "data")
    cpath = tmp_path / ARTIFACTS["correctness"].path.format(model="slm-a", dataset="boolq")
    corr = pl.read_parquet(cpath)
    train = corr.head(3).with_columns(pl.Series("id", extra["id"].to_list()), pl.lit(False).alias("correct"))
    io.write_parquet(pl.concat([corr, train]), cpath, "correctness")
    df = correctness(tmp_path / "results", models=["slm-a"], datasets=["boolq"])
    assert df.columns == ["model", "dataset", "id", "split", "correct", "label_source"]
    assert df.group_by("split").len().sort("split").rows() == [("eval", 20), ("train", 3)]
    assert df.filter(pl.col("split") == "eval")["correct"].mean() == corr["correct"].mean()
    io.write_parquet(corr.with_columns(pl.format("x{}", "id").alias("id")), cpath, "correctness")
    with pytest.raises(io.ArtifactInputError, match=rf"correctness file {cpath} has ids that the data file .* lacks"):
        correctness(tmp_path / "results", models=["slm-a"], datasets=["boolq"])


def test_per_query_has_text_labels_and_every_methods_confidence(root):
    df = per_query(root / "results")
    assert df.columns[:11] == [
        "model",
        "role",
        "dataset",
        "id",
        "prompt",
        "gold",
        "response",
        "answer",
        "finish_reason",
        "correct",
        "label_source",
    ]
    assert df.columns[11:] == METHODS
    assert df.height == 2 * 2 * 20 and df.select("model", "dataset", "id").is_duplicated().sum() == 0
    slm = df.filter(pl.col("model") == "slm-a").join(
        pl.read_parquet(root / "results/uq/slm-a/boolq.parquet"), on="id", suffix="_uq"
    )
    assert slm.height == 20 and slm.filter(pl.col("perplexity") != pl.col("perplexity_uq")).height == 0
    assert df.filter(pl.col("role") == "llm")["perplexity"].null_count() == 40
    assert (df["response"].str.contains(df["id"], literal=True)).all()  # each reply joined to its own query


def test_common_rows_score_every_method_on_the_same_queries(root):
    full = tidy(root / "results", llms=[])
    common = tidy(root / "results", llms=[], rows="common")
    n = common.group_by("slm", "dataset", "method").agg(pl.col("confidence").count())
    assert n.group_by("slm", "dataset").agg(pl.col("confidence").n_unique())["confidence"].to_list() == [1, 1]
    assert common["confidence"].null_count() == 0 and common.height < full.height
    per_method = (
        full.group_by("dataset", "method").agg(pl.col("confidence").count()).filter(pl.col("method") == "perplexity")
    )
    assert per_method["confidence"].to_list() == [20, 20]
    assert common_rows(full.filter(pl.col("method") == "perplexity")).height == 40
    with pytest.raises(ValueError, match="rows must be"):
        tidy(root / "results", rows="all")


def test_holdout_rows_one_row_per_sampled_query(tmp_path):
    from uqroute.routing import TABLES, run_routing

    uq, corr, data = write_synthetic(
        tmp_path, slms=SLMS, llms=LLMS, datasets=["gsm8k", "boolq", "svamp"], methods=["perplexity"], n=60
    )
    outputs = {key: str(tmp_path / ARTIFACTS[name].path.format(slm=SLMS[0])) for key, name in TABLES.items()}
    run_routing(
        uq_paths=uq,
        correctness_paths=corr,
        data_paths=data,
        slms=SLMS,
        llms=LLMS,
        datasets=["gsm8k", "boolq", "svamp"],
        outputs=outputs,
        params={
            "ratio_step": 0.1,
            "bins": 5,
            "k": 0.2,
            "seeds": [1, 2],
            "k_sweep": [0.2],
            "bootstrap": 10,
            "random_mc": 10,
            "proxy_methods": ["perplexity"],
            "shifts": {},
        },
        seed=0,
    )
    path = tmp_path / ARTIFACTS["holdout"].path.format(slm=SLMS[0])
    wide = pl.read_parquet(path)
    rows = holdout_rows(path)
    assert (
        rows.height == wide["id"].list.len().sum()
        and rows["id"].dtype == pl.Utf8
        and rows["confidence"].dtype == pl.Float64
    )
    assert rows.columns == [
        "slm",
        "method",
        "setting",
        "target",
        "k",
        "seed",
        "source_dataset",
        "id",
        "confidence",
        "slm_correct",
    ]
    assert rows.filter(pl.col("target") == pl.col("source_dataset")).height == 0


def test_pages_are_html_with_n_sizes_and_warnings(root, tmp_path):
    outputs = {name: str(tmp_path / p) for name, p in PAGES.items()}
    inputs = {
        "data": [str(root / ARTIFACTS["data"].path.format(dataset=d)) for d in DATASETS],
        "uq": [str(root / ARTIFACTS["uq"].path.format(slm=s, dataset=d)) for s in SLMS for d in DATASETS],
        "quality": [
            str(root / ARTIFACTS["quality"].path.format(model=m, dataset=d)) for m in SLMS + LLMS for d in DATASETS
        ],
    }
    warnings = write_pages(
        inputs, outputs, slms=SLMS, llms=LLMS, datasets=DATASETS, methods=METHODS, results_dir=root / "results"
    )
    assert len(warnings) == 4, warnings  # verbal_1s missing on both datasets, its replies on each, the gsm8k samples
    overview = Path(outputs["overview"]).read_text()
    assert "A small run." in overview and "20 evaluation rows per dataset" in overview
    assert "verbal_1s has no confidence on 36 of 40 queries" in overview and "sampled replies (80%)" in overview
    queries = Path(outputs["queries"]).read_text()
    assert "_itables_2_9_1" in queries and "gsm8k/test/3" in queries  # interactive, searchable, every row
    acc = Path(outputs["accuracy"]).read_text()
    assert "(n=20)" in acc
    assert "Warnings (4)" in Path(outputs["quality"]).read_text()
    assert all(Path(p).read_text().startswith("<!DOCTYPE html>") for p in outputs.values())
    summary = run_summary(root / "results", slms=SLMS, llms=LLMS, datasets=DATASETS)
    assert (
        "Accuracy (evaluation rows): slm-a " in summary and "llm-x " in summary and "Quality warnings (4):" in summary
    )
    assert "no routing results yet" in summary
    from uqroute.routing import TABLES, run_routing

    uq = inputs["uq"]
    corr = [str(root / ARTIFACTS["correctness"].path.format(model=m, dataset=d)) for m in SLMS + LLMS for d in DATASETS]
    outs = {key: str(tmp_path / ARTIFACTS[name].path.format(slm=SLMS[0])) for key, name in TABLES.items()}
    run_routing(
        uq_paths=uq,
        correctness_paths=corr,
        data_paths=inputs["data"],
        slms=SLMS,
        llms=LLMS,
        datasets=DATASETS,
        outputs=outs,
        params={"bootstrap": 0, "random_mc": 0, "proxy_methods": ["perplexity"], "k_sweep": [0.2], "shifts": {}},
        seed=0,
    )
    summary = run_summary(tmp_path / "results", slms=SLMS, llms=[], datasets=DATASETS)
    assert "Best-aligned methods of slm-a (mean ROC-AUC over 2 dataset(s)): " in summary
    ranked = summary.split("Best-aligned")[1].split("\n")[0]
    assert "perplexity" in ranked and "verbal_1s" not in ranked  # two scored queries, one with an AUC: not ranked


@pytest.mark.slow
def test_report_shows_the_tables_as_pages(tmp_path):
    """Snakemake builds the pages from synthetic upstream artifacts, and report.html holds each of them."""
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg.update(datasets=DATASETS, slms=SLMS, llms=LLMS)
    cfg["models"] = {m: cfg["models"]["smollm2-135m"] for m in SLMS + LLMS}
    cfg["judge"].pop("model")  # rule checks only
    cfg["uq"]["methods"] = METHODS
    cfg["router"]["methods"] = []
    cfg["routing"].update(
        bootstrap=10,
        random_mc=10,
        k_sweep=[0.2],
        seeds=[50],
        proxy_methods=["perplexity"],
        shifts={"math_to_commonsense": {"sources": ["gsm8k"], "targets": ["boolq"]}},
        table4={"target": "boolq", "llm": LLMS[0], "method": "perplexity"},
        table5={"shifts": ["math_to_commonsense"], "llm": LLMS[0], "method": "perplexity"},
    )
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    write_upstream(tmp_path)
    rules = ["routing", "routing_tables", "report_pages"]
    base = [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--allowed-rules",
        *rules,
        "--cores",
        "2",
    ]
    targets = list(PAGES.values())
    run = subprocess.run(base + targets, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "uqroute run summary" in run.stdout + run.stderr and "verbal_1s has no confidence" in run.stdout + run.stderr
    assert "verbal_1s has no confidence" in (tmp_path / "logs/report/pages.log").read_text()
    rep = subprocess.run(
        base + targets + ["--report", str(tmp_path / "report.html")], capture_output=True, text=True, timeout=300
    )
    assert rep.returncode == 0, rep.stderr[-3000:]
    html = (tmp_path / "report.html").read_text()
    for name in PAGES:
        assert f"{name}.html" in html, name
    for needle in (
        "A small run",
        "at most 10 evaluation rows per dataset",
        "1. The run",
        "2. Accuracy",
        "3. Alignment",
        "4. Tables 4-5",
        "5. Quality",
        "6. Routers",
        "7. Routing status",
        "8. Every query",
    ):
        assert needle in html, needle
