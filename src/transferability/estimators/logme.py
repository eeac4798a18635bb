"""LogME (You, Liu, Wang, Long, ICML 2021, Eq. 2 and Algorithm 1) of every target of a group at once.

Per one-hot column y of the K target classes: Bayesian linear regression y ~ N(F w, 1/beta),
w ~ N(0, I/alpha), with log evidence
L(alpha, beta) = n/2 log beta + D/2 log alpha - n/2 log 2pi - beta/2 |F m - y|^2 - alpha/2 m^T m
- 1/2 log|A|, A = alpha I + beta F^T F, m = beta A^-1 F^T y, maximised by the fixed-point iteration
gamma = sum_i beta sigma_i / (alpha + beta sigma_i), alpha <- gamma / m^T m,
beta <- (n - gamma) / |F m - y|^2 (sigma: eigenvalues of F^T F) from alpha = beta = 1, until both change
by less than `tol` relatively (at most `max_iter` steps; a warning otherwise). When the features do not
help, alpha diverges (gamma -> 0): the iteration stops once gamma < `tol` and the maximum is the limit
alpha = inf, w = 0, beta = n / y^T y, L = n/2 (log(n / y^T y) - 1 - log 2pi).
When rank F = n (D >= n) every column can be fitted exactly and the supremum may lie at beta = inf, where
it has a closed form (`exact_fit_limit`); the larger of that and the fixed point is returned. With
rank F < n and a column exactly in the span of F the evidence is unbounded: +inf, with a warning.
LogME = (1/K) sum_k L_k / n. Features are used as given (no centring, no bias), as in the paper.
Higher is better.
"""
from __future__ import annotations

import warnings

import numpy as np

from .common import Centred, Targets, one_blas_thread

# Relative change of alpha and beta below which the fixed point counts as reached. Each iteration costs
# O(D) per one-hot column (it runs in the eigenbasis), so a tight tolerance is nearly free; at 1e-6 the
# evidence / n agrees with a brute-force maximisation to ~1e-14 on the test problems (the maximum is flat to
# second order in alpha, beta).
LOGME_TOL = 1e-6
LOGME_MAX_ITER = 1000


def logme_targets(t: Targets, *, logme_tol: float = LOGME_TOL, logme_max_iter: int = LOGME_MAX_ITER) -> np.ndarray:
    """LogME of every target of `t` (one group: no missing labels) on `t.centred`'s features. F^T F is the
    centred Gram plus n mean mean^T, and F^T y_c the centred class sum plus n_c mean."""
    c = t.centred
    n, d = c.Z.shape
    sigma, vecs = feature_eigh(c)
    g = vecs.T @ (t.centred_sums + t.counts[:, None] * c.mean).T
    ev = evidence_columns(sigma, g, t.counts, n, d, logme_tol, logme_max_iter)[0]
    return t.per_target(ev) / t.k


def feature_eigh(c: Centred) -> tuple[np.ndarray, np.ndarray]:
    """(eigenvalues clipped at 0, eigenvectors) of F^T F = Z^T Z + n mean mean^T: the uncentred features' Gram."""
    n = len(c.Z)
    with one_blas_thread():
        sigma, vecs = np.linalg.eigh(c.gram + n * np.outer(c.mean, c.mean))
    return np.clip(sigma, 0.0, None), vecs


def evidence_columns(sigma: np.ndarray, g: np.ndarray, yy: np.ndarray, n: int, d: int,
                     tol: float, max_iter: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Supremum of the log evidence / n of each one-hot column over alpha, beta > 0, and the last alpha, beta
    (Alg. 1 and Eq. 2), all columns iterated together in the eigenbasis of F^T F = V diag(sigma) V^T.

    g = V^T F^T y per column (D, C); yy = y^T y. With m~ = V^T m = beta g / (alpha + beta sigma):
    m^T m = |m~|^2 and |F m - y|^2 = y^T y - 2 m~.g + sum sigma m~^2, so no n-sized work per iteration.
    Columns are frozen once converged, so a column's result does not depend on its neighbours.

    The supremum is the larger of the fixed point and the two boundaries the evidence can approach:
    alpha = inf (w = 0: the features do not help; gamma -> 0) and, when F F^T is invertible (rank F = n,
    so every y is fitted exactly), beta = inf (no noise; gamma -> n), where y ~ N(0, F F^T / alpha) and
    the maximum over alpha is in closed form (`exact_fit_limit`). With rank F < n and y in the span of F
    the evidence is unbounded: +inf, with a warning."""
    c = g.shape[1]
    alpha, beta = np.ones(c), np.ones(c)
    active = np.ones(c, dtype=bool)
    s = sigma[:, None]
    tiny = np.finfo(np.float64).tiny
    nz = sigma > sigma.max(initial=0.0) * max(n, d) * np.finfo(np.float64).eps   # numerical rank of F
    full_rank = nz.sum() == n
    for _ in range(max_iter):
        a, b, ga = alpha[active], beta[active], g[:, active]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            gamma = (b * s / (a + b * s)).sum(0)
            m = b * ga / (a + b * s)
            m2 = (m * m).sum(0)
            res = np.maximum(yy[active] - 2 * (m * ga).sum(0) + (s * m * m).sum(0), tiny)
            new_a, new_b = gamma / np.maximum(m2, tiny), (n - gamma) / res
        # gamma -> 0: alpha diverges (the sup is the zero-weight model below); gamma -> n with rank F = n:
        # beta diverges (the sup is the exact-fit limit); either way the iteration only creeps towards it.
        done = (((np.abs(new_a - a) <= tol * a) & (np.abs(new_b - b) <= tol * b)) | (gamma < tol)
                | (full_rank & (n - gamma < tol)) | ~np.isfinite(new_a * new_b))
        alpha[active], beta[active] = new_a, new_b
        active[np.flatnonzero(active)[done]] = False
        if not active.any():
            break
    else:
        warnings.warn(f"LogME: {active.sum()} column(s) did not converge in {max_iter} iterations "
                      f"(tol {tol}); their evidence is taken at the last iterate", RuntimeWarning, stacklevel=3)
    # Eq. 2 at the final (alpha, beta), with m the posterior mean at those values.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        m = beta * g / (alpha + beta * s)
        m2 = (m * m).sum(0)
        res = np.maximum(yy - 2 * (m * g).sum(0) + (s * m * m).sum(0), 0.0)
        logdet_a = np.log(alpha + beta * s).sum(0) + (d - len(sigma)) * np.log(alpha)
        ev = (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
              - beta / 2 * res - alpha / 2 * m2 - logdet_a / 2)
    ev = np.where(np.isfinite(ev), ev, -np.inf)        # an iterate that overflowed on its way to a boundary
    zero_weight = n / 2 * (np.log(n / yy) - 1 - np.log(2 * np.pi))
    best = np.maximum(ev, zero_weight)
    if full_rank:
        best = np.maximum(best, exact_fit_limit(sigma[nz], g[nz], n))
    else:   # y in the span of fewer than n directions: the noise-free fit has unbounded density
        in_span = yy - (g[nz] ** 2 / s[nz]).sum(0) <= 1e-12 * yy
        if in_span.any():
            warnings.warn(f"LogME: {in_span.sum()} column(s) lie in the span of the features with rank F = "
                          f"{nz.sum()} < n = {n}: the evidence is unbounded (+inf)", RuntimeWarning, stacklevel=3)
            best = np.where(in_span, np.inf, best)
    return best / n, alpha, beta


def exact_fit_limit(sigma: np.ndarray, g: np.ndarray, n: int) -> np.ndarray:
    """sup over alpha of the evidence at beta = inf when F F^T (n x n) is invertible: y ~ N(0, F F^T / alpha).
    Its non-zero eigenvalues are those of F^T F (sigma, n of them) with eigenvectors F v / sqrt(sigma), so
    q = y^T (F F^T)^-1 y = sum g^2 / sigma^2 and log|F F^T| = sum log sigma; alpha* = n / q and
    L = -n/2 log 2pi - 1/2 sum log sigma + n/2 log(n / q) - n/2."""
    q = (g ** 2 / (sigma ** 2)[:, None]).sum(0)
    return -n / 2 * np.log(2 * np.pi) - np.log(sigma).sum() / 2 + n / 2 * np.log(n / q) - n / 2
