"""`routing.rows`: each method on its own scored rows (the paper's rule, the default) or every method
on the rows all methods scored (`common`), on inputs whose methods miss different queries."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.stats import wasserstein_distance

from uqroute.figures.pages import _rows_rule
from uqroute.io import provenance, read_provenance
from uqroute.routing import RoutingInputs, evaluate, holdout_pool, resolve, run_routing
from uqroute.routing.inputs import Cell
from uqroute.routing.synthetic import synthetic_paths, write_synthetic
from uqroute.schema import ARTIFACTS

N = 40
DATASETS = ["gsm8k", "boolq", "svamp"]
LLMS = ["llm-x", "llm-y"]
#: method → rows without a confidence (on every dataset); verbal_1s scores nothing at all
MISSING = {"perplexity": [], "verbal_2s": [0, 1, 2, 3, 4], "ptrue": [3, 4, 5, 6, 7, 8, 9]}
LABEL_OF = {"perplexity": "correct", "verbal_2s": "correct", "ptrue": "correct", "verbal_1s": "verbal_1s_correct"}
COMMON = N - 10  # rows 10… are scored by every method that scores anything
PARAMS = {
    "ratio_step": 0.1,
    "bins": 5,
    "k": 0.5,
    "seeds": [50],
    "k_sweep": [],
    "bootstrap": 20,
    "random_mc": 10,
    "proxy_methods": ["perplexity", "verbal_2s", "ptrue"],
}


def _inputs(methods=MISSING, all_missing=("verbal_1s",)) -> RoutingInputs:
    rng = np.random.default_rng(7)
    cells = {}
    for d in DATASETS:
        s = (rng.random(N) < 0.5).astype(float)
        s[:2] = [0.0, 1.0]
        conf = {}
        for m, miss in methods.items():
            c = np.round(rng.random(N) * 0.5 + 0.4 * s, 3)
            c[miss] = np.nan
            conf[m] = c
        for m in all_missing:
            conf[m] = np.full(N, np.nan)
        llm = {name: (rng.random(N) < 0.8).astype(float) for name in LLMS}
        llm["llm-y"][20] = np.nan  # an LLM label missing: dropped for that LLM's curves
        cells[("slm", d)] = Cell(
            ids=np.array([f"{d}-{i:03d}" for i in range(N)], dtype=object),
            conf=conf,
            labels={"correct": s, "verbal_1s_correct": (rng.random(N) < 0.5).astype(float)},
            llm=llm,
        )
    ms = [*methods, *all_missing]
    domains = {"gsm8k": "math", "svamp": "math", "boolq": "commonsense"}
    return RoutingInputs(["slm"], LLMS, DATASETS, domains, ms, cells, {m: LABEL_OF[m] for m in ms})


@pytest.fixture(scope="module")
def per_method():
    return evaluate(_inputs(), PARAMS, seed=3)


@pytest.fixture(scope="module")
def common():
    return evaluate(_inputs(), PARAMS | {"rows": "common"}, seed=3)


def test_per_method_keeps_each_methods_own_rows(per_method):
    n = {r["method"]: r["n"] for r in per_method["auc"].filter(pl.col("dataset") == "gsm8k").iter_rows(named=True)}
    assert n == {m: N - len(miss) for m, miss in MISSING.items()}
    llm_acc = per_method["summary"].filter((pl.col("dataset") == "gsm8k") & (pl.col("llm") == "llm-x"))
    assert llm_acc["llm_accuracy"].n_unique() > 1  # the symptom `common` removes


def test_common_scores_every_method_on_the_intersection(common):
    auc = common["auc"]
    assert set(auc["method"]) == set(MISSING)  # verbal_1s has no scores, but did not empty the datasets
    assert auc["n"].to_list() == [COMMON] * auc.height
    assert auc.group_by("dataset").agg(pl.col("slm_accuracy").n_unique())["slm_accuracy"].to_list() == [1] * 3
    summary = common["summary"]
    per = summary.group_by("dataset", "llm").agg(
        pl.col("llm_accuracy").n_unique().alias("n_llm"), pl.col("slm_accuracy").n_unique().alias("n_slm"), pl.len()
    )
    assert per["n_llm"].to_list() == [1] * per.height and per["n_slm"].to_list() == [1] * per.height
    assert per["len"].to_list() == [len(MISSING)] * per.height
    # the random-routing curves (expected and Monte-Carlo) are the same for every method of a dataset
    rnd = common["curves"].filter(pl.col("curve").is_in(["random", "random_mc", "upper"]))
    spread = rnd.group_by("dataset", "llm", "curve", "ratio").agg(pl.col("accuracy").n_unique().alias("k"))
    assert spread["k"].max() == 1
    # relative accuracy: n_kept at x = 0 is the intersection, the LLM's accuracy there is the same for all methods
    rel = common["relative_accuracy"].filter(pl.col("excluded") == 0)
    assert set(rel.filter(pl.col("llm") == "llm-x")["n_kept"]) == {COMMON}
    assert set(rel.filter(pl.col("llm") == "llm-y")["n_kept"]) == {COMMON - 1}  # its null row dropped for it
    assert rel.group_by("dataset", "llm").agg(pl.col("llm_accuracy").n_unique())["llm_accuracy"].max() == 1


def test_common_takes_the_rows_every_method_scored(common):
    """The LLM accuracy with everything routed is the mean over rows 10…39 (llm-y: without its null row)."""
    cell = _inputs().cells[("slm", "boolq")]
    s = common["summary"].filter(pl.col("dataset") == "boolq")
    for llm in LLMS:
        labels = cell.llm[llm][10:]
        expect = float(np.nanmean(labels))
        got = s.filter(pl.col("llm") == llm)["llm_accuracy"].to_list()
        assert got == pytest.approx([expect] * len(MISSING), abs=1e-12), llm


def test_common_records_the_rule_and_the_method_left_out(common, per_method):
    w = common["warnings"]
    rule = w.filter(pl.col("message").str.contains("routing.rows common") & pl.col("method").is_null())
    assert sorted(rule["dataset"]) == sorted(DATASETS)
    assert all(
        f"the {COMMON} of {N} queries that all of ['perplexity', 'verbal_2s', 'ptrue']" in m for m in rule["message"]
    )
    left = w.filter((pl.col("method") == "verbal_1s") & pl.col("message").str.contains("left out of the common rows"))
    assert left["kind"].to_list() == ["no_scores"] * 3
    # scored rows that other methods missed are counted per method (perplexity: rows 0…9)
    pp = w.filter((pl.col("method") == "perplexity") & (pl.col("dataset") == "gsm8k"))
    assert any("dropped 10 scored queries that not every method scored" in m for m in pp["message"])
    assert not per_method["warnings"]["message"].str.contains("routing.rows").any()


def test_the_proxy_studys_targets_follow_the_rule(common, per_method):
    inputs = _inputs()
    cell = inputs.cells[("slm", "gsm8k")]
    for tables, rows in ((per_method, None), (common, slice(10, None))):
        pc = tables["proxy_curves"].filter(
            (pl.col("target") == "gsm8k") & (pl.col("llm") == "llm-x") & (pl.col("setting") == "partial_in_domain")
        )
        for m in MISSING:
            c = cell.conf[m]
            keep = ~np.isnan(c) if rows is None else np.arange(N) >= 10
            end = pc.filter((pl.col("method") == m) & (pl.col("ratio") == pl.col("ratio").max()))[
                "oracle_accuracy"
            ].item()
            assert end == pytest.approx(cell.llm["llm-x"][keep].mean(), abs=1e-12), (m, rows)
            # W1 between the pool (each source's own scored rows, as before) and the target's rows
            pool = holdout_pool(inputs, "slm", m, ("boolq", "svamp"), PARAMS["bins"], "correct", "gsm8k")
            w1 = tables["proxy"].filter(
                (pl.col("target") == "gsm8k") & (pl.col("method") == m) & (pl.col("setting") == "partial_in_domain")
            )["w1"]
            assert w1.to_list() == pytest.approx([wasserstein_distance(pool.conf, c[keep])] * w1.len(), abs=1e-12)
    # holdout sets (the proxy data) do not depend on the rule
    assert common["holdout"].equals(per_method["holdout"])


def test_no_common_row_skips_every_method_with_a_record():
    tables = evaluate(
        _inputs({"perplexity": list(range(0, 20)), "ptrue": list(range(20, N))}, all_missing=()),
        PARAMS | {"rows": "common", "proxy_methods": ["perplexity"]},
    )
    assert tables["auc"].height == 0 and tables["summary"].height == 0
    msgs = tables["warnings"].filter(pl.col("kind") == "no_scores")["message"].to_list()
    assert sum("none of its scored queries is scored by every method" in m for m in msgs) == 2 * len(DATASETS)


def test_with_one_method_common_equals_per_method():
    one = {"verbal_2s": MISSING["verbal_2s"]}
    a = evaluate(_inputs(one, all_missing=()), PARAMS | {"proxy_methods": ["verbal_2s"]})
    b = evaluate(_inputs(one, all_missing=()), PARAMS | {"proxy_methods": ["verbal_2s"], "rows": "common"})
    for name in a:
        if name != "warnings":
            assert a[name].equals(b[name]), name


def test_the_default_is_per_method_byte_for_byte_and_the_rule_is_recorded(tmp_path):
    """No `rows` key and `rows: per_method` write the same bytes (the default is the paper's rule); the
    rule is in each artifact's provenance as the pipeline writes it, and the report's alignment page says it."""
    slms, llms, datasets = ["slm-a"], ["llm-x"], ["gsm8k", "boolq", "svamp"]
    write_synthetic(
        tmp_path,
        slms=slms,
        llms=llms,
        datasets=datasets,
        methods=["perplexity", "verbal_1s"],
        n=30,
        null_confidence=0.2,
    )
    uq, corr, data = synthetic_paths(tmp_path, slms, llms, datasets)
    written, outs = {}, {}
    for rule, extra in (("none", {}), ("per_method", {"rows": "per_method"}), ("common", {"rows": "common"})):
        params = PARAMS | {"proxy_methods": ["perplexity"]} | extra
        outs[rule] = {k: str(tmp_path / rule / Path(a.path.format(slm="slm-a")).name) for k, a in _artifacts().items()}
        run_routing(
            uq_paths=uq,
            correctness_paths=corr,
            data_paths=data,
            slms=slms,
            llms=llms,
            datasets=datasets,
            outputs=outs[rule],
            params=params,
            seed=0,
            provenance=provenance({"routing": resolve(params), "seed": 0}),  # as rule `routing` records its params
        )
        written[rule] = {k: Path(p).read_bytes() for k, p in outs[rule].items()}
    assert written["none"] == written["per_method"]
    assert written["common"]["auc"] != written["per_method"]["auc"]
    assert read_provenance(outs["common"]["auc"])["config"]["routing"]["rows"] == "common"
    assert "routing.rows: per_method</code>, the paper's rule" in _rows_rule([outs["none"]["auc"]])
    assert "routing.rows: common</code>" in _rows_rule([outs["common"]["auc"]])
    assert "mixed across SLMs" in _rows_rule([outs["none"]["auc"], outs["common"]["auc"]])


def _artifacts():
    from uqroute.routing import OUTPUT_KEYS
    from uqroute.routing.evaluation import TABLES

    return {k: ARTIFACTS[TABLES[k]] for k in OUTPUT_KEYS}
