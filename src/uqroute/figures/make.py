"""Read the routing tables, draw one figure, save it atomically as PNG (the figure rules)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402

from .. import io  # noqa: E402
from . import plots  # noqa: E402

__all__ = ["FIGURES", "make_figure", "read_confidences"]

FIGURES = ("auc_heatmap", "routing_curves", "relative_accuracy", "confidence", "proxy_curves", "rms_vs_k")
DPI = 120


def read_confidences(uq_paths: Sequence[str], slm: str, datasets: Sequence[str], methods: Sequence[str] | None = None) -> pl.DataFrame:
    """Long table (slm, dataset, method, confidence) from one SLM's uq files (in ``datasets`` order)."""
    if len(uq_paths) != len(datasets):
        raise ValueError(f"confidence figure for {slm}: {len(uq_paths)} uq files for {len(datasets)} datasets")
    frames = []
    for path, d in zip(uq_paths, datasets):
        df = pl.read_parquet(path)
        cols = [m for m in (methods or df.columns[1:]) if m in df.columns and m != "id"]
        missing = [m for m in (methods or []) if m not in df.columns]
        if missing:
            raise ValueError(f"confidence figure: uq file {path} lacks methods {missing}")
        frames.append(df.unpivot(index="id", on=cols, variable_name="method", value_name="confidence")
                      .with_columns(pl.lit(slm).alias("slm"), pl.lit(d).alias("dataset"), pl.col("confidence").cast(pl.Float64)))
    return pl.concat(frames).select("slm", "dataset", "method", "confidence")


def _draw(kind: str, inputs: Mapping, p: Mapping):
    if kind == "auc_heatmap":
        return plots.auc_heatmap(pl.read_parquet(inputs["auc"]), p["dataset"], slms=p.get("slms"), methods=p.get("methods"))
    if kind == "routing_curves":
        return plots.routing_curves(pl.read_parquet(inputs["curves"]), p["llm"], p["dataset"], slms=p.get("slms"), methods=p.get("methods"))
    if kind == "relative_accuracy":
        return plots.relative_accuracy_plot(pl.read_parquet(inputs["relative_accuracy"]), p["llm"], p["dataset"], slms=p.get("slms"), methods=p.get("methods"))
    if kind == "confidence":
        methods = p.get("methods")
        methods = None if methods == "all" else methods
        conf = read_confidences(list(inputs["uq"]), p["slm"], p["datasets"], methods)
        return plots.confidence_distributions(conf, p["slm"], methods=methods, bins=p.get("bins", 30))
    if kind == "proxy_curves":
        return plots.proxy_vs_oracle(pl.read_parquet(inputs["proxy_curves"]), p["llm"], p["target"], p["setting"], slms=p.get("slms"), methods=p.get("methods"))
    if kind == "rms_vs_k":
        return plots.rms_vs_k(pl.read_parquet(inputs["proxy"]), p["llm"], slms=p.get("slms"))
    raise ValueError(f"unknown figure {kind!r} (known: {', '.join(FIGURES)})")


def make_figure(kind: str, inputs: Mapping, output: str | Path, **params) -> None:
    """Draw figure ``kind`` from the tables named in ``inputs`` and save it to ``output`` (PNG).

    ``inputs`` maps table names (auc, curves, relative_accuracy, proxy, proxy_curves, uq)
    to paths; ``params`` are the figure's selectors (dataset, llm, slm, target, setting,
    and optionally slms/methods for ordering).
    """
    fig = _draw(kind, inputs, params)
    try:
        with io.atomic_path(output, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    finally:
        plt.close(fig)
