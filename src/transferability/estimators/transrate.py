"""TransRate (Huang et al., ICML 2022) as in TLlib, of every target of a group at once. Higher is better.

With Z the globally centred features, TrR = R(Z, eps) - (1/K) sum_y R(Z_y, eps),
R(Z, eps) = 1/2 log det(I + Z^T Z / (m eps)), m = rows of Z, Z_y the rows of class y (not re-centred):
TLlib's constants (scale 1 / (m eps), classes weighted 1/K), which are what the toolkits report.
"""
from __future__ import annotations

import numpy as np

from .common import Targets, one_blas_thread


def transrate_targets(t: Targets, *, transrate_eps: float) -> np.ndarray:
    """TransRate of every target of `t` (one group: no missing labels) on `t.centred`'s features, with
    distortion `transrate_eps`. Per target, the Gram of its largest class is the full Gram minus that of the
    other rows, so a target costs (rows outside its largest class) x D^2, not n x D^2."""
    Z, gram, codes, k, eps = t.centred.Z, t.centred.gram, t.codes, t.k, transrate_eps
    with one_blas_thread():
        total = _rate_of_gram(gram, len(Z), eps)
    out = np.empty(len(k))
    for j in range(len(k)):
        counts = np.bincount(codes[:, j], minlength=k[j])
        big = int(np.argmax(counts))
        others = np.flatnonzero(codes[:, j] != big)
        rest = Z[others]
        rest_gram = rest.T @ rest
        order = np.argsort(codes[others, j], kind="stable")
        ends = np.cumsum(np.bincount(codes[others, j], minlength=k[j]))
        with one_blas_thread():
            rates = [_rate_of_gram(gram - rest_gram, counts[big], eps)]
            if k[j] == 2:   # the other rows are the other class: its Gram is known
                rates.append(_rate_of_gram(rest_gram, len(rest), eps))
            else:
                rates += [_rate(rest[order[ends[y] - counts[y]:ends[y]]], eps) for y in range(k[j]) if y != big]
        out[j] = total - np.mean(rates)
    return out


def _rate_of_gram(gram: np.ndarray, m: int, eps: float) -> float:
    """R = 1/2 log det(I + gram / (m eps)) by Cholesky (the matrix is symmetric positive definite)."""
    chol = np.linalg.cholesky(np.eye(len(gram)) + gram / (m * eps))
    return float(np.log(np.diag(chol)).sum())


def _rate(Z: np.ndarray, eps: float) -> float:
    """R(Z, eps) for Z (m, D) through whichever Gram is smaller: det(I + A^T A) = det(I + A A^T)."""
    return _rate_of_gram(Z.T @ Z if Z.shape[1] <= len(Z) else Z @ Z.T, len(Z), eps)
