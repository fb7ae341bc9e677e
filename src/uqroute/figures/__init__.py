"""Figures of the routing results (Chuang et al. 2025, Figures 1–7 and 20): one seaborn
function per figure in :mod:`.plots`, registered in :data:`FIGURES` (path, inputs, caption);
:func:`make_figure` reads the tables and saves one."""

from .make import FIGURES, FigureSpec, make_figure, read_tables

_PLOTS = (
    "auc_heatmap",
    "confidence_distributions",
    "empty_figure",
    "missing_note",
    "proxy_vs_oracle",
    "relative_accuracy_plot",
    "rms_vs_k",
    "routing_curves",
)

__all__ = [
    "FIGURES",
    "FigureSpec",
    "make_figure",
    "read_tables",
    "auc_heatmap",
    "confidence_distributions",
    "empty_figure",
    "missing_note",
    "proxy_vs_oracle",
    "relative_accuracy_plot",
    "rms_vs_k",
    "routing_curves",
]


def __getattr__(name):  # the plot functions load matplotlib and seaborn: imported on first use, not by the DAG
    if name in _PLOTS:
        from . import plots

        return getattr(plots, name)
    raise AttributeError(name)
