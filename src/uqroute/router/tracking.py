"""The served threshold and the live monitor of a router.

:class:`QuantileThreshold` decides each request. In ``fixed`` mode it applies the calibrated
tie-aware threshold (t, q) throughout. In ``tracking`` mode it applies the calibrated one until
``min_samples`` live confidences have been seen, and then the tie-aware ``fraction``-quantile of
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

__all__ = ["Decision", "QuantileThreshold", "Monitor", "MonitorState", "SortedWindow"]


class SortedWindow:
    """The last ``size`` values, kept in arrival order and in sorted order (O(size) per update)."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"window size must be ≥ 1, got {size}")
        self.size = int(size)
        self.fifo: deque[float] = deque()
        self.sorted: list[float] = []

    def __len__(self) -> int:
        return len(self.fifo)

    def add(self, x: float) -> None:
        x = float(x)
        self.fifo.append(x)
        bisect.insort(self.sorted, x)
        if len(self.fifo) > self.size:
            old = self.fifo.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, old)]

    def array(self) -> np.ndarray:
        return np.asarray(self.sorted, dtype=np.float64)


@dataclass(frozen=True)
class Decision:
    """One routing decision: whether the request goes to the LLM, at which (threshold, q), from where."""

    routed: bool
    threshold: float
    q: float
    source: str  # "calibrated" | "tracking" | "unscored"
    p_route: float  # the probability of routing this confidence had: 1, q or 0


class QuantileThreshold:
    """Decide requests at a fixed or tracking threshold (see the module docstring). Thread-safe."""

    def __init__(self, fraction: float, threshold: float, q: float, *, mode: str = "tracking", window: int = 500,
                 min_samples: int = 50, seed: int = 0):
        if mode not in ("fixed", "tracking"):
            raise ValueError(f"mode must be 'fixed' or 'tracking', got {mode!r}")
        if not 0 <= fraction <= 1:
            raise ValueError(f"the LLM-call fraction must lie in [0, 1], got {fraction!r}")
        if min_samples < 1 or min_samples > window:
            raise ValueError(f"min_samples must lie in [1, window={window}], got {min_samples}")
        self.fraction, self.mode, self.min_samples = float(fraction), mode, int(min_samples)
        self.calibrated = (float(threshold), float(q))
        self.window = SortedWindow(window)
        self.rng = np.random.default_rng(int(seed))
        self._lock = threading.Lock()

    def current(self) -> tuple[float, float, str]:
        """The (threshold, q) the next request is decided with, and where it comes from."""
        with self._lock:
            return self._current()

    def _current(self) -> tuple[float, float, str]:
        if self.mode == "fixed" or len(self.window) < self.min_samples:
            return (*self.calibrated, "calibrated")
        t, q = tie_aware_thresholds(self.window.array(), [self.fraction])
        return float(t[0]), float(q[0]), "tracking"

    def decide(self, confidence: float) -> Decision:
        """Route (True) or not one request with ``confidence``; then add it to the window."""
        with self._lock:
            t, q, src = self._current()
            c = float(confidence) if confidence is not None else math.nan
            if math.isnan(c):
                return Decision(True, t, q, "unscored", 1.0)
            p = 1.0 if c < t else (q if c == t else 0.0)
            routed = p >= 1.0 or (p > 0.0 and bool(self.rng.random() < p))
            if math.isfinite(c):  # ±inf is decided (below or above every threshold) but kept out of the quantile
                self.window.add(c)
            return Decision(routed, t, q, src, p)


@dataclass(frozen=True)
class MonitorState:
    n: int  # decisions in the window
    realised_fraction: float  # NaN when empty
    w1: float  # NaN without a scored live confidence
    drifting: bool


class Monitor:
    """Realised LLM-call fraction, W1 to the hold-out confidences and drift over the last ``window`` decisions."""

    def __init__(self, target_fraction: float, holdout_confidence, *, window: int = 500, min_samples: int = 50,
                 drift_margin: float = 0.1, name: str = "router"):
        self.target, self.margin, self.min_samples, self.name = float(target_fraction), float(drift_margin), int(min_samples), name
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
                log.warning("%s: realised LLM-call fraction %.3f over the last %d requests is farther than %.3f from the target "
                            "%.3f (W1 to the hold-out confidences %.4f)", self.name, st.realised_fraction, st.n, self.margin,
                            self.target, st.w1)
            elif self.drifting and not st.drifting:
                log.info("%s: realised LLM-call fraction %.3f is back within %.3f of the target %.3f", self.name,
                         st.realised_fraction, self.margin, self.target)
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
