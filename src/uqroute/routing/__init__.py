"""Routing evaluation (Chuang et al., *Confident or Seek Stronger*, §3–4, App. E and G).

Alignment (ROC-AUC with bootstrap CI, PRR, AURAC), oracle/upper/random routing curves,
relative accuracy on confident queries, proxy routing data with RMS to the oracle, and
RouteLLM's APGR/CPT. Definitions: docs/routing.md.
"""

from .alignment import OneClassWarning, alignment, aurac, bootstrap_auc_ci, prr, roc_auc, weighted_auc
from .curves import (
    expected_routed_sum,
    oracle_curve,
    random_curve,
    random_mc_curve,
    ratio_grid,
    relative_accuracy,
    routed_counts,
    upper_curve,
)
from .proxy import SETTINGS, apply_thresholds, bin_allocation, proxy_thresholds, rms, sample_proxy, source_datasets, w1
from .run import OUTPUT_KEYS, RoutingInputError, RoutingInputs, evaluate, load_inputs, run_routing
from .summary import apgr, cpt, pgr

__all__ = [
    "OneClassWarning", "alignment", "aurac", "bootstrap_auc_ci", "prr", "roc_auc", "weighted_auc",
    "expected_routed_sum", "oracle_curve", "random_curve", "random_mc_curve", "ratio_grid",
    "relative_accuracy", "routed_counts", "upper_curve",
    "SETTINGS", "apply_thresholds", "bin_allocation", "proxy_thresholds", "rms", "sample_proxy", "source_datasets", "w1",
    "OUTPUT_KEYS", "RoutingInputError", "RoutingInputs", "evaluate", "load_inputs", "run_routing",
    "apgr", "cpt", "pgr",
]
