"""Figures of the routing results (Chuang et al. 2025, Figures 1–7 and 20): one seaborn
function per figure in :mod:`.plots`; :func:`make_figure` reads the tables and saves one."""

from .make import FIGURES, make_figure
from .plots import (
    auc_heatmap,
    confidence_distributions,
    empty_figure,
    proxy_vs_oracle,
    relative_accuracy_plot,
    rms_vs_k,
    routing_curves,
)

__all__ = [
    "FIGURES", "make_figure", "auc_heatmap", "confidence_distributions", "empty_figure", "proxy_vs_oracle",
    "relative_accuracy_plot", "rms_vs_k", "routing_curves",
]
