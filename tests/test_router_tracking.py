"""The tracking threshold cannot be steered by one client: the poisoning replay (one client sends
many confident requests to a fresh tracking router), per-client shares, duplicates, bounds; and the
warm-up chosen from the calibration's own uncertainty."""

from __future__ import annotations

import math

import numpy as np
import pytest

from uqroute.router.tracking import (
    QuantileThreshold,
    SortedWindow,
    fraction_sd,
    warmup_samples,
)
from uqroute.routing import tie_aware_thresholds

TARGET = 0.3


def _holdout(n=200, seed=0):
    return np.sort(np.random.default_rng(seed).beta(5, 3, n))


def _router_threshold(ref, **kw):
    t, q = tie_aware_thresholds(ref, [TARGET])
    opts = dict(
        mode="tracking",
        window=500,
        min_samples=warmup_samples(TARGET, ref.size, 0.1, 500),
        seed=0,
        client_share=0.1,
        dedupe=True,
        reference=ref,
        max_shift=0.2,
    )
    opts.update(kw)
    return QuantileThreshold(TARGET, float(t[0]), float(q[0]), **opts)


def _holdout_fraction(ref, t, q):
    """The LLM-call fraction a (t, q) gives on the hold-out confidences."""
    return float(np.mean(ref < t) + q * np.mean(ref == t))


def test_poisoning_replay_stays_inside_the_bounds():
    """The replayed attack: on a fresh tracking router, one client sends 50 identical confident requests, then
    varies them (distinct prompts) and rotates client ids; honest traffic is hold-out-like throughout."""
    ref = _holdout()
    rng = np.random.default_rng(1)
    unguarded = _router_threshold(ref, client_share=None, dedupe=False, max_shift=None)
    guarded = _router_threshold(ref)
    (tl, ql), (th, qh) = guarded.bounds()
    assert _holdout_fraction(ref, tl, ql) == pytest.approx(TARGET - 0.2, abs=0.01)
    assert _holdout_fraction(ref, th, qh) == pytest.approx(TARGET + 0.2, abs=0.01)
    seen = {"unguarded": [], "guarded": []}
    for _ in range(50):  # the poisoning script: one client, the same confident prompt
        for name, qt in (("unguarded", unguarded), ("guarded", guarded)):
            qt.decide(0.99, client="attacker", key="same prompt")
            seen[name].append(qt.current()[:2])
    # the unguarded tracker follows the attacker past the bounds (the attack is real) ...
    t_attacked = unguarded.current()[0]
    assert t_attacked > th and _holdout_fraction(ref, *unguarded.current()[:2]) > TARGET + 0.2
    # ... the guarded one kept the prompt once: still the calibrated threshold
    assert guarded.current()[2] == "calibrated" and len(guarded.window) == 1 and guarded.skipped["duplicate"] == 49
    # distinct confident prompts from one key, then from many anonymous clients, mixed with honest traffic
    sources = set()
    for i in range(2000):
        if i % 2:
            c, client, key = float(rng.beta(5, 3)), f"honest{i % 7}", f"h{i}"
        else:
            c, client, key = 0.99 if i < 1000 else 0.01, ("attacker" if i < 500 else None), f"a{i}"
        guarded.decide(c, client=client, key=key)
        t, q, src = guarded.current()
        assert (tl, ql) <= (t, q) <= (th, qh), (i, t, q)
        seen["guarded"].append((t, q))
        sources.add(src)
        if i == 499:  # one key holds at most 10 % of the window
            assert guarded.window.count("attacker") == 50
    fractions = [_holdout_fraction(ref, t, q) for t, q in seen["guarded"]]
    assert min(fractions) >= TARGET - 0.2 - 0.01 and max(fractions) <= TARGET + 0.2 + 0.01
    assert "bounded" in sources  # the attack pushed the live quantile to a bound, which held


def test_client_share_keeps_the_window_moving_and_duplicates_leave_with_their_entry():
    qt = QuantileThreshold(0.5, 0.0, 0.0, mode="tracking", window=10, min_samples=1, client_share=0.2, dedupe=True)
    for i in range(30):  # one client only: it keeps 2 entries, its newest ones
        qt.decide(float(i), client="a", key=f"k{i}")
    assert len(qt.window) == 2 and sorted(qt.window.sorted) == [28.0, 29.0]
    w = SortedWindow(2)
    w.add(1.0, "a", "p")
    assert w.has("p")
    w.add(2.0, "b", "q")
    w.add(3.0, "b", "r")  # "p" left the window: the same prompt may enter again
    assert not w.has("p") and w.count("a") == 0 and w.count("b") == 2
    # no client id (no keys, no header): the share guard does not apply
    qt = QuantileThreshold(0.5, 0.0, 0.0, mode="tracking", window=10, min_samples=1, client_share=0.1)
    for i in range(10):
        qt.decide(float(i))
    assert len(qt.window) == 10


def test_bounds_at_the_ends_and_constant_holdout():
    ref = np.full(20, 0.7)  # one value: every threshold is 0.7, only q moves
    qt = QuantileThreshold(0.3, 0.7, 0.3, mode="tracking", window=10, min_samples=2, reference=ref, max_shift=0.2)
    (tl, ql), (th, qh) = qt.bounds()
    assert (tl, th) == (0.7, 0.7) and ql == pytest.approx(0.1) and qh == pytest.approx(0.5)
    for _ in range(10):
        qt.decide(0.0)  # live traffic far below: the live quantile wants to route less
    assert qt.current() == (0.7, pytest.approx(0.1), "bounded")
    qt = QuantileThreshold(0.0, -math.inf, 0.0, mode="tracking", window=10, min_samples=2, reference=ref, max_shift=0.2)
    (tl, ql), _ = qt.bounds()
    assert tl == -math.inf
    with pytest.raises(ValueError, match="max_shift"):
        QuantileThreshold(0.3, 0.5, 0.0, max_shift=0.2)
    with pytest.raises(ValueError, match="client_share"):
        QuantileThreshold(0.3, 0.5, 0.0, client_share=0.0)


def test_truncated_and_unscored_replies_are_routed_and_kept_out():
    qt = QuantileThreshold(0.3, 0.5, 0.0, mode="tracking", window=10, min_samples=2)
    d = qt.decide(0.99, trusted=False)
    assert d.routed and d.source == "truncated" and len(qt.window) == 0
    assert qt.decide(float("nan")).source == "unscored" and len(qt.window) == 0


def test_warmup_from_the_holdout_size_and_margin():
    assert warmup_samples(0.3, 200, 0.1, 500) == 21  # ceil(0.21 / 0.01)
    assert warmup_samples(0.3, 10, 0.1, 500) == 10  # never more than the hold-out's own size
    assert warmup_samples(0.3, 200, 0.01, 50) == 50  # nor than the window
    assert warmup_samples(0.0, 200, 0.1, 500) == 1 and warmup_samples(1.0, 200, 0.1, 500) == 1  # r(1 − r) = 0
    assert warmup_samples(0.5, 1, 0.1, 500) == 1
    assert fraction_sd(0.3, 21) <= 0.1 < fraction_sd(0.3, 20)
    assert fraction_sd(0.3, 0) == math.inf
