"""TransRate, GBC and N-LEEP against brute-force evaluations of their formulas (one class, one pair, one
matrix at a time, with scikit-learn's PCA where the reference toolkits use it), on random and degenerate
inputs, and the all-targets route against one call per target."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

from helpers.estimators import settings
from transferability.estimators import model_based
from transferability.estimators.gbc import bhattacharyya
from transferability.estimators.model_based import model_based_scores

REL = 1e-8


def transrate(f, y, **changes):
    """TransRate of one target with the YAML's settings, `changes` applied (so for gbc and nleep)."""
    return model_based.transrate(f, y, **settings("transrate", **changes))


def gbc(f, y, **changes):
    return model_based.gbc(f, y, **settings("gbc", **changes))


def nleep(f, y, **changes):
    return model_based.nleep(f, y, **settings("nleep", **changes))


def problem(n=120, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    f = rng.normal(size=(n, d)) + 0.8 * rng.normal(size=(k, d))[y]
    return f, y


def degenerate():
    """(name, features, labels): the inputs every estimator must survive with a finite, defined value."""
    f, y = problem(n=60, d=5)
    rng = np.random.default_rng(9)
    return [
        ("constant target", f, np.zeros(60, dtype=int)),
        ("one sample per class", rng.normal(size=(6, 4)), np.arange(6)),
        ("D > n", rng.normal(size=(20, 50)) + np.eye(2, 50)[np.arange(20) % 2], np.arange(20) % 2),
        ("duplicated columns", np.column_stack([f, f[:, :2], f[:, 0]]), y),
    ]


# ---------- brute force ----------

def transrate_brute(f, y, eps=1e-4):
    """Huang et al. 2022 / TLlib: R(Z) - 1/K sum_y R(Z_y), R(Z) = 1/2 logdet(I + Z^T Z / (m eps)), Z centred."""
    z = f - f.mean(0)

    def rate(a):
        return 0.5 * np.linalg.slogdet(np.eye(a.shape[1]) + a.T @ a / (len(a) * eps))[1]

    return rate(z) - np.mean([rate(z[y == c]) for c in np.unique(y)])


def pca_brute(f, dims):
    """Scores on the top `dims` principal axes by SVD; axes beyond the rank (zero variance) project to 0."""
    z = f - f.mean(0)
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    out = u * s
    return np.column_stack([out, np.zeros((len(f), max(0, dims - out.shape[1])))])[:, :dims]


def gbc_brute(f, y, pca_dim=64, gaussian="spherical", floor=1e-4):
    """Pandy et al. 2022: -sum over ordered pairs c != c' of exp(-D_B), D_B between full-matrix Gaussians."""
    z = pca_brute(f, min(pca_dim, f.shape[1]))
    stats = {}
    for c in np.unique(y):
        zc = z[y == c]
        var = np.maximum(zc.var(0), floor)
        cov = np.diag(var) if gaussian == "diagonal" else var.mean() * np.eye(len(var))
        stats[c] = (zc.mean(0), cov)
    total = 0.0
    for c1 in stats:
        for c2 in stats:
            if c1 != c2:
                (m1, s1), (m2, s2) = stats[c1], stats[c2]
                s = (s1 + s2) / 2
                db = (m1 - m2) @ np.linalg.solve(s, m1 - m2) / 8 + 0.5 * (
                    np.linalg.slogdet(s)[1] - 0.5 * np.linalg.slogdet(s1)[1] - 0.5 * np.linalg.slogdet(s2)[1])
                total += np.exp(-db)
    return -total


def leep_brute(theta, y):
    n, kz = theta.shape
    joint = np.array([[theta[y == c, z].sum() / n for z in range(kz)] for c in np.unique(y)])
    cond = np.divide(joint, joint.sum(0), out=np.zeros_like(joint), where=joint.sum(0) > 0)
    index = {c: i for i, c in enumerate(np.unique(y))}
    return np.mean([np.log(sum(cond[index[y[i]], z] * theta[i, z] for z in range(kz))) for i in range(n)])


def nleep_brute(f, y, var=0.8, per_class=5, seed=0, fit_rows=None):
    """Li et al. 2021 as in stable_transfer: sklearn PCA keeping `var` of the variance, sklearn GMM with
    per_class x K components (fitted on `fit_rows` rows drawn with `seed` when given), LEEP of the posteriors."""
    z = PCA(n_components=var, svd_solver="full").fit_transform(f)
    fit = z if fit_rows is None else z[np.sort(np.random.default_rng(seed).choice(len(z), fit_rows, replace=False))]
    k = len(np.unique(y))
    gmm = GaussianMixture(n_components=min(per_class * k, len(fit)), random_state=seed).fit(fit)
    return leep_brute(gmm.predict_proba(z), y)


# ---------- TransRate ----------

@pytest.mark.parametrize("k, eps", [(2, 1e-4), (3, 1e-4), (5, 1e-2)])
def test_transrate_matches_brute_force(k, eps):
    f, y = problem(k=k, seed=k)
    assert transrate(f, y, transrate_eps=eps) == pytest.approx(transrate_brute(f, y, eps), rel=REL)


def test_transrate_hand_computed():
    # 1-d, classes {-1, -1} and {1, 1} after centring: R(Z) = 1/2 log(1 + 4 / (4 eps)),
    # R(Z_y) = 1/2 log(1 + 2 / (2 eps)).
    f, y, eps = np.array([[-1.0], [-1.0], [1.0], [1.0]]), np.array([0, 0, 1, 1]), 0.5
    assert transrate(f, y, transrate_eps=eps) == pytest.approx(0.5 * np.log(3) - 0.5 * np.log(3), abs=1e-15)
    f = np.array([[-1.0], [1.0], [-1.0], [1.0]])   # each class holds both values: R(Z_y) = R(Z) as well
    assert transrate(f, y, transrate_eps=eps) == pytest.approx(0.0, abs=1e-15)


def test_transrate_rewards_compact_classes():
    # Each class on its own line through the origin (rank 1) while together they span the plane: the
    # class rates are far below the total. The same points with shuffled labels fill the plane per class.
    # (A pure mean shift is not what TLlib's form sees: classes are not re-centred, so for balanced
    # classes Z_y^T Z_y / n_y keeps the between-class spread of Z^T Z / n.)
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    t = rng.normal(size=300)
    f = np.where(y[:, None] == 0, np.c_[t, 0.01 * t], np.c_[0.01 * t, t]) + 0.01 * rng.normal(size=(300, 2))
    assert transrate(f, y) > 2 and abs(transrate(f, rng.permutation(y))) < 0.2


# ---------- GBC ----------

@pytest.mark.parametrize("gaussian", ["spherical", "diagonal"])
@pytest.mark.parametrize("k, pca_dim", [(2, 64), (4, 3)])
def test_gbc_matches_brute_force(gaussian, k, pca_dim):
    f, y = problem(k=k, d=6, seed=k)
    got = gbc(f, y, gbc_gaussian=gaussian, gbc_pca_dim=pca_dim)
    assert got == pytest.approx(gbc_brute(f, y, pca_dim, gaussian), rel=REL)


def test_gbc_uses_the_same_subspace_as_sklearn_pca():
    f, y = problem(n=200, d=10, k=3, seed=2)
    z = PCA(n_components=4, svd_solver="full").fit_transform(f)          # the reference toolkit's PCA
    assert gbc(f, y, gbc_pca_dim=4) == pytest.approx(gbc_brute(z, y, 4), rel=REL)


def test_bhattacharyya_hand_computed():
    # Equal unit variances: D_B = |mu1 - mu2|^2 / 8; variances 1 and 4 in 1-d: 1/2 log(2.5 / 2).
    assert bhattacharyya(np.zeros(2), np.array([2.0, 0.0]), np.ones(2), np.ones(2)) == pytest.approx(0.5)
    assert bhattacharyya(np.zeros(1), np.zeros(1), np.ones(1), np.full(1, 4.0)) == pytest.approx(0.5 * np.log(1.25))


def test_gbc_is_minus_twice_the_coefficient_for_two_classes_and_rises_with_separation():
    f, y = problem(k=2)
    assert -2 <= gbc(f, y) < 0
    assert gbc(f + 5.0 * y[:, None], y) > gbc(f, y)


def test_gbc_of_well_separated_classes_keeps_its_tiny_coefficients():
    f, y = problem(k=2)
    far = f + 12.0 * y[:, None]
    assert 0 > gbc(far, y) == pytest.approx(gbc_brute(far, y), rel=REL)


def test_gbc_many_classes_go_through_class_blocks(monkeypatch):
    import transferability.estimators.gbc as mod

    f, y = problem(n=600, d=3, k=40, seed=8)
    whole = gbc(f, y, gbc_gaussian="diagonal")
    monkeypatch.setattr(mod, "_PAIR_BLOCK", 7 * 40 * 3)                # blocks of 7 classes, the last one short
    assert gbc(f, y, gbc_gaussian="diagonal") == pytest.approx(whole, rel=1e-13)
    assert whole == pytest.approx(gbc_brute(f, y, 64, "diagonal"), rel=REL)


def test_gbc_rejects_an_unknown_gaussian():
    f, y = problem()
    with pytest.raises(ValueError, match="'sphere'.*spherical, diagonal"):
        gbc(f, y, gbc_gaussian="sphere")


# ---------- N-LEEP ----------

@pytest.mark.parametrize("k, var, per_class", [(2, 0.8, 5), (3, 0.5, 2)])
def test_nleep_matches_brute_force(k, var, per_class):
    f, y = problem(n=150, d=6, k=k, seed=k)
    got = nleep(f, y, nleep_pca_variance=var, nleep_components_per_class=per_class, seed=3)
    assert got == pytest.approx(nleep_brute(f, y, var, per_class, seed=3), rel=REL)


def test_nleep_fits_the_mixture_on_a_seeded_sample_of_rows():
    f, y = problem(n=200, d=5, k=2, seed=6)
    got = nleep(f, y, nleep_fit_rows=80, seed=2)
    assert got == pytest.approx(nleep_brute(f, y, seed=2, fit_rows=80), rel=REL)
    assert got != nleep(f, y, seed=2)                                 # not the all-rows mixture


def test_nleep_posteriors_in_row_blocks_match_brute_force(monkeypatch):
    import transferability.estimators.nleep as mod

    f, y = problem(n=200, d=5, k=3, seed=9)
    monkeypatch.setattr(mod, "_POSTERIOR_ROWS", 7)                     # 29 blocks, the last one short
    assert nleep(f, y, seed=1) == pytest.approx(nleep_brute(f, y, seed=1), rel=REL)


def test_nleep_is_deterministic_given_the_seed_and_depends_on_it():
    f, y = problem(n=150, d=6, k=3, seed=4)
    assert nleep(f, y, seed=1) == nleep(f, y, seed=1)
    assert len({nleep(f, y, seed=s) for s in range(4)}) > 1        # the seed reaches the mixture


# ---------- degenerate inputs ----------

@pytest.mark.parametrize("name, f, y", degenerate(), ids=[d[0] for d in degenerate()])
def test_degenerate_inputs_match_brute_force(name, f, y):
    assert transrate(f, y) == pytest.approx(transrate_brute(f, y), rel=REL, abs=1e-12)
    for gaussian in ("spherical", "diagonal"):
        assert gbc(f, y, gbc_gaussian=gaussian) == pytest.approx(gbc_brute(f, y, 64, gaussian), rel=REL, abs=1e-12)
    assert nleep(f, y) == pytest.approx(nleep_brute(f, y), rel=REL, abs=1e-12)


def test_constant_target_scores_zero():
    f, _ = problem()
    y = np.zeros(len(f), dtype=int)
    assert transrate(f, y) == 0.0 and gbc(f, y) == 0.0 and nleep(f, y) == pytest.approx(0.0, abs=1e-12)


# ---------- all targets at once ----------

def test_all_targets_at_once_equal_one_call_per_target_with_missing_labels():
    f, y = problem(n=160, d=5, k=3)
    rng = np.random.default_rng(5)
    miss = rng.random(160) < 0.25
    Y = np.stack([y, (f[:, 0] > 0).astype(int), np.where(miss, -1, y), np.where(miss, -1, rng.integers(0, 2, 160)),
                  rng.integers(0, 5, 160)], axis=1)
    choices = dict(transrate_eps=1e-3, gbc_pca_dim=3, gbc_gaussian="diagonal", nleep_components_per_class=2, seed=7)
    got = model_based_scores(f, None, Y, which=("transrate", "gbc", "nleep"), **settings(**choices))
    for t in range(Y.shape[1]):
        ok = Y[:, t] >= 0
        want = [transrate(f[ok], Y[ok, t], **choices), gbc(f[ok], Y[ok, t], **choices),
                nleep(f[ok], Y[ok, t], **choices)]
        np.testing.assert_allclose(got.loc[t].to_numpy(), want, rtol=1e-12)


def test_unknown_setting_is_named():
    f, y = problem()
    with pytest.raises(ValueError, match="gbc_pca_dims"):
        model_based_scores(f, None, y[:, None], **settings(gbc_pca_dims=3))


def test_a_missing_setting_is_named_with_the_estimator_that_needs_it():
    f, y = problem()
    without = {k: v for k, v in settings().items() if k != "gbc_var_floor"}
    with pytest.raises(ValueError, match=r"\['gbc_var_floor'\] not given \(needed by gbc\)"):
        model_based_scores(f, None, y[:, None], **without)
    got = model_based_scores(f, None, y[:, None], which=("transrate", "nleep"), **without)   # gbc not asked for
    assert got.notna().all().all()
    with pytest.raises(TypeError, match="gbc_var_floor"):
        model_based.gbc(f, y, gbc_pca_dim=64, gbc_gaussian="spherical")   # no default outside the YAML


def test_the_yaml_holds_the_reference_choices():
    # TLlib's TransRate eps; stable_transfer's GBC (target-selection config) and N-LEEP; Li et al. 2021's
    # 5 components per class. Our numbers are the toolkits' only with these values.
    assert settings() == dict(transrate_eps=1e-4, gbc_pca_dim=64, gbc_gaussian="spherical", gbc_var_floor=1e-4,
                              nleep_pca_variance=0.8, nleep_components_per_class=5, nleep_fit_rows=10_000,
                              knn_rows=10_000, seed=0)
