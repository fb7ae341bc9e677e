"""The findings tables (uqroute.findings) recomputed independently on synthetic results, and
docs/findings.md checked against the committed tables it quotes."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.stats import friedmanchisquare, ks_2samp, spearmanr

from uqroute import findings
from uqroute.routing import run_routing
from uqroute.routing.synthetic import write_synthetic
from uqroute.schema import ARTIFACTS

ROOT = Path(__file__).resolve().parents[1]
SLMS, LLMS = ["slm-a", "slm-b"], ["llm-x"]
DATASETS = ["gsm8k", "svamp", "boolq", "commonsenseqa"]
METHODS = ["perplexity", "ood_probe", "mean_token_entropy", "verbal_1s"]
PARAMS = {
    "ratio_step": 0.05,
    "bins": 10,
    "k": 0.2,
    "seeds": [50, 51],
    "k_sweep": [0.1],
    "bootstrap": 50,
    "random_mc": 10,
    "proxy_methods": ["perplexity", "ood_probe"],
    "shifts": {"math_to_cs": {"sources": ["gsm8k", "svamp"], "targets": ["boolq"]}},
    "table4": {},
    "table5": {},
}
KEYS = ["auc", "curves", "proxy", "routing_summary", "relative_accuracy", "proxy_curves", "holdout", "routing_warnings"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    from uqroute.routing import OUTPUT_KEYS, proxy_probe_pairs, scenarios
    from uqroute.routing.synthetic import write_synthetic_proxy_probes

    root = tmp_path_factory.mktemp("findings")
    uq, corr, data = write_synthetic(root, slms=SLMS, llms=LLMS, datasets=DATASETS, methods=METHODS, n=50)
    # the leak-free ood_probe scores of its proxy pools (rule proxy_probe's artifacts)
    pairs = proxy_probe_pairs(scenarios(DATASETS, PARAMS["shifts"]), DATASETS)
    probes = write_synthetic_proxy_probes(root, slms=SLMS, pairs=pairs, datasets=DATASETS, n=50)
    for slm in SLMS:
        outs = {k: str(root / ARTIFACTS[name].path.format(slm=slm)) for k, name in zip(OUTPUT_KEYS, KEYS)}
        run_routing(
            uq_paths=[p for p in uq if f"/uq/{slm}/" in p],
            correctness_paths=[p for p in corr if f"/{slm}/" in p or "/llm-x/" in p],
            data_paths=data,
            slms=[slm],
            llms=LLMS,
            datasets=DATASETS,
            outputs=outs,
            params=PARAMS,
            seed=0,
            proxy_probe_paths=[p for p in probes if f"/{slm}/" in p],
        )
    return root / "results", findings.summary_tables(root / "results", k=0.2)


def test_accuracy_table_matches_the_correctness_files(results):
    root, t = results
    acc = t["accuracy"]
    assert sorted(acc["model"].unique().to_list()) == sorted(SLMS + LLMS) and acc.height == 3 * len(DATASETS)
    c = pl.read_parquet(root / "correctness" / "slm-a" / "boolq.parquet")
    row = acc.filter((pl.col("model") == "slm-a") & (pl.col("dataset") == "boolq")).row(0, named=True)
    assert row["n"] == c.height and row["accuracy"] == round(c["correct"].mean(), 3) and row["truncated"] == 0.0


def test_alignment_by_method_and_method_effect(results):
    _, t = results
    auc = t["auc"]
    for (slm, method), g in auc.filter(pl.col("roc_auc").is_not_null()).group_by("slm", "method"):
        row = t["alignment_by_method"].filter((pl.col("slm") == slm) & (pl.col("method") == method)).row(0, named=True)
        assert row["n_datasets"] == g.height and row["mean_auc"] == pytest.approx(g["roc_auc"].mean(), abs=1e-3)
        assert row["n_above"] == int((g["roc_auc_lo"] > 0.5).sum()) and row["n_below"] == int(
            (g["roc_auc_hi"] < 0.5).sum()
        )
    for slm in SLMS:
        wide = auc.filter(pl.col("slm") == slm).pivot(on="method", index="dataset", values="roc_auc").drop_nulls()
        want = friedmanchisquare(*[wide[m].to_numpy() for m in METHODS])
        row = t["method_effect"].filter(pl.col("slm") == slm).row(0, named=True)
        assert row["n_methods"] == len(METHODS) and row["p_value"] == pytest.approx(want.pvalue, abs=2e-3)


def test_gain_vs_alignment_is_spearman_over_cells(results):
    root, t = results
    for slm in SLMS:
        s = pl.read_parquet(root / "routing" / slm / "summary.parquet")
        a = pl.read_parquet(root / "routing" / slm / "auc.parquet")
        j = s.join(a, on=["slm", "dataset", "method"], suffix="_auc").filter(
            pl.col("apgr").is_not_null() & (pl.col("llm_accuracy") > pl.col("slm_accuracy"))
        )
        row = t["gain_vs_alignment"].filter(pl.col("slm") == slm).row(0, named=True)
        assert row["n_cells"] == j.height
        assert row["spearman_rho"] == pytest.approx(spearmanr(j["roc_auc"], j["apgr"]).statistic, abs=1e-3)


def test_distribution_shift_is_the_mean_ks_distance(results):
    root, t = results
    method = "perplexity"
    conf = {
        (s, d): pl.read_parquet(root / "uq" / s / f"{d}.parquet")[method].drop_nulls().to_numpy()
        for s in SLMS
        for d in DATASETS
    }
    between_d = [
        ks_2samp(conf[(s, a)], conf[(s, b)]).statistic for s in SLMS for a, b in itertools.combinations(DATASETS, 2)
    ]
    between_s = [ks_2samp(conf[("slm-a", d)], conf[("slm-b", d)]).statistic for d in DATASETS]
    row = t["distribution_shift"].filter(pl.col("method") == method).row(0, named=True)
    assert row["ks_datasets"] == pytest.approx(np.mean(between_d), abs=1e-3)
    assert row["ks_slms"] == pytest.approx(np.mean(between_s), abs=1e-3)
    assert row["n_dataset_pairs"] == len(between_d) and row["n_slm_pairs"] == len(between_s)


def test_proxy_vs_random_counts_targets_after_averaging_seeds(results):
    root, t = results
    p = pl.read_parquet(root / "routing" / "slm-a" / "proxy.parquet").filter(
        (pl.col("k") == 0.2) & (pl.col("method") == "perplexity") & (pl.col("setting") == "partial_in_domain")
    )
    per = p.group_by("target").agg(pl.col("rms").mean(), pl.col("rms_random").mean())
    row = (
        t["proxy_vs_random"]
        .filter(
            (pl.col("slm") == "slm-a")
            & (pl.col("method") == "perplexity")
            & (pl.col("scenario") == "partial_in_domain")
        )
        .row(0, named=True)
    )
    assert row["n_targets"] == len(DATASETS)
    assert row["better_requested"] == pytest.approx((per["rms"] < per["rms_random"]).mean(), abs=1e-3)
    assert t["proxy_vs_random"].filter(pl.col("scenario") == "math_to_cs")["n_targets"].to_list() == [1, 1, 1, 1]


def test_degenerate_inputs():
    one = pl.DataFrame(
        {
            "slm": ["s"] * 6,
            "dataset": ["a", "a", "a", "b", "b", "b"],
            "method": ["m", "n", "o"] * 2,
            "roc_auc": [0.6, 0.5, None, 0.7, 0.4, 0.9],
        }
    )
    eff = findings.method_effect(one)  # method o has an AUC on one dataset of two: left out; two methods: undefined
    assert eff.row(0, named=True) == {"slm": "s", "n_datasets": 2, "n_methods": 2, "statistic": None, "p_value": None}
    # a method scored on one dataset of four is left out, not the three datasets it lacks
    sparse = pl.DataFrame(
        {
            "slm": ["s"] * 16,
            "dataset": [d for d in "abcd" for _ in range(4)],
            "method": list("mnov") * 4,
            "roc_auc": [0.6, 0.5, 0.4, 1.0, 0.7, 0.4, 0.5, None, 0.8, 0.3, 0.6, None, 0.6, 0.6, 0.2, None],
        }
    )
    eff = findings.method_effect(sparse).row(0, named=True)
    want = friedmanchisquare([0.6, 0.7, 0.8, 0.6], [0.5, 0.4, 0.3, 0.6], [0.4, 0.5, 0.6, 0.2])
    assert (eff["n_datasets"], eff["n_methods"]) == (4, 3)
    assert eff["statistic"] == pytest.approx(round(want.statistic, 3)) and eff["p_value"] == pytest.approx(
        round(want.pvalue, 3)
    )
    conf = pl.DataFrame(
        {"slm": ["s"] * 4, "dataset": ["a", "a", "b", "b"], "method": ["m"] * 4, "confidence": [0.9, 0.9, 0.9, 0.9]}
    )
    d = findings.distribution_shift(conf).row(0, named=True)  # one SLM; constant confidences
    assert d["ks_datasets"] == 0.0 and d["ks_slms"] is None and d["ratio"] is None
    empty = findings.proxy_vs_random(pl.DataFrame(schema=ARTIFACTS["proxy"].polars_schema()), 0.1)
    assert empty.height == 0


def test_write_tables_and_markdown(results, tmp_path):
    _, t = results
    paths = findings.write_tables(t, tmp_path)
    assert sorted(p.stem for p in paths) == sorted(t)
    for name in ("alignment_by_method", "proxy_vs_random", "accuracy"):
        back = pl.read_csv(tmp_path / f"{name}.csv", schema=t[name].schema)
        assert back.equals(t[name], null_equal=True), name  # the CSV holds exactly the (rounded) table
    md = findings.markdown(
        pl.DataFrame({"a": ["x"], "b": [0.1234], "c": [None]}, schema={"a": pl.Utf8, "b": pl.Float64, "c": pl.Float64})
    )
    assert md.splitlines()[2] == "| x | 0.123 | – |"


# ------------------------------------------------------------------ docs/findings.md against the committed tables

DOC = ROOT / "docs" / "findings.md"
TABLES = ROOT / "docs" / "findings"
BLOCK = findings.TABLE_BLOCK


def _committed() -> dict[str, pl.DataFrame]:
    return {p.stem: pl.read_csv(p) for p in sorted(TABLES.glob("*.csv"))}


def test_the_docs_tables_are_the_committed_tables():
    tables = _committed()
    text = DOC.read_text()
    blocks = list(BLOCK.finditer(text))
    assert blocks, "docs/findings.md quotes no table block"
    for m in blocks:
        assert m["name"] in tables, f"docs/findings.md quotes table {m['name']!r}, not in docs/findings/"
        want = findings.markdown(findings.select(tables[m["name"]], m["filter"].strip()))
        assert m["body"] == want, (
            f"docs/findings.md: block {m['name']}{m['filter']} is stale; regenerate it from docs/findings/"
        )


def test_every_number_in_the_prose_is_in_a_committed_table():
    """Each decimal number the text states (outside table blocks and code) is a value of some committed table."""
    tables = _committed()
    values = set()
    for df in tables.values():
        for col in df.columns:
            if df.schema[col].is_numeric():
                for v in df[col].drop_nulls().to_list():
                    values.add(round(float(v), 3))
    prose = BLOCK.sub("", DOC.read_text())
    prose = re.sub(r"```.*?```", "", prose, flags=re.S)
    prose = re.sub(r"`[^`]*`", "", prose)
    prose = re.sub(r"\[[^\]]*\]\([^)]*\)", "", prose)  # links
    numbers = [float(x) for x in re.findall(r"(?<![\w.])-?\d+\.\d+(?![\w.])", prose)]
    missing = sorted({x for x in numbers if round(x, 3) not in values})
    assert not missing, f"docs/findings.md states numbers that no committed table holds: {missing[:10]}"


def test_refresh_doc_rewrites_stale_blocks_only():
    t = {"acc": pl.DataFrame({"model": ["a", "b"], "accuracy": [0.5, 0.25]})}
    doc = "Intro 0.5.\n<!-- table: acc model=b columns=accuracy -->\nstale\n<!-- end -->\nOutro.\n"
    out = findings.refresh_doc(doc, t)
    assert (
        out
        == "Intro 0.5.\n<!-- table: acc model=b columns=accuracy -->\n| accuracy |\n|---|\n| 0.250 |\n<!-- end -->\nOutro.\n"
    )
    assert findings.refresh_doc(out, t) == out
    with pytest.raises(KeyError, match="'nope'"):
        findings.refresh_doc("<!-- table: nope -->\nx\n<!-- end -->", t)


def test_cut_at_budgets_by_hand(tmp_path):
    (tmp_path / "data").mkdir()
    pl.DataFrame({"id": ["a", "b", "c", "d", "t"], "role": ["eval"] * 4 + ["train"]}).write_parquet(
        tmp_path / "data/ds.parquet"
    )
    (tmp_path / "generations/m").mkdir(parents=True)
    pl.DataFrame(
        {
            "id": ["a", "b", "c", "d", "t"],
            "tokens": [["x"] * 1, ["x"] * 12, ["x"] * 13, ["x"] * 40, ["x"] * 99],
            "finish_reason": ["stop", "stop", "stop", "length", "length"],
        }
    ).write_parquet(tmp_path / "generations/m/ds.parquet")
    row = findings.cut_at_budgets(tmp_path, budgets=(1, 12, 24, 64)).row(0, named=True)
    # the training row is left out; 12 tokens that stopped fit a budget of 12; the cut reply counts at every budget
    assert row == {
        "model": "m",
        "dataset": "ds",
        "n": 4,
        "run_budget": 40,
        "cut_1": 0.75,
        "cut_12": 0.5,
        "cut_24": 0.25,
        "cut_64": 0.25,
    }
    empty = tmp_path / "none"
    assert findings.cut_at_budgets(empty).height == 0
