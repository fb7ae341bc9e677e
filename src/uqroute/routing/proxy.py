"""Proxy routing data (Chuang et al. 2025, §4.1–4.2, Appendices E and G).

The proxy routing data for a target dataset is a small sample of SLM confidences from
*other* datasets: the source confidences are pooled, histogrammed into ``bins`` equal-width
bins, and k% of each bin is drawn without replacement. The threshold for routing ratio r is
the r-quantile of the proxy confidences; on the target, queries with confidence strictly
below it go to the LLM. The proxy curve is the target's accuracy at those thresholds, and
its RMS distance to the oracle curve measures how well the proxy predicts routing on the
unseen target (Table 4/5, Figure 20).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import wasserstein_distance

__all__ = [
    "SETTINGS",
    "source_datasets",
    "bin_allocation",
    "ProxyPool",
    "sample_proxy",
    "proxy_thresholds",
    "apply_thresholds",
    "rms",
    "w1",
]

SETTINGS = ("partial_in_domain", "out_of_domain")


def source_datasets(target: str, datasets: list[str], domains: dict[str, str], setting: str) -> list[str]:
    """Datasets pooled into the proxy for ``target``.

    ``partial_in_domain``: every other dataset of the run; ``out_of_domain``: datasets whose
    domain differs from the target's (paper §4.2; Table 5's math ↔ commonsense shifts).
    """
    if setting == "partial_in_domain":
        return [d for d in datasets if d != target]
    if setting == "out_of_domain":
        return [d for d in datasets if domains[d] != domains[target]]
    raise ValueError(f"unknown proxy setting {setting!r} (known: {', '.join(SETTINGS)})")


def bin_allocation(counts: np.ndarray, k: float) -> np.ndarray:
    """How many queries to draw from each bin: k% of each, apportioned by largest remainder.

    The total is round(k·N) (at least 1); each bin gets ⌊k·count⌋ and the remaining draws go
    to the bins with the largest fractional parts (lower bin first on ties), so the sample
    follows the pooled histogram as closely as integers allow.
    """
    counts = np.asarray(counts, dtype=np.int64)
    quota = k * counts
    base = np.floor(quota).astype(np.int64)
    total = max(1, int(np.floor(k * counts.sum() + 0.5))) if counts.sum() else 0
    left = total - int(base.sum())
    if left > 0:
        frac = quota - base
        order = np.lexsort((np.arange(counts.size), -frac))
        base[order[:left]] += 1
    return np.minimum(base, counts)


class ProxyPool:
    """Pooled source confidences, binned once, from which samples for any (k, seed) are drawn.

    Bins are ``bins`` equal-width bins over [min, max] of the pool (``numpy.histogram``
    edges; the maximum falls in the last bin). Draws are without replacement inside each
    bin: for a seed, every pooled query gets a uniform key from
    ``numpy.random.default_rng(seed)`` and each bin contributes its ``allocation[bin]``
    queries with the smallest keys (the same keys for every k). The pool is kept
    sorted by confidence (bins are then contiguous), so samples come out sorted.
    """

    def __init__(self, pool: np.ndarray, bins: int):
        pool = np.sort(np.asarray(pool, dtype=np.float64))
        if pool.size == 0:
            raise ValueError("cannot sample proxy routing data from an empty pool")
        self.pool, self.bins = pool, bins
        edges = np.histogram_bin_edges(pool, bins=bins)
        self.bin = np.clip(np.searchsorted(edges, pool, side="right") - 1, 0, bins - 1)
        self.counts = np.bincount(self.bin, minlength=bins)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self._ranks: dict[int, np.ndarray] = {}

    def _rank(self, seed: int) -> np.ndarray:
        """Rank of each query's random key inside its bin (0 = drawn first)."""
        if seed not in self._ranks:
            u = np.random.default_rng(int(seed)).random(self.pool.size)
            order = np.argsort(self.bin + u, kind="stable")  # by bin, then by key
            rank = np.empty(self.pool.size, dtype=np.int64)
            rank[order] = np.arange(self.pool.size) - self.starts[self.bin[order]]
            self._ranks[seed] = rank
        return self._ranks[seed]

    def sample(self, k: float, seed: int) -> np.ndarray:
        """k% of each bin (largest-remainder allocation), sorted ascending."""
        alloc = bin_allocation(self.counts, k)
        return self.pool[self._rank(seed) < alloc[self.bin]]


def sample_proxy(pool: np.ndarray, bins: int, k: float, seed: int) -> np.ndarray:
    """Stratified sample of the pooled confidences: k% of each of ``bins`` equal-width bins
    (see :class:`ProxyPool`). Returns the sampled confidences, sorted."""
    return ProxyPool(pool, bins).sample(k, seed)


def proxy_thresholds(sample: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """Threshold for each routing ratio: the r-quantile of the proxy confidences.

    Same as ``numpy.quantile(sample, ratios)`` (method 'linear') for a *sorted* sample,
    without re-sorting it for every call.
    """
    x = np.asarray(sample, dtype=np.float64)
    pos = np.asarray(ratios, dtype=np.float64) * (x.size - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, x.size - 1)
    frac = pos - lo
    return x[lo] + frac * (x[hi] - x[lo])


def apply_thresholds(conf_sorted: np.ndarray, cum_gain: np.ndarray, slm_mean: float, thresholds: np.ndarray):
    """Route target queries with confidence < threshold; return ``(realised_ratio, accuracy)``.

    ``conf_sorted`` is the target's confidence sorted ascending and ``cum_gain`` the cumulative
    sum of (l − s) in that order with a leading 0 (length n + 1).
    """
    n = conf_sorted.size
    routed = np.searchsorted(conf_sorted, thresholds, side="left")
    return routed / n, slm_mean + cum_gain[routed] / n


def rms(curve: np.ndarray, reference: np.ndarray) -> float:
    """Root mean squared distance between two curves on the same ratio grid."""
    d = np.asarray(curve, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    return float(np.sqrt(d @ d / d.size))


def w1(pool: np.ndarray, target: np.ndarray) -> float:
    """Wasserstein-1 distance between pooled source and target confidences (scipy)."""
    return float(wasserstein_distance(pool, target))
