"""The H-score and its shrinkage variant of every target of a group at once. Higher is better for both.

H-score (Bao et al., ICIP 2019, Def. 2): H(f) = tr(cov(f)^+ cov(E[f|y])), with the pseudo-inverse of the
(1/n) feature covariance and the covariance of the class-conditional means, weighted by class frequency.
Invariant to invertible linear maps of the features when cov(f) is invertible.

Shrinkage H-score (Ibrahim, Ponomareva, Mazumder, "Newer is not always better: rethinking transferability
metrics, their peculiarities, stability and performance"): H_a(f) = tr(cov_a(f)^-1 (1 - a) cov(E[f|y])),
cov_a = (1 - a) cov(f) + a tr(cov(f))/D I with the Ledoit-Wolf shrinkage a
(sklearn.covariance.ledoit_wolf_shrinkage).

Both read tr(M^-1 cov(E[f|y])) = sum_y (n_y / n) (mu_y - mu)^T M^-1 (mu_y - mu) off the centred class sums.
"""
from __future__ import annotations

import numpy as np

from .common import Targets, one_blas_thread


def hscore_targets(t: Targets) -> np.ndarray:
    """H-score of every target of `t` (one group: no missing labels) on `t.centred`'s features."""
    c, sums = t.centred, t.centred_sums
    n = len(c.Z)
    with one_blas_thread():
        pinv = np.linalg.pinv(c.gram / n, hermitian=True)
    return t.per_target(np.einsum("cd,cd->c", sums @ pinv, sums) / t.counts) / n


def hscore_reg_targets(t: Targets) -> np.ndarray:
    """Shrinkage H-score of every target of `t` (one group: no missing labels) on `t.centred`'s features."""
    c, sums = t.centred, t.centred_sums
    n, d = c.Z.shape
    cov = c.gram / n
    a = ledoit_wolf_shrinkage(c.Z, c.gram)
    shrunk = (1 - a) * cov + a * np.trace(cov) / d * np.eye(d)
    with one_blas_thread():
        solved = np.linalg.solve(shrunk, sums.T).T
    return (1 - a) * t.per_target(np.einsum("cd,cd->c", solved, sums) / t.counts) / n


def ledoit_wolf_shrinkage(Z: np.ndarray, gram: np.ndarray) -> float:
    """sklearn.covariance.ledoit_wolf_shrinkage(Z, assume_centered=True) from the Gram Z^T Z: its two
    n x D^2 products reduce to sum_ij (Z^T Z)_ij^2 and sum_ij ((Z*Z)^T (Z*Z))_ij = sum_k |z_k|^4."""
    n, d = Z.shape
    if d == 1:
        return 0.0
    trace = np.trace(gram)
    mu = trace / (n * d)
    row_sq = np.einsum("ij,ij->i", Z, Z)
    beta_ = row_sq @ row_sq
    delta_ = np.sum(gram * gram) / n ** 2
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * trace / n + d * mu ** 2) / d
    beta = min(beta, delta)
    return 0.0 if beta == 0 else beta / delta
