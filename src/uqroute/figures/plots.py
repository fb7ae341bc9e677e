"""One seaborn function per figure of the paper's routing results.

Each function takes the routing tables (polars DataFrames as written by the `routing`
rule) and returns a matplotlib Figure; :func:`uqroute.figures.make_figure` saves them.
The Agg backend is used, and nothing random is drawn, so figures are deterministic.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = [
    "auc_heatmap",
    "routing_curves",
    "relative_accuracy_plot",
    "confidence_distributions",
    "proxy_vs_oracle",
    "rms_vs_k",
    "empty_figure",
]

_THEME = {"style": "whitegrid", "context": "paper"}


def empty_figure(title: str, reason: str) -> Figure:
    """A figure that says why there is nothing to plot (so the pipeline output still exists)."""
    fig, ax = plt.subplots(figsize=(5, 2.5))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, reason, ha="center", va="center", wrap=True)
    return fig


def _palette(n: int):
    return sns.color_palette("tab10" if n <= 10 else "tab20", n)


def _order(values, preferred=None) -> list:
    seen = list(dict.fromkeys(values))
    if preferred:
        return [v for v in preferred if v in seen] + [v for v in seen if v not in preferred]
    return seen


def auc_heatmap(auc: pl.DataFrame, dataset: str, *, slms=None, methods=None) -> Figure:
    """ROC-AUC of confidence vs correctness, SLM × method, for one dataset (Figures 1, 8–11)."""
    df = auc.filter(pl.col("dataset") == dataset)
    title = f"ROC-AUC of confidence vs. correctness — {dataset}"
    if df.height == 0:
        return empty_figure(title, f"no AUC rows for {dataset}")
    rows, cols = _order(df["slm"].to_list(), slms), _order(df["method"].to_list(), methods)
    wide = df.to_pandas().pivot(index="slm", columns="method", values="roc_auc").reindex(index=rows, columns=cols).astype(float)
    sns.set_theme(**_THEME)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(cols), 1.2 + 0.45 * len(rows)))
    sns.heatmap(wide, annot=True, fmt=".2f", vmin=0.0, vmax=1.0, center=0.5, cmap="RdBu_r", cbar_kws={"label": "ROC-AUC"}, ax=ax)
    ax.set_title(title)
    ax.set_xlabel("UQ method")
    ax.set_ylabel("SLM")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return fig


def routing_curves(curves: pl.DataFrame, llm: str, dataset: str, *, methods=None, slms=None) -> Figure:
    """Accuracy vs routing ratio per UQ method, with the perfect-confidence and random curves (Figure 2)."""
    df = curves.filter((pl.col("llm") == llm) & (pl.col("dataset") == dataset))
    title = f"Routing to {llm} on {dataset}"
    if df.height == 0:
        return empty_figure(title, f"no routing curves for {llm} / {dataset}")
    slm_order = _order(df["slm"].to_list(), slms)
    method_order = _order(df["method"].to_list(), methods)
    uq = df.filter(pl.col("curve") == "uq").to_pandas()
    first = method_order[0]
    ref = df.filter(pl.col("curve").is_in(["upper", "random", "random_mc"]) & (pl.col("method") == first)).to_pandas()
    sns.set_theme(**_THEME)
    ncol = min(len(slm_order), 4)
    nrow = int(np.ceil(len(slm_order) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.0 * nrow), squeeze=False, sharey=True)
    palette = dict(zip(method_order, _palette(len(method_order))))
    for ax, slm in zip(axes.flat, slm_order):
        sns.lineplot(data=uq[uq["slm"] == slm], x="ratio", y="accuracy", hue="method", hue_order=method_order, palette=palette, ax=ax, legend=ax is axes.flat[0], linewidth=1.2)
        r = ref[ref["slm"] == slm]
        up = r[r["curve"] == "upper"]
        ax.plot(up["ratio"], up["accuracy"], color="black", linestyle=":", label="perfect confidence")
        rnd = r[r["curve"] == "random"]
        ax.plot(rnd["ratio"], rnd["accuracy"], color="grey", linestyle="--", label="random")
        mc = r[r["curve"] == "random_mc"]
        if len(mc):
            ax.fill_between(mc["ratio"], mc["accuracy"] - mc["accuracy_sd"].fillna(0), mc["accuracy"] + mc["accuracy_sd"].fillna(0), color="grey", alpha=0.2, linewidth=0)
        ax.set_title(slm)
        ax.set_xlabel("routing ratio")
        ax.set_ylabel("accuracy")
    for ax in list(axes.flat)[len(slm_order):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if axes.flat[0].get_legend():
        axes.flat[0].get_legend().remove()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def relative_accuracy_plot(rel: pl.DataFrame, llm: str, dataset: str, *, methods=None, slms=None) -> Figure:
    """SLM/LLM accuracy ratio on the top-k% most confident queries (Figure 3)."""
    df = rel.filter((pl.col("llm") == llm) & (pl.col("dataset") == dataset))
    title = f"Relative accuracy vs {llm} on {dataset}"
    if df.height == 0:
        return empty_figure(title, f"no relative-accuracy rows for {llm} / {dataset}")
    df = df.filter(pl.col("relative_accuracy").is_not_null())
    if df.height == 0:
        return empty_figure(title, f"{llm} answers no query of {dataset} correctly: the ratio is undefined")
    pdf = df.with_columns((pl.col("excluded") * 100).alias("lowest confidence excluded (%)")).to_pandas()
    slm_order, method_order = _order(pdf["slm"], slms), _order(pdf["method"], methods)
    sns.set_theme(**_THEME)
    g = sns.relplot(data=pdf, x="lowest confidence excluded (%)", y="relative_accuracy", hue="method", hue_order=method_order,
                    col="slm", col_order=slm_order, col_wrap=min(len(slm_order), 4), kind="line", height=2.8, aspect=1.2,
                    palette=_palette(len(method_order)))
    g.map(plt.axhline, y=1.0, color="black", linestyle=":", linewidth=0.8)
    g.set_axis_labels("lowest confidence excluded (%)", "SLM acc. / LLM acc.")
    g.figure.suptitle(title, y=1.02)
    return g.figure


def confidence_distributions(conf: pl.DataFrame, slm: str, *, methods=None, bins: int = 30) -> Figure:
    """Pooled confidence histogram over all datasets with one density curve per dataset (Figures 4–5).

    ``conf`` has columns slm, dataset, method, confidence (long format). Per-dataset curves
    are step densities on the pooled histogram's bins (robust for tied confidences, unlike a KDE).
    """
    df = conf.filter((pl.col("slm") == slm) & pl.col("confidence").is_not_null() & pl.col("confidence").is_not_nan())
    title = f"Confidence distributions of {slm}"
    if df.height == 0:
        return empty_figure(title, f"no confidences for {slm}")
    method_order = _order(df["method"].to_list(), methods)
    sns.set_theme(**_THEME)
    fig, axes = plt.subplots(1, len(method_order), figsize=(4.2 * len(method_order), 3.2), squeeze=False)
    for ax, method in zip(axes.flat, method_order):
        pdf = df.filter(pl.col("method") == method).to_pandas()
        edges = np.histogram_bin_edges(pdf["confidence"], bins=bins)
        sns.histplot(data=pdf, x="confidence", bins=edges, stat="density", color="lightgrey", edgecolor="white", ax=ax, label="all datasets")
        sns.histplot(data=pdf, x="confidence", hue="dataset", bins=edges, stat="density", common_norm=False, element="step",
                     fill=False, ax=ax, palette=_palette(pdf["dataset"].nunique()), linewidth=1.0)
        ax.set_title(method)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def proxy_vs_oracle(proxy_curves: pl.DataFrame, llm: str, target: str, setting: str, *, slms=None, methods=None) -> Figure:
    """Target routing curve with proxy-data thresholds vs the oracle curve (Figures 6–7, 16–19).

    The proxy curve is the mean over sampling seeds (paper: average of three runs).
    """
    df = proxy_curves.filter((pl.col("llm") == llm) & (pl.col("target") == target) & (pl.col("setting") == setting))
    title = f"Proxy routing data ({setting.replace('_', '-')}) → {target}, routing to {llm}"
    if df.height == 0:
        return empty_figure(title, f"no proxy results: setting {setting} has no source datasets for {target}")
    mean = df.group_by(["slm", "method", "ratio"]).agg(pl.col("accuracy").mean().alias("proxy"), pl.col("oracle_accuracy").first().alias("oracle"))
    long = mean.unpivot(index=["slm", "method", "ratio"], on=["oracle", "proxy"], variable_name="curve", value_name="accuracy").sort(["slm", "method", "curve", "ratio"]).to_pandas()
    slm_order, method_order = _order(long["slm"], slms), _order(long["method"], methods)
    sns.set_theme(**_THEME)
    g = sns.relplot(data=long, x="ratio", y="accuracy", hue="curve", style="curve", hue_order=["oracle", "proxy"], style_order=["oracle", "proxy"],
                    row="method", row_order=method_order, col="slm", col_order=slm_order, kind="line", height=2.6, aspect=1.2,
                    facet_kws={"sharey": False})
    g.set_axis_labels("routing ratio", "accuracy")
    g.figure.suptitle(title, y=1.02)
    return g.figure


def rms_vs_k(proxy: pl.DataFrame, llm: str, *, slms=None) -> Figure:
    """RMS distance to the oracle curve vs the sampling ratio k (Figure 20), mean over targets and seeds."""
    df = proxy.filter(pl.col("llm") == llm)
    title = f"RMS to the oracle curve vs sampling ratio k (routing to {llm})"
    if df.height == 0:
        return empty_figure(title, f"no proxy results for {llm}")
    agg = df.group_by(["setting", "slm", "method", "k"]).agg(pl.col("rms").mean(), pl.col("rms_random").mean()).sort(["setting", "slm", "method", "k"]).to_pandas()
    sns.set_theme(**_THEME)
    g = sns.relplot(data=agg, x="k", y="rms", hue="slm", hue_order=_order(agg["slm"], slms), style="method", col="setting",
                    kind="line", markers=True, height=3.0, aspect=1.3)
    for ax, setting in zip(g.axes.flat, g.col_names):
        base = agg[agg["setting"] == setting]["rms_random"].mean()
        ax.axhline(base, color="grey", linestyle="--", linewidth=0.8, label="random routing (mean)")
    g.set_axis_labels("sampling ratio k", "RMS to oracle")
    g.figure.suptitle(title, y=1.03)
    return g.figure
