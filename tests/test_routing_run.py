"""The `routing` stage end to end on synthetic artifacts written with uqroute.io (rows shuffled per file)."""

import logging
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from uqroute import io
from uqroute.routing import (
    OUTPUT_KEYS,
    RoutingConfigError,
    RoutingInputError,
    assemble_routing,
    evaluate,
    load_inputs,
    route_fraction,
    run_routing,
    tie_aware_thresholds,
)
from uqroute.routing.synthetic import synthetic_paths, write_synthetic
from uqroute.routing.tables import TABLE_FILES
from uqroute.schema import ARTIFACTS, check_frame

SLMS, LLMS = ["slm-a", "slm-b"], ["llm-x", "llm-y"]
DATASETS = ["gsm8k", "svamp", "boolq", "commonsenseqa"]
METHODS = ["perplexity", "ood_probe", "verbal_1s"]
SHIFTS = {
    "math_to_commonsense": {"sources": ["gsm8k", "svamp"], "targets": ["boolq"]},
    "commonsense_to_math": {"sources": ["boolq", "commonsenseqa"], "targets": ["gsm8k", "svamp"]},
}
PARAMS = {
    "ratio_step": 0.05,
    "bins": 10,
    "k": 0.2,
    "seeds": [50, 51],
    "k_sweep": [0.1, 0.5],
    "bootstrap": 50,
    "random_mc": 20,
    "proxy_methods": ["perplexity", "verbal_1s"],
    "shifts": SHIFTS,
    "table4": {"target": "boolq", "llm": "llm-y", "method": "perplexity"},
    "table5": {
        "shifts": ["math_to_commonsense", "commonsense_to_math"],
        "llm": "llm-x",
        "method": "perplexity",
        "slms": ["slm-b", "slm-a"],
    },
}
N_SCENARIOS = len(DATASETS) + 1 + 2  # partially in-domain per target + the shifts' targets


def slm_outputs(root, slm) -> dict:
    return {
        k: str(Path(root) / ARTIFACTS[name].path.format(slm=slm))
        for k, name in zip(
            OUTPUT_KEYS,
            [
                "auc",
                "curves",
                "proxy",
                "routing_summary",
                "relative_accuracy",
                "proxy_curves",
                "holdout",
                "routing_warnings",
            ],
        )
    }


def table_outputs(root) -> dict:
    return {k: str(Path(root) / v) for k, v in TABLE_FILES.items()}


def run_slm(root, paths, slm, params=PARAMS, datasets=DATASETS, llms=LLMS):
    uq, corr, data = paths
    uq_s = [p for p in uq if f"/uq/{slm}/" in p]
    corr_s = [p for p in corr if f"/correctness/{slm}/" in p or any(f"/correctness/{m}/" in p for m in llms)]
    return run_routing(
        uq_paths=uq_s,
        correctness_paths=corr_s,
        data_paths=data,
        slms=[slm],
        llms=llms,
        datasets=datasets,
        outputs=slm_outputs(root, slm),
        params=params,
        seed=0,
    )


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("routing")
    paths = write_synthetic(root, slms=SLMS, llms=LLMS, datasets=DATASETS, methods=METHODS, n=60, null_confidence=0.1)
    return root, paths


@pytest.fixture(scope="module")
def written(synthetic):
    root, paths = synthetic
    tables = {slm: run_slm(root, paths, slm) for slm in SLMS}
    assemble_routing(
        proxy_paths=[slm_outputs(root, s)["proxy"] for s in SLMS],
        warnings_paths=[slm_outputs(root, s)["warnings"] for s in SLMS],
        slms=SLMS,
        assembled=SLMS,
        llms=LLMS,
        datasets=DATASETS,
        methods=METHODS,
        outputs=table_outputs(root),
        params=PARAMS,
    )
    merged = {k: pl.concat([tables[s][k] for s in SLMS]) for k in OUTPUT_KEYS}
    return root, merged


def test_artifacts_match_the_schema(written):
    root, _ = written
    for slm in SLMS:
        for key, path in slm_outputs(root, slm).items():
            df = io.read_artifact(
                path,
                dict(
                    zip(
                        OUTPUT_KEYS,
                        [
                            "auc",
                            "curves",
                            "proxy",
                            "routing_summary",
                            "relative_accuracy",
                            "proxy_curves",
                            "holdout",
                            "routing_warnings",
                        ],
                    )
                )[key],
            )
            assert df.height > 0 and set(df["slm"]) == {slm}, key
    for key in TABLE_FILES:
        assert Path(table_outputs(root)[key]).stat().st_size > 0


def test_table_contents(written):
    _, t = written
    auc = t["auc"]
    assert auc.height == len(SLMS) * len(DATASETS) * len(METHODS)
    assert (
        auc.filter(pl.col("method") == "verbal_1s")["n"] < 60
    ).all()  # null confidences dropped for that method only
    assert (auc.filter(pl.col("method") != "verbal_1s")["n"] == 60).all()
    assert set(zip(auc["method"], auc["label"])) == {
        ("perplexity", "correct"),
        ("ood_probe", "correct"),
        ("verbal_1s", "verbal_1s_correct"),
    }
    curves = t["curves"]
    assert set(curves["curve"].unique()) == {"uq", "upper", "random", "random_mc"}
    assert curves.height == len(SLMS) * len(LLMS) * len(DATASETS) * len(METHODS) * 4 * 21
    proxy = t["proxy"]
    assert set(proxy["k"].unique()) == {0.1, 0.2, 0.5}
    assert set(proxy["setting"].unique()) == {"partial_in_domain", *SHIFTS}
    assert proxy.height == len(SLMS) * len(LLMS) * N_SCENARIOS * 2 * 3 * 2
    m2c = proxy.filter(pl.col("setting") == "math_to_commonsense")
    assert set(m2c["target"]) == {"boolq"} and m2c["sources"][0].to_list() == ["gsm8k", "svamp"]
    pid = proxy.filter((pl.col("setting") == "partial_in_domain") & (pl.col("target") == "svamp"))
    assert pid["sources"][0].to_list() == ["gsm8k", "boolq", "commonsenseqa"]
    assert (proxy["budget_error"] >= 0).all() and (proxy["w1"] >= 0).all() and (proxy["rms_realised"] >= 0).all()
    # budget_error is the mean over the grid of |realised ratio - r|, read back from the proxy curves
    keys = ["slm", "llm", "target", "method", "setting", "k", "seed"]
    per_curve = (
        t["proxy_curves"].group_by(keys).agg((pl.col("realised_ratio") - pl.col("ratio")).abs().mean().alias("want"))
    )
    both = proxy.join(per_curve, on=keys)
    assert both.height > 0 and (both["want"] > 0).any()
    np.testing.assert_allclose(both["budget_error"].to_numpy(), both["want"].to_numpy(), rtol=1e-12)
    assert t["holdout"].height == len(SLMS) * 2 * N_SCENARIOS * 3 * 2
    summ = t["summary"]
    row = summ.row(0, named=True)
    c = curves.filter(
        (pl.col("slm") == row["slm"])
        & (pl.col("llm") == row["llm"])
        & (pl.col("dataset") == row["dataset"])
        & (pl.col("method") == row["method"])
        & (pl.col("curve") == "uq")
    ).sort("ratio")["accuracy"]
    assert row["slm_accuracy"] == pytest.approx(c[0]) and row["llm_accuracy"] == pytest.approx(c[-1])


def _joined(root, slm, d, llm):
    """An independent reading of the shuffled parquet files: join by id with polars."""
    uq = pl.read_parquet(Path(root) / f"results/uq/{slm}/{d}.parquet")
    s = pl.read_parquet(Path(root) / f"results/correctness/{slm}/{d}.parquet").select(
        "id", "correct", "verbal_1s_correct"
    )
    l_ = pl.read_parquet(Path(root) / f"results/correctness/{llm}/{d}.parquet").select(
        "id", pl.col("correct").alias("llm_correct")
    )
    return uq.join(s, on="id").join(l_, on="id")


def test_auc_and_accuracies_recomputed_independently_by_id(synthetic, written):
    """Sklearn AUCs and accuracies from the parquet files joined by id (rows are shuffled per
    file, so a join by position would fail); verbal_1s is scored against its own answer's label."""
    root, _ = synthetic
    _, t = written
    first = pl.read_parquet(Path(root) / "results/uq/slm-a/gsm8k.parquet")["id"].to_list()
    assert first != sorted(first, key=lambda i: int(i.rsplit("/", 1)[1]))  # the fixture really is shuffled
    checked = 0
    for slm in SLMS:
        for d in DATASETS:
            df = _joined(root, slm, d, "llm-x")
            for m in METHODS:
                label = "verbal_1s_correct" if m == "verbal_1s" else "correct"
                sub = df.filter(pl.col(m).is_not_null() & pl.col(label).is_not_null())
                row = (
                    t["auc"]
                    .filter((pl.col("slm") == slm) & (pl.col("dataset") == d) & (pl.col("method") == m))
                    .row(0, named=True)
                )
                assert row["n"] == sub.height
                assert row["slm_accuracy"] == pytest.approx(sub[label].cast(float).mean())
                assert row["roc_auc"] == pytest.approx(roc_auc_score(sub[label].to_numpy(), sub[m].to_numpy()))
                summ = (
                    t["summary"]
                    .filter(
                        (pl.col("slm") == slm)
                        & (pl.col("dataset") == d)
                        & (pl.col("method") == m)
                        & (pl.col("llm") == "llm-x")
                    )
                    .row(0, named=True)
                )
                assert summ["llm_accuracy"] == pytest.approx(sub["llm_correct"].cast(float).mean())
                if m == "verbal_1s":  # the greedy label gives a different number: the test can tell them apart
                    assert row["roc_auc"] != pytest.approx(roc_auc_score(sub["correct"].to_numpy(), sub[m].to_numpy()))
                checked += 1
    assert checked == len(SLMS) * len(DATASETS) * len(METHODS)


def test_tables_4_and_5_in_the_papers_layout(written):
    root, _ = written
    out = table_outputs(root)
    t4 = pl.read_csv(out["table4_csv"])
    assert t4.columns == ["routing", *SLMS] and t4["routing"].to_list() == ["proxy", "proxy_realised", "random"]
    full4 = pl.read_csv(out["table4_full_csv"])
    assert full4.columns == ["llm", "target", "method", "routing", *SLMS]
    assert full4.height == len(LLMS) * len(DATASETS) * 2 * 3
    sel = full4.filter((pl.col("llm") == "llm-y") & (pl.col("target") == "boolq") & (pl.col("method") == "perplexity"))
    np.testing.assert_allclose(sel.select(SLMS).to_numpy(), t4.select(SLMS).to_numpy())
    t5 = pl.read_csv(out["table5_csv"])
    assert t5.columns == [
        "shift",
        "target",
        "method",
        "routing",
        "slm-b",
        "slm-a",
    ]  # the selected SLMs, in the selected order
    assert set(t5["method"]) == {"perplexity"}  # routing.table5.method names one
    assert t5.select("shift", "target").unique(maintain_order=True).rows() == [
        ("math_to_commonsense", "boolq"),
        ("commonsense_to_math", "gsm8k"),
        ("commonsense_to_math", "svamp"),
    ]
    md = Path(out["table5_md"]).read_text()
    assert md.startswith("Table 5") and "## Full grid" in md and "math_to_commonsense (gsm8k + svamp → boolq)" in md
    assert "No SLM is missing." in Path(out["status"]).read_text()


def test_table5_shows_every_proxy_method_when_none_is_named(written, tmp_path):
    """The paper does not name Table 5's UQ method: with table5.method null the paper layout has a block per
    proxy method, in the configured order, and the markdown says why."""
    root, t = written
    params = PARAMS | {"table5": {**PARAMS["table5"], "method": None}}
    out = table_outputs(tmp_path)
    assemble_routing(
        proxy_paths=[slm_outputs(root, s)["proxy"] for s in SLMS],
        warnings_paths=[slm_outputs(root, s)["warnings"] for s in SLMS],
        slms=SLMS,
        assembled=SLMS,
        llms=LLMS,
        datasets=DATASETS,
        methods=METHODS,
        outputs=out,
        params=params,
    )
    t5 = pl.read_csv(out["table5_csv"])
    assert t5.columns == ["shift", "target", "method", "routing", "slm-b", "slm-a"]
    blocks = t5.select("shift", "target", "method").unique(maintain_order=True).rows()
    assert blocks[:2] == [("math_to_commonsense", "boolq", "perplexity"), ("math_to_commonsense", "boolq", "verbal_1s")]
    assert len(blocks) == 3 * 2
    p = t["proxy"].filter(
        (pl.col("setting") == "math_to_commonsense")
        & (pl.col("llm") == "llm-x")
        & (pl.col("method") == "verbal_1s")
        & (pl.col("k") == 0.2)
        & (pl.col("slm") == "slm-a")
    )
    row = t5.filter((pl.col("method") == "verbal_1s") & (pl.col("routing") == "proxy"))
    assert row["slm-a"][0] == pytest.approx(p["rms"].mean())
    assert "does not name Table 5's UQ method" in Path(out["table5_md"]).read_text()


def test_table4_mean_over_seeds_is_recomputed(written):
    root, t = written
    t4 = pl.read_csv(table_outputs(root)["table4_csv"])
    p = t["proxy"].filter(
        (pl.col("setting") == "partial_in_domain")
        & (pl.col("target") == "boolq")
        & (pl.col("llm") == "llm-y")
        & (pl.col("method") == "perplexity")
        & (pl.col("k") == 0.2)
    )
    for slm in SLMS:
        assert t4.filter(pl.col("routing") == "proxy")[slm][0] == pytest.approx(
            p.filter(pl.col("slm") == slm)["rms"].mean()
        )
        assert t4.filter(pl.col("routing") == "random")[slm][0] == pytest.approx(
            p.filter(pl.col("slm") == slm)["rms_random"].mean()
        )


def test_holdout_is_self_contained(written, synthetic):
    root, paths = synthetic
    _, t = written
    h = (
        t["holdout"]
        .filter(
            (pl.col("method") == "verbal_1s")
            & (pl.col("setting") == "commonsense_to_math")
            & (pl.col("target") == "svamp")
            & (pl.col("k") == 0.2)
            & (pl.col("seed") == 50)
            & (pl.col("slm") == "slm-a")
        )
        .row(0, named=True)
    )
    assert h["sources"] == ["boolq", "commonsenseqa"] and set(h["source_dataset"]) <= set(h["sources"])
    assert len(set(h["id"])) == len(h["id"]) == len(h["confidence"]) == len(h["slm_correct"])
    t_, q = tie_aware_thresholds(np.array(h["confidence"]), np.array(h["ratio"]))
    np.testing.assert_array_equal(t_, h["threshold"])
    np.testing.assert_array_equal(q, h["q"])
    # the ids and confidences are the SLM's own rows of the source datasets
    for d in h["sources"]:
        uq = pl.read_parquet(Path(root) / f"results/uq/slm-a/{d}.parquet").select("id", "verbal_1s")
        mine = pl.DataFrame({"id": h["id"], "c": h["confidence"], "d": h["source_dataset"]}).filter(pl.col("d") == d)
        assert mine.join(uq, on="id").filter(pl.col("c") != pl.col("verbal_1s")).height == 0 and mine.height > 0
    # routing the target with route_fraction reproduces the proxy curve's realised ratio
    target = pl.read_parquet(Path(root) / "results/uq/slm-a/svamp.parquet")["verbal_1s"].drop_nulls().to_numpy()
    curve = (
        t["proxy_curves"]
        .filter(
            (pl.col("slm") == "slm-a")
            & (pl.col("method") == "verbal_1s")
            & (pl.col("setting") == "commonsense_to_math")
            & (pl.col("target") == "svamp")
            & (pl.col("seed") == 50)
            & (pl.col("llm") == "llm-x")
        )
        .sort("ratio")
    )
    realised = [route_fraction(target, ti, qi).mean() for ti, qi in zip(h["threshold"], h["q"])]
    np.testing.assert_allclose(curve["realised_ratio"].to_numpy(), realised, atol=1e-12)


def test_deterministic(synthetic, written, tmp_path):
    root, paths = synthetic
    again = run_slm(tmp_path, paths, "slm-b")
    for key, path in slm_outputs(root, "slm-b").items():
        assert Path(path).read_bytes() == Path(slm_outputs(tmp_path, "slm-b")[key]).read_bytes(), key
    for name, df in again.items():
        assert df.equals(written[1][name].filter(pl.col("slm") == "slm-b")), name


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
    np.testing.assert_allclose(
        a.filter(same)["oracle_accuracy"].to_numpy(), b.filter(same)["oracle_accuracy"].to_numpy()
    )
    other = ~same & (pl.col("setting") == "partial_in_domain")
    assert not np.allclose(a.filter(other)["threshold"].to_numpy(), b.filter(other)["threshold"].to_numpy())


def test_single_dataset_skips_the_proxy_with_a_record(tmp_path):
    paths = write_synthetic(tmp_path, slms=["s"], llms=["l"], datasets=["boolq"], methods=["perplexity"], n=30)
    inputs = load_inputs(*paths, slms=["s"], llms=["l"], datasets=["boolq"])
    t = evaluate(inputs, PARAMS | {"proxy_methods": ["perplexity"], "shifts": {}, "table4": {}, "table5": {}}, seed=0)
    assert t["proxy"].height == 0 and t["auc"].height == 1
    assert "no_sources" in t["warnings"]["kind"].to_list()


def test_null_correctness_rows_are_dropped_and_recorded(tmp_path, caplog):
    ds = ["gsm8k", "boolq"]
    paths = write_synthetic(tmp_path, slms=["s"], llms=["l"], datasets=ds, methods=["perplexity"], n=30)
    corr_path = paths[1][0]  # s/gsm8k
    df = pl.read_parquet(corr_path)
    df = df.with_columns(
        pl.when(pl.col("id").str.extract(r"(\d+)$").cast(int) < 4)
        .then(None)
        .otherwise(pl.col("correct"))
        .alias("correct")
    )
    io.write_parquet(df, corr_path, "correctness")
    inputs = load_inputs(*paths, slms=["s"], llms=["l"], datasets=ds)
    with caplog.at_level(logging.WARNING, logger="uqroute.routing"):
        t = evaluate(
            inputs, PARAMS | {"proxy_methods": ["perplexity"], "shifts": {}, "table4": {}, "table5": {}}, seed=0
        )
    assert "s/gsm8k/perplexity: dropped 4 queries with null SLM correctness (correct)" in caplog.text
    assert t["auc"].filter(pl.col("dataset") == "gsm8k")["n"][0] == 26
    w = t["warnings"].filter(pl.col("kind") == "dropped_rows")
    assert w.height == 1 and w["dataset"][0] == "gsm8k"


def test_one_class_dataset_gives_null_auc_not_a_crash(tmp_path):
    ds = ["gsm8k", "boolq"]
    paths = write_synthetic(tmp_path, slms=["s"], llms=["l"], datasets=ds, methods=["perplexity"], n=30)
    df = pl.read_parquet(paths[1][0]).with_columns(pl.lit(True).alias("correct"))
    io.write_parquet(df, paths[1][0], "correctness")
    inputs = load_inputs(*paths, slms=["s"], llms=["l"], datasets=ds)
    with pytest.warns(UserWarning, match="single class"):
        t = evaluate(
            inputs, PARAMS | {"proxy_methods": ["perplexity"], "shifts": {}, "table4": {}, "table5": {}}, seed=0
        )
    row = t["auc"].filter(pl.col("dataset") == "gsm8k").row(0, named=True)
    assert row["roc_auc"] is None and row["prr"] is None and row["prr_polygraph"] is None and row["slm_accuracy"] == 1.0
    check_frame(t["auc"], "auc")
    assert t["warnings"].filter(pl.col("kind") == "one_class").height == 1


def _set_method(path, method, values):
    df = pl.read_parquet(path)
    io.write_parquet(df.with_columns(pl.Series(method, values, dtype=pl.Float64)), path, "uq")


@pytest.mark.parametrize("kind", ["one value", "range below float resolution"])
def test_degenerate_pool_gives_results_and_a_record_not_a_crash(tmp_path, kind):
    """A pool whose scored values span a range below float resolution killed the whole stage
    ("Too many bins for data range"). Now it is one bin, recorded, and every table is written."""
    ds = ["gsm8k", "boolq", "piqa"]
    paths = write_synthetic(tmp_path, slms=["s"], llms=["l"], datasets=ds, methods=["perplexity", "verbal_1s"], n=30)
    base = 0.9
    vals = [base, np.nextafter(base, 1), np.nextafter(np.nextafter(base, 1), 1)]
    for p in paths[0]:
        n = pl.read_parquet(p).height
        _set_method(p, "verbal_1s", [base] * n if kind == "one value" else [vals[i % 3] for i in range(n)])
    outs = slm_outputs(tmp_path, "s")
    t = run_routing(
        uq_paths=paths[0],
        correctness_paths=paths[1],
        data_paths=paths[2],
        slms=["s"],
        llms=["l"],
        datasets=ds,
        outputs=outs,
        params=PARAMS
        | {"bins": 30, "proxy_methods": ["perplexity", "verbal_1s"], "shifts": {}, "table4": {}, "table5": {}},
    )
    v = t["proxy"].filter(pl.col("method") == "verbal_1s")
    assert v.height == len(ds) * 3 * 2 and v["pool_note"].is_not_null().all()
    assert ("single value" if kind == "one value" else "too small for 30 finite bins") in v["pool_note"][0]
    assert t["proxy"].filter(pl.col("method") == "perplexity")["pool_note"].is_null().all()
    assert "degenerate_pool" in t["warnings"]["kind"].to_list()
    assert (t["holdout"].filter(pl.col("method") == "verbal_1s")["bins"] == 1).all()
    pc = t["proxy_curves"].filter(pl.col("method") == "verbal_1s")
    assert (
        pc.filter(pl.col("ratio") == 1.0)["realised_ratio"].to_list()
        == [1.0] * pc.filter(pl.col("ratio") == 1.0).height
    )
    assert all(Path(p).exists() for p in outs.values())


def test_one_methods_failure_leaves_the_other_methods_complete(tmp_path, monkeypatch):
    import uqroute.routing.evaluation as ev

    ds = ["gsm8k", "boolq"]
    paths = write_synthetic(
        tmp_path, slms=["s"], llms=["l"], datasets=ds, methods=["perplexity", "ptrue"], n=30
    )  # two datasets: no leak-free ood_probe pool exists
    inputs = load_inputs(*paths, slms=["s"], llms=["l"], datasets=ds)
    p = PARAMS | {"proxy_methods": ["perplexity", "ptrue"], "shifts": {}, "table4": {}, "table5": {}}
    clean = evaluate(inputs, p, seed=0)
    real_curve, real_proxy = ev.curve_step, ev.proxy_step

    def bad_curve(mc, *a, **k):
        if mc.method == "ptrue" and mc.dataset == "boolq":
            raise FloatingPointError("injected")
        return real_curve(mc, *a, **k)

    def bad_proxy(slm, method, sc, *a, **k):
        if method == "perplexity" and sc.target == "gsm8k":
            raise ValueError("injected proxy failure")
        return real_proxy(slm, method, sc, *a, **k)

    monkeypatch.setattr(ev, "curve_step", bad_curve)
    monkeypatch.setattr(ev, "proxy_step", bad_proxy)
    t = evaluate(inputs, p, seed=0)
    failed = t["warnings"].filter(pl.col("kind") == "failed")
    assert (
        failed.height == 2
        and "injected" in failed["message"][0]
        and "FloatingPointError" in " ".join(failed["message"])
    )
    for name in ("auc", "curves", "relative_accuracy", "summary"):
        keep = ~((pl.col("method") == "ptrue") & (pl.col("dataset") == "boolq"))
        assert t[name].equals(clean[name].filter(keep)), name  # nothing half-written for the failed cell
    keep = ~((pl.col("method") == "perplexity") & (pl.col("target") == "gsm8k"))
    keep &= ~(
        (pl.col("method") == "ptrue") & (pl.col("target") == "boolq")
    )  # its target curve failed: hold-out set only
    assert t["proxy"].equals(clean["proxy"].filter(keep))
    assert t["holdout"].filter((pl.col("method") == "ptrue") & (pl.col("target") == "boolq")).height == 6
    assert t["proxy"].filter(pl.col("method") == "ptrue").height > 0


def test_bad_inputs_name_the_culprit_and_write_nothing(tmp_path):
    ds = ["gsm8k", "boolq"]
    paths = write_synthetic(tmp_path, slms=["s"], llms=["l"], datasets=ds, methods=["perplexity"], n=20)
    outs = slm_outputs(tmp_path, "s")
    p = PARAMS | {"proxy_methods": ["perplexity"], "shifts": {}, "table4": {}, "table5": {}}
    # the LLM's correctness lacks a query
    llm_corr = paths[1][2]
    io.write_parquet(pl.read_parquet(llm_corr).slice(1), llm_corr, "correctness")
    with pytest.raises(RoutingInputError, match=r"correctness file .*l/gsm8k.parquet lacks 1 expected id"):
        run_routing(
            uq_paths=paths[0],
            correctness_paths=paths[1],
            data_paths=paths[2],
            slms=["s"],
            llms=["l"],
            datasets=ds,
            outputs=outs,
            params=p,
        )
    assert not any(Path(x).exists() for x in outs.values())
    # inputs out of expand() order
    with pytest.raises(RoutingInputError, match="does not belong to s/gsm8k"):
        load_inputs(paths[0][::-1], paths[1], paths[2], slms=["s"], llms=["l"], datasets=ds)
    # an unknown or unselected proxy method names the config key
    paths = write_synthetic(tmp_path / "b", slms=["s"], llms=["l"], datasets=ds, methods=["perplexity"], n=20)
    inputs = load_inputs(*paths, slms=["s"], llms=["l"], datasets=ds)
    with pytest.raises(RoutingConfigError, match=r"routing.proxy_methods: \['ood_probe'\] are not in uq.methods"):
        evaluate(inputs, p | {"proxy_methods": ["ood_probe"]})
    # an infinite confidence
    uq = pl.read_parquet(paths[0][0]).with_columns(
        pl.when(pl.col("id") == "gsm8k/test/3").then(float("inf")).otherwise(pl.col("perplexity")).alias("perplexity")
    )
    io.write_parquet(uq, paths[0][0], "uq")
    with pytest.raises(RoutingInputError, match=r"'perplexity' is infinite for id 'gsm8k/test/3'"):
        load_inputs(*paths, slms=["s"], llms=["l"], datasets=ds)


@pytest.mark.parametrize("which", ["uq", "correctness", "data"])
def test_a_corrupted_input_artifact_names_the_file(tmp_path, which):
    ds = ["gsm8k", "boolq"]
    paths = write_synthetic(tmp_path, slms=["s"], llms=["l"], datasets=ds, methods=["perplexity"], n=20)
    victim = {"uq": paths[0][1], "correctness": paths[1][0], "data": paths[2][1]}[which]
    blob = Path(victim).read_bytes()
    Path(victim).write_bytes(blob[: len(blob) // 2])  # truncated parquet
    outs = slm_outputs(tmp_path, "s")
    with pytest.raises(RoutingInputError, match=rf"{which} file {victim} cannot be read as parquet"):
        run_routing(
            uq_paths=paths[0],
            correctness_paths=paths[1],
            data_paths=paths[2],
            slms=["s"],
            llms=["l"],
            datasets=ds,
            outputs=outs,
            params=PARAMS | {"proxy_methods": ["perplexity"], "shifts": {}, "table4": {}, "table5": {}},
        )
    assert not any(Path(x).exists() for x in outs.values())


def test_an_unregistered_uq_column_is_an_error(tmp_path):
    ds = ["gsm8k", "boolq"]
    paths = write_synthetic(tmp_path, slms=["s"], llms=["l"], datasets=ds, methods=["perplexity"], n=20)
    io.write_parquet(pl.read_parquet(paths[0][0]).with_columns(pl.lit(0.5).alias("my_method")), paths[0][0], "uq")
    with pytest.raises(RoutingInputError, match=r"column 'my_method', which is not a registered UQ method"):
        load_inputs(*paths, slms=["s"], llms=["l"], datasets=ds)


def test_assembly_names_missing_slms(written, tmp_path):
    root, _ = written
    out = table_outputs(tmp_path)
    assemble_routing(
        proxy_paths=[slm_outputs(root, "slm-a")["proxy"]],
        warnings_paths=[slm_outputs(root, "slm-a")["warnings"]],
        slms=SLMS,
        assembled=["slm-a"],
        llms=LLMS,
        datasets=DATASETS,
        methods=METHODS,
        outputs=out,
        params=PARAMS | {"assemble": "available"},
    )
    status = Path(out["status"]).read_text()
    assert "**Missing SLMs: slm-b.**" in status and "| slm-b | missing |" in status and "1 of 2 SLMs" in status
    t4 = pl.read_csv(out["table4_csv"])
    assert t4["slm-b"].null_count() == 3 and t4["slm-a"].null_count() == 0
    assert "**Missing SLMs** (no routing results, column shows –): slm-b" in Path(out["table4_md"]).read_text()


def test_the_rules_take_paths_from_the_registries():
    rules = Path(__file__).parents[1].joinpath("workflow/rules/routing.smk").read_text()
    common = Path(__file__).parents[1].joinpath("workflow/rules/routing_common.smk").read_text()
    assert '"results/' not in rules and '"results/' not in common  # no path restated in the rules
    for name in ("uq", "data", "proxy", "routing_warnings", "auc", "curves", "relative_accuracy", "proxy_curves"):
        assert f'ARTIFACTS["{name}"].path' in rules, name


def test_synthetic_paths_follow_the_registry(tmp_path):
    uq, corr, data = synthetic_paths(tmp_path, ["s"], ["l"], ["gsm8k"])
    assert uq == [str(tmp_path / ARTIFACTS["uq"].path.format(slm="s", dataset="gsm8k"))]


def test_generic_out_of_domain_setting_and_leak_free_ood_probe_pools(synthetic):
    """routing.out_of_domain adds one scenario per target with the other domains as sources; an ood_probe pool
    uses the leak-free scores of each (source, target) pair, and without them the scenario is skipped, recorded."""
    _, paths = synthetic
    inputs = load_inputs(*paths, slms=SLMS, llms=LLMS, datasets=DATASETS)
    p = PARAMS | {"out_of_domain": True, "proxy_methods": ["perplexity", "ood_probe"], "k_sweep": []}
    t = evaluate(inputs, p, seed=0)
    ood = t["holdout"].filter(
        (pl.col("setting") == "out_of_domain") & (pl.col("method") == "perplexity") & (pl.col("slm") == "slm-a")
    )
    got = {r["target"]: r["sources"] for r in ood.unique("target").iter_rows(named=True)}
    assert got == {
        "gsm8k": ["boolq", "commonsenseqa"],
        "svamp": ["boolq", "commonsenseqa"],
        "boolq": ["gsm8k", "svamp"],
        "commonsenseqa": ["gsm8k", "svamp"],
    }
    assert t["holdout"].filter(pl.col("method") == "ood_probe").height == 0  # no leak-free scores given
    skipped = t["warnings"].filter((pl.col("kind") == "no_sources") & (pl.col("method") == "ood_probe"))
    assert skipped.height == len(SLMS) * (N_SCENARIOS + len(DATASETS)) and "leak-free" in skipped["message"][0]
    # with leak-free scores (a distinct, recognisable value per (source, target)), the pool holds exactly them
    inputs.leak_free = {
        (s, d, o): np.full(inputs.cells[(s, d)].ids.size, 0.1 * (1 + DATASETS.index(d)) + 0.01 * DATASETS.index(o))
        for s in SLMS
        for d in DATASETS
        for o in DATASETS
        if d != o
    }
    t = evaluate(inputs, p, seed=0)
    for r in t["holdout"].filter(pl.col("method") == "ood_probe").iter_rows(named=True):
        expect = {0.1 * (1 + DATASETS.index(d)) + 0.01 * DATASETS.index(r["target"]) for d in r["source_dataset"]}
        assert set(r["confidence"]) <= {round(e, 12) for e in expect} | expect


def test_leak_free_scores_are_read_from_the_owner_files(tmp_path):
    """Rule proxy_probe writes one file per SLM and owner dataset, holding several pairs: every pair is read
    back in both directions, in eval-id order; a pair found in two files is an error naming both."""
    from uqroute.routing import proxy_probe_jobs, proxy_probe_pairs, scenarios
    from uqroute.routing.synthetic import write_synthetic_proxy_probes

    paths = write_synthetic(tmp_path, slms=["s"], llms=["l"], datasets=DATASETS, methods=["ood_probe"], n=20)
    pairs = proxy_probe_pairs(scenarios(DATASETS, {}), DATASETS)
    files = write_synthetic_proxy_probes(tmp_path, slms=["s"], pairs=pairs, datasets=DATASETS, n=20)
    assert len(files) == len(proxy_probe_jobs(pairs, DATASETS)) == 4 and len(pairs) == 6
    inputs = load_inputs(*paths, slms=["s"], llms=["l"], datasets=DATASETS, proxy_probe_paths=files)
    assert sorted(inputs.leak_free) == sorted(("s", d, o) for a, b in pairs for d, o in ((a, b), (b, a)))
    for (_, d, o), scores in inputs.leak_free.items():
        owner = next(f for f in files if any({d, o} == set(p) for p in proxy_probe_jobs(pairs, DATASETS)[Path(f).stem]))
        df = pl.read_parquet(owner).filter((pl.col("dataset") == d) & (pl.col("other") == o))
        by_id = dict(zip(df["id"], df["ood_probe"]))
        assert scores.tolist() == [by_id[i] for i in inputs.cells[("s", d)].ids]
    with pytest.raises(RoutingInputError, match=rf"proxy-probe files {files[0]} and {files[0]} both hold the scores"):
        load_inputs(*paths, slms=["s"], llms=["l"], datasets=DATASETS, proxy_probe_paths=files + files[:1])
