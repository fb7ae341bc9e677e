"""Routing curves: accuracy of an SLM+LLM system against the fraction routed to the LLM.

Chuang et al., *Confident or Seek Stronger* (arXiv:2502.04428), §3 and Figure 2: the SLM
answers the queries it is most confident about and sends the rest to the LLM. Everything
here works on whole arrays: one sort per (SLM, dataset, method) and cumulative sums give
the curve at every routing ratio at once.

Conventions (documented in docs/routing.md):

* routing ratio ``r`` on a grid ``0, step, 2·step, …, 1``; ``r`` routes ``m = ⌈r·n⌉``
  queries;
* ties in confidence are *averaged*: when the ``m`` least-confident queries cut through
  a group of equal confidences, the expected value over a uniformly random order inside
  that group is used. The result therefore does not depend on row order, and a constant
  confidence gives exactly the random-routing line.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ratio_grid",
    "routed_counts",
    "expected_routed_sum",
    "oracle_curve",
    "upper_curve",
    "random_curve",
    "random_mc_curve",
    "random_permutations",
    "restrict_permutations",
    "relative_accuracy",
]


def ratio_grid(step: float) -> np.ndarray:
    """The routing-ratio grid ``0, step, …, 1`` (``1/step`` must be an integer)."""
    if not 0 < step <= 1:
        raise ValueError(f"routing.ratio_step must be in (0, 1], got {step}")
    steps = round(1.0 / step)
    if abs(steps * step - 1.0) > 1e-9:
        raise ValueError(f"routing.ratio_step={step}: 1/ratio_step must be an integer so the grid ends at 1")
    return np.arange(steps + 1, dtype=np.float64) / steps


def routed_counts(ratios: np.ndarray, n: int) -> np.ndarray:
    """``m = ⌈r·n⌉`` for every ratio (rounded first so that 0.07·100 routes 7, not 8)."""
    return np.ceil(np.round(np.asarray(ratios, dtype=np.float64) * n, 9)).astype(np.int64)


def expected_routed_sum(conf: np.ndarray, values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """E[sum of ``values`` over the ``m`` least-confident queries] for every ``m`` in ``counts``.

    Ties in ``conf`` are averaged: inside the group of equal confidences that the cut
    ``m`` falls into, each member counts with weight (queries still to take)/(group size).
    ``values`` may be 1-D ``(n,)`` or 2-D ``(n, L)`` (several value columns at once);
    the result has shape ``(len(counts),)`` or ``(len(counts), L)``.
    """
    conf = np.asarray(conf, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    n = conf.shape[0]
    if values.shape[0] != n:
        raise ValueError(f"{values.shape[0]} values for {n} confidences")
    if n == 0:
        return np.zeros((len(counts),) + values.shape[1:])
    if counts.min(initial=0) < 0 or counts.max(initial=0) > n:
        raise ValueError(f"routed counts must lie in [0, {n}]")
    order = np.argsort(conf, kind="stable")
    c = conf[order]
    v = values[order]
    cum = np.concatenate([np.zeros((1,) + v.shape[1:]), np.cumsum(v, axis=0)])
    new_group = np.empty(n, dtype=bool)
    new_group[0] = True
    np.not_equal(c[1:], c[:-1], out=new_group[1:])
    starts = np.flatnonzero(new_group)
    ends = np.append(starts[1:], n)
    group = np.searchsorted(starts, np.maximum(counts - 1, 0), side="right") - 1
    a, b = starts[group], ends[group]
    frac = (counts - a) / (b - a)
    if v.ndim == 2:
        frac = frac[:, None]
    return cum[a] + frac * (cum[b] - cum[a])


def oracle_curve(conf, slm_correct, llm_correct, ratios) -> np.ndarray:
    """Accuracy when the ``⌈r·n⌉`` least-confident queries go to the LLM (curve ``uq``).

    ``llm_correct`` may be ``(n,)`` or ``(n, L)`` for several LLMs at once.
    acc(r) = mean(s) + E[Σ_routed (l − s)] / n, ties averaged.
    """
    s = np.asarray(slm_correct, dtype=np.float64)
    lc = np.asarray(llm_correct, dtype=np.float64)
    n = s.shape[0]
    gain = lc - (s[:, None] if lc.ndim == 2 else s)
    counts = routed_counts(ratios, n)
    return s.mean() + expected_routed_sum(conf, gain, counts) / n


def upper_curve(slm_correct, llm_correct, ratios) -> np.ndarray:
    """Curve of a perfect confidence (c = s): the SLM's errors are routed first (curve ``upper``)."""
    s = np.asarray(slm_correct, dtype=np.float64)
    return oracle_curve(s, s, llm_correct, ratios)


def random_curve(slm_correct, llm_correct, ratios) -> np.ndarray:
    """Expected accuracy of routing ``m = ⌈r·n⌉`` uniformly random queries (curve ``random``).

    (1 − m/n)·mean(s) + (m/n)·mean(l); equal to (1 − r)·mean(s) + r·mean(l) whenever r·n
    is an integer.
    """
    s = np.asarray(slm_correct, dtype=np.float64)
    lc = np.asarray(llm_correct, dtype=np.float64)
    n = s.shape[0]
    f = routed_counts(ratios, n) / n
    if lc.ndim == 2:
        f = f[:, None]
    return (1 - f) * s.mean() + f * lc.mean(axis=0)


def random_permutations(n: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``draws`` uniform random orders of ``n`` queries, shape ``(draws, n)``."""
    return np.argsort(rng.random((draws, n)), axis=1)


def random_mc_curve(slm_correct, llm_correct, ratios, draws: int | np.ndarray, rng: np.random.Generator | None = None):
    """Monte-Carlo random routing (curve ``random_mc``): mean and sd over random orders.

    Each draw is one random order of the queries; ratio r routes its first ⌈r·n⌉ queries.
    ``draws`` is a number of orders drawn from ``rng``, or a ``(draws, n)`` array of
    permutations (so that methods can share draws). Returns ``(mean, sd)``, each of shape
    ``(len(ratios),)`` or ``(len(ratios), L)``; sd uses ddof=1 (0 when there is one draw).
    """
    s = np.asarray(slm_correct, dtype=np.float64)
    lc = np.asarray(llm_correct, dtype=np.float64)
    n = s.shape[0]
    gain = lc - (s[:, None] if lc.ndim == 2 else s)
    counts = routed_counts(ratios, n)
    perms = draws if isinstance(draws, np.ndarray) else random_permutations(n, int(draws), rng)
    binary = np.all((gain == -1) | (gain == 0) | (gain == 1))
    gt = np.atleast_2d((gain.astype(np.int8) if binary else gain).T)  # (L, n); 0/1 labels: exact, fast integer sums
    cum = np.cumsum(gt[:, perms], axis=2, dtype=np.int32 if binary else np.float64)  # (L, draws, n)
    cum = np.concatenate([np.zeros_like(cum[:, :, :1]), cum], axis=2)
    acc = s.mean() + np.moveaxis(cum[:, :, counts], 0, -1) / n  # (draws, R, L)
    if lc.ndim == 1:
        acc = acc[..., 0]
    sd = acc.std(axis=0, ddof=1) if perms.shape[0] > 1 else np.zeros(acc.shape[1:])
    return acc.mean(axis=0), sd


def restrict_permutations(perms: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Permutations of all n queries → permutations of the ``mask`` subset (re-indexed 0..m−1).

    Dropping the other queries from a uniform random order leaves a uniform random order
    of the subset, so every method's Monte-Carlo curve can share one set of draws.
    """
    mask = np.asarray(mask, dtype=bool)
    new_index = np.cumsum(mask) - 1
    keep = mask[perms]
    return new_index[perms[keep]].reshape(perms.shape[0], int(mask.sum()))


def relative_accuracy(conf, slm_correct, llm_correct, excluded):
    """SLM and LLM accuracy on the most confident queries after excluding a fraction (Figure 3).

    For each fraction x in ``excluded`` (x < 1) the ⌈x·n⌉ least-confident queries are removed
    (ties averaged, as for the routing curves). Returns ``(n_kept, slm_acc, llm_acc)``;
    relative accuracy is ``slm_acc / llm_acc``. ``llm_correct`` may be ``(n, L)``.
    """
    s = np.asarray(slm_correct, dtype=np.float64)
    lc = np.asarray(llm_correct, dtype=np.float64)
    n = s.shape[0]
    excluded = np.asarray(excluded, dtype=np.float64)
    if np.any(excluded >= 1) or np.any(excluded < 0):
        raise ValueError("excluded fractions must lie in [0, 1)")
    counts = routed_counts(excluded, n)
    kept = n - counts
    if np.any(kept <= 0):
        raise ValueError(f"excluding {excluded[kept <= 0][0]} of {n} queries keeps none")
    removed = expected_routed_sum(conf, np.column_stack([s, lc]), counts)
    slm_acc = (s.sum() - removed[:, 0]) / kept
    llm_acc = (lc.sum(axis=0) - removed[:, 1:]) / kept[:, None]
    return kept, slm_acc, (llm_acc if lc.ndim == 2 else llm_acc[:, 0])
