"""uqroute.results.tidy: the per-query table most analyses start from, joined by id."""

from pathlib import Path

import polars as pl
import pytest

from uqroute import io
from uqroute.results import TIDY_COLUMNS, tidy
from uqroute.routing.synthetic import write_synthetic

SLMS, LLMS, DATASETS = ["slm-a", "slm-b"], ["llm-x", "llm-y"], ["gsm8k", "boolq"]
METHODS = ["perplexity", "verbal_1s"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tidy")
    write_synthetic(root, slms=SLMS, llms=LLMS, datasets=DATASETS, methods=METHODS, n=25, null_confidence=0.2)
    return root


def test_one_row_per_slm_dataset_query_method(root):
    df = tidy(root / "results")
    assert df.columns == list(TIDY_COLUMNS)  # the LLM is a value, never part of a column name
    assert not any(llm in c for c in df.columns for llm in LLMS)
    assert df.height == len(SLMS) * len(DATASETS) * 25 * len(METHODS) * len(LLMS)
    assert df.select("slm", "dataset", "id", "method", "llm").is_duplicated().sum() == 0
    assert df["llm"].unique().sort().to_list() == LLMS
    assert set(df["slm"]) == set(SLMS) and set(df["domain"]) == {"math", "commonsense"}
    assert df.filter(pl.col("method") == "verbal_1s")["confidence"].null_count() > 0


def test_values_join_by_id_and_use_each_methods_own_label(root):
    """The files' rows are shuffled; every value must be the one of the same id."""
    df = tidy(root / "results", slms=["slm-b"], datasets=["boolq"])
    uq = pl.read_parquet(root / "results/uq/slm-b/boolq.parquet")
    corr = pl.read_parquet(root / "results/correctness/slm-b/boolq.parquet")
    llm = pl.read_parquet(root / "results/correctness/llm-y/boolq.parquet").select(
        "id", pl.col("correct").alias("llm_right")
    )
    ref = uq.join(corr, on="id").join(llm, on="id")
    for m, label in (("perplexity", "correct"), ("verbal_1s", "verbal_1s_correct")):
        got = df.filter((pl.col("method") == m) & (pl.col("llm") == "llm-y")).join(ref, on="id")
        assert got.height == 25 and (got["label"] == label).all()
        assert got.filter(pl.col("confidence").ne_missing(pl.col(m))).height == 0
        assert got.filter(pl.col("slm_correct").ne_missing(pl.col(label))).height == 0
        assert got.filter(pl.col("llm_correct").ne_missing(pl.col("llm_right"))).height == 0
    v = df.filter((pl.col("method") == "verbal_1s") & (pl.col("llm") == "llm-x")).join(ref, on="id")
    assert v.filter(pl.col("slm_correct") != pl.col("correct")).height > 0  # not the greedy label


def test_selections_and_no_llms(root):
    df = tidy(root / "results", slms=["slm-a"], llms=[], methods=["perplexity"])
    assert df.columns == list(TIDY_COLUMNS) and set(df["method"]) == {"perplexity"} and df.height == 50
    assert df["llm"].null_count() == 50 and df["llm_correct"].null_count() == 50


def test_a_mismatched_file_is_named(root, tmp_path):
    import shutil

    shutil.copytree(root / "results", tmp_path / "results")
    path = tmp_path / "results/correctness/llm-x/gsm8k.parquet"
    io.write_parquet(pl.read_parquet(path).slice(2), path, "correctness")
    with pytest.raises(io.ArtifactInputError, match=rf"tidy: correctness file {path} lacks 2 expected id"):
        tidy(tmp_path / "results")
    with pytest.raises(io.ArtifactInputError, match="no column"):
        tidy(root / "results", methods=["ptrue"])
    Path(tmp_path / "results/uq/slm-a/boolq.parquet").write_bytes(b"not parquet")
    with pytest.raises(io.ArtifactInputError, match="uq file .*slm-a/boolq.parquet cannot be read as parquet"):
        tidy(tmp_path / "results", slms=["slm-a"], datasets=["boolq"], llms=[])
