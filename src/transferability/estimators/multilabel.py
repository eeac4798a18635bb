"""Scores of a multi-label target: every binary target of a row (each a 0/1 attribute) as one task, the label of
an image being its vector of A attributes. Each takes the A binary targets as one group (`Targets`, no missing
labels, the `Centred` features of those rows) and returns one number. Higher is better for both.

LogME, multi-output (You et al., ICML 2021: for a multi-output task, the mean evidence over the output columns):
the columns are the A attribute indicators y_a = 1[attribute a present] (the larger of its two labels), each a
Bayesian linear regression on the features as in `logme`; the score is (1/A) sum_a L_a / n. It is not the mean
of the per-attribute LogME, which averages both one-hot columns (y_a and 1 - y_a) of each attribute.

H-score of the label vector: H(f) = tr(cov(f)^+ cov(f, y) cov(y)^+ cov(y, f)), y the (A,) indicator vector. For
one attribute E[f|y] is linear in the one-hot y, so its between-class covariance cov(E[f|y]) is exactly
cov(f, y) cov(y)^-1 cov(y, f), and this is Bao et al.'s H-score of that attribute. For A attributes it is the
same construction with E[f|y] replaced by the best linear function of the attribute vector: the sum of the squared
canonical correlations between the features and the attributes, i.e. how much of the feature space the
attributes explain linearly. Why this form: the H-score of the joint label (one class per distinct attribute
vector, up to 2^A of them) has nearly one image per class at A = 40 and tends to the dimension D whatever the
features; the mean of the per-attribute H-scores counts correlated attributes once per copy, while cov(y)^+
counts a duplicated attribute once. With uncorrelated attributes (cov(y) diagonal) it is the sum of the
per-attribute H-scores.
"""
from __future__ import annotations

import numpy as np

from .common import Targets, one_blas_thread
from .logme import LOGME_MAX_ITER, LOGME_TOL, evidence_columns, feature_eigh


def _indicators(t: Targets) -> np.ndarray:
    if (t.k != 2).any():
        raise ValueError(f"a multi-label target is binary attributes; got targets with {sorted(set(t.k))} classes")
    return (t.codes == 1).astype(np.float64)


def logme_multilabel(t: Targets, *, logme_tol: float = LOGME_TOL, logme_max_iter: int = LOGME_MAX_ITER) -> float:
    """Mean LogME evidence / n over the attribute indicator columns of `t`."""
    _indicators(t)
    c = t.centred
    n, d = c.Z.shape
    sigma, vecs = feature_eigh(c)
    ones = t.offsets[:-1] + 1                         # the stacked row of each attribute's class 1
    fty = t.centred_sums[ones] + t.counts[ones][:, None] * c.mean   # F^T y_a = centred class sum + n_1 mean
    ev = evidence_columns(sigma, vecs.T @ fty.T, t.counts[ones], n, d, logme_tol, logme_max_iter)[0]
    return float(ev.mean())


def hscore_multilabel(t: Targets) -> float:
    """tr(cov(f)^+ cov(f, y) cov(y)^+ cov(y, f)) over the attribute vector y of `t`."""
    y = _indicators(t)
    c = t.centred
    n = len(c.Z)
    ones = t.offsets[:-1] + 1
    cov_fy = t.centred_sums[ones].T / n               # (D, A): Z^T y_a / n, Z centred
    p = y.mean(0)
    cov_y = y.T @ y / n - np.outer(p, p)
    with one_blas_thread():
        pinv_f = np.linalg.pinv(c.gram / n, hermitian=True)
        pinv_y = np.linalg.pinv(cov_y, hermitian=True)
    return float(np.einsum("da,da->", pinv_f @ cov_fy, cov_fy @ pinv_y))
