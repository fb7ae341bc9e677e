"""Routing definitions on tiny hand-computed cases (docs/routing.md)."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from uqroute.routing import (
    ALIGNMENT_METRICS,
    DegeneratePoolWarning,
    OneClassWarning,
    ProxyPool,
    alignment,
    apgr,
    apgr_routellm,
    apply_thresholds,
    aurac,
    bin_allocation,
    bootstrap_auc_ci,
    cpt,
    cpt_routellm,
    expected_routed_sum,
    oracle_curve,
    prediction_rejection_area,
    proxy_thresholds,
    prr,
    prr_polygraph,
    random_curve,
    random_mc_curve,
    ratio_grid,
    relative_accuracy,
    rms,
    rms_realised,
    route_fraction,
    routed_counts,
    sample_proxy,
    tie_aware_thresholds,
    upper_curve,
    w1,
    weighted_auc,
)
from uqroute.routing.curves import random_permutations, restrict_permutations
from uqroute.routing.evaluation import PROXY_METRICS, ProxyEval
from uqroute.schema import ARTIFACTS

bits = st.lists(st.booleans(), min_size=1, max_size=40)


# ------------------------------------------------------------------ grid and counts
def test_ratio_grid_ends_at_one_and_rejects_uneven_steps():
    g = ratio_grid(0.25)
    assert g.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert ratio_grid(0.01).size == 101 and ratio_grid(0.01)[-1] == 1.0
    with pytest.raises(ValueError, match="1/ratio_step"):
        ratio_grid(0.03)


def test_routed_counts_round_before_ceiling():
    # 0.07 * 100 = 7.000000000000001 in floating point: must route 7, not 8
    assert routed_counts(np.array([0.07, 0.29, 0.5]), 100).tolist() == [7, 29, 50]
    assert routed_counts(np.array([0.25]), 10).tolist() == [3]  # ⌈2.5⌉


# ------------------------------------------------------------------ curves
def test_expected_routed_sum_averages_ties():
    conf = np.array([0.5, 0.1, 0.9, 0.5])
    vals = np.array([2.0, 1.0, 8.0, 4.0])
    # order: 1 (0.1) | {2, 4} tied at 0.5 | 8
    out = expected_routed_sum(conf, vals, np.array([0, 1, 2, 3, 4]))
    assert out.tolist() == [0.0, 1.0, 4.0, 7.0, 15.0]


def test_oracle_curve_hand_computed():
    conf = np.array([0.9, 0.1, 0.5, 0.3])
    s = np.array([1, 0, 1, 0])
    l = np.array([1, 1, 0, 1])
    # least confident first: q1 (gain +1), q3 (+1), q2 (−1), q0 (0); mean(s) = 0.5
    acc = oracle_curve(conf, s, l, ratio_grid(0.25))
    np.testing.assert_allclose(acc, [0.5, 0.75, 1.0, 0.75, 0.75])


def test_oracle_curve_several_llms_at_once():
    rng = np.random.default_rng(0)
    conf, s = rng.random(30), rng.random(30) < 0.5
    L = rng.random((30, 3)) < 0.8
    both = oracle_curve(conf, s, L, ratio_grid(0.1))
    for j in range(3):
        np.testing.assert_allclose(both[:, j], oracle_curve(conf, s, L[:, j], ratio_grid(0.1)))


def test_perfect_confidence_gives_the_upper_curve():
    s = np.array([1, 0, 0, 1, 1, 0, 1, 1])
    l = np.array([1, 1, 0, 1, 0, 1, 1, 1])
    grid = ratio_grid(0.125)
    np.testing.assert_allclose(oracle_curve(s.astype(float), s, l, grid), upper_curve(s, l, grid))
    # errors first: after routing the 3 errors (2 of which the LLM gets right) accuracy is 7/8
    assert upper_curve(s, l, grid)[3] == pytest.approx(7 / 8)


@settings(max_examples=25, deadline=None)
@given(bits, st.integers(0, 2**31 - 1))
def test_upper_curve_is_the_envelope_when_the_llm_is_always_right(s, seed):
    s = np.array(s, dtype=float)
    l = np.ones_like(s)
    conf = np.random.default_rng(seed).random(s.size)
    grid = ratio_grid(0.05)
    assert np.all(upper_curve(s, l, grid) >= oracle_curve(conf, s, l, grid) - 1e-12)


@settings(max_examples=25, deadline=None)
@given(bits, bits, st.sampled_from([0.01, 0.05, 0.1, 0.25]))
def test_constant_confidence_is_exactly_the_random_line(s, l, step):
    n = min(len(s), len(l))
    s, l = np.array(s[:n], float), np.array(l[:n], float)
    grid = ratio_grid(step)
    np.testing.assert_allclose(oracle_curve(np.full(n, 0.3), s, l, grid), random_curve(s, l, grid), atol=1e-12)


def test_random_curve_is_linear_when_r_n_is_integer():
    s, l = np.array([1, 0, 0, 0]), np.array([1, 1, 1, 0])
    np.testing.assert_allclose(random_curve(s, l, ratio_grid(0.25)), 0.25 + np.arange(5) / 4 * 0.5)


def test_random_mc_is_seeded_and_unbiased():
    rng = np.random.default_rng(1)
    s, l = rng.random(50) < 0.4, rng.random(50) < 0.8
    grid = ratio_grid(0.1)
    m1, sd1 = random_mc_curve(s, l, grid, 400, np.random.default_rng(7))
    m2, sd2 = random_mc_curve(s, l, grid, 400, np.random.default_rng(7))
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(sd1, sd2)
    assert sd1[0] == pytest.approx(0, abs=1e-12) and sd1[-1] == pytest.approx(0, abs=1e-12) and sd1[5] > 0.01
    assert np.all(np.abs(m1 - random_curve(s, l, grid)) <= 5 * sd1 / np.sqrt(400) + 1e-12)


def test_restricted_permutations_are_permutations_of_the_subset():
    perms = random_permutations(10, 5, np.random.default_rng(0))
    mask = np.array([1, 0, 1, 1, 0, 0, 1, 0, 1, 1], bool)
    sub = restrict_permutations(perms, mask)
    assert sub.shape == (5, 6)
    assert all(sorted(row) == list(range(6)) for row in sub.tolist())


def test_relative_accuracy_hand_computed():
    conf = np.array([0.1, 0.2, 0.3, 0.4])
    s = np.array([0, 0, 1, 1])
    l = np.array([1, 1, 1, 0])
    kept, sa, la = relative_accuracy(conf, s, l, np.array([0.0, 0.5, 0.75]))
    assert kept.tolist() == [4, 2, 1]
    np.testing.assert_allclose(sa, [0.5, 1.0, 1.0])
    np.testing.assert_allclose(la, [0.75, 0.5, 0.0])
    with pytest.raises(ValueError):
        relative_accuracy(conf, s, l, np.array([1.0]))


# ------------------------------------------------------------------ alignment
@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.booleans()), min_size=2, max_size=40))
def test_mann_whitney_auc_equals_sklearn_with_ties(rows):
    conf = np.array([c for c, _ in rows], float) / 4
    s = np.array([b for _, b in rows])
    if s.all() or not s.any():
        assert np.isnan(weighted_auc(conf, s, np.ones((1, s.size)))[0])
        return
    assert weighted_auc(conf, s, np.ones((1, s.size)))[0] == pytest.approx(roc_auc_score(s, conf))


def test_weighted_auc_equals_auc_of_the_resample():
    rng = np.random.default_rng(3)
    conf, s = rng.integers(0, 5, 30) / 4, rng.random(30) < 0.5
    idx = rng.integers(0, 30, 30)
    w = np.bincount(idx, minlength=30)[None, :]
    assert weighted_auc(conf, s, w)[0] == pytest.approx(roc_auc_score(s[idx], conf[idx]))


def test_one_class_auc_is_nan_with_a_warning():
    with pytest.warns(OneClassWarning, match="single class"):
        row = alignment(
            np.array([0.1, 0.5, 0.9]), np.array([1, 1, 1]), bootstrap=50, rng=np.random.default_rng(0), where="x/y/z"
        )
    assert np.isnan(row["roc_auc"]) and np.isnan(row["roc_auc_lo"]) and np.isnan(row["prr"])
    assert row["n"] == 3 and row["slm_accuracy"] == 1.0


def test_bootstrap_ci_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(5)
    s = rng.random(200) < 0.5
    conf = s + rng.normal(0, 1, 200)
    a = bootstrap_auc_ci(conf, s, 300, np.random.default_rng(1))
    assert a == bootstrap_auc_ci(conf, s, 300, np.random.default_rng(1))
    assert a[0] < roc_auc_score(s, conf) < a[1] and a[1] - a[0] < 0.2


def test_prr_and_aurac():
    s = np.array([0, 1])
    assert aurac(np.array([0.2, 0.8]), s) == pytest.approx(0.875)
    rng = np.random.default_rng(2)
    s = rng.random(100) < 0.6
    assert prr(s.astype(float), s) == pytest.approx(1.0)
    assert prr(np.full(100, 0.5), s) == pytest.approx(0.0, abs=1e-12)
    assert prr(-s.astype(float), s) < -0.9
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(prr(np.arange(3.0), np.ones(3)))


def _polygraph_prr(estimator, target, seed=42, num_iter=1000):
    """LM-Polygraph's computation, transcribed from lm_polygraph/ue_metrics/pred_rej_area.py and
    ue_metric.py (IINemo/lm-polygraph @ efea882): estimator = uncertainty (higher = less certain)."""

    def pra(ue, t):
        t = np.asarray(t, float)
        n = len(ue)
        sorted_metrics = t[np.argsort(ue)]
        cumsum = np.cumsum(sorted_metrics)[-n:]
        scores = (cumsum / np.arange(1, n + 1))[::-1]
        return np.sum(scores) / n

    np.random.seed(seed)
    rand = np.arange(len(target))
    values = []
    for _ in range(num_iter):
        np.random.shuffle(rand)
        values.append(pra(rand, target))
    oracle, random_ = pra(-np.asarray(target, float), target), np.mean(values)
    return pra(estimator, target), (pra(estimator, target) - random_) / (oracle - random_)


def test_prr_polygraph_matches_lm_polygraph_without_ties():
    rng = np.random.default_rng(12)
    s = (rng.random(300) < 0.6).astype(float)
    conf = s + rng.normal(0, 1.2, 300)  # distinct values
    raw, normalised = _polygraph_prr(-conf, s)
    assert prediction_rejection_area(conf, s) == pytest.approx(raw, abs=1e-12)
    assert prr_polygraph(conf, s) == pytest.approx(normalised, abs=0.02)  # Polygraph's random baseline is Monte-Carlo
    assert prr_polygraph(s + 0.0, s) == pytest.approx(1.0)
    assert abs(prr_polygraph(conf, s) - prr(conf, s)) > 1e-3  # a different definition, not a relabelling


def test_prr_polygraph_degenerate_inputs():
    assert np.isnan(prr_polygraph(np.arange(4.0), np.ones(4)))
    assert prr_polygraph(np.full(50, 0.5), (np.arange(50) % 3 == 0).astype(float)) == pytest.approx(
        0.0, abs=1e-12
    )  # constant = random


def test_every_alignment_metric_is_an_auc_column():
    cols = ARTIFACTS["auc"].names
    assert set(ALIGNMENT_METRICS) <= set(cols)
    row = alignment(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]), bootstrap=0, where="t")
    assert set(row) | {"slm", "dataset", "method", "label"} == set(cols)


# ------------------------------------------------------------------ proxy routing data
def test_bin_allocation_is_proportional_largest_remainder():
    alloc = bin_allocation(np.array([10, 25, 0, 7, 58]), 0.1)
    assert alloc.sum() == 10  # round(0.1 · 100)
    # quotas 1, 2.5, 0, 0.7, 5.8 → floors 1, 2, 0, 0, 5 (8); the 2 left go to the largest remainders .8, .7
    assert alloc.tolist() == [1, 2, 0, 1, 6]


def test_bin_allocation_edge_cases():
    assert bin_allocation(np.array([3, 0, 0]), 0.01).tolist() == [1, 0, 0]  # at least one query
    assert bin_allocation(np.array([4, 6]), 1.0).tolist() == [4, 6]
    assert bin_allocation(np.array([0, 0]), 0.5).tolist() == [0, 0]


def test_sample_proxy_draws_k_percent_of_each_bin_and_is_seeded():
    rng = np.random.default_rng(0)
    pool = np.concatenate([rng.uniform(0, 0.1, 300), rng.uniform(0.9, 1.0, 100)])
    a = sample_proxy(pool, 10, 0.1, 50)
    assert a.size == 40 and np.all(np.diff(a) >= 0)
    assert (a < 0.5).sum() == 30 and (a > 0.5).sum() == 10
    assert set(a) <= set(pool)
    np.testing.assert_array_equal(a, sample_proxy(pool, 10, 0.1, 50))
    assert not np.array_equal(a, sample_proxy(pool, 10, 0.1, 51))
    p = ProxyPool(pool, 10)
    assert set(p.sample(0.05, 50)) <= set(p.sample(0.1, 50))  # one random order per seed, shared by every k
    mixed = random_mc_curve(np.array([0.5, 1.0]), np.array([1.0, 0.0]), ratio_grid(0.5), 3, np.random.default_rng(0))[0]
    assert mixed[0] == pytest.approx(0.75) and mixed[-1] == pytest.approx(0.5)  # non-binary labels use float sums


def test_proxy_thresholds_equal_numpy_quantile():
    x = np.sort(np.random.default_rng(4).random(37))
    grid = ratio_grid(0.01)
    np.testing.assert_allclose(proxy_thresholds(x, grid), np.quantile(x, grid))


def test_apply_thresholds_and_budget_error_hand_computed():
    conf = np.array([0.1, 0.2, 0.3, 0.4])
    gain = np.array([1, 0, 1, -1])
    realised, acc = apply_thresholds(conf, np.concatenate([[0], np.cumsum(gain)]), 0.5, np.array([0.15, 0.35, 0.45]))
    np.testing.assert_allclose(realised, [0.25, 0.75, 1.0])
    np.testing.assert_allclose(acc, [0.75, 1.0, 0.75])
    # the library's budget_error (not a copy of it): mean |realised - r| = (0.25 + 0.25 + 0) / 3
    grid = np.array([0, 0.5, 1])
    ev = ProxyEval(grid=grid, realised=realised, accuracy=acc, oracle=np.zeros(3))
    assert PROXY_METRICS["budget_error"](ev) == pytest.approx(1 / 6)  # n - 1 in the denominator or the max give 1/4


@pytest.mark.parametrize(
    "ratios, match",
    [
        ([0.5, 1.5], r"ratios must lie in \[0, 1\], got \[1.5\]"),
        ([-0.25, 0.5], r"ratios must lie in \[0, 1\], got \[-0.25\]"),
    ],
)
def test_tie_aware_thresholds_refuses_ratios_outside_0_1(ratios, match):
    with pytest.raises(ValueError, match=rf"tie_aware_thresholds: {match}"):
        tie_aware_thresholds(np.array([0.2, 0.4, 0.6]), np.array(ratios))
    with pytest.raises(ValueError, match=r"^tie_aware_thresholds: empty sample$"):
        tie_aware_thresholds(np.array([]), np.array([0.5]))
    t, q = tie_aware_thresholds(np.array([0.2, 0.4, 0.6]), np.array([0.0, 1.0]))  # the ends themselves are fine
    assert t.tolist() == [-np.inf, np.inf] and q.tolist() == [0.0, 0.0]
    t, q = tie_aware_thresholds(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.6]))  # t = 0.28 lies between samples
    assert t[0] == pytest.approx(0.28) and q[0] == 0.0  # no sample equals t: q is 0, not r n - below = 0.4


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_tie_aware_thresholds_refuses_a_non_finite_sample(bad):
    """NaN sorts last and ±inf turns the interpolation into inf - inf: either would give a NaN threshold."""
    sample = np.array([0.2, 0.4, bad, 0.6, 0.8])
    with pytest.raises(
        ValueError,
        match=r"tie_aware_thresholds: the sample holds 1 non-finite confidence\(s\) \((nan|inf|-inf)\) among 5; drop",
    ):
        tie_aware_thresholds(sample, ratio_grid(0.25))
    t, q = tie_aware_thresholds(np.array([0.2, 0.4, 0.6, 0.8]), ratio_grid(0.25))  # the finite rest is fine
    assert not np.isnan(t).any() and not np.isnan(q).any()


def test_tie_aware_q_stays_in_0_1_on_a_pool_a_few_ulps_wide():
    """Three consecutive doubles: the interpolated quantile rounds onto a neighbour, so the unclipped
    q = (r n - below) / tied reaches -0.25 and 1.25. q is a probability: clipped to [0, 1], and the
    expected routed fraction is then the achievable fraction nearest r."""
    v = 0.8631789223498866
    x = np.array([v, np.nextafter(v, 1), np.nextafter(np.nextafter(v, 1), 1)])
    grid = ratio_grid(0.05)
    t, q = tie_aware_thresholds(x, grid)
    assert ((q >= 0) & (q <= 1)).all(), q
    routed = np.array([route_fraction(x, ti, qi).mean() for ti, qi in zip(t, q)])
    assert (np.abs(routed - grid) <= 1 / 3 + 1e-12).all()
    for v in (0.39161900052816123, 1e-300, 1.0 - 2**-52):  # other starting points, other roundings
        pool = np.sort(np.array([v, np.nextafter(v, 2), np.nextafter(v, 2), np.nextafter(np.nextafter(v, 2), 2), v]))
        q = tie_aware_thresholds(pool, grid)[1]
        assert ((q >= 0) & (q <= 1)).all(), (v, q)


def _self_proxy(conf, s, l, grid, *, tie_aware=True):
    """Proxy data = the target itself with k = 1: (realised, proxy accuracy, oracle accuracy)."""
    order = np.argsort(conf, kind="stable")
    cum = np.concatenate([[0], np.cumsum((l - s)[order])])
    sample = sample_proxy(conf, 30, 1.0, 50)
    if tie_aware:
        t, q = tie_aware_thresholds(sample, grid)
        realised, acc = apply_thresholds(conf[order], cum, s.mean(), t, q)
    else:  # the old rule: route c < quantile only
        realised, acc = apply_thresholds(conf[order], cum, s.mean(), proxy_thresholds(sample, grid))
    return realised, acc, oracle_curve(conf, s, l, grid)


def test_proxy_from_the_target_itself_has_rms_about_zero():
    rng = np.random.default_rng(9)
    n = 500
    conf = rng.random(n)
    s, l = (rng.random(n) < conf).astype(float), (rng.random(n) < 0.9).astype(float)
    grid = ratio_grid(0.01)
    realised, acc, orc = _self_proxy(conf, s, l, grid)
    assert rms(acc, orc) <= 1 / n + 1e-12
    assert np.mean(np.abs(realised - grid)) <= 1 / n + 1e-12


# The reproduction: n = 200, accuracy 0.5 for the SLM and 0.75 for the LLM (mean gain 0.25).
_N = 200
_S = (np.arange(_N) % 2 == 0).astype(float)
_L = (np.arange(_N) % 4 != 3).astype(float)
_TIED = {
    "constant": np.full(_N, 0.5),
    "3-valued": np.random.default_rng(1).choice([0.2, 0.5, 0.9], _N, p=[0.27, 0.48, 0.25]),
    "rounded to 0.1": np.round(np.random.default_rng(2).random(_N), 1),
    "verbalized 90/100": np.random.default_rng(3).choice([0.8, 0.9, 1.0], _N, p=[0.1, 0.5, 0.4]),
}


@pytest.mark.parametrize("kind", sorted(_TIED))
def test_self_proxy_delivers_the_budget_with_tied_confidences(kind):
    """With ties the old strict threshold routed 0 / 0.27 / 0.75 … (RMS 0.145 for a
    constant confidence); tie-aware thresholds route r, and the self-proxy lies on the oracle curve."""
    conf, grid = _TIED[kind], ratio_grid(0.01)
    realised, acc, orc = _self_proxy(conf, _S, _L, grid)
    assert np.max(np.abs(realised - grid)) <= 1 / _N + 1e-12
    assert rms(acc, orc) <= 1 / _N + 1e-12
    assert realised[-1] == 1.0 and realised[0] == 0.0


def test_the_constant_confidence_reproduction_numbers():
    """Before: routed fraction 0 at every r and RMS 0.145; after: routed fraction r and RMS 0."""
    grid = ratio_grid(0.01)
    realised_old, acc_old, orc = _self_proxy(_TIED["constant"], _S, _L, grid, tie_aware=False)
    assert np.all(realised_old == 0) and rms(acc_old, orc) == pytest.approx(0.1447, abs=5e-4)
    realised, acc, orc = _self_proxy(_TIED["constant"], _S, _L, grid)
    np.testing.assert_allclose(realised, grid, atol=1e-12)
    assert rms(acc, orc) <= 1e-12


def test_tie_aware_thresholds_equal_the_old_ones_for_distinct_confidences():
    """Continuous confidences: the same thresholds and numbers as the strict quantile rule at every 0 < r < 1."""
    rng = np.random.default_rng(11)
    sample, target = rng.random(57), rng.random(300)
    s, l = (rng.random(300) < 0.5).astype(float), (rng.random(300) < 0.8).astype(float)
    grid = ratio_grid(0.01)
    t, q = tie_aware_thresholds(sample, grid)
    inner = (grid > 0) & (grid < 1)
    np.testing.assert_array_equal(t[inner], proxy_thresholds(sample, grid)[inner])
    np.testing.assert_allclose(t[inner], np.quantile(sample, grid)[inner], rtol=1e-14)
    order = np.argsort(target)
    cum = np.concatenate([[0], np.cumsum((l - s)[order])])
    new = apply_thresholds(target[order], cum, s.mean(), t, q)
    old = apply_thresholds(target[order], cum, s.mean(), proxy_thresholds(sample, grid))
    for a, b in zip(new, old):
        np.testing.assert_allclose(a[inner], b[inner], atol=0)
    assert t[0] == -np.inf and t[-1] == np.inf and new[0][0] == 0 and new[0][-1] == 1


def test_tie_aware_thresholds_hand_computed():
    sample = np.array([0.1, 0.5, 0.5, 0.5, 0.9])
    t, q = tie_aware_thresholds(sample, np.array([0.0, 0.2, 0.3, 0.5, 0.8, 1.0]))
    # r = 0.5: t = median = 0.5, P(c < t) = 0.2, P(c = t) = 0.6 → q = (0.5 − 0.2)/0.6 = 0.5
    assert t[3] == 0.5 and q[3] == pytest.approx(0.5)
    # r = 0.2: linear quantile at position 0.8 lies strictly between 0.1 and 0.5 → q = 0, routes the 0.1 only
    assert 0.1 < t[1] < 0.5 and q[1] == 0
    # every ratio is delivered on the sample itself
    for ti, qi, r in zip(t, q, [0.0, 0.2, 0.3, 0.5, 0.8, 1.0]):
        assert route_fraction(sample, ti, qi).mean() == pytest.approx(r)
    with pytest.raises(ValueError, match="empty sample"):
        tie_aware_thresholds(np.array([]), np.array([0.5]))


def test_route_fraction():
    c = np.array([0.1, 0.5, 0.5, 0.9])
    np.testing.assert_allclose(route_fraction(c, 0.5, 0.25), [1, 0.25, 0.25, 0])
    np.testing.assert_allclose(route_fraction(c, np.inf, 0.0), [1, 1, 1, 1])
    np.testing.assert_allclose(route_fraction(c, -np.inf, 0.0), [0, 0, 0, 0])


def test_apply_thresholds_tied_fraction_is_the_tie_averaged_oracle():
    conf = np.array([0.1, 0.5, 0.5, 0.5, 0.9])
    s, l = np.array([0, 1, 0, 0, 1.0]), np.array([1, 1, 1, 0, 1.0])
    cum = np.concatenate([[0], np.cumsum(l - s)])
    realised, acc = apply_thresholds(conf, cum, s.mean(), np.array([0.5]), np.array([2 / 3]))
    assert realised[0] == pytest.approx(3 / 5)  # 1 below + 2/3 of the 3 tied
    # oracle at 3 queries: the 0.1 query (+1) and 2 of the 3 tied (gains 0, +1, 0; mean 1/3 each)
    assert acc[0] == pytest.approx(s.mean() + (1 + 2 * (1 / 3)) / 5)
    assert acc[0] == pytest.approx(oracle_curve(conf, s, l, np.array([0.6]))[0])


def test_rms_realised_is_zero_when_the_proxy_points_cover_the_grid():
    rng = np.random.default_rng(4)
    conf = rng.random(400)
    s, l = (rng.random(400) < 0.5).astype(float), np.ones(400)
    grid = ratio_grid(0.01)
    realised, acc, orc = _self_proxy(conf, s, l, grid)
    assert rms_realised(realised, acc, grid, orc) <= 1 / 400
    # a proxy that routes everything at r ≥ 0.5 and nothing below: its points skip the middle
    t = np.where(grid < 0.5, -np.inf, np.inf)
    order = np.argsort(conf)
    cum = np.concatenate([[0], np.cumsum((l - s)[order])])
    r2, a2 = apply_thresholds(conf[order], cum, s.mean(), t, np.zeros_like(grid))
    assert rms_realised(r2, a2, grid, orc) > rms_realised(realised, acc, grid, orc)
    assert rms(a2, orc) > rms_realised(r2, a2, grid, orc)  # the requested-ratio reading sees the budget miss


# ------------------------------------------------------------------ degenerate proxy pools
@pytest.mark.parametrize(
    "pool, note",
    [
        (np.full(12, 0.7), "single value"),
        (
            np.array([0.1, np.nextafter(0.1, 1), np.nextafter(np.nextafter(0.1, 1), 1)] * 4),
            "too small for 30 finite bins",
        ),
        (np.linspace(3.0, 9.0, 7), "7 rows for 30 bins"),
    ],
)
def test_degenerate_pools_give_a_defined_sample_and_a_warning(pool, note):
    with pytest.warns(DegeneratePoolWarning, match=note):
        p = ProxyPool(pool, 30)
    assert p.note and note in p.note
    for k in (0.01, 0.5, 1.0):
        idx = p.sample_index(k, 50)
        assert idx.size == bin_allocation(p.counts, k).sum() >= 1
        assert np.unique(idx).size == idx.size
        t, q = tie_aware_thresholds(pool[idx], ratio_grid(0.1))
        assert np.all((q >= 0) & (q <= 1)) and np.all(np.isfinite(t[1:-1]))


def test_proxy_sample_is_without_replacement_and_bins_follow_the_pool_range():
    """Draws without replacement; the pool's range is not [0, 1], so the data-derived bin
    edges (numpy over [min, max]) differ from fixed [0, 1] edges and decide the allocation."""
    rng = np.random.default_rng(7)
    pool = np.concatenate([rng.uniform(2.0, 2.5, 300), rng.uniform(6.0, 7.0, 100), rng.uniform(7.9, 8.0, 50)])
    pool = np.round(pool, 2)  # ties: identical values must still be drawn at most once each
    p = ProxyPool(pool, 10)
    edges = np.histogram_bin_edges(pool, bins=10)
    assert edges[0] == pool.min() and edges[-1] == pool.max()
    np.testing.assert_array_equal(p.counts, np.histogram(pool, bins=10)[0])
    assert not np.array_equal(p.counts, np.histogram(pool, bins=10, range=(0, 1))[0])
    for k in (0.05, 0.1, 0.3, 1.0):
        idx = p.sample_index(k, 51)
        assert np.unique(idx).size == idx.size  # no row twice
        drawn = np.histogram(pool[idx], bins=edges)[0]
        np.testing.assert_array_equal(drawn, bin_allocation(p.counts, k))
    np.testing.assert_array_equal(np.sort(p.sample_index(1.0, 51)), np.arange(pool.size))


def test_rms_and_w1_on_known_values():
    assert rms(np.array([0.1, 0.2]), np.array([0.1, 0.2])) == 0
    assert rms(np.array([0.0, 0.0]), np.array([0.3, 0.4])) == pytest.approx(np.sqrt((0.09 + 0.16) / 2))
    assert w1(np.array([0.0, 1.0]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    x = np.random.default_rng(0).random(100)
    assert w1(x, x + 0.3) == pytest.approx(0.3)


# ------------------------------------------------------------------ RouteLLM summaries
def test_apgr_and_cpt_on_a_hand_made_curve():
    grid = np.array([0, 1 / 3, 2 / 3, 1])
    curve = np.array([0.5, 0.7, 0.8, 0.9])  # PGR 0, .5, .75, 1
    assert apgr(curve) == pytest.approx(0.5625)
    assert cpt(curve, grid, 0.5) == pytest.approx(1 / 3)
    assert cpt(curve, grid, 0.8) == pytest.approx(1.0)
    flat = np.array([0.6, 0.7, 0.6, 0.6])
    assert apgr(flat) is None and cpt(flat, grid, 0.5) is None


# ------------------------------------------------------------------ RouteLLM's own APGR and CPT (routellm/evals/evaluate.py)
def test_apgr_routellm_is_the_trapezoid_over_realised_calls():
    grid = np.array([0, 1 / 3, 2 / 3, 1])
    curve = np.array([0.5, 0.7, 0.8, 0.9])  # PGR 0, .5, .75, 1
    # trapezoid of PGR over [0, 1/3, 2/3, 1]: (0 + .5)/2/3 + (.5 + .75)/2/3 + (.75 + 1)/2/3 = 3.5/6
    assert apgr_routellm(curve, grid) == pytest.approx(3.5 / 6)
    assert apgr(curve) == pytest.approx(0.5625)  # ours: the plain mean over the grid points
    # realised fractions are what RouteLLM integrates over: n = 4 queries, r = 0, .3, .6, 1 route 0, 2, 3, 4
    realised = np.array([0, 0.5, 0.75, 1.0])
    # PGR 0, .5, .75, 1 at 0, .5, .75, 1: .5·(0+.5)/2 + .25·(.5+.75)/2 + .25·(.75+1)/2 = .125 + .15625 + .21875
    assert apgr_routellm(curve, realised) == pytest.approx(0.5)
    # RouteLLM's normalisation by the weak/strong areas over the realised span, not [0, 1]
    assert apgr_routellm(np.array([0.5, 0.7, 0.9]), np.array([0.2, 0.4, 0.6])) == pytest.approx(0.5)


def test_cpt_routellm_interpolates_and_cpt_takes_the_first_grid_crossing():
    grid = np.array([0, 1 / 3, 2 / 3, 1])
    curve = np.array([0.5, 0.7, 0.8, 0.9])  # PGR 0, .5, .75, 1
    assert cpt_routellm(curve, grid, 0.5) == pytest.approx(1 / 3)  # a point exactly at the target
    # 80%: target 0.82 lies between 0.8 (2/3) and 0.9 (1): 2/3 + (0.02/0.1)/3
    assert cpt_routellm(curve, grid, 0.8) == pytest.approx(2 / 3 + 0.2 / 3)
    assert cpt(curve, grid, 0.8) == pytest.approx(1.0)  # ours: the grid point, not interpolated
    assert cpt_routellm(curve, grid, 0.2) == pytest.approx(0.4 / 3)  # 0.58 on the first segment


def test_routellm_variants_on_a_non_monotone_curve():
    """An overshooting curve: PGR 0, 1.5, 0.5, 1. RouteLLM's numpy.interp reads the first segment
    whose accuracies bracket the target (for ≤ 4 points numpy scans from the left), ours the first
    grid point at or above the level."""
    grid = np.array([0, 1 / 3, 2 / 3, 1])
    curve = np.array([0.2, 0.8, 0.4, 0.6])
    # target 0.4 on the segment 0.2 → 0.8 over calls 0 → 1/3: a third of the way
    assert cpt_routellm(curve, grid, 0.5) == pytest.approx(1 / 9)
    assert cpt(curve, grid, 0.5) == pytest.approx(1 / 3)
    # trapezoid of PGR (0, 1.5, .5, 1) over thirds: (.75 + 1 + .75)/3
    assert apgr_routellm(curve, grid) == pytest.approx(2.5 / 3)
    assert apgr(curve) == pytest.approx(3.0 / 4)


def test_routellm_variants_degenerate_inputs():
    grid = np.array([0, 0.5, 1])
    flat = np.array([0.6, 0.7, 0.6])
    assert apgr_routellm(flat, grid) is None and cpt_routellm(flat, grid, 0.5) is None
    # a target beyond every accuracy is clamped to the last point's calls (numpy.interp)
    assert cpt_routellm(np.array([0.5, 0.4, 0.7]), grid, 1.0) == pytest.approx(1.0)
    # points listed out of call order are sorted by calls first, as RouteLLM sorts by strong_percentage
    assert apgr_routellm(np.array([0.5, 0.9, 0.7]), np.array([0, 1, 0.5])) == pytest.approx(0.5)
    assert cpt_routellm(np.array([0.5, 0.9, 0.7]), np.array([0, 1, 0.5]), 0.25) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="realised"):
        apgr_routellm(np.array([0.5, 0.9]), np.array([0.0, 0.5, 1.0]))


def test_prediction_rejection_area_of_one_class_is_lm_polygraphs_half():
    """LM-Polygraph's normalize() maps one-class targets to 0.5, so its area is 0.5 for either class."""
    for s in (np.ones(5), np.zeros(5)):
        assert prediction_rejection_area(np.arange(5.0), s) == pytest.approx(0.5)
    assert np.isnan(prediction_rejection_area(np.array([]), np.array([])))
    assert np.isnan(prr_polygraph(np.arange(5.0), np.ones(5)))  # the normalised ratio stays undefined
