"""The served threshold and the live monitor of a router.

:class:`QuantileThreshold` decides each request. In ``fixed`` mode it applies the calibrated
tie-aware threshold (t, q) throughout. In ``tracking`` mode it applies the calibrated one until
``min_samples`` live confidences have been seen (or earlier, once the warm-up's drift test shows the
calibrated threshold wrong: :func:`warmup_plan`), and then the tie-aware ``fraction``-quantile of
the last ``window`` live confidences (:func:`uqroute.routing.tie_aware_thresholds` on the window:
the same rule the hold-out set's thresholds follow, so a window equal to the hold-out sample gives
exactly the calibrated threshold). Thresholds calibrated on other datasets miss the budget on new
data (docs/routing.md, "Two readings"); tracking the live quantile holds the realised LLM-call
fraction at the target under a shift, at the price of no longer following the calibrated accuracy
curve. A request is decided with the window *before* its own confidence is added.

A query at the threshold is routed with probability q, drawn from a generator seeded once
(``seed``), so a replay of the same confidences in the same order gives the same decisions. A
confidence the method cannot compute (NaN: e.g. an unparsable verbalized confidence) is routed to
the LLM and kept out of the window.

:class:`Monitor` keeps the last ``window`` decisions: the realised LLM-call fraction, the
Wasserstein-1 distance between the live confidences and the hold-out set's
(``scipy.stats.wasserstein_distance``; the domain-shift term of the paper's Theorem 3), and a
drift flag, set (with a logged warning) once at least ``min_samples`` decisions are in the window
and the realised fraction is farther than ``drift_margin`` from the target.

**No client can steer the tracking threshold** (our choice; the paper does not serve routers). Three
guards, each optional in :class:`QuantileThreshold` and on by default in ``uqroute serve``:

* a per-client share: a client (``client``: an id from its API key or a header) holds at most
  ``client_share`` of the window; beyond that, its newest confidence replaces its oldest;
* duplicates: a prompt (``key``: a hash of the conversation) already in the window is not added again;
* bounds: the live threshold is clamped to the hold-out thresholds of the LLM-call fractions
  ``fraction ± max_shift`` (:meth:`QuantileThreshold.bounds`), so whatever the live traffic, the
  threshold routes between ``fraction − max_shift`` and ``fraction + max_shift`` of hold-out-like
  traffic. Moving further needs an operator (a new router file, or a wider ``--max-shift``).

:func:`warmup_plan` chooses the warm-up from the calibration's own uncertainty and states the budget error to
expect during it.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..routing import tie_aware_thresholds

log = logging.getLogger("uqroute.router")

__all__ = [
    "Decision",
    "QuantileThreshold",
    "Monitor",
    "MonitorState",
    "SortedWindow",
    "warmup_samples",
    "warmup_plan",
    "calibrated_fraction",
    "fraction_sd",
    "WARMUP_ALPHA",
]


class SortedWindow:
    """The last ``size`` values, kept in arrival order and in sorted order (O(size) per update).

    Each value may carry a client id and a key (a prompt hash): :meth:`count` and :meth:`has` say
    how many values of a client, and whether a key, the window holds now.
    """

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"window size must be ≥ 1, got {size}")
        self.size = int(size)
        self.fifo: deque[tuple[float, object, object]] = deque()
        self.sorted: list[float] = []
        self._clients: dict = {}
        self._keys: dict = {}

    def __len__(self) -> int:
        return len(self.fifo)

    def count(self, client) -> int:
        return self._clients.get(client, 0)

    def has(self, key) -> bool:
        return key is not None and key in self._keys

    @staticmethod
    def _inc(d: dict, k, by: int) -> None:
        if k is None:
            return
        n = d.get(k, 0) + by
        if n:
            d[k] = n
        else:
            d.pop(k, None)

    def add(self, x: float, client=None, key=None) -> None:
        x = float(x)
        self.fifo.append((x, client, key))
        bisect.insort(self.sorted, x)
        self._inc(self._clients, client, 1)
        self._inc(self._keys, key, 1)
        if len(self.fifo) > self.size:
            old, oc, ok = self.fifo.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, old)]
            self._inc(self._clients, oc, -1)
            self._inc(self._keys, ok, -1)

    def drop_oldest_of(self, client) -> None:
        """Remove the oldest value of ``client`` (O(size))."""
        for i, (x, c, k) in enumerate(self.fifo):
            if c == client:
                del self.fifo[i]
                del self.sorted[bisect.bisect_left(self.sorted, x)]
                self._inc(self._clients, c, -1)
                self._inc(self._keys, k, -1)
                return

    def array(self) -> np.ndarray:
        return np.asarray(self.sorted, dtype=np.float64)


def fraction_sd(fraction: float, n: int) -> float:
    """The binomial standard deviation sqrt(r(1 − r)/n) of a fraction r estimated from n requests (inf for n = 0)."""
    if n <= 0:
        return math.inf
    return math.sqrt(max(fraction * (1 - fraction), 0.0) / n)


def warmup_samples(fraction: float, n_holdout: int, margin: float, window: int) -> int:
    """The fewest live confidences whose quantile is within ``margin`` of the target: ⌈r(1 − r)/margin²⌉, at
    least 1, at most the hold-out size and the window.

    After k live confidences the window quantile's LLM-call fraction has a standard deviation of about
    sqrt(r(1 − r)/k) (:func:`fraction_sd`); this is the smallest k at which that is within ``margin`` (the
    drift margin, the budget error the operator accepts). It is the earliest the warm-up may end, once the
    calibrated threshold is shown wrong (:func:`warmup_plan`). (r = 0.3, margin 0.1: 21 requests.)
    """
    r = float(fraction)
    need = math.ceil(r * (1 - r) / float(margin) ** 2) if margin > 0 else int(window)
    return int(max(1, min(need, int(n_holdout), int(window))))


#: The two-sided level of the warm-up's drift test and of the stated bands (95 %).
WARMUP_ALPHA = 0.05


def _z(alpha: float) -> float:
    from statistics import NormalDist

    return float(NormalDist().inv_cdf(1 - alpha / 2))


def warmup_plan(
    fraction: float,
    n_holdout: int,
    margin: float,
    window: int,
    *,
    min_samples: int | None = None,
    alpha: float = WARMUP_ALPHA,
) -> dict:
    """The tracking warm-up chosen from the calibration's own uncertainty, and the budget error to expect.

    The calibrated threshold is the r-quantile of n_h hold-out confidences; the live one after k requests is
    the r-quantile of k live confidences. On traffic like the hold-out set's, the fraction each routes has a
    standard deviation of about sqrt(r(1 − r)/n_h) and sqrt(r(1 − r)/k) (binomial; :func:`fraction_sd`), so
    the live threshold is at least as certain as the calibrated one from k = n_h on: the warm-up is
    **N = min(n_h, window)** (``min_samples``; a number given instead is kept, ``source`` ``set``).

    Under a shift the calibrated threshold is biased, and waiting N requests costs the whole bias. So the
    warm-up ends earlier, at the first k ≥ k_min = :func:`warmup_samples` (the fewest live confidences whose
    quantile is within the drift margin) at which the calibrated threshold's own LLM-call fraction over the
    live window, p̂_k, lies outside the band hold-out-like traffic would give it:
    |p̂_k − r| > z · sqrt(r(1 − r)(1/k + 1/n_h)) with z the two-sided ``alpha`` quantile (1.96). Then the
    calibrated threshold is known wrong by more than the live quantile's own error (z sd > sd_live), and
    tracking it is the better estimate. (Our choice: the test is on the fraction at the threshold, the one
    quantity the budget depends on, rather than on the W1 distance, which a shift away from the threshold
    moves too; the paper does not serve routers.)

    The expected budget error in the first N requests, on hold-out-like traffic: the realised fraction has a
    standard deviation of sqrt(r(1 − r)(1/n_h + 1/N)) (the hold-out's sampling error plus that of N
    requests), ± z times that at level 1 − ``alpha`` (``band_warmup``). After the warm-up, the live
    threshold's fraction has a standard deviation of at most sqrt(r(1 − r)/N), and sqrt(r(1 − r)/window)
    once the window is full (``band_tracking``: ± z times that). On shifted traffic the first k_min requests
    (at least) are decided by the calibrated threshold, however far off it is.
    """
    r, n_h, window = float(fraction), int(n_holdout), int(window)
    z = _z(alpha)
    k_min = warmup_samples(r, n_h, margin, window)
    n = int(min_samples) if min_samples is not None else int(max(1, min(n_h, window)))
    k_min = min(k_min, n)
    sd_warm = math.sqrt(max(r * (1 - r), 0.0) * (1 / max(n_h, 1) + 1 / n))
    sd_track = fraction_sd(r, window)
    return {
        "source": "set" if min_samples is not None else "auto",
        "min_samples": n,
        "drift_min_samples": int(k_min),
        "alpha": float(alpha),
        "z": z,
        "holdout_n": n_h,
        "fraction_sd_warmup": sd_warm,
        "band_warmup": z * sd_warm,
        "fraction_sd_tracking": sd_track,
        "band_tracking": z * sd_track,
    }


def calibrated_fraction(values_sorted, threshold: float, q: float) -> float:
    """The LLM-call fraction (t, q) gives on sorted values: share below t plus q times the share at t."""
    n = len(values_sorted)
    if n == 0:
        return math.nan
    lo = bisect.bisect_left(values_sorted, threshold)
    hi = bisect.bisect_right(values_sorted, threshold)
    return (lo + q * (hi - lo)) / n


@dataclass(frozen=True)
class Decision:
    """One routing decision: whether the request goes to the LLM, at which (threshold, q), from where."""

    routed: bool
    threshold: float
    q: float
    source: str  # "calibrated" | "tracking" | "bounded" (tracking, clamped to the bounds) | "unscored" | "truncated"
    p_route: float  # the probability of routing this confidence had: 1, q or 0


class QuantileThreshold:
    """Decide requests at a fixed or tracking threshold (see the module docstring). Thread-safe.

    Args:
        fraction, threshold, q: the target LLM-call fraction and the calibrated (t, q).
        mode, window, min_samples, seed: see the module docstring.
        client_share: the largest share of the window one client may hold (None: no limit); ``client_cap``
            = max(1, ⌊client_share × window⌋) values.
        dedupe: keep a prompt key out of the window while the window holds it already.
        reference: the hold-out confidences; with ``max_shift``, they bound the live threshold.
        max_shift: the live threshold stays between the reference's thresholds of ``fraction ± max_shift``.
        drift_min_samples, holdout_n, drift_z: the warm-up's drift test (:func:`warmup_plan`): from
            ``drift_min_samples`` live confidences on, the warm-up ends as soon as the calibrated threshold's
            fraction over the window is farther from ``fraction`` than ``drift_z`` ·
            sqrt(r(1 − r)(1/k + 1/holdout_n)). None: no early end (``min_samples`` only).
    """

    def __init__(
        self,
        fraction: float,
        threshold: float,
        q: float,
        *,
        mode: str = "tracking",
        window: int = 500,
        min_samples: int = 50,
        seed: int = 0,
        client_share: float | None = None,
        dedupe: bool = False,
        reference=None,
        max_shift: float | None = None,
        drift_min_samples: int | None = None,
        holdout_n: int | None = None,
        drift_z: float | None = None,
    ):
        if mode not in ("fixed", "tracking"):
            raise ValueError(f"mode must be 'fixed' or 'tracking', got {mode!r}")
        if not 0 <= fraction <= 1:
            raise ValueError(f"the LLM-call fraction must lie in [0, 1], got {fraction!r}")
        if min_samples < 1 or min_samples > window:
            raise ValueError(f"min_samples must lie in [1, window={window}], got {min_samples}")
        if client_share is not None and not 0 < client_share <= 1:
            raise ValueError(f"client_share must lie in (0, 1], got {client_share!r}")
        if max_shift is not None and (reference is None or not 0 <= max_shift <= 1):
            raise ValueError(
                f"max_shift must lie in [0, 1] and needs the reference (hold-out) confidences, got {max_shift!r}"
            )
        self.fraction, self.mode, self.min_samples = float(fraction), mode, int(min_samples)
        self.calibrated = (float(threshold), float(q))
        self.window = SortedWindow(window)
        self.rng = np.random.default_rng(int(seed))
        self.client_share, self.dedupe, self.max_shift = client_share, bool(dedupe), max_shift
        self.client_cap = None if client_share is None else max(1, int(client_share * window))
        self._bounds = None
        if max_shift is not None:
            ref = np.sort(np.asarray(reference, dtype=np.float64))
            lo, hi = max(0.0, self.fraction - max_shift), min(1.0, self.fraction + max_shift)
            t, qq = tie_aware_thresholds(ref, [lo, hi])
            # a lower threshold routes less: the lower bound is the threshold of the smaller fraction
            self._bounds = ((float(t[0]), float(qq[0])), (float(t[1]), float(qq[1])))
        self.skipped = {"client_share": 0, "duplicate": 0}
        if drift_min_samples is not None and (holdout_n is None or drift_z is None or drift_min_samples < 1):
            raise ValueError("the warm-up's drift test needs drift_min_samples ≥ 1, holdout_n and drift_z")
        self.drift_min_samples, self.holdout_n, self.drift_z = drift_min_samples, holdout_n, drift_z
        #: set when the warm-up ended early: {"at": k, "calibrated_fraction": p̂_k, "band": z·sd}
        self.warmup_ended_by_drift: dict | None = None
        self._lock = threading.Lock()

    def bounds(self) -> tuple[tuple[float, float], tuple[float, float]] | None:
        """((t, q) at fraction − max_shift, (t, q) at fraction + max_shift) on the hold-out confidences, or None."""
        return self._bounds

    def current(self) -> tuple[float, float, str]:
        """The (threshold, q) the next request is decided with, and where it comes from."""
        with self._lock:
            return self._current()

    def warming_up(self) -> bool:
        """Whether the calibrated threshold still decides (tracking mode, warm-up not over)."""
        return self.mode == "tracking" and len(self.window) < self.min_samples and self.warmup_ended_by_drift is None

    def _check_drift(self) -> None:
        """The warm-up's drift test on the window (see :func:`warmup_plan`); latches once it fires."""
        k = len(self.window)
        if self.drift_min_samples is None or not self.warming_up() or k < self.drift_min_samples:
            return
        r = self.fraction
        p = calibrated_fraction(self.window.sorted, *self.calibrated)
        band = self.drift_z * math.sqrt(max(r * (1 - r), 0.0) * (1 / k + 1 / max(int(self.holdout_n), 1)))
        if abs(p - r) > band:
            self.warmup_ended_by_drift = {"at": k, "calibrated_fraction": p, "band": band}
            log.warning(
                "the calibrated threshold routes %.3f of the first %d live requests, outside %.3f ± %.3f: "
                "the warm-up ends early and the tracking threshold takes over",
                p,
                k,
                r,
                band,
            )

    def _current(self) -> tuple[float, float, str]:
        if self.mode == "fixed" or (len(self.window) < self.min_samples and self.warmup_ended_by_drift is None):
            return (*self.calibrated, "calibrated")
        t, q = tie_aware_thresholds(self.window.array(), [self.fraction])
        t, q = float(t[0]), float(q[0])
        if self._bounds is not None:
            (tl, ql), (th, qh) = self._bounds
            # routing grows with (t, q) in lexicographic order: clamp to [(tl, ql), (th, qh)]
            if (t, q) < (tl, ql):
                return tl, ql, "bounded"
            if (t, q) > (th, qh):
                return th, qh, "bounded"
        return t, q, "tracking"

    def decide(self, confidence: float, *, client=None, key=None, trusted: bool = True) -> Decision:
        """Route (True) or not one request with ``confidence``; then add it to the window.

        ``client`` and ``key`` (a prompt hash) feed the per-client share and the duplicate guard;
        ``trusted=False`` (a reply cut off by the budget) routes and keeps it out of the window, as NaN.
        """
        with self._lock:
            t, q, src = self._current()
            c = float(confidence) if confidence is not None else math.nan
            if math.isnan(c):
                return Decision(True, t, q, "unscored", 1.0)
            if not trusted:
                return Decision(True, t, q, "truncated", 1.0)
            p = 1.0 if c < t else (q if c == t else 0.0)
            routed = p >= 1.0 or (p > 0.0 and bool(self.rng.random() < p))
            if not math.isfinite(c):  # ±inf is decided (below or above every threshold) but kept out of the quantile
                pass
            elif self.dedupe and self.window.has(key):
                self.skipped["duplicate"] += 1
            else:
                if client is not None and self.client_cap is not None and self.window.count(client) >= self.client_cap:
                    self.skipped["client_share"] += (
                        1  # its newest confidence replaces its oldest: its share stays capped
                    )
                    self.window.drop_oldest_of(client)
                self.window.add(c, client, key)
                self._check_drift()
            return Decision(routed, t, q, src, p)


@dataclass(frozen=True)
class MonitorState:
    n: int  # decisions in the window
    realised_fraction: float  # NaN when empty
    w1: float  # NaN without a scored live confidence
    drifting: bool


class Monitor:
    """Realised LLM-call fraction, W1 to the hold-out confidences and drift over the last ``window`` decisions."""

    def __init__(
        self,
        target_fraction: float,
        holdout_confidence,
        *,
        window: int = 500,
        min_samples: int = 50,
        drift_margin: float = 0.1,
        name: str = "router",
    ):
        self.target, self.margin, self.min_samples, self.name = (
            float(target_fraction),
            float(drift_margin),
            int(min_samples),
            name,
        )
        self.reference = np.asarray(holdout_confidence, dtype=np.float64)
        if self.reference.size == 0:
            raise ValueError("the monitor needs the hold-out confidences")
        self.routed: deque[bool] = deque(maxlen=int(window))
        self.conf: deque[float] = deque(maxlen=int(window))
        self.drifting = False
        self._lock = threading.Lock()

    def record(self, confidence: float, routed: bool) -> MonitorState:
        with self._lock:
            self.routed.append(bool(routed))
            c = float(confidence) if confidence is not None else math.nan
            self.conf.append(c)
            st = self._state()
            if st.drifting and not self.drifting:
                log.warning(
                    "%s: realised LLM-call fraction %.3f over the last %d requests is farther than %.3f from the target "
                    "%.3f (W1 to the hold-out confidences %.4f)",
                    self.name,
                    st.realised_fraction,
                    st.n,
                    self.margin,
                    self.target,
                    st.w1,
                )
            elif self.drifting and not st.drifting:
                log.info(
                    "%s: realised LLM-call fraction %.3f is back within %.3f of the target %.3f",
                    self.name,
                    st.realised_fraction,
                    self.margin,
                    self.target,
                )
            self.drifting = st.drifting
            return st

    def state(self) -> MonitorState:
        with self._lock:
            return self._state()

    def _state(self) -> MonitorState:
        n = len(self.routed)
        frac = sum(self.routed) / n if n else math.nan
        live = np.asarray([c for c in self.conf if not math.isnan(c)], dtype=np.float64)
        from scipy.stats import wasserstein_distance  # deferred: the start-up checks import this package

        w1 = float(wasserstein_distance(live, self.reference)) if live.size else math.nan
        drifting = n >= self.min_samples and abs(frac - self.target) > self.margin
        return MonitorState(n, frac, w1, drifting)
