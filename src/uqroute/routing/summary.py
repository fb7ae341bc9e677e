"""RouteLLM summaries of a routing curve (Ong et al., "RouteLLM: Learning to Route LLMs
with Preference Data", 2024): performance gap recovered (PGR), its average over the ratio
grid (APGR), and the call-performance threshold CPT(x%), the smallest routed fraction that
recovers x% of the SLM→LLM gap.

Every value column of the ``routing_summary`` artifact besides the two accuracies comes from
:data:`CURVE_SUMMARIES`: a new summary is one function ``(curve, ratios) -> float | None``
there plus one column in ``uqroute.schema.ROUTING_SUMMARY``."""

from __future__ import annotations

import numpy as np

__all__ = ["pgr", "apgr", "cpt", "CURVE_SUMMARIES"]


def pgr(curve: np.ndarray) -> np.ndarray | None:
    """PGR(r) = (acc(r) − acc(0)) / (acc(1) − acc(0)); None when acc(1) = acc(0)."""
    curve = np.asarray(curve, dtype=np.float64)
    gap = curve[-1] - curve[0]
    if abs(gap) < 1e-12:
        return None
    return (curve - curve[0]) / gap


def apgr(curve: np.ndarray) -> float | None:
    """Mean of PGR over the ratio grid (the grid must run from 0 to 1); None when undefined."""
    p = pgr(curve)
    return None if p is None else float(p.mean())


def cpt(curve: np.ndarray, ratios: np.ndarray, level: float) -> float | None:
    """Smallest ratio on the grid whose PGR reaches ``level`` (e.g. 0.5); None if never or undefined."""
    p = pgr(curve)
    if p is None:
        return None
    hit = np.flatnonzero(p >= level - 1e-12)
    return float(np.asarray(ratios)[hit[0]]) if hit.size else None


#: Summaries of an oracle routing curve ``(curve, ratios) -> float | None``, one column each.
CURVE_SUMMARIES = {
    "apgr": lambda curve, ratios: apgr(curve),
    "cpt50": lambda curve, ratios: cpt(curve, ratios, 0.5),
    "cpt80": lambda curve, ratios: cpt(curve, ratios, 0.8),
}
