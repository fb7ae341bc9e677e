"""Router calibration, router file, streaming quantile threshold and monitor: the pure parts (fast)."""

from __future__ import annotations

import copy
import json
import logging
import math

import numpy as np
import polars as pl
import pytest
from scipy.stats import wasserstein_distance

from uqroute import io
from uqroute.router import (
    CalibrationError,
    Monitor,
    QuantileThreshold,
    RouterConfigError,
    RouterFileError,
    calibrate,
    check_config,
    check_router_file,
    predicted_accuracy,
    read_router_file,
    router_pairs,
    select_holdout,
)
from uqroute.router.build import calibrate_file, router_document, run_router, run_router_holdout
from uqroute.routing import ProxyPool, tie_aware_thresholds
from uqroute.routing.synthetic import write_synthetic
from uqroute.schema import ARTIFACTS, ROUTER_FILE, check_frame


def _row(conf, s, seed=50, datasets=None, ids=None, step=0.25):
    grid = np.arange(0, 1 + 1e-9, step)
    t, q = tie_aware_thresholds(np.sort(conf), grid)
    n = len(conf)
    order = np.argsort(conf, kind="stable")
    return {
        "slm": "s",
        "method": "perplexity",
        "setting": "pooled",
        "target": None,
        "sources": ["a", "b"],
        "k": 0.1,
        "seed": seed,
        "bins": 30,
        "pool_size": 10 * n,
        "pool_note": None,
        "source_dataset": list(np.asarray(datasets or ["a"] * n, dtype=object)[order]),
        "id": list(np.asarray(ids or [f"a/{i}" for i in range(n)], dtype=object)[order]),
        "confidence": list(np.asarray(conf, dtype=float)[order]),
        "slm_correct": [None if v is None else bool(v) for v in np.asarray(s, dtype=object)[order]],
        "ratio": list(grid),
        "threshold": list(t),
        "q": list(q),
    }


# ------------------------------------------------------------------ predicted accuracy (hand-computed)
def test_predicted_accuracy_hand_computed():
    # 4 rows, confidences 0.1 < 0.2 < 0.3 < 0.4, SLM right on the two confident ones, LLM right on all but row 2
    c, s, l = [0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1], [1, 0, 1, 1]
    # route nothing: SLM accuracy 0.5; route below 0.25 (rows 0, 1): (1 + 0 + 1 + 1)/4; route all: LLM 0.75
    acc = predicted_accuracy(c, s, l, [-np.inf, 0.25, np.inf], [0, 0, 0])
    assert acc.tolist() == [0.5, 0.75, 0.75]
    # threshold exactly at 0.2 with q = 0.5: row 0 routed, row 1 routed half the time -> (1 + 0 + 1 + 1)/4 either way
    assert predicted_accuracy(c, s, l, [0.2], [0.5]).tolist() == [0.75]
    # at 0.3 with q = 0.5: rows 0, 1 routed, row 2 half: (1 + 0 + (0.5·1 + 0.5·1) + 1)/4
    assert predicted_accuracy(c, s, l, [0.3], [0.5]).tolist() == [0.75]
    # unlabelled SLM rows are left out of the mean
    assert predicted_accuracy(c, [0, None, 1, 1], l, [-np.inf, np.inf], [0, 0]).tolist() == pytest.approx([2 / 3, 1.0])


def test_predicted_accuracy_constant_confidence_is_random_routing():
    rng = np.random.default_rng(0)
    s, l = (rng.random(50) < 0.4).astype(float), (rng.random(50) < 0.8).astype(float)
    c = np.full(50, 0.9)  # verbalized: every confidence the same
    grid = np.linspace(0, 1, 11)
    t, q = tie_aware_thresholds(c, grid)
    acc = predicted_accuracy(c, s, l, t, q)
    np.testing.assert_allclose(acc, (1 - grid) * s.mean() + grid * l.mean(), atol=1e-12)


def test_calibrate_fraction_and_spread_over_seeds():
    c1, c2 = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.15, 0.2, 0.35, 0.5])
    rows = [_row(c1, [0, 0, 1, 1], seed=50), _row(c2, [0, 1, 1, 1], seed=51)]
    cal = calibrate(rows, operating_point={"llm_fraction": 0.5}, llm_accuracy=1.0)
    # every routed row is right (LLM accuracy 1): acc(r) = mean(s) + (routed wrong ones)/n
    seed50 = predicted_accuracy(c1, [0, 0, 1, 1], [1] * 4, *tie_aware_thresholds(c1, cal["grid"]["ratio"]))
    seed51 = predicted_accuracy(c2, [0, 1, 1, 1], [1] * 4, *tie_aware_thresholds(c2, cal["grid"]["ratio"]))
    np.testing.assert_allclose(cal["curve"]["accuracy_mean"], (seed50 + seed51) / 2)
    np.testing.assert_allclose(cal["curve"]["accuracy_sd"], np.std([seed50, seed51], axis=0, ddof=1))
    assert cal["curve"]["llm_accuracy"] == 1.0 and cal["curve"]["slm_accuracy"] == pytest.approx((0.5 + 0.75) / 2)
    op = cal["operating_point"]
    t, q = tie_aware_thresholds(c1, [0.5])  # the served seed is the first
    assert op["llm_fraction"] == 0.5 and op["threshold"] == pytest.approx(t[0]) and op["q"] == pytest.approx(q[0])
    assert cal["grid"]["threshold"][0] is None and cal["grid"]["threshold"][-1] is None  # ±inf as null
    assert cal["holdout"]["served_seed"] == 50 and cal["holdout"]["confidence"] == sorted(c1.tolist())


def test_calibrate_share_picks_smallest_fraction():
    c = np.array([0.1, 0.2, 0.3, 0.4])
    rows = [_row(c, [0, 0, 1, 1])]
    # acc at 0, .25, .5, .75, 1 = .5, .75, 1, 1, 1 with an LLM that is always right
    cal = calibrate(rows, operating_point={"llm_accuracy_share": 0.75}, llm_accuracy=1.0)
    assert cal["operating_point"]["llm_fraction"] == 0.25
    cal = calibrate(rows, operating_point={"llm_accuracy_share": 0.99}, llm_accuracy=1.0)
    assert cal["operating_point"]["llm_fraction"] == 0.5
    assert cal["operating_point"]["predicted_accuracy_sd"] is None  # one seed
    with pytest.raises(CalibrationError, match="no LLM-call fraction reaches 1.5"):
        calibrate(rows, operating_point={"llm_accuracy_share": 1.5}, llm_accuracy=1.0)


def test_calibrate_ties_coarse_values():
    # verbalized confidences: 0.9 or 1.0 only
    c = np.array([0.9] * 6 + [1.0] * 4)
    s = [0, 0, 1, 0, 1, 1, 1, 1, 1, 0]
    cal = calibrate([_row(c, s, step=0.1)], operating_point={"llm_fraction": 0.3}, llm_accuracy=0.8)
    op = cal["operating_point"]
    assert op["threshold"] == 0.9 and op["q"] == pytest.approx(0.5)  # 3 of the 6 tied at 0.9
    # expected: half of the 0.9 group routed: 0.5·mean(s of 0.9 group)+0.5·0.8 for those 6, s for the rest
    want = (0.5 * 3 + 0.5 * 6 * 0.8 + 3) / 10
    assert op["predicted_accuracy"] == pytest.approx(want)


def test_calibrate_per_query_llm_labels(tmp_path):
    c = np.array([0.1, 0.2, 0.3, 0.4])
    row = _row(c, [0, 0, 1, 1], datasets=["a", "a", "b", "b"], ids=["a/0", "a/1", "b/0", "b/1"])
    paths = {}
    for d, ids, corr in (("a", ["a/0", "a/1", "a/2"], [True, None, False]), ("b", ["b/1", "b/0"], [True, False])):
        df = pl.DataFrame(
            {
                "id": ids,
                "correct": corr,
                "label_source": ["rule"] * len(ids),
                "rule_correct": corr,
                "judge_correct": [None] * len(ids),
                "judge_verdict": [None] * len(ids),
                "judge_raw": [None] * len(ids),
                "judge_method": [None] * len(ids),
                "judge_p_correct": [None] * len(ids),
                "verbal_1s_correct": [None] * len(ids),
            },
            schema=ARTIFACTS["correctness"].polars_schema(),
        )
        paths[d] = tmp_path / f"{d}.parquet"
        io.write_parquet(df, paths[d], "correctness")
    cal = calibrate([row], operating_point={"llm_fraction": 1.0}, llm_correctness=paths)
    # l = [1, acc_a (a/1 unlabelled) = 0.5, 0, 1] -> LLM accuracy 0.625
    assert cal["curve"]["llm_accuracy"] == pytest.approx(0.625)
    assert cal["curve"]["llm_accuracy_by_source"] == {"a": 0.5, "b": 0.5}
    df = pl.read_parquet(paths["b"]).filter(pl.col("id") == "b/1")
    io.write_parquet(df, paths["b"], "correctness")
    with pytest.raises(CalibrationError, match=r"lacks hold-out id\(s\) \['b/0'\]"):
        calibrate([row], operating_point={"llm_fraction": 1.0}, llm_correctness=paths)


def test_calibrate_rejects_bad_inputs():
    c = np.array([0.1, 0.2])
    row = _row(c, [0, 1])
    with pytest.raises(CalibrationError, match="exactly one"):
        calibrate([row], operating_point={"llm_fraction": 0.5})
    with pytest.raises(CalibrationError, match="seeds .* repeat"):
        calibrate([row, row], operating_point={"llm_fraction": 0.5}, llm_accuracy=0.5)
    bad = copy.deepcopy(row)
    bad["threshold"][1] += 1
    with pytest.raises(CalibrationError, match="stored thresholds do not match"):
        calibrate([bad], operating_point={"llm_fraction": 0.5}, llm_accuracy=0.5)
    with pytest.raises(CalibrationError, match="no hold-out row has an SLM label"):
        calibrate([_row(c, [None, None])], operating_point={"llm_fraction": 0.5}, llm_accuracy=0.5)
    with pytest.raises(RouterConfigError, match="llm_fraction: must lie in"):
        calibrate([row], operating_point={"llm_fraction": 1.5}, llm_accuracy=0.5)
    with pytest.raises(CalibrationError, match="served seed 7"):
        calibrate([row], operating_point={"llm_fraction": 0.5}, llm_accuracy=0.5, served_seed=7)


# ------------------------------------------------------------------ pooled hold-out set, rule functions
DATASETS = ["gsm8k", "boolq", "openbookqa"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("router-syn")
    paths = write_synthetic(root, slms=["s"], llms=["l"], datasets=DATASETS, methods=["perplexity", "verbal_2s"], n=80)
    return root, paths


def test_pooled_holdout_is_the_routing_draw_over_every_dataset(synthetic, tmp_path):
    root, (uq, corr, data) = synthetic
    slm_corr = [p for p in corr if "/correctness/s/" in p]
    out = tmp_path / "holdout.parquet"
    df = run_router_holdout(
        uq_paths=uq,
        correctness_paths=slm_corr,
        data_paths=data,
        slm="s",
        datasets=DATASETS,
        methods=["perplexity", "verbal_2s"],
        out_path=out,
        routing_params={"seeds": [50, 51], "bins": 30, "k": 0.2},
    )
    check_frame(pl.read_parquet(out), "router_holdout")
    assert df.height == 4 and set(df["setting"]) == {"pooled"} and df["target"].null_count() == 4
    pool = np.concatenate([pl.read_parquet(p).sort("id")["perplexity"].to_numpy() for p in uq])
    for seed in (50, 51):
        row = df.filter((pl.col("method") == "perplexity") & (pl.col("seed") == seed)).row(0, named=True)
        np.testing.assert_array_equal(row["confidence"], ProxyPool(pool, 30).sample(0.2, seed))
        t, q = tie_aware_thresholds(np.array(row["confidence"]), np.array(row["ratio"]))
        np.testing.assert_array_equal(row["threshold"], t)
        assert set(row["source_dataset"]) == set(DATASETS)
        assert row["sources"] == DATASETS
    # the verbal method: null confidences are not in the pool, ties survive
    v = df.filter(pl.col("method") == "verbal_2s").row(0, named=True)
    assert len(set(v["confidence"])) < len(v["confidence"])


def test_rule_router_and_calibrate_cli_agree(synthetic, tmp_path):
    root, (uq, corr, data) = synthetic
    slm_corr = [p for p in corr if "/correctness/s/" in p]
    hold = tmp_path / "holdout.parquet"
    run_router_holdout(
        uq_paths=uq,
        correctness_paths=slm_corr,
        data_paths=data,
        slm="s",
        datasets=DATASETS,
        methods=["perplexity"],
        out_path=hold,
        routing_params={"seeds": [50, 51, 52]},
    )
    llm_corr = {d: str(root / f"results/correctness/l/{d}.parquet") for d in DATASETS}
    out = tmp_path / "routers" / "perplexity.json"
    cfg = {"methods": ["perplexity"], "operating_point": {"llm_fraction": 0.25}, "mode": "fixed"}
    doc = run_router(
        holdout_path=hold,
        llm_correctness=llm_corr,
        out_path=out,
        slm="s",
        method="perplexity",
        llm="l",
        router_cfg=cfg,
        inference_cfg={},
        seed=0,
        model_dir=None,
        weights=None,
        routing_seeds=[50, 51, 52],
    )
    assert read_router_file(out) == doc
    assert doc["operating_point"]["llm_fraction"] == 0.25 and doc["serving"]["mode"] == "fixed"
    assert doc["inference"]["statistics"] == ["greedy", "hidden"]
    assert len(doc["curve"]["accuracy_by_seed"]) == 3
    # the curve's end points are the SLM's and the LLM's accuracy on the hold-out rows
    rows = select_holdout(pl.read_parquet(hold), method="perplexity")
    ids = [set(zip(r["source_dataset"], r["id"])) for r in rows]
    llm = {(d, i): c for d in DATASETS for i, c in pl.read_parquet(llm_corr[d]).select("id", "correct").iter_rows()}
    want = np.mean([np.mean([llm[x] for x in s]) for s in ids])
    assert doc["curve"]["llm_accuracy"] == pytest.approx(want)
    cli = tmp_path / "cli.json"
    doc2 = calibrate_file(
        holdout_path=hold,
        out_path=cli,
        llm_correctness_dir=root / "results/correctness/l",
        llm_fraction=0.25,
        mode="fixed",
    )
    for key in ("grid", "curve", "operating_point", "serving"):
        assert doc2[key] == doc[key]
    assert doc2["llm"] == "l" and doc2["created_by"] == "uqroute calibrate"
    # a share target on the same hold-out set
    doc3 = calibrate_file(holdout_path=hold, out_path=cli, llm_accuracy=0.9, llm_accuracy_share=0.9)
    acc = np.array(doc3["curve"]["accuracy_mean"])
    r = doc3["operating_point"]["llm_fraction"]
    i = doc3["grid"]["ratio"].index(r)
    assert acc[i] >= 0.9 * doc3["curve"]["llm_accuracy"] - 1e-12 and (
        i == 0 or acc[i - 1] < 0.9 * doc3["curve"]["llm_accuracy"]
    )
    with pytest.raises(RouterConfigError, match="not both"):
        calibrate_file(holdout_path=hold, out_path=cli, llm_accuracy=0.9, llm_fraction=0.1, llm_accuracy_share=0.9)
    assert json.loads(cli.read_text()) == doc3  # the failed call left the file as it was


def test_calibrate_file_reads_pipeline_holdout_and_asks_to_choose(synthetic, tmp_path):
    from uqroute.routing import run_routing
    from uqroute.routing.run import OUTPUT_KEYS

    root, (uq, corr, data) = synthetic
    outs = {k: str(tmp_path / f"{k}.parquet") for k in OUTPUT_KEYS}
    run_routing(
        uq_paths=uq,
        correctness_paths=corr,
        data_paths=data,
        slms=["s"],
        llms=["l"],
        datasets=DATASETS,
        outputs=outs,
        params={"bootstrap": 0, "random_mc": 0, "proxy_methods": ["perplexity"], "k_sweep": [0.1]},
    )
    with pytest.raises(CalibrationError, match="hold-out sets match; choose one"):
        calibrate_file(holdout_path=outs["holdout"], out_path=tmp_path / "r.json", llm_accuracy=0.8, llm_fraction=0.3)
    doc = calibrate_file(
        holdout_path=outs["holdout"],
        out_path=tmp_path / "r.json",
        llm_accuracy=0.8,
        llm_fraction=0.3,
        target="boolq",
        setting="partial_in_domain",
    )
    assert doc["holdout"]["target"] == "boolq" and "boolq" not in doc["holdout"]["sources"]
    assert not (tmp_path / "nothing.json").exists()


def test_trained_probe_cannot_be_served_and_probe_file_is_required(synthetic, tmp_path):
    with pytest.raises(RouterConfigError, match="trained_probe is the in-domain probe"):
        check_config({"methods": ["trained_probe"]}, slms=["s"], llms=["l"], uq_methods=["trained_probe"])


# ------------------------------------------------------------------ router file
def _doc():
    cal = calibrate(
        [_row(np.array([0.1, 0.2, 0.3, 0.4]), [0, 0, 1, 1])], operating_point={"llm_fraction": 0.5}, llm_accuracy=0.9
    )
    return router_document(
        cal,
        slm="s",
        method="perplexity",
        llm=None,
        created_by="test",
        model_dir="m",
        weights=None,
        inference={},
        max_tokens=64,
        seed=0,
        probe=None,
        holdout_file=None,
        serving={"mode": "tracking", "window": 10, "min_samples": 5, "drift_margin": 0.1},
    )


def test_router_file_fields_are_exactly_the_documented_ones(tmp_path):
    doc = _doc()
    check_router_file(doc)
    documented = {f.path for f in ROUTER_FILE}

    def paths(node, prefix=""):
        for k, v in node.items():
            yield prefix + k
            if isinstance(v, dict) and any(p.startswith(prefix + k + ".") for p in documented):
                yield from paths(v, prefix + k + ".")

    assert set(paths(doc)) == documented - {"probe.path", "probe.sha256", "probe.training_datasets"}
    for mutate, match in (
        (lambda d: d.pop("grid"), "field 'grid' is missing"),
        (lambda d: d["operating_point"].update(extra=1), "undocumented field 'operating_point.extra'"),
        (lambda d: d.update(version=2), "version 2"),
        (lambda d: d["serving"].update(window="10"), "'serving.window' is a str"),
        (lambda d: d.update(slm=None), "'slm' is null"),
        (lambda d: d["grid"]["q"].pop(), "differ in length"),
        (lambda d: d["holdout"].update(confidence=[]), "holdout.confidence is empty"),
    ):
        bad = copy.deepcopy(doc)
        mutate(bad)
        with pytest.raises(RouterFileError, match=match):
            check_router_file(bad)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(RouterFileError, match="bad.json: not valid JSON"):
        read_router_file(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_router_file(tmp_path / "missing.json")


# ------------------------------------------------------------------ streaming quantile threshold
def test_fixed_threshold_routes_below_and_a_fraction_of_ties():
    qt = QuantileThreshold(0.3, 0.5, 0.25, mode="fixed", window=10, min_samples=2, seed=1)
    assert qt.decide(0.4).routed and not qt.decide(0.6).routed
    tied = [qt.decide(0.5) for _ in range(4000)]
    assert {d.source for d in tied} == {"calibrated"} and all(d.p_route == 0.25 for d in tied)
    assert abs(np.mean([d.routed for d in tied]) - 0.25) < 0.03  # binomial sd 0.007
    nan = qt.decide(float("nan"))
    assert nan.routed and nan.source == "unscored"
    # deterministic for a seed
    a = [QuantileThreshold(0.3, 0.5, 0.5, mode="fixed", seed=3).decide(0.5).routed for _ in range(1)]
    b = [QuantileThreshold(0.3, 0.5, 0.5, mode="fixed", seed=3).decide(0.5).routed for _ in range(1)]
    assert a == b


def test_tracking_decides_an_infinite_confidence_but_keeps_it_out_of_the_window():
    qt = QuantileThreshold(0.5, 0.0, 0.0, mode="tracking", window=4, min_samples=2, seed=0)
    for c in (0.1, 0.9, -math.inf, math.inf):
        qt.decide(c)
    assert qt.window.array().tolist() == [0.1, 0.9]
    t, q, src = qt.current()
    assert src == "tracking" and math.isfinite(t)
    assert qt.decide(-math.inf).routed and not qt.decide(math.inf).routed


def test_tracking_threshold_is_the_tie_aware_window_quantile():
    qt = QuantileThreshold(0.25, 100.0, 0.0, mode="tracking", window=8, min_samples=4, seed=0)
    seen = []
    for c in [0.9, 0.1, 0.5, 0.3]:
        d = qt.decide(c)
        assert d.source == "calibrated" and d.threshold == 100.0 and d.routed
        seen.append(c)
    for c in [0.7, 0.2, 0.2, 0.8, 0.6, 0.4, 0.05]:
        t, q, src = qt.current()
        want_t, want_q = tie_aware_thresholds(np.array(seen[-8:]), [0.25])
        assert src == "tracking" and t == pytest.approx(want_t[0]) and q == pytest.approx(want_q[0])
        qt.decide(c)
        seen.append(c)
    # constant live confidences: the quantile is that value and q routes exactly the fraction
    qt = QuantileThreshold(0.3, 0.0, 0.0, mode="tracking", window=50, min_samples=10, seed=2)
    d = [qt.decide(0.9) for _ in range(3000)]
    assert d[-1].threshold == 0.9 and d[-1].q == pytest.approx(0.3)
    assert abs(np.mean([x.routed for x in d[10:]]) - 0.3) < 0.03


def test_tracking_holds_the_budget_under_shift_where_fixed_misses_it():
    rng = np.random.default_rng(0)
    holdout = rng.normal(0, 1, 300)
    t, q = tie_aware_thresholds(holdout, [0.3])
    live = rng.normal(1.0, 1, 4000)  # the new data is more confident
    fixed = QuantileThreshold(0.3, t[0], q[0], mode="fixed", seed=0)
    track = QuantileThreshold(0.3, t[0], q[0], mode="tracking", window=500, min_samples=50, seed=0)
    f = np.mean([fixed.decide(c).routed for c in live])
    r = np.mean([track.decide(c).routed for c in live])
    noise = 3 * math.sqrt(0.3 * 0.7 / live.size)
    assert abs(f - 0.3) > 0.15  # about Φ(−0.52 − 1) ≈ 0.06
    assert abs(r - 0.3) < noise + 0.01


def test_threshold_rejects_bad_settings():
    with pytest.raises(ValueError, match="mode"):
        QuantileThreshold(0.3, 0.5, 0.0, mode="adaptive")
    with pytest.raises(ValueError, match="min_samples"):
        QuantileThreshold(0.3, 0.5, 0.0, window=5, min_samples=6)


# ------------------------------------------------------------------ monitor
def test_monitor_fraction_w1_and_drift_warning(caplog):
    ref = np.array([0.1, 0.2, 0.3, 0.4])
    m = Monitor(0.25, ref, window=4, min_samples=3, drift_margin=0.3, name="r")
    assert math.isnan(m.state().realised_fraction)
    with caplog.at_level(logging.WARNING, logger="uqroute.router"):
        st = m.record(0.5, True)
        assert st.realised_fraction == 1.0 and not st.drifting  # too few to judge
        m.record(0.6, True)
        st = m.record(float("nan"), True)
        assert st.drifting and st.n == 3
        m.record(0.7, True)
    warnings = [r for r in caplog.records if "farther than" in r.getMessage()]
    assert len(warnings) == 1  # once, on entering the drift
    st = m.state()
    assert st.w1 == pytest.approx(wasserstein_distance([0.5, 0.6, 0.7], ref))
    for _ in range(4):
        st = m.record(0.1, False)
    assert st.realised_fraction == 0.0 and st.n == 4 and not st.drifting
    assert st.w1 == pytest.approx(wasserstein_distance([0.1] * 4, ref))


# ------------------------------------------------------------------ config
def test_router_config_checks():
    p = check_config({}, slms=["s"], llms=["l"], uq_methods=["perplexity"])
    assert p["methods"] == [] and p["operating_point"] == {"llm_fraction": 0.3} and p["mode"] == "tracking"
    ok = dict(slms=["s"], llms=["l"], uq_methods=["perplexity", "ood_probe"], routing_seeds=[50, 51])
    for cfg, match in (
        ({"bogus": 1}, "unknown key"),
        ({"methods": ["ptrue"]}, r"\['ptrue'\] are not in uq.methods"),
        ({"methods": ["perplexity"], "llm": "x"}, "router.llm: 'x' is not an LLM"),
        ({"slms": ["x"]}, "router.slms"),
        ({"operating_point": {"llm_fraction": 0.2, "llm_accuracy_share": 0.9}}, "exactly one"),
        ({"operating_point": {"llm_fraction": 2}}, "must lie in"),
        ({"operating_point": {"llm_accuracy_share": 0}}, "must be > 0"),
        ({"mode": "adaptive"}, "router.mode"),
        ({"window": 10, "min_samples": 20}, "min_samples: 20 is larger"),
        ({"seed": 7}, "router.seed: 7 is not one of routing.seeds"),
        ({"drift_margin": 0}, "drift_margin"),
    ):
        with pytest.raises(RouterConfigError, match=match):
            check_config(cfg, **ok)
    assert router_pairs({"methods": ["perplexity", "ood_probe"]}, ["s", "t"]) == [
        ("s", "perplexity"),
        ("s", "ood_probe"),
        ("t", "perplexity"),
        ("t", "ood_probe"),
    ]
    assert router_pairs({"methods": ["perplexity"], "slms": ["t"]}, ["s", "t"]) == [("t", "perplexity")]
