"""Transfer heads (heads.py) against reference fits: LinearSVC, LogisticRegression, a brute-force Eq. 9."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit, log_softmax, softmax
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

import transferability.models.heads as heads
from transferability.config import group_config
from transferability.errors import UserError
from transferability.models.heads import fit_heads, linear_weights


def _data(n=240, m=60, dim=6, seed=0, missing=True):
    """Embeddings and three targets (binary, 3-class, binary) driven by the embedding plus noise."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n + m, dim)) * rng.uniform(0.5, 3, dim) + rng.normal(size=dim)
    w = rng.normal(size=(dim, 3))
    s = z @ w + rng.normal(size=(n + m, 3))
    q = np.quantile(s, [0.3, 0.6, 0.7], axis=0)
    y = np.stack([s[:, 0] > q[1, 0], np.digitize(s[:, 1], q[[0, 2], 1]), s[:, 2] > q[0, 2]], 1)
    y = y.astype(np.int64)
    if missing:
        y[rng.choice(n, 30, replace=False), 1] = -1
        y[rng.choice(n, 20, replace=False), 0] = -1
    z = z.astype(np.float32)
    return z[:n], y[:n], z[n:], y[n:], [2, 3, 2]


def _standardised(z, zt):
    sc = StandardScaler().fit(z)
    return sc.transform(z).astype(np.float64), sc.transform(zt).astype(np.float64)


def _svm_objective(x, lab, w, b, C):
    """LinearSVC's primal: 0.5 |w|^2 + 0.5 b^2 + C sum max(0, 1 - s f)^2 (the bias is a penalised feature)."""
    s = np.where(lab == 1, 1.0, -1.0)
    return 0.5 * (w @ w + b * b) + C * np.sum(np.maximum(0, 1 - s * (x @ w + b)) ** 2)


@pytest.mark.parametrize("C", [0.05, 1.0])
def test_linear_svm_matches_linearsvc(C):
    z, y, zt, _, k = _data()
    x, xt = _standardised(z, zt)
    head = group_config("head", "linear_svm", C=C, max_iter=100, tol=1e-8)
    W = linear_weights(head, z, y, k)
    fit = fit_heads(head, z, y, zt, k)
    columns = {0: [(0, 1)], 1: [(1, 0), (2, 1), (3, 2)], 2: [(4, 1)]}  # target -> (weight column, class)
    for t, cols in columns.items():
        lab = y[:, t] >= 0
        ref = LinearSVC(C=C, dual=False, tol=1e-10, max_iter=100_000).fit(x[lab], y[lab, t])
        for j, (c, cls) in enumerate(cols):
            ours = _svm_objective(x[lab], y[lab, t] == cls, W[:-1, c], W[-1, c], C)
            theirs = _svm_objective(x[lab], y[lab, t] == cls, ref.coef_[j], ref.intercept_[j], C)
            assert ours == pytest.approx(theirs, rel=1e-6)
            assert ours <= theirs * (1 + 1e-8)
        assert np.mean(ref.predict(xt) == fit.test_pred[:, t]) >= 0.98
        assert np.mean(ref.predict(x) == fit.train_pred[:, t]) >= 0.98


def _logistic_objective(x, lab, W, b, C):
    """LogisticRegression's: 0.5 |W|^2 + C sum -log p(y|x), bias unpenalised; one column when K = 2."""
    logits = x @ W + b
    if W.shape[1] == 1:
        logits = np.concatenate([np.zeros_like(logits), logits], 1)
    return 0.5 * np.sum(W * W) + C * -np.take_along_axis(log_softmax(logits, 1), lab[:, None], 1).sum()


def test_logistic_matches_sklearn():
    z, y, zt, yt, k = _data()
    x, xt = _standardised(z, zt)
    head = group_config("head", "logistic", C=0.5, max_iter=100, tol=1e-8)
    W = linear_weights(head, z, y, k)
    fit = fit_heads(head, z, y, zt, k, y_test=yt)
    for t, cols in {0: [0], 1: [1, 2, 3], 2: [4]}.items():
        lab = y[:, t] >= 0
        ref = LogisticRegression(C=0.5, tol=1e-12, max_iter=10_000).fit(x[lab], y[lab, t])
        ours = _logistic_objective(x[lab], y[lab, t], W[:-1, cols], W[-1, cols], 0.5)
        theirs = _logistic_objective(x[lab], y[lab, t], ref.coef_.T, ref.intercept_, 0.5)
        assert ours == pytest.approx(theirs, rel=1e-7)
        logits = xt @ W[:-1, cols] + W[-1, cols]
        probs = softmax(logits, 1) if len(cols) > 1 else np.c_[1 - expit(logits), expit(logits)]
        np.testing.assert_allclose(probs, ref.predict_proba(xt), atol=1e-5)
        np.testing.assert_array_equal(fit.test_pred[:, t], probs.argmax(1))
        # Eq. 5 on test rows: the mean -log p(y|x) of the model's own probabilities.
        assert fit.test_nll[t] == pytest.approx(-np.mean(np.log(probs[np.arange(len(xt)), yt[:, t]])), rel=1e-6)


def test_missing_labels_are_left_out_and_targets_do_not_interact():
    z, y, zt, _, k = _data()
    for name in ("linear_svm", "logistic"):
        head = group_config("head", name, C=1.0, max_iter=100, tol=1e-10)
        joint = linear_weights(head, z, y, k)
        alone = linear_weights(head, z, y[:, 1:2], [3])
        np.testing.assert_allclose(joint[:, 1:4], alone, atol=1e-7)
        # The missing rows matter when labelled (so the check below is not vacuous) ...
        flipped = y[:, 1:2].copy()
        flipped[flipped == -1] = 0
        assert not np.allclose(linear_weights(head, z, flipped, [3]), alone, atol=1e-4)
        # ... and as -1 they are left out: the fit is optimal for the labelled rows alone.
        lab = y[:, 1] >= 0
        x, _ = _standardised(z, zt)
        W = alone
        if name == "linear_svm":
            for c in range(3):
                ref = LinearSVC(C=1.0, dual=False, tol=1e-10, max_iter=100_000).fit(x[lab], y[lab, 1] == c)
                np.testing.assert_allclose(W[:-1, c], ref.coef_[0], atol=1e-4)
        else:  # the gradient of the objective over the labelled rows vanishes
            logits = x[lab] @ W[:-1] + W[-1]
            R = softmax(logits, 1) - np.eye(3)[y[lab, 1]]
            grad = np.r_[W[:-1] + x[lab].T @ R, R.sum(0)[None]]
            assert np.abs(grad).max() < 1e-5 * np.abs(x[lab].T @ np.eye(3)[y[lab, 1]]).max()


def test_svm_nll_is_platt_calibrated_on_train():
    z, y, zt, yt, k = _data(n=80, m=30, dim=3, seed=3, missing=False)
    y, yt, k = y[:, :1], yt[:, :1], [2]
    head = group_config("head", "linear_svm", C=1.0, max_iter=100, tol=1e-10)
    f_train = np.r_[_standardised(z, zt)[0].T, np.ones((1, len(z)))].T @ linear_weights(head, z, y, k)[:, 0]
    lab = y[:, 0]
    n1, n0 = lab.sum(), (1 - lab).sum()
    target = np.where(lab == 1, (n1 + 1) / (n1 + 2), 1 / (n0 + 2))  # Platt (1999)

    def platt(ab):
        p = np.clip(expit(ab[0] * f_train + ab[1]), 1e-15, 1 - 1e-15)
        return -np.mean(target * np.log(p) + (1 - target) * np.log(1 - p))

    a, b = minimize(platt, [1.0, 0.0], method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-14}).x
    p = expit(a * f_train + b)
    by_hand = -np.mean(np.log(np.where(lab == 1, p, 1 - p)))
    fit = fit_heads(head, z, y, zt, k, y_test=yt)
    assert fit.train_nll[0] == pytest.approx(by_hand, rel=1e-5)
    assert np.isfinite(fit.test_nll).all()


def _ce_brute(p_z, source, y_col, K_y, p_eval):
    """Eq. 9 with explicit loops: P^(y|z) counted from rows labelled in both tasks."""
    K_z = p_z.shape[1]
    cond = np.full((K_z, K_y), 1.0 / K_y)
    for a in range(K_z):
        rows = [i for i in range(len(source)) if source[i] == a and y_col[i] >= 0]
        if rows:
            cond[a] = [sum(y_col[i] == c for i in rows) / len(rows) for c in range(K_y)]
    return np.array([[sum(p[a] * cond[a, c] for a in range(K_z)) for c in range(K_y)] for p in p_eval])


def test_ce_head_matches_brute_force_eq9():
    rng = np.random.default_rng(1)
    n, m, K_z = 120, 40, 4
    source = rng.integers(0, K_z, n)
    source[:5] = -1
    y = np.stack([(source + rng.integers(0, 2, n)) % 2, (source + rng.integers(0, 2, n)) % 3], 1)
    y[source == -1] = 0
    y[10:15, 1] = -1
    p_tr, p_te = softmax(rng.normal(size=(n, K_z)) * 2, 1), softmax(rng.normal(size=(m, K_z)) * 2, 1)
    yt = rng.integers(0, 2, (m, 2))
    z, zt = rng.normal(size=(n, 3)), rng.normal(size=(m, 3))
    fit = fit_heads(group_config("head", "ce_head"), z, y, zt, [2, 3], source_probs_train=p_tr, source_probs_test=p_te,
                    source_train=source, y_test=yt)
    for t, K_y in enumerate([2, 3]):
        # Rows with a missing source label are left out of the counts but still predicted and scored.
        pr, pt = (_ce_brute(p_tr, source, y[:, t], K_y, p) for p in (p_tr, p_te))
        np.testing.assert_array_equal(fit.train_pred[:, t], pr.argmax(1))
        np.testing.assert_array_equal(fit.test_pred[:, t], pt.argmax(1))
        lab = y[:, t] >= 0
        assert fit.train_nll[t] == pytest.approx(-np.mean(np.log(pr[lab, y[lab, t]])), rel=1e-12)
        assert fit.test_nll[t] == pytest.approx(-np.mean(np.log(pt[np.arange(m), yt[:, t]])), rel=1e-12)


def test_ce_head_tiny_case_by_hand():
    # Source z = (0, 0, 1, 1), target y = (0, 1, 1, 1): P^(y=1|z=0) = 1/2, P^(y=1|z=1) = 1.
    p = np.array([[0.8, 0.2], [0.6, 0.4], [0.1, 0.9], [0.0, 1.0]])
    fit = fit_heads(group_config("head", "ce_head"), np.zeros((4, 1)), np.array([[0], [1], [1], [1]]), np.zeros((4, 1)),
                    [2], source_probs_train=p, source_probs_test=p, source_train=np.array([0, 0, 1, 1]))
    p1 = 0.5 * p[:, 0] + p[:, 1]  # p_Y(1|x) by Eq. 9
    by_hand = -(np.log(1 - p1[0]) + np.log(p1[1]) + np.log(p1[2]) + np.log(p1[3])) / 4
    assert fit.train_nll[0] == pytest.approx(by_hand, rel=1e-12)
    np.testing.assert_array_equal(fit.train_pred[:, 0], [1, 1, 1, 1])  # p_Y(1|x_0) = 0.6
    assert np.isnan(fit.test_nll).all()  # no y_test given


def test_theorem1_lower_bound_on_toy_data():
    rng = np.random.default_rng(7)
    n, K_z = 300, 3
    source = rng.integers(0, K_z, n)
    logits = rng.normal(size=(n, K_z)) + 2.0 * np.eye(K_z)[source]
    p_z = softmax(logits, 1)
    y = np.stack([(source == 0) ^ (rng.random(n) < 0.2), (source + (rng.random(n) < 0.3)) % 3], 1).astype(np.int64)
    fit = fit_heads(group_config("head", "ce_head"), np.zeros((n, 1)), y, np.zeros((2, 1)), [2, 3],
                    source_probs_train=p_z, source_probs_test=p_z[:2], source_train=source)
    l_z = np.mean(np.log(p_z[np.arange(n), source]))
    for t in range(2):
        h = 0.0  # H(Y|Z) of Eq. 7 by brute force over the empirical joint
        for a in range(K_z):
            for c in range(3):
                joint = np.mean((source == a) & (y[:, t] == c))
                if joint > 0:
                    h -= joint * np.log(joint / np.mean(source == a))
        assert -fit.train_nll[t] >= l_z - h
        assert -fit.train_nll[t] < 0


def test_chunked_fit_equals_single_fit(monkeypatch):
    z, y, zt, _, k = _data(missing=False)
    head = group_config("head", "linear_svm", tol=1e-8)
    whole = fit_heads(head, z, y, zt, k)
    monkeypatch.setattr(heads, "_CHUNK_ELEMENTS", len(z) * 2)  # one target per solver call
    parts = fit_heads(head, z, y, zt, k)
    np.testing.assert_array_equal(whole.test_pred, parts.test_pred)
    np.testing.assert_allclose(whole.train_nll, parts.train_nll, rtol=1e-6)


def test_deterministic():
    z, y, zt, yt, k = _data()
    a = fit_heads(group_config("head", "logistic"), z, y, zt, k, seed=3, y_test=yt)
    b = fit_heads(group_config("head", "logistic"), z, y, zt, k, seed=3, y_test=yt)
    np.testing.assert_array_equal(a.test_pred, b.test_pred)
    np.testing.assert_array_equal(a.train_nll, b.train_nll)
    assert a.test_pred.dtype == np.int64 and a.test_pred.shape == (len(zt), 3) and a.train_pred.shape == (len(z), 3)


def test_bad_inputs_are_user_errors():
    z, y, zt, _, k = _data()
    with pytest.raises(UserError, match="unknown head 'linear_smv'; did you mean: linear_svm"):
        fit_heads(group_config("head", "linear_svm", name="linear_smv"), z, y, zt, k)
    with pytest.raises(UserError, match=r"y_train\[0, 2\] = 5"):
        y2 = y.copy()
        y2[0, 2] = 5
        fit_heads(group_config("head", "logistic"), z, y2, zt, k)
    with pytest.raises(UserError, match="n_classes"):
        fit_heads(group_config("head", "logistic"), z, y, zt, [2, 3])
    with pytest.raises(UserError, match="z_test"):
        fit_heads(group_config("head", "logistic"), z, y, zt[:, :2], k)
    with pytest.raises(UserError, match="ce_head needs"):
        fit_heads(group_config("head", "ce_head"), z, y, zt, k)


def test_benchmark_quick_runs(capsys):
    from transferability.bench.heads import main
    main(quick=True)
    out = capsys.readouterr().out
    assert "speed-up" in out and "fit_heads (batched)" in out


def test_target_without_labels_gets_nan_nll_and_no_crash():
    z, y, zt, yt, k = _data(missing=False)
    y[:, 2] = -1
    for name in ("linear_svm", "logistic"):
        fit = fit_heads(group_config("head", name), z, y, zt, k, y_test=yt)
        assert np.isnan(fit.train_nll[2]) and np.isfinite(fit.train_nll[:2]).all()
        with pytest.raises(UserError, match=r"y_test\[0, 1\] = 3"):
            bad = yt.copy()
            bad[0, 1] = 3
            fit_heads(group_config("head", name), z, y, zt, k, y_test=bad)


def _reference_choice(make, z, y, zt, val, grid):
    """scikit-learn's answer: per C, a StandardScaler + model fitted on the rows outside `val`, accuracy on `val`;
    the first best C of the ascending grid; then scaler + model refitted on every training row at that C."""
    fit_sc = StandardScaler().fit(z[~val])
    accs = [(make(C).fit(fit_sc.transform(z[~val]), y[~val]).predict(fit_sc.transform(z[val])) == y[val]).mean()
            for C in grid]
    best = grid[int(np.argmax(accs))]
    sc = StandardScaler().fit(z)
    return best, make(best).fit(sc.transform(z), y).predict(sc.transform(zt)), accs


@pytest.mark.parametrize("name", ["linear_svm", "logistic"])
def test_auto_C_is_scikit_learns_grid_search_on_the_same_split(name):
    """head.C=auto: per target the C with the best validation accuracy (first of the ascending grid on ties),
    refitted on all training rows: the same C and the same test predictions as scikit-learn."""
    z, y, zt, _, k = _data(n=400, m=200, dim=8, missing=False)
    val = np.random.default_rng(1).random(len(z)) < 0.3
    grid = [0.001, 0.01, 0.1, 1.0, 10.0]
    head = group_config("head", name, C="auto", C_grid=grid, max_iter=200, tol=1e-10)
    fit = fit_heads(head, z, y, zt, k, val=val)
    make = {"linear_svm": lambda C: LinearSVC(C=C, dual=False, tol=1e-12, max_iter=100_000),
            "logistic": lambda C: LogisticRegression(C=C, tol=1e-12, max_iter=100_000)}[name]
    for t in range(len(k)):
        best, pred, accs = _reference_choice(make, z, y[:, t], zt, val, grid)
        assert fit.C[t] == best, (t, accs)
        assert (fit.test_pred[:, t] == pred).mean() >= 0.995, t
    # a fixed C records that C for every target
    assert (fit_heads(group_config("head", name, C=0.1), z, y, zt, k).C == 0.1).all()


def test_auto_C_choice_and_refit_and_warm_starts():
    z, y, zt, _, k = _data(n=300, m=50, dim=6)
    val = np.arange(len(z)) % 4 == 0
    head = group_config("head", "logistic", C="auto", max_iter=200, tol=1e-10)
    C, acc, weights = heads.select_C(head, z, y, np.array(k), val)
    assert acc.shape == (len(head.C_grid), 3) and np.isin(C, head.C_grid).all()
    for t in range(3):   # the chosen C has the best validation accuracy, the first such in ascending order
        assert C[t] == sorted(head.C_grid)[int(np.nanargmax(acc[:, t]))]
    # warm starts along the grid reach the cold-start optimum (the multinomial target's unpenalised biases are
    # only defined up to a common shift, so they are compared centred)
    def canonical(W):
        W = W.numpy().copy()
        W[-1, 1:4] -= W[-1, 1:4].mean()   # columns 1-3: the 3-class target
        return W

    for i, c in enumerate(sorted(head.C_grid)):
        cold = heads.select_C(group_config("head", "logistic", C="auto", C_grid=[c], max_iter=200, tol=1e-10),
                              z, y, np.array(k), val)[2][0]
        np.testing.assert_allclose(canonical(weights[i]), canonical(cold), rtol=1e-5, atol=1e-6)
    # the refit uses each target's own C: the same as fitting that target alone at its C
    fit = fit_heads(head, z, y, zt, k, val=val)
    for t in range(3):
        alone = fit_heads(group_config("head", "logistic", C=float(C[t]), max_iter=200, tol=1e-10), z, y[:, [t]], zt,
                          [k[t]])
        assert (alone.test_pred[:, 0] == fit.test_pred[:, t]).all()


def test_auto_C_needs_a_validation_split_and_falls_back_when_untunable():
    z, y, zt, _, k = _data()
    head = group_config("head", "linear_svm", C="auto")
    with pytest.raises(UserError, match="validation split"):
        fit_heads(head, z, y, zt, k)
    y2 = y.copy()
    val = np.zeros(len(z), bool)
    val[:40] = True
    y2[val, 2] = -1                       # target 2 has no labelled validation row
    fit = fit_heads(head, z, y2, zt, k, val=val)
    assert fit.C[2] == 1.0 and np.isin(fit.C[:2], head.C_grid).all()
