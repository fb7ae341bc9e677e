"""RouteLLM summaries of a routing curve (Ong et al., "RouteLLM: Learning to Route LLMs
with Preference Data", 2024): performance gap recovered (PGR), its average (APGR) and the
call-performance threshold CPT(x%), the fraction of LLM calls that recovers x% of the
SLM→LLM gap.

Two readings of each, both written to the ``routing_summary`` artifact (docs/routing.md,
"RouteLLM summaries", names every difference):

* ours, on the routing-ratio grid: :func:`apgr` is the plain mean of PGR over the grid points
  and :func:`cpt` the first grid ratio whose PGR reaches the level (columns ``apgr``,
  ``cpt50``, ``cpt80``);
* RouteLLM's own (``routellm/evals/evaluate.py``, v0.2.0): :func:`apgr_routellm` integrates
  the curve with the trapezoid rule over the *realised* fraction of LLM calls and normalises by
  the weak and strong models' areas, and :func:`cpt_routellm` interpolates the call fraction
  linearly between curve points with ``numpy.interp`` over the accuracies, which assumes the
  curve increases (columns ``apgr_routellm``, ``cpt50_routellm``, ``cpt80_routellm``; RouteLLM
  prints CPT in percent, we store the fraction).

Every value column of the ``routing_summary`` artifact besides the two accuracies comes from
:data:`CURVE_SUMMARIES`: a new summary is one function ``(curve, ratios, realised) -> float | None``
there plus one column in ``uqroute.schema.ROUTING_SUMMARY``."""

from __future__ import annotations

import numpy as np

__all__ = ["pgr", "apgr", "cpt", "apgr_routellm", "cpt_routellm", "CURVE_SUMMARIES"]


def pgr(curve: np.ndarray) -> np.ndarray | None:
    """PGR(r) = (acc(r) − acc(0)) / (acc(1) − acc(0)); None when acc(1) = acc(0)."""
    curve = np.asarray(curve, dtype=np.float64)
    gap = curve[-1] - curve[0]
    if abs(gap) < 1e-12:
        return None
    return (curve - curve[0]) / gap


def apgr(curve: np.ndarray) -> float | None:
    """Mean of PGR over the grid points (every point weighs the same; the grid must run from 0
    to 1); None when undefined. RouteLLM's trapezoid variant is :func:`apgr_routellm`."""
    p = pgr(curve)
    return None if p is None else float(p.mean())


def cpt(curve: np.ndarray, ratios: np.ndarray, level: float) -> float | None:
    """The first grid ratio, in grid order, whose PGR reaches ``level`` (e.g. 0.5), without
    interpolation; None if no grid point reaches it, or when PGR is undefined. On a curve that
    overshoots and falls back this is the first crossing. RouteLLM's interpolated variant is
    :func:`cpt_routellm`."""
    p = pgr(curve)
    if p is None:
        return None
    hit = np.flatnonzero(p >= level - 1e-12)
    return float(np.asarray(ratios)[hit[0]]) if hit.size else None


def _by_calls(curve, realised) -> tuple[np.ndarray, np.ndarray]:
    """The curve's points ordered by the realised fraction of LLM calls (stable, as listed on ties)."""
    x = np.asarray(realised, dtype=np.float64)
    y = np.asarray(curve, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(
            f"a routing curve needs ≥ 2 points with one realised fraction each, got {y.shape} and {x.shape}"
        )
    order = np.argsort(x, kind="stable")
    return x[order], y[order]


def apgr_routellm(curve: np.ndarray, realised: np.ndarray) -> float | None:
    """RouteLLM's APGR: (A − A_weak) / (A_strong − A_weak) with A = ∫ acc d(calls) by the
    trapezoid rule over the points ordered by ``realised`` (the fraction of queries actually sent
    to the LLM), and A_weak, A_strong the areas of the constant SLM and LLM accuracies over the
    same span. The weak and strong accuracies are the accuracies at the fewest and most calls, which are
    the two models' accuracies on an oracle curve. None when they are equal (RouteLLM divides by
    zero) or when the realised fractions span no width."""
    x, y = _by_calls(curve, realised)
    weak, strong = float(y[0]), float(y[-1])
    span = float(x[-1] - x[0])
    if abs(strong - weak) < 1e-12 or span <= 0:
        return None
    area = float(np.trapezoid(y, x))
    return (area - weak * span) / ((strong - weak) * span)


def cpt_routellm(curve: np.ndarray, realised: np.ndarray, level: float) -> float | None:
    """RouteLLM's CPT(level): ``numpy.interp(acc_weak + level·(acc_strong − acc_weak), acc, calls)``
    over the points ordered by ``realised`` — the call fraction read off the inverse curve by
    linear interpolation. Exact for an increasing curve; on a non-monotone one ``numpy.interp``
    (which does not check that its x-coordinates increase) returns what its search finds, and we
    keep that, since this column reproduces RouteLLM's number. A target beyond the curve's
    accuracies is clamped to the end's call fraction, as ``numpy.interp`` does. None when
    acc(1) = acc(0)."""
    x, y = _by_calls(curve, realised)
    weak, strong = float(y[0]), float(y[-1])
    if abs(strong - weak) < 1e-12:
        return None
    return float(np.interp(weak + level * (strong - weak), y, x))


#: Summaries of an oracle routing curve ``(curve, ratios, realised) -> float | None``, one column each;
#: ``realised`` is the fraction of queries each grid ratio actually routes (⌈r·n⌉/n).
CURVE_SUMMARIES = {
    "apgr": lambda curve, ratios, realised: apgr(curve),
    "cpt50": lambda curve, ratios, realised: cpt(curve, ratios, 0.5),
    "cpt80": lambda curve, ratios, realised: cpt(curve, ratios, 0.8),
    "apgr_routellm": lambda curve, ratios, realised: apgr_routellm(curve, realised),
    "cpt50_routellm": lambda curve, ratios, realised: cpt_routellm(curve, realised, 0.5),
    "cpt80_routellm": lambda curve, ratios, realised: cpt_routellm(curve, realised, 0.8),
}
