"""One seaborn function per figure of the paper's routing results.

Each function takes the routing tables (polars DataFrames as written by the `routing` rule,
or the tidy per-query table of :func:`uqroute.results.tidy`) and returns a matplotlib Figure;
:func:`uqroute.figures.make_figure` saves them. The Agg backend is used, and nothing random is
drawn, so figures are deterministic. A method that was asked for (``methods``) but has no
scores in a panel is named in that panel, never silently left out of the legend.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.hashsalt"] = "uqroute"  # deterministic element ids in the SVGs

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
    "missing_note",
]

_THEME = {"style": "whitegrid", "context": "paper"}


def empty_figure(title: str, reason: str) -> Figure:
    """A figure that says why there is nothing to plot (so the pipeline output still exists)."""
    fig, ax = plt.subplots(figsize=(5, 2.5))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, reason, ha="center", va="center", wrap=True)
    return fig


#: 20 colours of maximum contrast (Kelly 1965, without white and black), in an order that keeps the
#: first ones far apart: up to 20 methods each get their own colour.
KELLY = [
    "#F3C300",
    "#875692",
    "#F38400",
    "#A1CAF1",
    "#BE0032",
    "#C2B280",
    "#848482",
    "#008856",
    "#E68FAC",
    "#0067A5",
    "#F99379",
    "#604E97",
    "#F6A600",
    "#B3446C",
    "#DCD300",
    "#882D17",
    "#8DB600",
    "#654522",
    "#E25822",
    "#2B3D26",
]
#: line style per UQ method family (paper Table 1), so that methods of one family read as a group
FAMILY_STYLE = {
    "token_probability": "-",
    "consistency": "--",
    "verbalized": ":",
    "probe": "-.",
    "introspection": (0, (5, 1, 1, 1)),
}


def _palette(names: list) -> dict:
    """A distinct colour per name (:data:`KELLY`; names beyond 20 reuse them)."""
    return {n: KELLY[i % len(KELLY)] for i, n in enumerate(names)}


def _style(method: str):
    """The line style of ``method``'s family (solid when it is not a registered method)."""
    try:
        from ..uq import METHODS
    except ImportError:  # pragma: no cover
        return "-"
    m = METHODS.get(method)
    return FAMILY_STYLE.get(m.family, "-") if m is not None else "-"


def _n_of(auc: pl.DataFrame | None, slm: str, dataset: str) -> dict:
    """{method: n} of one SLM and dataset from the ``auc`` table (queries with a confidence and a label)."""
    if auc is None or auc.height == 0:
        return {}
    sub = auc.filter((pl.col("slm") == slm) & (pl.col("dataset") == dataset))
    return dict(zip(sub["method"].to_list(), sub["n"].to_list()))


def _n_note(n: dict, present) -> tuple[str, str]:
    """(panel-title suffix "n=N", note naming the methods scored on fewer rows) from ``n``."""
    got = {m: n[m] for m in present if m in n}
    if not got:
        return "", ""
    top = max(got.values())
    fewer = [f"{m} {v}" for m, v in got.items() if v < top]
    return f" (n={top})", ("fewer rows: " + ", ".join(fewer)) if fewer else ""


def _order(values, preferred=None) -> list:
    seen = list(dict.fromkeys(values))
    if preferred:
        return [v for v in preferred if v in seen] + [v for v in seen if v not in preferred]
    return seen


def missing_note(expected, present) -> str:
    """'no scores: a, b' for the expected methods absent from ``present`` ('' when none)."""
    gone = [m for m in (expected or []) if m not in set(present)]
    return f"no scores: {', '.join(gone)}" if gone else ""


def _note(ax, text: str) -> None:
    if text:
        ax.text(
            0.02,
            0.02,
            text,
            transform=ax.transAxes,
            fontsize=7,
            color="dimgrey",
            ha="left",
            va="bottom",
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1},
        )


def _grid(n: int, ncol: int, w: float, h: float, sharey=True):
    ncol = max(1, min(n, ncol if n > 4 else 2))  # up to 4 panels: 2 × 2, so that each stays readable
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(w * ncol, h * nrow), squeeze=False, sharey=sharey)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, list(axes.flat)[:n]


def _legend(fig, axes) -> None:
    handles, labels = {}, []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
        if ax.get_legend():
            ax.get_legend().remove()
    if labels:  # below the panels, never over them
        fig.legend(
            [handles[lab] for lab in labels],
            labels,
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            frameon=False,
            ncol=min(4, len(labels)),
            fontsize=9,
        )


def auc_heatmap(auc: pl.DataFrame, slm: str, *, datasets=None, methods=None) -> Figure:
    """ROC-AUC of confidence vs correctness of one SLM, datasets × methods (Figures 1, 8–11), each
    cell with its n (queries with a confidence and a label).

    Cells without a value are marked "–": "no scores" (the method scored no query of this
    dataset), "one class" (all answers right or all wrong). Datasets without any results are named.
    """
    df = auc.filter(pl.col("slm") == slm)
    title = f"ROC-AUC of confidence vs. correctness — {slm}"
    missing_ds = [d for d in (datasets or []) if d not in set(df["dataset"].to_list())]
    if df.height == 0:
        return empty_figure(title, f"no AUC rows for {slm}")
    rows = [d for d in _order(df["dataset"].to_list(), datasets) if d not in missing_ds]
    cols = _order(df["method"].to_list(), methods)
    cols += [m for m in (methods or []) if m not in cols]
    pdf = df.to_pandas()
    wide = (
        pdf.pivot(index="dataset", columns="method", values="roc_auc").reindex(index=rows, columns=cols).astype(float)
    )
    ns = pdf.pivot(index="dataset", columns="method", values="n").reindex(index=rows, columns=cols)
    scored = set(zip(df["dataset"].to_list(), df["method"].to_list()))
    sns.set_theme(**_THEME)
    fig, ax = plt.subplots(figsize=(2.0 + 0.95 * len(cols), 1.8 + 0.75 * len(rows)))
    sns.heatmap(
        wide,
        annot=False,
        vmin=0.0,
        vmax=1.0,
        center=0.5,
        cmap="RdBu_r",
        cbar_kws={"label": "ROC-AUC", "shrink": 0.9},
        ax=ax,
        linewidths=0.5,
        linecolor="white",
    )
    for i, d in enumerate(rows):
        for j, m in enumerate(cols):
            v, n = wide.iloc[i, j], ns.iloc[i, j]
            if np.isnan(v):
                why = "one class" if (d, m) in scored else "no scores"
                ax.text(j + 0.5, i + 0.5, f"–\n{why}", ha="center", va="center", fontsize=7, color="dimgrey")
            else:
                ax.text(
                    j + 0.5,
                    i + 0.5,
                    f"{v:.2f}\nn={int(n)}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if abs(v - 0.5) > 0.3 else "black",
                )
    ax.set_title(title)
    ax.set_xlabel("UQ method")
    ax.set_ylabel("dataset")
    ax.tick_params(axis="x", rotation=45)
    plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    ax.tick_params(axis="y", rotation=0)
    notes = [missing_note(methods, df["method"].to_list())]
    if missing_ds:
        notes.append(f"no results for datasets: {', '.join(missing_ds)}")
    notes = [n for n in notes if n]
    if notes:
        fig.text(0.0, -0.02, "; ".join(notes), fontsize=8, color="dimgrey", ha="left", va="top")
    fig.tight_layout()
    return fig


def routing_curves(
    curves: pl.DataFrame, slm: str, llm: str, *, datasets=None, methods=None, auc: pl.DataFrame | None = None
) -> Figure:
    """Accuracy vs routing ratio per UQ method, one panel per dataset, with the perfect-confidence
    and random curves (Figures 2, 12–15), for one SLM routed to one LLM. With ``auc`` (the routing
    stage's table) each panel names its n and the methods scored on fewer queries (their curves, and
    the reference curves drawn for the first method, are on different rows)."""
    df = curves.filter((pl.col("slm") == slm) & (pl.col("llm") == llm))
    title = f"{slm} routed to {llm}"
    if df.height == 0:
        return empty_figure(title, f"no routing curves for {slm} → {llm}")
    ds = _order(df["dataset"].to_list(), datasets)
    ds += [d for d in (datasets or []) if d not in ds]
    method_order = _order(df["method"].to_list(), methods)
    palette = _palette(method_order)
    sns.set_theme(**_THEME)
    fig, axes = _grid(len(ds), 4, 4.6, 3.6)
    pdf = df.to_pandas()
    for ax, d in zip(axes, ds):
        sub = pdf[pdf["dataset"] == d]
        uq = sub[sub["curve"] == "uq"]
        present = [m for m in method_order if m in set(uq["method"])]
        n_suffix, n_note = _n_note(_n_of(auc, slm, d), present)
        for m in present:
            cur = uq[uq["method"] == m]
            ax.plot(cur["ratio"], cur["accuracy"], color=palette[m], linestyle=_style(m), linewidth=1.4, label=m)
        if present:
            ref = sub[sub["method"] == present[0]]
            up, rnd, mc = (ref[ref["curve"] == c] for c in ("upper", "random", "random_mc"))
            ax.plot(up["ratio"], up["accuracy"], color="black", linestyle=":", label="perfect confidence")
            ax.plot(rnd["ratio"], rnd["accuracy"], color="grey", linestyle="--", label="random")
            if len(mc):
                sd = mc["accuracy_sd"].fillna(0)
                ax.fill_between(
                    mc["ratio"], mc["accuracy"] - sd, mc["accuracy"] + sd, color="grey", alpha=0.2, linewidth=0
                )
        _note(
            ax,
            "; ".join(
                t for t in (missing_note(methods, present) if present else "no scores for any method", n_note) if t
            ),
        )
        ax.set_title(d + n_suffix)
        ax.set_xlabel("routing ratio")
        ax.set_ylabel("accuracy")
    _legend(fig, axes)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def relative_accuracy_plot(rel: pl.DataFrame, slm: str, llm: str, *, datasets=None, methods=None) -> Figure:
    """SLM/LLM accuracy ratio on the top-k% most confident queries (Figure 3), one panel per dataset."""
    df = rel.filter((pl.col("slm") == slm) & (pl.col("llm") == llm))
    title = f"Relative accuracy of {slm} vs {llm}"
    if df.height == 0:
        return empty_figure(title, f"no relative-accuracy rows for {slm} / {llm}")
    ds = _order(df["dataset"].to_list(), datasets)
    ds += [d for d in (datasets or []) if d not in ds]
    method_order = _order(df["method"].to_list(), methods)
    palette = _palette(method_order)
    sns.set_theme(**_THEME)
    fig, axes = _grid(len(ds), 4, 4.6, 3.6)
    pdf = df.with_columns((pl.col("excluded") * 100).alias("pct")).to_pandas()
    for ax, d in zip(axes, ds):
        sub = pdf[pdf["dataset"] == d]
        present = [m for m in method_order if m in set(sub["method"])]
        defined = sub[sub["relative_accuracy"].notna()]
        for m in present:
            cur = defined[defined["method"] == m]
            ax.plot(cur["pct"], cur["relative_accuracy"], color=palette[m], linestyle=_style(m), linewidth=1.4, label=m)
        if "n_kept" in sub and len(sub):
            n0 = int(sub[sub["excluded"] == sub["excluded"].min()]["n_kept"].max())
            ax.set_title(f"{d} (n={n0})")
            ax2 = ax.secondary_xaxis("top", functions=(lambda x: x, lambda x: x))
            ax2.set_xticks([0, 50, 80, 90])
            ax2.set_xticklabels([f"n={max(1, round(n0 * (1 - t / 100)))}" for t in (0, 50, 80, 90)], fontsize=7)
        ax.axhline(1.0, color="black", linestyle=":", linewidth=0.8)
        note = missing_note(methods, present) if present else "no scores for any method"
        if present and defined.empty:
            note = f"{llm} answers no query of {d} correctly: the ratio is undefined"
        _note(ax, note)
        if not ("n_kept" in sub and len(sub)):
            ax.set_title(d)
        ax.set_xlabel("lowest confidence excluded (%)")
        ax.set_ylabel("SLM acc. / LLM acc.")
    _legend(fig, axes)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confidence_distributions(tidy: pl.DataFrame, slm: str, *, methods=None, bins: int = 30) -> Figure:
    """Pooled confidence histogram over all datasets with one density outline per dataset (Figures 4–5).

    ``tidy`` is :func:`uqroute.results.tidy`'s table (columns slm, dataset, method, confidence, …).
    Per-dataset outlines are step densities on the pooled histogram's bins (robust for tied
    confidences, unlike a KDE).
    """
    df = tidy.filter((pl.col("slm") == slm) & pl.col("confidence").is_not_null() & pl.col("confidence").is_not_nan())
    title = f"Confidence distributions of {slm}"
    method_order = _order(df["method"].to_list(), methods)
    method_order += [m for m in (methods or []) if m not in method_order]
    if not method_order:
        return empty_figure(title, f"no confidences for {slm}")
    sns.set_theme(**_THEME)
    fig, axes = plt.subplots(1, len(method_order), figsize=(4.2 * len(method_order), 3.2), squeeze=False)
    all_ds = _order(tidy.filter(pl.col("slm") == slm)["dataset"].to_list())
    palette = _palette(all_ds)
    for ax, method in zip(axes.flat, method_order):
        pdf = df.filter(pl.col("method") == method).to_pandas()
        ax.set_title(method)
        if pdf.empty:
            ax.axis("off")
            ax.text(0.5, 0.5, f"{method}: no scores on any dataset", ha="center", va="center", transform=ax.transAxes)
            continue
        lo, hi = pdf["confidence"].min(), pdf["confidence"].max()
        edges = (
            np.histogram_bin_edges(pdf["confidence"], bins=bins)
            if hi > lo and np.isfinite(hi - lo) and (hi - lo) > 1e-12 * max(1, abs(hi))
            else np.array([lo - 0.5, hi + 0.5])
        )
        sns.histplot(
            data=pdf,
            x="confidence",
            bins=edges,
            stat="density",
            color="lightgrey",
            edgecolor="white",
            ax=ax,
            label="all datasets",
        )
        sns.histplot(
            data=pdf,
            x="confidence",
            hue="dataset",
            hue_order=[d for d in all_ds if d in set(pdf["dataset"])],
            bins=edges,
            stat="density",
            common_norm=False,
            element="step",
            fill=False,
            ax=ax,
            palette=palette,
            linewidth=1.0,
        )
        _note(ax, missing_note(all_ds, pdf["dataset"]).replace("no scores", "no scores on"))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def proxy_vs_oracle(
    proxy_curves: pl.DataFrame, slm: str, llm: str, setting: str, *, methods=None, targets=None
) -> Figure:
    """Target routing curves with proxy-data thresholds vs the oracle curves (Figures 6–7, 16–19),
    one panel per target, one colour per method; solid = oracle, dashed = proxy (mean over seeds)."""
    df = proxy_curves.filter((pl.col("slm") == slm) & (pl.col("llm") == llm) & (pl.col("setting") == setting))
    title = f"Proxy routing data ({setting.replace('_', ' ')}): {slm} routed to {llm}"
    if df.height == 0:
        return empty_figure(title, f"no proxy results for {slm} → {llm} in setting {setting}")
    tg = _order(df["target"].to_list(), targets)
    tg += [t for t in (targets or []) if t not in tg]
    mean = (
        df.group_by(["target", "method", "ratio"])
        .agg(pl.col("accuracy").mean().alias("proxy"), pl.col("oracle_accuracy").first().alias("oracle"))
        .sort(["target", "method", "ratio"])
        .to_pandas()
    )
    method_order = _order(df["method"].to_list(), methods)
    palette = _palette(method_order)
    sns.set_theme(**_THEME)
    fig, axes = _grid(len(tg), 4, 4.6, 3.6, sharey=False)
    for ax, t in zip(axes, tg):
        sub = mean[mean["target"] == t]
        present = [m for m in method_order if m in set(sub["method"])]
        for m in present:
            cur = sub[sub["method"] == m]
            ax.plot(cur["ratio"], cur["oracle"], color=palette[m], linewidth=1.2, label=f"{m} oracle")
            ax.plot(cur["ratio"], cur["proxy"], color=palette[m], linewidth=1.2, linestyle="--", label=f"{m} proxy")
        _note(ax, missing_note(methods, present) if present else "no scores for any method")
        ax.set_title(f"target {t}")
        ax.set_xlabel("routing ratio")
        ax.set_ylabel("accuracy")
    _legend(fig, axes)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def rms_vs_k(proxy: pl.DataFrame, slm: str, llm: str, *, methods=None, settings=None) -> Figure:
    """RMS distance to the oracle curve vs the sampling ratio k (Figure 20), one panel per routing
    scenario (setting and target; mean over seeds only), one colour per method: solid = at the
    requested ratio, dashed = along the realised ratio, dotted = random routing."""
    df = proxy.filter((pl.col("slm") == slm) & (pl.col("llm") == llm))
    title = f"RMS to the oracle curve vs sampling ratio k: {slm} routed to {llm}"
    if df.height == 0:
        return empty_figure(title, f"no proxy results for {slm} → {llm}")
    agg = (
        df.group_by(["setting", "target", "method", "k"])
        .agg(pl.col("rms").mean(), pl.col("rms_realised").mean(), pl.col("rms_random").mean())
        .sort(["setting", "target", "method", "k"])
        .to_pandas()
    )
    setting_order = _order(agg["setting"], settings)
    scen = [(s, t) for s in setting_order for t in _order(agg[agg["setting"] == s]["target"])]
    method_order = _order(df["method"].to_list(), methods)
    palette = _palette(method_order)
    sns.set_theme(**_THEME)
    fig, axes = _grid(len(scen), 4, 4.6, 3.6)
    for ax, (s, t) in zip(axes, scen):
        sub = agg[(agg["setting"] == s) & (agg["target"] == t)]
        present = [m for m in method_order if m in set(sub["method"])]
        for m in present:
            cur = sub[sub["method"] == m]
            ax.plot(cur["k"], cur["rms"], color=palette[m], marker="o", markersize=3, label=f"{m} (requested r)")
            ax.plot(
                cur["k"],
                cur["rms_realised"],
                color=palette[m],
                marker="s",
                markersize=3,
                linestyle="--",
                label=f"{m} (realised r)",
            )
            ax.axhline(
                cur["rms_random"].mean(), color=palette[m], linestyle=":", linewidth=0.8, label=f"{m} random routing"
            )
        _note(ax, missing_note(methods, present))
        ax.set_title(f"{s.replace('_', ' ')} → {t}", fontsize=9)
        ax.set_xlabel("sampling ratio k")
        ax.set_ylabel("RMS to oracle")
    _legend(fig, axes)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
