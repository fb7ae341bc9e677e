"""Each figure renders a non-empty PNG from small synthetic routing tables."""

from pathlib import Path

import pytest

from uqroute.figures import FIGURES, make_figure
from uqroute.routing import OUTPUT_KEYS, run_routing
from uqroute.routing.synthetic import write_synthetic

SLMS, LLMS, DATASETS = ["slm-a", "slm-b"], ["llm-x"], ["gsm8k", "boolq", "piqa"]
PARAMS = {"ratio_step": 0.1, "bins": 8, "k": 0.2, "seeds": [50], "k_sweep": [0.1, 0.3], "bootstrap": 10, "random_mc": 5,
          "proxy_methods": ["perplexity", "ood_probe"]}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("figs")
    paths = write_synthetic(root, slms=SLMS, llms=LLMS, datasets=DATASETS, methods=["perplexity", "ood_probe", "verbal_2s"], n=40, null_confidence=0.1)
    outs = {k: str(root / f"{k}.{k.rsplit('_', 1)[1] if k.startswith('table') else 'parquet'}") for k in OUTPUT_KEYS}
    run_routing(uq_paths=paths[0], correctness_paths=paths[1], data_paths=paths[2], slms=SLMS, llms=LLMS, datasets=DATASETS, outputs=outs, params=PARAMS)
    return root, outs, paths[0]


CASES = {
    "auc_heatmap": (lambda o, uq: {"auc": o["auc"]}, {"dataset": "gsm8k", "slms": SLMS}),
    "routing_curves": (lambda o, uq: {"curves": o["curves"]}, {"llm": "llm-x", "dataset": "boolq"}),
    "relative_accuracy": (lambda o, uq: {"relative_accuracy": o["relative_accuracy"]}, {"llm": "llm-x", "dataset": "gsm8k"}),
    "confidence": (lambda o, uq: {"uq": uq[:3]}, {"slm": "slm-a", "datasets": DATASETS, "methods": ["perplexity", "ood_probe"], "bins": 8}),
    "proxy_curves": (lambda o, uq: {"proxy_curves": o["proxy_curves"]}, {"llm": "llm-x", "target": "gsm8k", "setting": "out_of_domain"}),
    "rms_vs_k": (lambda o, uq: {"proxy": o["proxy"]}, {"llm": "llm-x"}),
}


def test_every_figure_kind_is_covered():
    assert set(CASES) == set(FIGURES)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_figure_renders_a_png(kind, tables):
    root, outs, uq = tables
    inputs, params = CASES[kind]
    out = root / "fig" / f"{kind}.png"
    make_figure(kind, inputs(outs, uq), out, **params)
    data = out.read_bytes()
    assert data.startswith(PNG) and len(data) > 5000


def test_missing_selection_renders_an_explanatory_figure(tables):
    root, outs, _ = tables
    out = root / "fig" / "empty.png"
    make_figure("proxy_curves", {"proxy_curves": outs["proxy_curves"]}, out, llm="absent", target="gsm8k", setting="out_of_domain")
    assert out.read_bytes().startswith(PNG)


def test_figures_are_deterministic(tables):
    root, outs, _ = tables
    a, b = root / "fig" / "a.png", root / "fig" / "b.png"
    for p in (a, b):
        make_figure("auc_heatmap", {"auc": outs["auc"]}, p, dataset="boolq")
    assert Path(a).read_bytes() == Path(b).read_bytes()


def test_unknown_figure_is_an_error(tables):
    with pytest.raises(ValueError, match="unknown figure 'nope'"):
        make_figure("nope", {}, tables[0] / "x.png")


def test_relative_accuracy_with_llm_never_correct_draws_explanation(tmp_path):
    import polars as pl

    from uqroute.figures.plots import relative_accuracy_plot

    rel = pl.DataFrame({
        "slm": ["s"] * 3, "llm": ["l"] * 3, "dataset": ["d"] * 3, "method": ["perplexity"] * 3,
        "excluded": [0.0, 0.5, 0.9], "n_kept": [6, 3, 1], "slm_accuracy": [0.5, 0.3, 0.0],
        "llm_accuracy": [0.0, 0.0, 0.0], "relative_accuracy": [None, None, None],
    }, schema_overrides={"relative_accuracy": pl.Float64})
    fig = relative_accuracy_plot(rel, "l", "d")
    fig.savefig(tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 0
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("undefined" in t for t in texts), texts
