"""Routing evaluation (Chuang et al., *Confident or Seek Stronger*, §3–4, App. E and G).

Alignment (ROC-AUC with bootstrap CI, PRR in Malinin's and LM-Polygraph's form, AURAC),
oracle/upper/random routing curves, relative accuracy on confident queries, proxy routing
data (hold-out sets with tie-aware thresholds) with its RMS to the oracle, the paper's named
out-of-domain shifts and its generic out-of-domain setting, and RouteLLM's APGR/CPT (on our grid and in RouteLLM's own form). Definitions: docs/routing.md.

For a router: :func:`tie_aware_thresholds` turns a hold-out sample into (threshold, q) per
ratio and :func:`route_fraction` routes new confidences with them.
"""

from .alignment import (
    ALIGNMENT_METRICS,
    OneClassWarning,
    alignment,
    aurac,
    bootstrap_auc_ci,
    prediction_rejection_area,
    prr,
    prr_polygraph,
    roc_auc,
    weighted_auc,
)
from .config import (
    DEFAULTS,
    LEAK_FREE_METHODS,
    OUT_OF_DOMAIN,
    PARTIAL_IN_DOMAIN,
    RoutingConfigError,
    Scenario,
    check_config,
    config_problems,
    proxy_probe_pairs,
    resolve,
    scenarios,
)
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
from .evaluation import PROXY_METRICS, TABLES, evaluate, holdout_frame, holdout_pool
from .inputs import RoutingInputError, RoutingInputs, label_column, load_inputs
from .proxy import (
    DegeneratePoolWarning,
    ProxyPool,
    apply_thresholds,
    bin_allocation,
    proxy_thresholds,
    rms,
    rms_realised,
    route_fraction,
    sample_proxy,
    tie_aware_thresholds,
    w1,
)
from .run import ASSEMBLY_KEYS, OUTPUT_KEYS, assemble_routing, available_slms, run_routing
from .summary import CURVE_SUMMARIES, apgr, apgr_routellm, cpt, cpt_routellm, pgr

__all__ = [
    "ALIGNMENT_METRICS",
    "OneClassWarning",
    "alignment",
    "aurac",
    "bootstrap_auc_ci",
    "prediction_rejection_area",
    "prr",
    "prr_polygraph",
    "roc_auc",
    "weighted_auc",
    "DEFAULTS",
    "LEAK_FREE_METHODS",
    "OUT_OF_DOMAIN",
    "PARTIAL_IN_DOMAIN",
    "RoutingConfigError",
    "Scenario",
    "check_config",
    "config_problems",
    "proxy_probe_pairs",
    "resolve",
    "scenarios",
    "expected_routed_sum",
    "oracle_curve",
    "random_curve",
    "random_mc_curve",
    "ratio_grid",
    "relative_accuracy",
    "routed_counts",
    "upper_curve",
    "PROXY_METRICS",
    "TABLES",
    "evaluate",
    "holdout_frame",
    "holdout_pool",
    "RoutingInputError",
    "RoutingInputs",
    "label_column",
    "load_inputs",
    "DegeneratePoolWarning",
    "ProxyPool",
    "apply_thresholds",
    "bin_allocation",
    "proxy_thresholds",
    "rms",
    "rms_realised",
    "route_fraction",
    "sample_proxy",
    "tie_aware_thresholds",
    "w1",
    "ASSEMBLY_KEYS",
    "OUTPUT_KEYS",
    "assemble_routing",
    "available_slms",
    "run_routing",
    "CURVE_SUMMARIES",
    "apgr",
    "apgr_routellm",
    "cpt",
    "cpt_routellm",
    "pgr",
]
