"""Routing definitions on tiny hand-computed cases (docs/routing.md)."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from uqroute.routing import (
    OneClassWarning,
    alignment,
    apgr,
    apply_thresholds,
    aurac,
    bin_allocation,
    bootstrap_auc_ci,
    cpt,
    expected_routed_sum,
    oracle_curve,
    proxy_thresholds,
    prr,
    random_curve,
    random_mc_curve,
    ratio_grid,
    relative_accuracy,
    rms,
    routed_counts,
    sample_proxy,
    source_datasets,
    upper_curve,
    w1,
    weighted_auc,
)
from uqroute.routing.curves import random_permutations, restrict_permutations
from uqroute.routing.proxy import ProxyPool

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
        row = alignment(np.array([0.1, 0.5, 0.9]), np.array([1, 1, 1]), bootstrap=50, rng=np.random.default_rng(0), where="x/y/z")
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


# ------------------------------------------------------------------ proxy routing data
def test_source_datasets_per_setting():
    ds = ["gsm8k", "svamp", "boolq", "coqa"]
    dom = {"gsm8k": "math", "svamp": "math", "boolq": "commonsense", "coqa": "conversational"}
    assert source_datasets("gsm8k", ds, dom, "partial_in_domain") == ["svamp", "boolq", "coqa"]
    assert source_datasets("gsm8k", ds, dom, "out_of_domain") == ["boolq", "coqa"]
    assert source_datasets("boolq", ["boolq", "piqa"], {"boolq": "c", "piqa": "c"}, "out_of_domain") == []
    with pytest.raises(ValueError, match="unknown proxy setting"):
        source_datasets("gsm8k", ds, dom, "in_domain")


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
    assert np.mean(np.abs(realised - np.array([0, 0.5, 1]))) == pytest.approx(1 / 6)


def test_proxy_from_the_target_itself_has_rms_about_zero():
    rng = np.random.default_rng(9)
    n = 500
    conf = rng.random(n)
    s, l = (rng.random(n) < conf).astype(float), (rng.random(n) < 0.9).astype(float)
    grid = ratio_grid(0.01)
    order = np.argsort(conf)
    cum = np.concatenate([[0], np.cumsum((l - s)[order])])
    thr = proxy_thresholds(sample_proxy(conf, 30, 1.0, 50), grid)
    realised, acc = apply_thresholds(conf[order], cum, s.mean(), thr)
    assert rms(acc, oracle_curve(conf, s, l, grid)) <= 1 / n + 1e-12
    assert np.mean(np.abs(realised - grid)) <= 1 / n + 1e-12


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
