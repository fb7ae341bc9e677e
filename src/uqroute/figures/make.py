"""The figure registry and :func:`make_figure`: read the tables a figure needs, draw it, save it
atomically as PNG, with an SVG of it beside (same name, ``.svg``). One rule script (``workflow/scripts/figure.py``) serves every figure; a new
figure is one function in :mod:`.plots` plus one :class:`FigureSpec` here (and its rule).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from .. import io
from ..schema import ARTIFACTS

__all__ = ["FigureSpec", "FIGURES", "make_figure", "read_tables"]

DPI = 150


class _Plots:
    """:mod:`.plots`, imported when a figure is first drawn: the registry (which the workflow reads
    when it builds the DAG) needs no matplotlib or seaborn."""

    def __getattr__(self, name):
        from . import plots as module

        return getattr(module, name)


plots = _Plots()


@dataclass(frozen=True)
class FigureSpec:
    """One figure kind: where its files go, what it reads, how it is drawn, and its report caption."""

    name: str
    path: str  # output pattern (Snakemake wildcards), relative to the working directory
    inputs: tuple[str, ...]  # artifact names (uqroute.schema), or "results" for the tidy per-query table
    draw: Callable[[Mapping[str, pl.DataFrame], Mapping], object]
    caption: str  # workflow/report/<caption>
    paper: str  # the paper's figures it reproduces


def _tidy_confidences(tables, p):
    from ..results import tidy

    methods = p.get("methods")
    methods = None if methods == "all" else methods
    df = tidy(tables["results"], slms=[p["slm"]], datasets=p.get("datasets"), methods=methods, llms=[])
    return plots.confidence_distributions(df, p["slm"], methods=methods, bins=p.get("bins", 30))


FIGURES: dict[str, FigureSpec] = {
    f.name: f
    for f in (
        FigureSpec(
            "auc_heatmap",
            "results/routing/figures/auc_heatmap/{slm}.png",
            ("auc",),
            lambda t, p: plots.auc_heatmap(t["auc"], p["slm"], datasets=p.get("datasets"), methods=p.get("methods")),
            "auc_heatmap.rst",
            "Figures 1, 8–11",
        ),
        FigureSpec(
            "routing_curves",
            "results/routing/figures/routing_curves/{slm}/{llm}.png",
            ("curves", "auc"),
            lambda t, p: plots.routing_curves(
                t["curves"], p["slm"], p["llm"], datasets=p.get("datasets"), methods=p.get("methods"), auc=t.get("auc")
            ),
            "routing_curves.rst",
            "Figures 2, 12–15",
        ),
        FigureSpec(
            "relative_accuracy",
            "results/routing/figures/relative_accuracy/{slm}/{llm}.png",
            ("relative_accuracy",),
            lambda t, p: plots.relative_accuracy_plot(
                t["relative_accuracy"], p["slm"], p["llm"], datasets=p.get("datasets"), methods=p.get("methods")
            ),
            "relative_accuracy.rst",
            "Figure 3",
        ),
        FigureSpec(
            "confidence",
            "results/routing/figures/confidence/{slm}.png",
            ("results",),
            _tidy_confidences,
            "confidence.rst",
            "Figures 4–5",
        ),
        FigureSpec(
            "proxy_curves",
            "results/routing/figures/proxy_curves/{slm}/{llm}/{setting}.png",
            ("proxy_curves",),
            lambda t, p: plots.proxy_vs_oracle(
                t["proxy_curves"], p["slm"], p["llm"], p["setting"], methods=p.get("methods"), targets=p.get("targets")
            ),
            "proxy_curves.rst",
            "Figures 6–7, 16–19",
        ),
        FigureSpec(
            "rms_vs_k",
            "results/routing/figures/rms_vs_k/{slm}/{llm}.png",
            ("proxy",),
            lambda t, p: plots.rms_vs_k(
                t["proxy"], p["slm"], p["llm"], methods=p.get("methods"), settings=p.get("settings")
            ),
            "rms_vs_k.rst",
            "Figure 20",
        ),
    )
}


#: inputs a figure draws without (routing_curves: the n per method comes from `auc`)
OPTIONAL_INPUTS = {"routing_curves": ("auc",)}


def read_tables(kind: str, inputs: Mapping, results_dir: str | Path = "results") -> dict:
    """The tables figure ``kind`` reads: each artifact input (one path or a list, e.g. one per
    SLM) read with :func:`uqroute.io.read_artifact` and concatenated; "results" is the results
    folder (``inputs["results"]``, else ``results_dir``) for the tidy table."""
    spec = FIGURES[kind]
    tables = {}
    for name in spec.inputs:
        if name == "results":
            tables[name] = inputs.get("results", results_dir)
            continue
        if name not in inputs:
            if name in OPTIONAL_INPUTS.get(kind, ()):
                continue
            raise ValueError(f"figure {kind}: input {name!r} is missing (got {sorted(inputs)})")
        paths = [inputs[name]] if isinstance(inputs[name], (str, Path)) else list(inputs[name])
        frames = [io.read_artifact(path, name, stage=f"figure {kind}") for path in paths]
        tables[name] = pl.concat(frames) if frames else pl.DataFrame(schema=ARTIFACTS[name].polars_schema())
    return tables


def make_figure(kind: str, inputs: Mapping, output: str | Path, **params) -> None:
    """Draw figure ``kind`` (a key of :data:`FIGURES`) and save it to ``output`` (PNG) and beside it as SVG.

    ``inputs`` maps each of the figure's artifact inputs to a path or a list of paths (other
    entries, such as the rule's file inputs that only order the DAG, are ignored); ``params``
    are its selectors (dataset, slm, llm, setting), optional orderings (slms, datasets, methods,
    targets, settings) and ``results_dir`` (default "results") for figures built from the tidy
    per-query table. A corrupt or mismatched input raises :class:`uqroute.io.ArtifactInputError`
    naming the file.
    """
    if kind not in FIGURES:
        raise ValueError(f"unknown figure {kind!r} (known: {', '.join(FIGURES)})")
    tables = read_tables(kind, inputs, params.pop("results_dir", "results"))
    fig = FIGURES[kind].draw(tables, params)
    import matplotlib.pyplot as plt  # loaded by the draw above (uqroute.figures.plots sets the Agg backend)

    try:
        with io.atomic_path(Path(output).with_suffix(".svg"), suffix=".svg") as tmp:
            fig.savefig(tmp, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
        with io.atomic_path(output, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    finally:
        plt.close(fig)
