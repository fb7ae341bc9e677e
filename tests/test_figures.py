"""Each figure renders a non-empty PNG from small synthetic routing tables."""

from pathlib import Path

import polars as pl
import pytest

from uqroute import io
from uqroute.figures import FIGURES, make_figure
from uqroute.figures.plots import auc_heatmap, relative_accuracy_plot, routing_curves
from uqroute.routing import OUTPUT_KEYS, run_routing
from uqroute.routing.synthetic import write_synthetic
from uqroute.schema import ARTIFACTS

SLMS, LLMS, DATASETS = ["slm-a", "slm-b"], ["llm-x"], ["gsm8k", "boolq", "piqa"]
METHODS = ["perplexity", "ood_probe", "verbal_2s"]
PARAMS = {
    "ratio_step": 0.1,
    "bins": 8,
    "k": 0.2,
    "seeds": [50],
    "k_sweep": [0.1, 0.3],
    "bootstrap": 10,
    "random_mc": 5,
    "proxy_methods": ["perplexity", "ood_probe"],
    "shifts": {"m2c": {"sources": ["gsm8k"], "targets": ["boolq", "piqa"]}},
}
PNG = b"\x89PNG\r\n\x1a\n"
NAMES = [
    "auc",
    "curves",
    "proxy",
    "routing_summary",
    "relative_accuracy",
    "proxy_curves",
    "holdout",
    "routing_warnings",
]


def outs(root, slm):
    return {k: str(Path(root) / ARTIFACTS[n].path.format(slm=slm)) for k, n in zip(OUTPUT_KEYS, NAMES)}


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("figs")
    paths = write_synthetic(root, slms=SLMS, llms=LLMS, datasets=DATASETS, methods=METHODS, n=40, null_confidence=0.1)
    for slm in SLMS:
        uq = [p for p in paths[0] if f"/{slm}/" in p]
        corr = [p for p in paths[1] if f"/{slm}/" in p or "/llm-x/" in p]
        run_routing(
            uq_paths=uq,
            correctness_paths=corr,
            data_paths=paths[2],
            slms=[slm],
            llms=LLMS,
            datasets=DATASETS,
            outputs=outs(root, slm),
            params=PARAMS,
        )
    return root


CASES = {
    "auc_heatmap": (
        lambda r: {"auc": [outs(r, "slm-a")["auc"]]},
        {"slm": "slm-a", "datasets": DATASETS, "methods": METHODS},
    ),
    "routing_curves": (
        lambda r: {"curves": outs(r, "slm-a")["curves"], "auc": outs(r, "slm-a")["auc"]},
        {"slm": "slm-a", "llm": "llm-x", "datasets": DATASETS, "methods": METHODS},
    ),
    "relative_accuracy": (
        lambda r: {"relative_accuracy": outs(r, "slm-b")["relative_accuracy"]},
        {"slm": "slm-b", "llm": "llm-x", "datasets": DATASETS},
    ),
    "confidence": (
        lambda r: {"results": r / "results"},
        {"slm": "slm-a", "datasets": DATASETS, "methods": ["perplexity", "ood_probe"], "bins": 8},
    ),
    "proxy_curves": (
        lambda r: {"proxy_curves": outs(r, "slm-a")["proxy_curves"]},
        {"slm": "slm-a", "llm": "llm-x", "setting": "m2c", "methods": ["perplexity", "ood_probe"]},
    ),
    "rms_vs_k": (
        lambda r: {"proxy": outs(r, "slm-a")["proxy"]},
        {"slm": "slm-a", "llm": "llm-x", "methods": ["perplexity", "ood_probe"]},
    ),
}


def test_every_figure_kind_is_covered_and_registered():
    assert set(CASES) == set(FIGURES)
    # the rules, and the figures of one SLM and LLM that rule figures_slm_llm draws (routing_common.smk)
    rules = "".join(
        Path(__file__).parents[1].joinpath("workflow/rules", f).read_text()
        for f in ("routing.smk", "routing_common.smk")
    )
    scripts = sorted(p.name for p in Path(__file__).parents[1].joinpath("workflow/scripts").glob("figure*.py"))
    assert scripts == ["figure.py"]  # one script for every figure
    for name, spec in FIGURES.items():
        assert f'FIGURES["{name}"].path' in rules and f'kind="{name}"' in rules, name
        assert Path(__file__).parents[1].joinpath("workflow/report", spec.caption).is_file(), spec.caption


@pytest.mark.parametrize("kind", sorted(CASES))
def test_figure_renders_a_png(kind, tables):
    inputs, params = CASES[kind]
    out = tables / "fig" / f"{kind}.png"
    make_figure(kind, inputs(tables), out, **params)
    data = out.read_bytes()
    assert data.startswith(PNG) and len(data) > 5000
    assert out.with_suffix(".svg").read_text().lstrip().startswith("<?xml")  # an SVG beside the PNG


@pytest.mark.parametrize("kind", ["auc_heatmap", "routing_curves", "proxy_curves", "rms_vs_k"])
def test_a_corrupted_figure_input_names_the_file(kind, tables, tmp_path):
    inputs, params = CASES[kind]
    name, path = next(iter(inputs(tables).items()))
    path = path[0] if isinstance(path, list) else path
    bad = tmp_path / Path(path).name
    blob = Path(path).read_bytes()
    bad.write_bytes(blob[: len(blob) // 3])
    with pytest.raises(io.ArtifactInputError, match=rf"figure {kind}: {name} file {bad} cannot be read as parquet"):
        make_figure(kind, {name: [str(bad)] if kind == "auc_heatmap" else str(bad)}, tmp_path / "x.png", **params)
    assert not (tmp_path / "x.png").exists()


def _texts(fig) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts) + " ".join(t.get_text() for t in fig.texts)


def test_a_method_without_scores_is_named_not_dropped(tables):
    """A method with no scores for a dataset is named in the figure, not silently left out."""
    auc = pl.concat([io.read_artifact(outs(tables, s)["auc"], "auc") for s in SLMS])
    auc = auc.filter(~((pl.col("method") == "verbal_2s") & (pl.col("dataset") == "gsm8k")))
    fig = auc_heatmap(auc, "slm-a", datasets=DATASETS + ["gone"], methods=METHODS)
    text = _texts(fig)
    assert "no scores" in text and "no results for datasets: gone" in text
    curves = io.read_artifact(outs(tables, "slm-a")["curves"], "curves").filter(
        ~((pl.col("method") == "ood_probe") & (pl.col("dataset") == "boolq"))
    )
    fig = routing_curves(curves, "slm-a", "llm-x", datasets=DATASETS, methods=METHODS)
    assert "no scores: ood_probe" in _texts(fig)
    assert "ood_probe" in fig.legends[0].texts[0].get_text() + " ".join(t.get_text() for t in fig.legends[0].texts)


def test_missing_selection_renders_an_explanatory_figure(tables):
    out = tables / "fig" / "empty.png"
    make_figure(
        "proxy_curves",
        {"proxy_curves": outs(tables, "slm-a")["proxy_curves"]},
        out,
        slm="slm-a",
        llm="absent",
        setting="m2c",
    )
    assert out.read_bytes().startswith(PNG)


def test_figures_are_deterministic(tables):
    a, b = tables / "fig" / "a.png", tables / "fig" / "b.png"
    for p in (a, b):
        make_figure("auc_heatmap", {"auc": [outs(tables, s)["auc"] for s in SLMS]}, p, slm="slm-b")
    assert Path(a).read_bytes() == Path(b).read_bytes()
    assert Path(a).with_suffix(".svg").read_bytes() == Path(b).with_suffix(".svg").read_bytes()


def test_unknown_figure_is_an_error(tables):
    with pytest.raises(ValueError, match="unknown figure 'nope'"):
        make_figure("nope", {}, tables / "x.png")


def test_relative_accuracy_with_llm_never_correct_draws_explanation(tmp_path):
    rel = pl.DataFrame(
        {
            "slm": ["s"] * 3,
            "llm": ["l"] * 3,
            "dataset": ["d"] * 3,
            "method": ["perplexity"] * 3,
            "excluded": [0.0, 0.5, 0.9],
            "n_kept": [6, 3, 1],
            "slm_accuracy": [0.5, 0.3, 0.0],
            "llm_accuracy": [0.0, 0.0, 0.0],
            "relative_accuracy": [None, None, None],
        },
        schema_overrides={"relative_accuracy": pl.Float64},
    )
    fig = relative_accuracy_plot(rel, "s", "l")
    fig.savefig(tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 0
    assert "undefined" in _texts(fig)


def test_figures_show_n_and_tell_fifteen_methods_apart(tables):
    """Each heatmap cell and routing-curve panel names its n; a method scored on fewer queries is named;
    15 methods get 15 colours."""
    from uqroute.figures.plots import _palette

    auc = io.read_artifact(outs(tables, "slm-a")["auc"], "auc")
    fig = auc_heatmap(auc, "slm-a", datasets=DATASETS, methods=METHODS)
    n = auc.filter((pl.col("dataset") == "boolq") & (pl.col("method") == "verbal_2s"))["n"][0]
    assert f"n={n}" in _texts(fig) and [t.get_text() for t in fig.axes[0].get_yticklabels()] == DATASETS
    curves = io.read_artifact(outs(tables, "slm-a")["curves"], "curves")
    fig = routing_curves(curves, "slm-a", "llm-x", datasets=DATASETS, methods=METHODS, auc=auc)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    full = auc.filter(pl.col("dataset") == "boolq")["n"].max()
    assert f"boolq (n={full})" in titles and "fewer rows: verbal_2s" in _texts(fig)
    names = [f"m{i}" for i in range(15)]
    assert len(set(_palette(names).values())) == 15
