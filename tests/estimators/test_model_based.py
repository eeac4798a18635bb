"""LEEP, LogME and the H-scores against brute-force evaluations of their published formulas, hand-computed
toy cases, the never-predicted-class guard, missing labels and the shared all-targets route."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import multivariate_normal

from helpers.estimators import settings
from transferability.estimators.common import Centred, class_sums
from transferability.estimators.hscore import ledoit_wolf_shrinkage
from transferability.estimators.label_only import conditional_entropy
from transferability.estimators.logme import evidence_columns
from transferability.estimators.model_based import hscore, hscore_regularized, leep, logme, model_based_scores
from transferability.estimators.registry import COMPUTED


def problem(n=60, d=4, kz=5, ky=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, ky, n)
    f = rng.normal(size=(n, d)) + 0.8 * np.eye(ky, d)[y]       # features that carry the label a little
    theta = rng.dirichlet(np.ones(kz), size=n)
    return f, theta, y


# ---------- brute force, one sample and one class at a time ----------

def leep_brute(theta, y):
    n, kz = theta.shape
    classes = sorted(set(y.tolist()))
    joint = {(c, z): sum(theta[i, z] for i in range(n) if y[i] == c) / n for c in classes for z in range(kz)}
    pz = [sum(joint[c, z] for c in classes) for z in range(kz)]
    total = 0.0
    for i in range(n):
        total += np.log(sum(joint[y[i], z] / pz[z] * theta[i, z] for z in range(kz) if pz[z] > 0))
    return total / n


def evidence_brute(f, y, alpha, beta):
    """log p(y | F, alpha, beta) straight from the marginal y ~ N(0, I/beta + F F^T / alpha)."""
    n = len(y)
    return multivariate_normal(np.zeros(n), np.eye(n) / beta + f @ f.T / alpha).logpdf(y)


def evidence_eq2(f, y, alpha, beta):
    """You et al. 2021, Eq. 2, with explicit A and m."""
    n, d = f.shape
    a = alpha * np.eye(d) + beta * f.T @ f
    m = beta * np.linalg.solve(a, f.T @ y)
    return (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
            - beta / 2 * np.sum((f @ m - y) ** 2) - alpha / 2 * m @ m - np.linalg.slogdet(a)[1] / 2)


def logme_brute(f, y):
    """Mean over one-hot columns of max over (alpha, beta) of the evidence / n, by Nelder-Mead in logs."""
    out = []
    for c in np.unique(y):
        col = (y == c).astype(float)
        best = max((minimize(lambda p: -evidence_brute(f, col, *np.exp(p)), x0, method="Nelder-Mead",
                             options=dict(xatol=1e-9, fatol=1e-12, maxiter=4000)) for x0 in ([0, 0], [2, -1])),
                   key=lambda r: -r.fun)
        out.append(-best.fun / len(y))
    return np.mean(out)


def hscore_brute(f, y, shrink=False):
    n, d = f.shape
    mu = sum(f[i] for i in range(n)) / n
    cov = sum(np.outer(f[i] - mu, f[i] - mu) for i in range(n)) / n
    g = np.array([np.mean([f[j] for j in range(n) if y[j] == y[i]], axis=0) for i in range(n)])
    cov_g = sum(np.outer(g[i] - mu, g[i] - mu) for i in range(n)) / n
    if not shrink:
        return np.trace(np.linalg.pinv(cov) @ cov_g)
    from sklearn.covariance import LedoitWolf

    lw = LedoitWolf().fit(f)
    return np.trace(np.linalg.inv(lw.covariance_) @ ((1 - lw.shrinkage_) * cov_g))


# ---------- LEEP ----------

def test_leep_matches_brute_force():
    _, theta, y = problem()
    assert leep(theta, y) == pytest.approx(leep_brute(theta, y), abs=1e-12)


@pytest.mark.parametrize("theta, y, expected", [
    ([[0.5, 0.5], [0.5, 0.5]], [0, 1], np.log(0.5)),            # P^(y|z) = 1/2 everywhere
    ([[0.8, 0.2], [0.2, 0.8]], [0, 1], np.log(0.68)),           # 0.8 * 0.8 + 0.2 * 0.2 per sample
    ([[1, 0], [1, 0], [0, 1], [0, 1]], [0, 0, 0, 1], -np.log(2) / 2),
])
def test_leep_hand_computed(theta, y, expected):
    assert leep(np.array(theta, float), np.array(y)) == pytest.approx(expected, abs=1e-12)


def test_leep_with_one_hot_source_is_minus_conditional_entropy():
    rng = np.random.default_rng(3)
    z = rng.integers(0, 6, 500)
    y = (z + rng.integers(0, 3, 500)) % 4
    assert leep(np.eye(6)[z], y) == pytest.approx(-conditional_entropy(y, z), abs=1e-12)


def test_leep_never_predicted_source_class_is_ignored_without_nan_or_warning():
    _, theta, y = problem(kz=4)
    padded = np.insert(theta, 2, 0.0, axis=1)                  # source class 2 has P^(z) = 0
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        got = leep(padded, y)
    assert np.isfinite(got) and got == pytest.approx(leep(theta, y), abs=1e-12)


def test_leep_rejects_missing_or_negative_codes():
    _, theta, y = problem()
    y[0] = -1
    with pytest.raises(ValueError, match="model_based_scores"):
        leep(theta, y)


# ---------- LogME ----------

def test_evidence_formula_is_the_gaussian_marginal():
    f, _, y = problem(n=25, d=3)
    col = (y == 1).astype(float)
    for alpha, beta in [(1.0, 1.0), (0.3, 4.0), (7.0, 0.5)]:
        assert evidence_eq2(f, col, alpha, beta) == pytest.approx(evidence_brute(f, col, alpha, beta), abs=1e-9)


def test_logme_matches_brute_force_maximum():
    f, _, y = problem(n=40, d=3)
    assert logme(f, y) == pytest.approx(logme_brute(f, y), abs=1e-7)


def test_logme_fixed_point_is_a_maximum():
    f, _, y = problem(n=40, d=3, seed=5)
    col = (y == 0).astype(float)
    sigma, vecs = np.linalg.eigh(f.T @ f)
    ev, alpha, beta = evidence_columns(sigma, vecs.T @ (f.T @ col)[:, None], np.array([col @ col]), 40, 3, 1e-10, 1000)
    a, b = alpha[0], beta[0]
    top = evidence_brute(f, col, a, b)
    assert ev[0] == pytest.approx(top / 40, abs=1e-10)
    for da, db in [(1.05, 1), (1 / 1.05, 1), (1, 1.05), (1, 1 / 1.05), (1.05, 1.05), (1.05, 1 / 1.05)]:
        assert evidence_brute(f, col, a * da, b * db) < top


def test_logme_prefers_informative_features():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    noise = rng.normal(size=(400, 8))
    informative = noise + 2.0 * y[:, None] * np.eye(8)[0]
    assert logme(informative, y) > logme(noise, y)


def test_logme_warns_when_not_converged():
    f, _, y = problem()
    with pytest.warns(RuntimeWarning, match="did not converge"):
        logme(f, y, max_iter=1)


# ---------- H-scores ----------

def test_hscore_matches_brute_force():
    f, _, y = problem()
    assert hscore(f, y) == pytest.approx(hscore_brute(f, y), rel=1e-10)


def test_hscore_regularized_matches_brute_force():
    f, _, y = problem(n=50, d=6)
    assert hscore_regularized(f, y) == pytest.approx(hscore_brute(f, y, shrink=True), rel=1e-10)


@pytest.mark.parametrize("f, y, expected", [
    ([0, 0, 2, 2], [0, 0, 1, 1], 1.0),            # var f = 1, var of class means = 1
    ([0, 1, 2, 3], [0, 0, 1, 1], 0.8),            # var f = 1.25
    ([0, 1, 2, 3], [0, 1, 0, 1], 0.2),            # class means 1 and 2: var 0.25
])
def test_hscore_hand_computed(f, y, expected):
    assert hscore(np.array(f, float)[:, None], np.array(y)) == pytest.approx(expected, abs=1e-12)


def test_hscore_invariant_to_invertible_linear_maps_and_shifts():
    f, _, y = problem(n=80, d=5)
    a = np.random.default_rng(7).normal(size=(5, 5)) + 3 * np.eye(5)
    assert hscore(f @ a + 4.0, y) == pytest.approx(hscore(f, y), rel=1e-9)


def test_hscore_ignores_redundant_feature_columns():
    # d^T cov^+ d over the span of the features: a duplicated or combined column adds nothing.
    f, _, y = problem(n=80, d=4)
    redundant = np.column_stack([f, f[:, 0], f[:, 1] - 2 * f[:, 2]])
    assert hscore(redundant, y) == pytest.approx(hscore(f, y), rel=1e-8)


@pytest.mark.parametrize("n, d, scale", [(50, 6, 1.0), (200, 1, 1.0), (30, 1100, 1.0), (500, 40, 1e3), (80, 8, 0.0)])
def test_ledoit_wolf_shrinkage_from_the_gram_equals_sklearn(n, d, scale):
    from sklearn import covariance

    rng = np.random.default_rng(d)   # correlated columns of unequal scale; d = 1100: sklearn's blocked path
    f = scale * (rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) / np.sqrt(d)
                 + rng.normal(size=(n, d)) * np.arange(1, d + 1) / d)
    c = Centred(f)
    expected = covariance.ledoit_wolf_shrinkage(c.Z, assume_centered=True)
    assert ledoit_wolf_shrinkage(c.Z, c.gram) == pytest.approx(expected, rel=1e-10, abs=1e-14)
    assert scale == 0 or d == 1 or 0 < expected < 1   # not a degenerate 0 or 1 that any formula would match


def test_float32_features_score_as_their_float64_copy():
    f, theta, y = problem(n=90, d=6)
    f32 = f.astype(np.float32)
    Y = np.stack([y, (y > 0).astype(np.int64)], 1)
    pd_testing = pytest.importorskip("pandas.testing")
    pd_testing.assert_frame_equal(model_based_scores(f32, theta, Y, **settings()),
                                  model_based_scores(f32.astype(np.float64), theta, Y, **settings()), rtol=1e-13)


def test_hscore_regularized_below_hscore_on_isotropic_noise():
    # Ledoit-Wolf shrinks hard towards the identity when that is the truth, which damps the noise fit.
    rng = np.random.default_rng(2)
    f, y = rng.normal(size=(100, 20)), rng.integers(0, 2, 100)
    assert 0 <= hscore_regularized(f, y) < hscore(f, y)


# ---------- all targets at once ----------

def test_model_based_scores_equals_per_target_calls():
    f, theta, _ = problem(n=90, d=4)
    rng = np.random.default_rng(4)
    Y = np.stack([rng.integers(0, 2, 90), rng.integers(0, 3, 90), (f[:, 0] > 0).astype(int)], axis=1)
    got = model_based_scores(f, theta, Y, **settings())
    assert list(got.columns) == list(COMPUTED) and list(got.index) == [0, 1, 2]
    assert COMPUTED[:4] == ("leep", "logme", "hscore", "hscore_reg")
    for t in range(3):
        assert got.at[t, "leep"] == pytest.approx(leep(theta, Y[:, t]), abs=1e-12)
        assert got.at[t, "logme"] == pytest.approx(logme(f, Y[:, t]), abs=1e-10)
        assert got.at[t, "hscore"] == pytest.approx(hscore(f, Y[:, t]), rel=1e-10)
        assert got.at[t, "hscore_reg"] == pytest.approx(hscore_regularized(f, Y[:, t]), rel=1e-10)


def test_missing_labels_are_left_out_per_target():
    f, theta, y = problem(n=120, d=4)
    rng = np.random.default_rng(6)
    miss_a, miss_b = rng.random(120) < 0.2, rng.random(120) < 0.3
    Y = np.stack([y, np.where(miss_a, -1, y), np.where(miss_a, -1, 1 - (y == 0)), np.where(miss_b, -1, y),
                  np.full(120, -1)], axis=1)
    got = model_based_scores(f, theta, Y, which=COMPUTED[:4])   # the other three: their own test modules
    for t in range(4):
        ok = Y[:, t] >= 0
        want = [leep(theta[ok], Y[ok, t]), logme(f[ok], Y[ok, t]), hscore(f[ok], Y[ok, t]),
                hscore_regularized(f[ok], Y[ok, t])]
        np.testing.assert_allclose(got.loc[t].to_numpy(), want, rtol=1e-9, atol=1e-12)
    assert got.loc[4].isna().all()                             # no labelled row at all


def test_class_codes_need_not_be_compact_and_many_classes_take_the_sparse_route():
    f, theta, _ = problem(n=400, d=3)
    rng = np.random.default_rng(8)
    y = rng.integers(0, 70, 400)                               # > 64 classes: sparse class sums
    codes = np.stack([y, np.where(y % 3 == 0, -1, y)], axis=1)
    k = np.array([70, 70])
    sums = class_sums(f, codes, k)
    for t in range(2):
        for c in range(70):
            np.testing.assert_allclose(sums[70 * t + c], f[codes[:, t] == c].sum(0), atol=1e-12)
    assert leep(theta, y * 5 + 3) == pytest.approx(leep_brute(theta, y), abs=1e-12)
    assert hscore(f, y * 5 + 3) == pytest.approx(hscore_brute(f, y), rel=1e-10)
    assert logme(f, y.astype(np.int64) * 10**9) == logme(f, y)          # huge codes: the sorting route


def test_without_source_probs_leep_is_nan_and_results_are_deterministic():
    f, theta, y = problem()
    got = model_based_scores(f, None, y[:, None], **settings())
    assert np.isnan(got.at[0, "leep"]) and got.drop(columns="leep").notna().all().all()
    again = model_based_scores(f, None, y[:, None], **settings())
    assert got.equals(again)


def test_bad_inputs_are_value_errors():
    f, theta, y = problem()
    with pytest.raises(ValueError, match="unknown estimator 'lep'"):
        model_based_scores(f, theta, y[:, None], which=("lep",))
    with pytest.raises(ValueError, match="unknown estimator 'nce'"):     # a registry score computed elsewhere
        model_based_scores(f, theta, y[:, None], which=("nce",))
    with pytest.raises(ValueError, match="integer"):
        model_based_scores(f, theta, y[:, None].astype(float), **settings())
    with pytest.raises(ValueError, match="source_probs"):
        model_based_scores(f, theta[:-1], y[:, None], **settings())
    with pytest.raises(ValueError, match="features"):
        model_based_scores(f[:-1], theta, y[:, None], **settings())
    with pytest.raises(ValueError, match="source_labels"):
        model_based_scores(f, theta, y[:, None], source_labels=y[:-1], **settings())
    with pytest.raises(ValueError, match="summing to 1"):
        leep(theta * 2, y)


def test_logme_of_useless_features_is_the_zero_weight_limit():
    # Features orthogonal to every one-hot column: alpha -> inf, the evidence is that of y ~ N(0, I/beta).
    y = np.array([0, 1] * 20)
    f = np.stack([np.tile([1.0, 1.0, -1.0, -1.0], 10), np.tile([1.0, -1.0, -1.0, 1.0], 10)], axis=1)
    assert f.T @ (y == 0) == pytest.approx(0) and f.T @ (y == 1) == pytest.approx(0)
    limit = np.mean([evidence_brute(f, (y == c).astype(float), 1e12, 2.0) for c in (0, 1)]) / 40
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert logme(f, y) == pytest.approx(limit, abs=1e-9)


# ---------- degenerate inputs: D >= n, constant target, one sample per class, duplicated columns ----------

def logme_sup_brute(f, y):
    """The supremum of the evidence / n over alpha, beta > 0 and its boundaries, per one-hot column:
    Nelder-Mead from several starts; w = 0 (alpha = inf); and, when F F^T is invertible, beta = inf,
    y ~ N(0, F F^T / alpha) with alpha = n / y^T (F F^T)^-1 y (the maximiser of that Gaussian's density)."""
    n = len(y)
    gram = f @ f.T

    def neg_evidence(p, col):   # -log N(col; 0, I/beta + F F^T/alpha), by Cholesky (fast; = evidence_brute)
        try:
            chol = np.linalg.cholesky(np.eye(n) * np.exp(-p[1]) + gram * np.exp(-p[0]))
        except np.linalg.LinAlgError:
            return np.inf
        z = np.linalg.solve(chol, col)
        return n / 2 * np.log(2 * np.pi) + np.log(np.diag(chol)).sum() + z @ z / 2

    out = []
    for c in np.unique(y):
        col = (y == c).astype(float)
        assert neg_evidence([0.3, -0.2], col) == pytest.approx(-evidence_brute(f, col, np.exp(0.3), np.exp(-0.2)))
        cands = [-minimize(neg_evidence, x0, args=(col,), method="Nelder-Mead",
                           options=dict(xatol=1e-10, fatol=1e-13, maxiter=20000)).fun
                 for x0 in ([0, 0], [2, -1], [3, 8])]
        cands.append(n / 2 * (np.log(n / (col @ col)) - 1 - np.log(2 * np.pi)))
        if np.linalg.matrix_rank(gram) == n:
            alpha = n / (col @ np.linalg.solve(gram, col))
            cands.append(multivariate_normal(np.zeros(n), gram / alpha).logpdf(col))
        out.append(max(cands) / n)
    return np.mean(out)


def test_logme_with_more_dimensions_than_samples_is_the_exact_supremum():
    # D > n: one column's supremum is the beta = inf boundary, not a NaN.
    rng = np.random.default_rng(4)
    n, d = 30, 60
    y = rng.integers(0, 3, n)
    f = rng.normal(size=(n, d)) + 0.5 * rng.normal(size=(3, d))[y]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = logme(f, y)
    assert got == pytest.approx(-0.4902, abs=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")             # the brute force's multivariate normal near singularity
        assert got == pytest.approx(logme_sup_brute(f, y), abs=1e-7)


def test_logme_in_the_span_of_low_rank_features_is_unbounded_with_a_warning():
    # rank F = 2 < n and the one-hot columns are exact combinations of the features: no noise needed.
    y = np.array([0, 1] * 10)
    f = np.stack([(y == 0), (y == 1)], axis=1).astype(float)
    with pytest.warns(RuntimeWarning, match="unbounded"):
        assert logme(f, y) == np.inf


def _degenerate_cases():
    f, theta, y = problem(n=40, d=4, kz=3)
    rng = np.random.default_rng(9)
    return [
        ("constant target", f, theta, np.zeros(40, dtype=int)),
        ("one sample per class", rng.normal(size=(6, 4)), rng.dirichlet(np.ones(3), 6), np.arange(6)),
        ("D > n", rng.normal(size=(20, 50)) + np.eye(2, 50)[np.arange(20) % 2], rng.dirichlet(np.ones(3), 20),
         np.arange(20) % 2),
        ("duplicated columns", np.column_stack([f, f[:, :2], f[:, 0]]), theta, y),
    ]


@pytest.mark.parametrize("name, f, theta, y", _degenerate_cases(), ids=[c[0] for c in _degenerate_cases()])
def test_degenerate_inputs_give_the_defined_values(name, f, theta, y):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = model_based_scores(f, theta, y[:, None], which=("leep", "logme", "hscore", "hscore_reg")).loc[0]
    assert np.isfinite(got).all(), got
    assert got["leep"] == pytest.approx(leep_brute(theta, y), abs=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert got["logme"] == pytest.approx(logme_sup_brute(f, y), abs=1e-7)
    assert got["hscore"] == pytest.approx(hscore_brute(f, y), rel=1e-8, abs=1e-10)
    if name != "one sample per class":          # LedoitWolf's brute force wants more rows than that
        assert got["hscore_reg"] == pytest.approx(hscore_brute(f, y, shrink=True), rel=1e-8, abs=1e-10)
    if name == "constant target":               # nothing to predict: P(y|z) = 1 and no between-class spread
        assert got[["leep", "hscore", "hscore_reg"]].abs().max() < 1e-12
    if name == "one sample per class":          # class means are the samples: tr(cov^+ cov) = rank
        assert got["hscore"] == pytest.approx(4)
