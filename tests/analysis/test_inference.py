"""Each statistic of analysis/inference.py against scipy or a brute-force / hand computation."""
import numpy as np
import pytest
from scipy import stats

from transferability.analysis.inference import (
    HELD,
    NOT_HELD,
    UNTESTABLE,
    bh_q,
    crossed_bootstrap,
    crossed_weights,
    dominant_spread,
    judge,
    loo_influence,
    partial_corr,
    split_half_ceiling,
)


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    x = z + rng.normal(size=n)
    y = 0.5 * x + z + rng.normal(size=n)
    return x, y, z


def test_partial_corr_equals_correlation_of_regression_residuals_and_the_ols_t_test():
    x, y, z = _data()
    got = partial_corr(x, y, z)
    Z = np.column_stack([np.ones_like(z), z])
    res = lambda v: v - Z @ np.linalg.lstsq(Z, v, rcond=None)[0]
    assert got["r"] == pytest.approx(stats.pearsonr(res(x), res(y)).statistic, abs=1e-12)
    # p of x's coefficient in y ~ 1 + x + z, by hand: the same test with n - 3 df
    X = np.column_stack([np.ones_like(x), x, z])
    beta, rss = np.linalg.lstsq(X, y, rcond=None)[:2]
    se = np.sqrt(rss[0] / (len(x) - 3) * np.linalg.inv(X.T @ X)[1, 1])
    assert got["p"] == pytest.approx(2 * stats.t.sf(abs(beta[1] / se), len(x) - 3), rel=1e-9)
    assert got["ci_low"] < got["r"] < got["ci_high"]
    # Fisher interval by hand
    h = stats.norm.ppf(0.975) / np.sqrt(len(x) - 4)
    assert got["ci_low"] == pytest.approx(np.tanh(np.arctanh(got["r"]) - h))


def test_partial_corr_removes_a_pure_confound():
    rng = np.random.default_rng(1)
    z = rng.normal(size=2000)
    x, y = z + 0.3 * rng.normal(size=2000), z + 0.3 * rng.normal(size=2000)
    assert stats.pearsonr(x, y).statistic > 0.8
    assert abs(partial_corr(x, y, z)["r"]) < 0.1
    assert np.isnan(partial_corr(x, y, np.ones(2000))["r"])          # constant control: undefined
    assert np.isnan(partial_corr(z, y, z)["r"])                     # x fully explained by z: undefined


def test_bh_q_matches_scipy_and_keeps_nan():
    p = np.array([0.01, np.nan, 0.04, 0.03, 0.5])
    q = bh_q(p)
    assert np.isnan(q[1])
    np.testing.assert_allclose(q[[0, 2, 3, 4]], stats.false_discovery_control([0.01, 0.04, 0.03, 0.5]))
    # by hand: sorted p 0.01, 0.03, 0.04, 0.5 -> p * m / rank, made monotone from the top
    np.testing.assert_allclose(q[[0, 3, 2, 4]], [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])


def test_loo_influence_equals_brute_force():
    x, y, _ = _data(25, seed=3)
    x[7] = 8.0   # a lever
    inf = loo_influence(x, y)
    brute = np.array([stats.pearsonr(np.delete(x, i), np.delete(y, i)).statistic for i in range(len(x))])
    full = stats.pearsonr(x, y).statistic
    assert inf.r == pytest.approx(full)
    assert inf.index == int(np.argmax(np.abs(brute - full)))
    assert inf.r_without == pytest.approx(brute[inf.index], abs=1e-10)
    assert inf.change == pytest.approx(np.max(np.abs(brute - full)), abs=1e-10)
    assert inf.p_without == pytest.approx(stats.pearsonr(np.delete(x, inf.index), np.delete(y, inf.index)).pvalue)


def test_one_point_that_decides_the_verdict_makes_it_untestable():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=12), rng.normal(size=12)
    x[0], y[0] = 4.0, 4.0      # one point far out on both axes makes r significant
    assert stats.pearsonr(x, y).pvalue < 0.05 and stats.pearsonr(x[1:], y[1:]).pvalue > 0.05
    assert loo_influence(x, y).flips == 0
    verdict, why = judge(x, y, labels=[f"t{i}" for i in range(12)])
    assert verdict == UNTESTABLE and "t0" in why


def test_one_point_holding_the_predictor_spread_is_untestable():
    x = np.r_[np.linspace(0.61, 0.69, 20), 2.3]   # digits' Fig. 6: 20 binary tasks and the 10-class one
    y = np.r_[np.linspace(0, 0.2, 20), 0.05]
    assert dominant_spread(x) == pytest.approx(0.08 / 1.69)
    assert judge(x, y)[0] == UNTESTABLE
    assert judge(x[:-1], y[:-1])[0] == HELD
    assert judge(x[:-1], -y[:-1])[0] == NOT_HELD


def test_crossed_bootstrap_weights_equal_repeating_pairs_and_are_reproducible():
    rng = np.random.default_rng(0)
    S = T = 6
    src, tgt = np.repeat(np.arange(S), T), np.tile(np.arange(T), S)
    keep = src != tgt
    src, tgt = src[keep], tgt[keep]
    x, y, z = rng.normal(size=len(src)), rng.normal(size=len(src)), rng.normal(size=len(src))
    w = crossed_weights(src, tgt, 5, np.random.default_rng(4))
    # brute force for the same draws: repeat each pair (s, t) count_s * count_t times
    r2 = np.random.default_rng(4)
    cs = [np.bincount(r2.integers(0, S, S), minlength=S) for _ in range(5)]
    ct = [np.bincount(r2.integers(0, T, T), minlength=T) for _ in range(5)]
    for b in range(5):
        reps = cs[b][src] * ct[b][tgt]
        np.testing.assert_array_equal(w[b], reps)
    a = crossed_bootstrap(x, y, z, src, tgt, n_boot=200, seed=1)
    assert a == crossed_bootstrap(x, y, z, src, tgt, n_boot=200, seed=1)
    assert a != crossed_bootstrap(x, y, z, src, tgt, n_boot=200, seed=2)
    assert a["r_ci_low"] < stats.pearsonr(x, y).statistic < a["r_ci_high"]


def test_crossed_bootstrap_weighted_r_equals_r_of_repeated_pairs():
    import transferability.analysis.inference as inference

    rng = np.random.default_rng(2)
    x, y = rng.normal(size=30), rng.normal(size=30)
    w = rng.integers(0, 4, size=(3, 30)).astype(float)
    for b in range(3):
        reps = w[b].astype(int)
        assert inference._weighted_corr(w[b:b + 1], x, y)[0] == pytest.approx(
            stats.pearsonr(np.repeat(x, reps), np.repeat(y, reps)).statistic)


def test_crossed_bootstrap_is_wider_than_the_naive_interval_when_sources_share_an_effect():
    """Pairs of one source share its offset: the pooled r's interval must reflect ~S, not S*T, units."""
    rng = np.random.default_rng(5)
    S = T = 12
    src, tgt = np.repeat(np.arange(S), T), np.tile(np.arange(T), S)
    u = rng.normal(size=S)
    x = u[src] + 0.2 * rng.normal(size=len(src))
    y = u[src] + 0.2 * rng.normal(size=len(src))
    ci = crossed_bootstrap(x, y, None, src, tgt, n_boot=400, seed=0)
    r = stats.pearsonr(x, y).statistic
    h = stats.norm.ppf(0.975) / np.sqrt(len(x) - 3)
    naive = np.tanh(np.arctanh(r) + h) - np.tanh(np.arctanh(r) - h)
    assert ci["r_ci_high"] - ci["r_ci_low"] > 2 * naive


def test_split_half_ceiling_by_hand():
    # identical seeds: perfectly reliable
    e = np.tile(np.array([[0.1], [0.2], [0.4], [0.3]]), (1, 3))
    assert split_half_ceiling(e)["ceiling"] == pytest.approx(1.0)
    # two seeds: one split, r between the columns, Spearman-Brown
    e = np.array([[0.1, 0.12], [0.2, 0.15], [0.4, 0.42], [0.3, 0.38], [0.25, 0.2]])
    r = stats.pearsonr(e[:, 0], e[:, 1]).statistic
    got = split_half_ceiling(e)
    assert got["split_half_r"] == pytest.approx(r)
    assert got["reliability"] == pytest.approx(2 * r / (1 + r))
    assert got["ceiling"] == pytest.approx(np.sqrt(2 * r / (1 + r)))
    # three seeds: the mean over the 3 splits {j} vs the other two
    e3 = np.column_stack([e, e[:, ::-1].mean(1) + np.array([0.01, -0.02, 0.0, 0.03, -0.01])])
    rs = [stats.pearsonr(e3[:, j], np.delete(e3, j, 1).mean(1)).statistic for j in range(3)]
    assert split_half_ceiling(e3)["split_half_r"] == pytest.approx(np.mean(rs))
    assert np.isnan(split_half_ceiling(e[:, :1])["ceiling"])    # one seed: no ceiling
    noise = np.random.default_rng(0).normal(size=(300, 4))
    assert abs(split_half_ceiling(noise)["reliability"]) < 0.2
