"""The `routing` stage end to end on synthetic artifacts written with uqroute.io."""

import logging
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from uqroute import io
from uqroute.routing import OUTPUT_KEYS, RoutingInputError, evaluate, load_inputs, run_routing
from uqroute.routing.synthetic import write_synthetic
from uqroute.schema import ARTIFACTS, check_frame

SLMS, LLMS = ["slm-a", "slm-b"], ["llm-x", "llm-y"]
DATASETS = ["gsm8k", "svamp", "boolq", "commonsenseqa"]
METHODS = ["perplexity", "ood_probe", "verbal_1s"]
PARAMS = {"ratio_step": 0.05, "bins": 10, "k": 0.2, "seeds": [50, 51], "k_sweep": [0.1, 0.5], "bootstrap": 50, "random_mc": 20,
          "proxy_methods": ["perplexity", "ood_probe"]}


def outputs(root) -> dict:
    r = Path(root) / "results/routing"
    ext = {"csv": "csv", "md": "md"}
    return {k: str(r / ("tables/" + k.rsplit("_", 1)[0] + "." + ext[k.rsplit("_", 1)[1]] if k.startswith("table") else k + ".parquet")) for k in OUTPUT_KEYS}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("routing")
    paths = write_synthetic(root, slms=SLMS, llms=LLMS, datasets=DATASETS, methods=METHODS, n=60, null_confidence=0.1)
    return root, paths


@pytest.fixture(scope="module")
def written(synthetic):
    root, paths = synthetic
    outs = outputs(root)
    tables = run_routing(uq_paths=paths[0], correctness_paths=paths[1], data_paths=paths[2], slms=SLMS, llms=LLMS,
                         datasets=DATASETS, outputs=outs, params=PARAMS, seed=0)
    return outs, tables


def test_artifacts_match_the_schema(written):
    outs, tables = written
    for key, name in [("auc", "auc"), ("curves", "curves"), ("proxy", "proxy"), ("summary", "routing_summary"),
                      ("relative_accuracy", "relative_accuracy"), ("proxy_curves", "proxy_curves")]:
        df = pl.read_parquet(outs[key])
        check_frame(df, name)
        assert df.height > 0, key
    for key in ("table4_csv", "table5_csv", "table4_md", "table5_md"):
        assert Path(outs[key]).stat().st_size > 0


def test_table_contents(written):
    _, t = written
    auc = t["auc"]
    assert auc.height == len(SLMS) * len(DATASETS) * len(METHODS)
    assert (auc.filter(pl.col("method") == "verbal_1s")["n"] < 60).all()  # null confidences dropped for that method only
    assert (auc.filter(pl.col("method") != "verbal_1s")["n"] == 60).all()
    curves = t["curves"]
    assert set(curves["curve"].unique()) == {"uq", "upper", "random", "random_mc"}
    assert curves.height == len(SLMS) * len(LLMS) * len(DATASETS) * len(METHODS) * 4 * 21
    assert curves.filter(pl.col("curve") != "random_mc")["accuracy_sd"].null_count() == curves.filter(pl.col("curve") != "random_mc").height
    proxy = t["proxy"]
    assert set(proxy["k"].unique()) == {0.1, 0.2, 0.5}
    assert set(proxy["setting"].unique()) == {"partial_in_domain", "out_of_domain"}
    assert proxy.height == len(SLMS) * len(LLMS) * len(DATASETS) * 2 * 2 * 3 * 2
    ood = proxy.filter((pl.col("setting") == "out_of_domain") & (pl.col("target") == "gsm8k"))
    assert ood["sources"][0].to_list() == ["boolq", "commonsenseqa"]
    assert (proxy["budget_error"] >= 0).all() and (proxy["w1"] >= 0).all()
    summ = t["summary"]
    row = summ.row(0, named=True)
    c = curves.filter((pl.col("slm") == row["slm"]) & (pl.col("llm") == row["llm"]) & (pl.col("dataset") == row["dataset"])
                      & (pl.col("method") == row["method"]) & (pl.col("curve") == "uq")).sort("ratio")["accuracy"]
    assert row["slm_accuracy"] == pytest.approx(c[0]) and row["llm_accuracy"] == pytest.approx(c[-1])


def test_tables_4_and_5(written):
    outs, _ = written
    t4 = pl.read_csv(outs["table4_csv"])
    assert t4.columns == ["llm", "target", "method", "routing", *SLMS]
    assert set(t4["routing"]) == {"proxy", "random"} and t4.height == len(LLMS) * len(DATASETS) * 2 * 2
    t5 = pl.read_csv(outs["table5_csv"])
    assert set(t5["shift"]) == {"commonsense → math", "math → commonsense"}
    md = Path(outs["table5_md"]).read_text()
    assert md.startswith("Table 5") and "| shift | llm | target |" in md


def test_deterministic(synthetic, written):
    root, paths = synthetic
    inputs = load_inputs(*paths, slms=SLMS, llms=LLMS, datasets=DATASETS)
    again = evaluate(inputs, PARAMS, seed=0)
    for name, df in written[1].items():
        assert again[name].equals(df), name


def test_proxy_never_sees_the_target(synthetic):
    """Poisoning the target's confidences (monotonically, so its own oracle curve is unchanged)
    must leave its proxy thresholds unchanged, while other targets' pools do change."""
    _, paths = synthetic
    inputs = load_inputs(*paths, slms=SLMS, llms=LLMS, datasets=DATASETS)
    base = evaluate(inputs, PARAMS, seed=0)
    for slm in SLMS:
        for m in METHODS:
            inputs.cells[(slm, "boolq")].conf[m] = inputs.cells[(slm, "boolq")].conf[m] * 0.01 - 5
    poisoned = evaluate(inputs, PARAMS, seed=0)
    key = ["slm", "llm", "target", "method", "setting", "seed", "ratio"]
    a, b = (t["proxy_curves"].sort(key) for t in (base, poisoned))
    same = pl.col("target") == "boolq"
    np.testing.assert_array_equal(a.filter(same)["threshold"].to_numpy(), b.filter(same)["threshold"].to_numpy())
    np.testing.assert_allclose(a.filter(same)["oracle_accuracy"].to_numpy(), b.filter(same)["oracle_accuracy"].to_numpy())
    assert not np.allclose(a.filter(~same)["threshold"].to_numpy(), b.filter(~same)["threshold"].to_numpy())


def test_single_domain_skips_out_of_domain_with_a_log(tmp_path, caplog):
    ds = ["boolq", "commonsenseqa"]
    paths = write_synthetic(tmp_path, slms=["s"], llms=["l"], datasets=ds, methods=["perplexity"], n=30)
    inputs = load_inputs(*paths, slms=["s"], llms=["l"], datasets=ds)
    with caplog.at_level(logging.WARNING, logger="uqroute.routing"):
        t = evaluate(inputs, PARAMS | {"proxy_methods": ["perplexity"]}, seed=0)
    assert set(t["proxy"]["setting"]) == {"partial_in_domain"}
    assert "out_of_domain skipped for target boolq: no source dataset" in caplog.text


def test_null_correctness_rows_are_dropped_and_logged(tmp_path, caplog):
    ds = ["gsm8k", "boolq"]
    paths = write_synthetic(tmp_path, slms=["s"], llms=["l"], datasets=ds, methods=["perplexity"], n=30)
    corr_path = paths[1][0]  # s/gsm8k
    df = pl.read_parquet(corr_path)
    df = df.with_columns(pl.when(pl.int_range(pl.len()) < 4).then(None).otherwise(pl.col("correct")).alias("correct"))
    io.write_parquet(df, corr_path, "correctness")
    inputs = load_inputs(*paths, slms=["s"], llms=["l"], datasets=ds)
    with caplog.at_level(logging.WARNING, logger="uqroute.routing"):
        t = evaluate(inputs, PARAMS | {"proxy_methods": ["perplexity"]}, seed=0)
    assert "s/gsm8k: dropped 4 queries with null SLM correctness" in caplog.text
    assert t["auc"].filter(pl.col("dataset") == "gsm8k")["n"][0] == 26


def test_one_class_dataset_gives_null_auc_not_a_crash(tmp_path):
    ds = ["gsm8k", "boolq"]
    paths = write_synthetic(tmp_path, slms=["s"], llms=["l"], datasets=ds, methods=["perplexity"], n=30)
    df = pl.read_parquet(paths[1][0]).with_columns(pl.lit(True).alias("correct"))
    io.write_parquet(df, paths[1][0], "correctness")
    inputs = load_inputs(*paths, slms=["s"], llms=["l"], datasets=ds)
    with pytest.warns(UserWarning, match="single class"):
        t = evaluate(inputs, PARAMS | {"proxy_methods": ["perplexity"]}, seed=0)
    row = t["auc"].filter(pl.col("dataset") == "gsm8k").row(0, named=True)
    assert row["roc_auc"] is None and row["prr"] is None and row["slm_accuracy"] == 1.0
    check_frame(t["auc"], "auc")


def test_bad_inputs_name_the_culprit_and_write_nothing(tmp_path):
    ds = ["gsm8k", "boolq"]
    paths = write_synthetic(tmp_path, slms=["s"], llms=["l"], datasets=ds, methods=["perplexity"], n=20)
    outs = outputs(tmp_path)
    # the LLM's correctness lacks a query
    llm_corr = paths[1][2]
    io.write_parquet(pl.read_parquet(llm_corr).slice(1), llm_corr, "correctness")
    with pytest.raises(RoutingInputError, match=r"l/gsm8k.parquet lacks 1 query ids.*gsm8k/test/0"):
        run_routing(uq_paths=paths[0], correctness_paths=paths[1], data_paths=paths[2], slms=["s"], llms=["l"], datasets=ds, outputs=outs, params=PARAMS)
    assert not any(Path(p).exists() for p in outs.values())
    # inputs out of expand() order
    with pytest.raises(RoutingInputError, match="does not belong to s/gsm8k"):
        load_inputs(paths[0][::-1], paths[1], paths[2], slms=["s"], llms=["l"], datasets=ds)
    # an unknown proxy method
    paths = write_synthetic(tmp_path / "b", slms=["s"], llms=["l"], datasets=ds, methods=["perplexity"], n=20)
    inputs = load_inputs(*paths, slms=["s"], llms=["l"], datasets=ds)
    with pytest.raises(RoutingInputError, match=r"proxy_methods \['ood_probe'\]"):
        evaluate(inputs, PARAMS | {"proxy_methods": ["ood_probe"]})
    # an infinite confidence
    uq = pl.read_parquet(paths[0][0]).with_columns(pl.when(pl.int_range(pl.len()) == 3).then(float("inf")).otherwise(pl.col("perplexity")).alias("perplexity"))
    io.write_parquet(uq, paths[0][0], "uq")
    with pytest.raises(RoutingInputError, match=r"'perplexity' is infinite for id 'gsm8k/test/"):
        load_inputs(*paths, slms=["s"], llms=["l"], datasets=ds)


def test_schema_artifact_paths_agree_with_the_rule():
    # the rule writes the four schema artifacts where schema.py says they live
    rule = Path(__file__).parents[1].joinpath("workflow/rules/routing.smk").read_text()
    for name in ("auc", "curves", "proxy", "routing_summary"):
        assert f'"{ARTIFACTS[name].path}"' in rule
