"""Proxy routing data (Chuang et al. 2025, §4.1–4.2, Appendices E and G).

The proxy routing data for a target dataset is a small sample of SLM confidences from
*other* datasets: the source confidences are pooled, histogrammed into ``bins`` equal-width
bins, and k% of each bin is drawn without replacement (:class:`ProxyPool`). The threshold
for routing ratio r is the r-quantile of the proxy confidences, made *tie-aware*
(:func:`tie_aware_thresholds`): the queries below the threshold are routed, and a fraction q
of those exactly at it, so that the proxy itself routes exactly r even when confidences tie
(verbalized confidences are mostly 90 or 100). On the target the same rule is applied
(:func:`route_fraction`, :func:`apply_thresholds`) and scored with the tie-averaged
expectation the oracle curve uses. Two distances to the oracle curve measure how well the
proxy predicts routing on the unseen target (Tables 4/5, Figure 20): at the requested ratio
(:func:`rms`) and along the realised ratio (:func:`rms_realised`). docs/routing.md has the
definitions.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = [
    "DegeneratePoolWarning",
    "bin_allocation",
    "ProxyPool",
    "sample_proxy",
    "proxy_thresholds",
    "tie_aware_thresholds",
    "route_fraction",
    "apply_thresholds",
    "rms",
    "rms_realised",
    "w1",
]


class DegeneratePoolWarning(UserWarning):
    """A proxy pool that cannot be cut into the configured bins (one value, a range below float
    resolution, fewer values than bins); the sample is still defined (see :class:`ProxyPool`)."""


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


def _edges(pool_sorted: np.ndarray, bins: int) -> tuple[np.ndarray, str | None]:
    """Bin edges over [min, max] and a note when the pool cannot be cut into ``bins`` bins.

    * one distinct value → one bin (``numpy`` would centre a unit range on it);
    * a range too small for ``bins`` finite, increasing edges (numpy: "Too many bins for data
      range") → one bin, i.e. a plain sample without replacement;
    * fewer values than bins → the configured bins (most are empty), with a note.
    """
    lo, hi, n = pool_sorted[0], pool_sorted[-1], pool_sorted.size
    if lo == hi:
        return np.array([lo, hi]), f"the pool holds a single value ({float(lo)!r}, {n} rows): one bin"
    try:
        with np.errstate(all="ignore"):
            edges = np.histogram_bin_edges(pool_sorted, bins=bins)
        ok = np.all(np.isfinite(edges)) and np.all(np.diff(edges) > 0)
    except ValueError:
        ok = False
    if not ok:
        return np.array([lo, hi]), (
            f"the pool's range [{float(lo)!r}, {float(hi)!r}] is too small for {bins} finite bins "
            f"({n} rows): one bin, i.e. k% drawn without binning"
        )
    if n < bins:
        return edges, f"the pool has {n} rows for {bins} bins: most bins are empty"
    return edges, None


class ProxyPool:
    """Pooled source confidences, binned once, from which samples for any (k, seed) are drawn.

    Bins are ``bins`` equal-width bins over [min, max] of the pool (``numpy.histogram_bin_edges``;
    the maximum falls in the last bin). A degenerate pool (see :func:`_edges`) uses one bin and
    sets :attr:`note`, and a :class:`DegeneratePoolWarning` is issued. Draws are without
    replacement inside each bin: for a seed, every pooled query gets a uniform key from
    ``numpy.random.default_rng(seed)`` (in ascending confidence order, ties in the given
    order) and each bin contributes
    its ``allocation[bin]`` queries with the smallest keys (the same keys for every k).
    """

    def __init__(self, pool: np.ndarray, bins: int, *, where: str = ""):
        raw = np.asarray(pool, dtype=np.float64)
        if raw.size == 0:
            raise ValueError("cannot sample proxy routing data from an empty pool")
        if not np.all(np.isfinite(raw)):
            raise ValueError(f"{where or 'proxy pool'}: confidences must be finite")
        self.order = np.argsort(raw, kind="stable")  # sorted position → index into the given pool
        self.pool = raw[self.order]
        edges, self.note = _edges(self.pool, int(bins))
        if self.note:
            warnings.warn(f"{where + ': ' if where else ''}{self.note}", DegeneratePoolWarning, stacklevel=2)
        nb = edges.size - 1
        self.bins = nb
        self.bin = np.clip(np.searchsorted(edges, self.pool, side="right") - 1, 0, nb - 1)
        self.counts = np.bincount(self.bin, minlength=nb)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self._ranks: dict[int, np.ndarray] = {}

    def _rank(self, seed: int) -> np.ndarray:
        """Rank of each (sorted) query's random key inside its bin (0 = drawn first)."""
        if seed not in self._ranks:
            u = np.random.default_rng(int(seed)).random(self.pool.size)  # one key per query, in sorted order
            order = np.argsort(self.bin + u, kind="stable")  # by bin, then by key
            rank = np.empty(self.pool.size, dtype=np.int64)
            rank[order] = np.arange(self.pool.size) - self.starts[self.bin[order]]
            self._ranks[seed] = rank
        return self._ranks[seed]

    def sample_index(self, k: float, seed: int) -> np.ndarray:
        """Indices into the given pool of the k% sample (no index twice), in ascending confidence."""
        alloc = bin_allocation(self.counts, k)
        return self.order[self._rank(seed) < alloc[self.bin]]

    def sample(self, k: float, seed: int) -> np.ndarray:
        """The k% sample's confidences (largest-remainder allocation over bins), sorted ascending."""
        alloc = bin_allocation(self.counts, k)
        return self.pool[self._rank(seed) < alloc[self.bin]]


def sample_proxy(pool: np.ndarray, bins: int, k: float, seed: int) -> np.ndarray:
    """Stratified sample of the pooled confidences: k% of each of ``bins`` equal-width bins
    (see :class:`ProxyPool`). Returns the sampled confidences, sorted."""
    return ProxyPool(pool, bins).sample(k, seed)


def proxy_thresholds(sample: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """The r-quantile of the proxy confidences for each ratio (``numpy.quantile``, 'linear')."""
    x = np.sort(np.asarray(sample, dtype=np.float64))
    pos = np.asarray(ratios, dtype=np.float64) * (x.size - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, x.size - 1)
    return x[lo] + (pos - lo) * (x[hi] - x[lo])


def tie_aware_thresholds(sample, ratios) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds ``t`` and tied fractions ``q`` that route exactly the fraction r of ``sample``.

    For each ratio r: ``t`` is the r-quantile of the sample (numpy's 'linear' method, as the
    paper's "threshold for each routing ratio"), and
    ``q = (r − P(c < t)) / P(c = t)`` clipped to [0, 1] (0 when no sample value equals t), with
    P the sample's empirical distribution. Routing every query with c < t plus a fraction q of
    those with c = t then routes r of the sample in expectation, also when confidences tie.
    The ends are exact budgets: r = 0 gives t = −∞ (route nothing) and r = 1 gives t = +∞
    (route everything). A sample holding NaN or ±inf raises ``ValueError``. Pure; the router reuses it.
    """
    x = np.sort(np.asarray(sample, dtype=np.float64))
    r = np.asarray(ratios, dtype=np.float64)
    if x.size == 0:
        raise ValueError("tie_aware_thresholds: empty sample")
    bad = ~np.isfinite(x)
    if bad.any():  # a NaN sorts last and an inf makes the interpolation inf - inf: either gives a NaN threshold
        raise ValueError(
            f"tie_aware_thresholds: the sample holds {int(bad.sum())} non-finite confidence(s) "
            f"({', '.join(map(repr, np.unique(x[bad]).tolist()))}) among {x.size}; drop them (or score them) first"
        )
    if np.any((r < 0) | (r > 1)):
        raise ValueError(f"tie_aware_thresholds: ratios must lie in [0, 1], got {r[(r < 0) | (r > 1)][:3]}")
    t = proxy_thresholds(x, r)
    below = np.searchsorted(x, t, side="left")
    tied = np.searchsorted(x, t, side="right") - below
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(tied > 0, np.clip((r * x.size - below) / np.where(tied > 0, tied, 1), 0.0, 1.0), 0.0)
    t = np.where(r <= 0, -np.inf, np.where(r >= 1, np.inf, t))
    q = np.where((r <= 0) | (r >= 1), 0.0, q)
    return t, q


def route_fraction(conf, threshold: float, q: float) -> np.ndarray:
    """Probability that each query is routed at threshold ``t`` with tied fraction ``q``:
    1 when c < t, q when c = t, 0 otherwise. Pure; the router reuses it."""
    c = np.asarray(conf, dtype=np.float64)
    return (c < threshold).astype(np.float64) + q * (c == threshold)


def apply_thresholds(
    conf_sorted: np.ndarray, cum_gain: np.ndarray, slm_mean: float, thresholds: np.ndarray, q: np.ndarray | None = None
):
    """Route the target at each (threshold, q); return ``(realised_ratio, accuracy)`` per ratio.

    ``conf_sorted`` is the target's confidence sorted ascending and ``cum_gain`` the cumulative
    sum of (l − s) in that order with a leading 0 (length n + 1). A query with c < t is routed,
    one with c = t with probability q; the accuracy is the expectation over that randomness,
    which equals the tie-averaged oracle curve evaluated at the realised count. ``q=None``
    routes only c < t.
    """
    n = conf_sorted.size
    t = np.asarray(thresholds, dtype=np.float64)
    a = np.searchsorted(conf_sorted, t, side="left")
    if q is None:
        return a / n, slm_mean + cum_gain[a] / n
    b = np.searchsorted(conf_sorted, t, side="right")
    q = np.asarray(q, dtype=np.float64)
    routed = a + q * (b - a)
    return routed / n, slm_mean + (cum_gain[a] + q * (cum_gain[b] - cum_gain[a])) / n


def rms(curve: np.ndarray, reference: np.ndarray) -> float:
    """Root mean squared distance between two curves on the same ratio grid."""
    d = np.asarray(curve, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    return float(np.sqrt(d @ d / d.size))


def rms_realised(realised: np.ndarray, accuracy: np.ndarray, grid: np.ndarray, oracle: np.ndarray) -> float:
    """RMS between the oracle curve and the proxy curve drawn against the *realised* ratio.

    The proxy points (realised(r), accuracy(r)) are joined by straight lines (they include
    (0, acc(0)) and (1, acc(1)) because r = 0 and r = 1 are exact budgets) and read at every
    grid ratio. Every point lies on the oracle curve (a threshold routes a least-confident
    prefix), so this distance only measures how evenly the proxy's points cover the curve.
    """
    x, idx = np.unique(np.asarray(realised, dtype=np.float64), return_index=True)
    y = np.asarray(accuracy, dtype=np.float64)[idx]
    return rms(np.interp(np.asarray(grid, dtype=np.float64), x, y), oracle)


def w1(pool: np.ndarray, target: np.ndarray) -> float:
    """Wasserstein-1 distance between pooled source and target confidences (scipy)."""
    from scipy.stats import wasserstein_distance  # deferred: the start-up checks import this package

    return float(wasserstein_distance(pool, target))
