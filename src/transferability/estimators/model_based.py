"""Model-based transferability estimators, for comparison with the paper's label-only CE (NCE = -H(Y|Z)).

LEEP needs the source model's softmax outputs on the target's training inputs; LogME and the two H-scores
need its features. Pure numpy, float64 throughout (float32 features are centred into float64), deterministic.
Higher is better for all four. TransRate, GBC and N-LEEP live in `transrate_gbc_nleep`, reached through
`model_based_scores` as well.

All targets of one source row at once (`model_based_scores`): the class sums that every estimator needs
(sum of theta(x_i) or of f(x_i) over the rows of each class of each target) are one product of the inputs
with a stacked one-hot matrix; the feature Gram matrix, its eigendecomposition (LogME) and the
covariance pseudo-inverse and shrunk inverse (H-scores) are computed once per *set of labelled rows*:
targets without missing labels (-1) share one, and a target with missing labels shares them only with the
targets missing exactly the same rows (recomputed from those rows; nothing is imputed).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

# The last three live in `transrate_gbc_nleep` (which builds on this module's class sums and LEEP).
ESTIMATORS = ("leep", "logme", "hscore", "hscore_reg", "transrate", "gbc", "nleep")
_HERE = ("logme", "hscore", "hscore_reg")
# Relative change of alpha and beta below which the LogME fixed point counts as reached. Each iteration
# costs O(D) per one-hot column (it runs in the eigenbasis), so a tight tolerance is nearly free; at 1e-6
# the evidence / n agrees with a brute-force maximisation to ~1e-14 on the test problems (the maximum is
# flat to second order in alpha, beta).
LOGME_TOL = 1e-6
LOGME_MAX_ITER = 1000
# Targets with more classes than this get their class sums from a sparse one-hot product.
_MAX_DENSE_CLASSES = 64
_BLOCK_ELEMENTS = 1 << 24   # one-hot / score blocks of at most 128 MiB of float64


def _encode(Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compact class codes 0..K_t-1 per column (-1 stays missing) and K_t per column."""
    Y = np.asarray(Y)
    if Y.ndim != 2 or not np.issubdtype(Y.dtype, np.integer):
        raise ValueError(f"labels must be an (n, T) integer array with -1 = missing, got {Y.dtype} {Y.shape}")
    codes = np.full(Y.shape, -1, dtype=np.int64)
    k = np.zeros(Y.shape[1], dtype=np.int64)
    for t in range(Y.shape[1]):
        ok = Y[:, t] >= 0
        v = Y[ok, t]
        if len(v) and v.max() <= 4 * len(v):   # small codes: a lookup table, no sort
            present = np.bincount(v) > 0
            codes[ok, t] = (np.cumsum(present) - 1)[v]
            k[t] = present.sum()
        else:
            uniq, codes[ok, t] = np.unique(v, return_inverse=True)
            k[t] = len(uniq)
    return codes, k


def _class_sums(X: np.ndarray, codes: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Row c = offsets[t] + y of the result is the sum of X's rows i with codes[i, t] == y: (sum K_t, X cols).

    Few-class targets go through a dense one-hot product in row blocks (BLAS); many-class ones (an
    identity task) through a sparse one, whose cost does not grow with the number of classes."""
    offsets = np.concatenate([[0], np.cumsum(k)])
    out = np.zeros((offsets[-1], X.shape[1]))
    dense = np.flatnonzero(k <= _MAX_DENSE_CLASSES)
    if len(dense):
        cols = np.concatenate([np.arange(offsets[t], offsets[t + 1]) for t in dense])
        pos = np.full(offsets[-1], -1)
        pos[cols] = np.arange(len(cols))
        block = max(1, _BLOCK_ELEMENTS // max(len(cols), 1))
        acc = np.zeros((len(cols), X.shape[1]))
        for start in range(0, len(X), block):
            c = codes[start:start + block, dense]
            onehot = np.zeros((len(c), len(cols)))
            r, j = np.nonzero(c >= 0)
            onehot[r, pos[offsets[dense[j]] + c[r, j]]] = 1.0
            xb = X[start:start + block]
            # The wide operand goes first: OpenBLAS ran (2 x n) @ (n x 64) 180x slower than its transpose.
            acc += (xb.T @ onehot).T if X.shape[1] >= len(cols) else onehot.T @ xb
        out[cols] = acc
    for t in np.flatnonzero(k > _MAX_DENSE_CLASSES):
        ok = np.flatnonzero(codes[:, t] >= 0)
        m = sp.csr_matrix((np.ones(len(ok)), (codes[ok, t], ok)), shape=(k[t], len(X)))
        out[offsets[t]:offsets[t + 1]] = m @ X
    return out


def _leep_targets(theta: np.ndarray, codes: np.ndarray, k: np.ndarray) -> np.ndarray:
    """LEEP of every target column (see `leep`), sharing the joint and the score products."""
    offsets = np.concatenate([[0], np.cumsum(k)])
    joint = _class_sums(theta, codes, k)                   # n_t * P^(y, z), stacked over targets
    cond = np.zeros_like(joint)
    for t in range(len(k)):
        j = joint[offsets[t]:offsets[t + 1]]
        pz = j.sum(0)                                      # n_t * P^(z); n_t cancels in P^(y|z)
        np.divide(j, pz, out=cond[offsets[t]:offsets[t + 1]], where=pz > 0)   # never-predicted z: 0
    total = np.zeros(len(k))
    block = max(1, _BLOCK_ELEMENTS // max(offsets[-1], 1))
    for start in range(0, len(theta), block):
        c = codes[start:start + block]
        q = theta[start:start + block] @ cond.T            # q[i, (t, y)] = sum_z P^(y|z) theta(x_i)_z
        r, t = np.nonzero(c >= 0)
        total += np.bincount(t, weights=np.log(q[r, offsets[t] + c[r, t]]), minlength=len(k))
    n_t = (codes >= 0).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_t > 0, total / n_t, np.nan)


def _logme_columns(sigma: np.ndarray, g: np.ndarray, yy: np.ndarray, n: int, d: int,
                   tol: float, max_iter: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Supremum of the log evidence / n of each one-hot column over alpha, beta > 0, and the last alpha, beta
    (You et al. 2021, Alg. 1 and Eq. 2), all columns iterated together in the eigenbasis of
    F^T F = V diag(sigma) V^T.

    g = V^T F^T y per column (D, C); yy = y^T y. With m~ = V^T m = beta g / (alpha + beta sigma):
    m^T m = |m~|^2 and |F m - y|^2 = y^T y - 2 m~.g + sum sigma m~^2, so no n-sized work per iteration.
    Columns are frozen once converged, so a column's result does not depend on its neighbours.

    The supremum is the larger of the fixed point and the two boundaries the evidence can approach:
    alpha = inf (w = 0: the features do not help; gamma -> 0) and, when F F^T is invertible (rank F = n,
    so every y is fitted exactly), beta = inf (no noise; gamma -> n), where y ~ N(0, F F^T / alpha) and
    the maximum over alpha is in closed form (`_exact_fit_limit`). With rank F < n and y in the span of F
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
        best = np.maximum(best, _exact_fit_limit(sigma[nz], g[nz], n))
    else:   # y in the span of fewer than n directions: the noise-free fit has unbounded density
        in_span = yy - (g[nz] ** 2 / s[nz]).sum(0) <= 1e-12 * yy
        if in_span.any():
            warnings.warn(f"LogME: {in_span.sum()} column(s) lie in the span of the features with rank F = "
                          f"{nz.sum()} < n = {n}: the evidence is unbounded (+inf)", RuntimeWarning, stacklevel=3)
            best = np.where(in_span, np.inf, best)
    return best / n, alpha, beta


def _exact_fit_limit(sigma: np.ndarray, g: np.ndarray, n: int) -> np.ndarray:
    """sup over alpha of the evidence at beta = inf when F F^T (n x n) is invertible: y ~ N(0, F F^T / alpha).
    Its non-zero eigenvalues are those of F^T F (sigma, n of them) with eigenvectors F v / sqrt(sigma), so
    q = y^T (F F^T)^-1 y = sum g^2 / sigma^2 and log|F F^T| = sum log sigma; alpha* = n / q and
    L = -n/2 log 2pi - 1/2 sum log sigma + n/2 log(n / q) - n/2."""
    q = (g ** 2 / (sigma ** 2)[:, None]).sum(0)
    return -n / 2 * np.log(2 * np.pi) - np.log(sigma).sum() / 2 + n / 2 * np.log(n / q) - n / 2


def _one_blas_thread():
    """The D x D decompositions run on one BLAS thread: LAPACK's many small steps gain little from threads,
    and on a busy machine OpenBLAS's thread hand-offs slowed eigh(512 x 512) from 0.04 s to 4 s."""
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    return threadpool_limits(1, user_api="blas")


class Centred:
    """What every feature-based estimator of one set of labelled rows starts from, computed once: the
    float64 feature mean, the centred features Z = F - mean (float64 even for float32 F) and their Gram
    Z^T Z (the one n x D^2 product; at CelebA size each recomputation cost seconds)."""

    def __init__(self, F: np.ndarray):
        self.mean = F.mean(0, dtype=np.float64)
        self.Z = np.subtract(F, self.mean, dtype=np.float64)
        self.gram = self.Z.T @ self.Z


def _ledoit_wolf_shrinkage(Z: np.ndarray, gram: np.ndarray) -> float:
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


def _feature_scores(c: Centred, codes: np.ndarray, k: np.ndarray, which, tol, max_iter) -> dict:
    """LogME / H-score / regularised H-score of targets that share the same labelled rows (all of c.Z)."""
    if not which:
        return {}
    n, d = c.Z.shape
    offsets = np.concatenate([[0], np.cumsum(k)])
    counts = np.concatenate([np.bincount(codes[:, t], minlength=k[t]) for t in range(len(k))]).astype(float)
    mean, fc, gram_c = c.mean, c.Z, c.gram                 # centred Gram: H-scores; + n mean mean^T: LogME
    sums_c = _class_sums(fc, codes, k)                     # n_y (mu_y - mu) per stacked class row
    out = {}
    def per_target(v):
        return np.array([v[offsets[t]:offsets[t + 1]].sum() for t in range(len(k))])

    if "logme" in which:
        with _one_blas_thread():
            sigma, vecs = np.linalg.eigh(gram_c + n * np.outer(mean, mean))
        sigma = np.clip(sigma, 0.0, None)
        # F^T y_c = class sum of F = class sum of fc + n_c mean.
        g = vecs.T @ (sums_c + counts[:, None] * mean).T
        ev = _logme_columns(sigma, g, counts, n, d, tol, max_iter)[0]
        out["logme"] = per_target(ev) / k
    cov = gram_c / n
    if "hscore" in which:
        with _one_blas_thread():
            pinv = np.linalg.pinv(cov, hermitian=True)
        # tr(cov^+ cov(E[f|y])) = sum_y (n_y / n) (mu_y - mu)^T cov^+ (mu_y - mu)
        out["hscore"] = per_target(np.einsum("cd,cd->c", sums_c @ pinv, sums_c) / counts) / n
    if "hscore_reg" in which:
        a = _ledoit_wolf_shrinkage(fc, gram_c)
        shrunk = (1 - a) * cov + a * np.trace(cov) / d * np.eye(d)
        with _one_blas_thread():
            solved = np.linalg.solve(shrunk, sums_c.T).T
        out["hscore_reg"] = (1 - a) * per_target(np.einsum("cd,cd->c", solved, sums_c) / counts) / n
    return out


def model_based_scores(features: np.ndarray, source_probs: np.ndarray | None, Y: np.ndarray,
                       which=ESTIMATORS, *, tol: float = LOGME_TOL, max_iter: int = LOGME_MAX_ITER,
                       **choices) -> pd.DataFrame:
    """One row per target column of Y (n, T) (int codes, -1 = missing, left out per target), one column
    per estimator in `which`. LEEP needs `source_probs` (n, K_z); with None its column is NaN.
    A target without labelled rows scores NaN everywhere. `choices`: the settings of TransRate, GBC and
    N-LEEP (`transrate_gbc_nleep.DEFAULTS` names them)."""
    which = tuple(which)
    for w in which:
        if w not in ESTIMATORS:
            raise ValueError(f"unknown estimator {w!r} (valid: {', '.join(ESTIMATORS)})")
    Y = np.asarray(Y)
    codes, k = _encode(Y)
    n, T = codes.shape
    out = pd.DataFrame(np.nan, index=pd.RangeIndex(T), columns=list(which))
    if "leep" in which and source_probs is not None:
        theta = np.asarray(source_probs, dtype=np.float64)
        if theta.ndim != 2 or len(theta) != n:
            raise ValueError(f"source_probs must be (n={n}, K_z), got {theta.shape}")
        if not np.isfinite(theta).all() or (theta < 0).any() or not np.allclose(theta.sum(1), 1, atol=1e-3):
            raise ValueError("source_probs must be probability rows: finite, non-negative, summing to 1")
        out["leep"] = _leep_targets(theta, codes, k)
    feat = [w for w in which if w != "leep"]
    if feat:
        from . import transrate_gbc_nleep as toolkit

        unknown = set(choices) - set(toolkit.DEFAULTS)
        if unknown:
            raise ValueError(f"unknown estimator setting(s) {sorted(unknown)} (valid: {', '.join(toolkit.DEFAULTS)})")
        F = np.asarray(features)
        if not np.issubdtype(F.dtype, np.floating):
            F = F.astype(np.float64)
        if F.ndim != 2 or len(F) != n:
            raise ValueError(f"features must be (n={n}, D), got {F.shape}")
        labelled = codes >= 0
        # Targets grouped by their labelled rows, keyed by the packed mask (np.unique over the mask rows sorted
        # 41 x 162,770 booleans: seconds per call at CelebA size).
        packed = np.packbits(labelled, axis=0)
        groups: dict[bytes, list[int]] = {}
        for t in range(T):
            groups.setdefault(packed[:, t].tobytes(), []).append(t)
        for cols in map(np.array, groups.values()):
            mask = labelled[:, cols[0]]
            if not mask.any():
                continue
            rows = slice(None) if mask.all() else mask
            centred = Centred(F[rows])   # float64 from here on
            res = _feature_scores(centred, codes[rows][:, cols], k[cols], [w for w in feat if w in _HERE], tol,
                                  max_iter)
            res.update(toolkit.scores(F[rows], codes[rows][:, cols], k[cols], feat, centred=centred, **choices))
            del centred
            for name, v in res.items():
                out.loc[cols, name] = v
    return out


def _single(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (y < 0).any():
        raise ValueError("y must be a 1-d array of integer class codes >= 0 "
                         "(for missing labels use model_based_scores with -1)")
    return y[:, None]


def leep(source_probs: np.ndarray, y: np.ndarray) -> float:
    """LEEP (Nguyen, Hassner, Seeger, Archambeau, ICML 2020, Eq. 1-2).

    With theta(x_i) the source softmax over source labels z: empirical joint
    P^(y, z) = 1/n sum_i theta(x_i)_z 1[y_i = y], conditional P^(y|z) = P^(y, z) / P^(z), and
    LEEP = 1/n sum_i log sum_z P^(y_i|z) theta(x_i)_z. A source class never predicted (P^(z) = 0)
    has theta(x_i)_z = 0 for every i, so its P^(y|z) (set to 0) never contributes. With one-hot
    theta (the source's hard labels) LEEP = -H(Y|Z) of the paper's Eq. 7."""
    return float(model_based_scores(None, source_probs, _single(y), which=("leep",))["leep"].iloc[0])


def logme(features: np.ndarray, y: np.ndarray, *, tol: float = LOGME_TOL, max_iter: int = LOGME_MAX_ITER) -> float:
    """LogME (You, Liu, Wang, Long, ICML 2021, Eq. 2 and Algorithm 1).

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
    it has a closed form (`_exact_fit_limit`); the larger of that and the fixed point is returned. With
    rank F < n and a column exactly in the span of F the evidence is unbounded: +inf, with a warning.
    LogME = (1/K) sum_k L_k / n. Features are used as given (no centring, no bias), as in the paper."""
    return float(model_based_scores(features, None, _single(y), which=("logme",), tol=tol,
                                    max_iter=max_iter)["logme"].iloc[0])


def hscore(features: np.ndarray, y: np.ndarray) -> float:
    """H-score (Bao et al., ICIP 2019, Def. 2): H(f) = tr(cov(f)^+ cov(E[f|y])), with the pseudo-inverse of
    the (1/n) feature covariance and the covariance of the class-conditional means, weighted by class
    frequency. Invariant to invertible linear maps of the features when cov(f) is invertible."""
    return float(model_based_scores(features, None, _single(y), which=("hscore",))["hscore"].iloc[0])


def hscore_regularized(features: np.ndarray, y: np.ndarray) -> float:
    """Shrinkage H-score (Ibrahim, Ponomareva, Mazumder, "Newer is not always better: rethinking
    transferability metrics, their peculiarities, stability and performance"):
    H_a(f) = tr(cov_a(f)^-1 (1 - a) cov(E[f|y])), cov_a = (1 - a) cov(f) + a tr(cov(f))/D I with the
    Ledoit-Wolf shrinkage a (sklearn.covariance.ledoit_wolf_shrinkage)."""
    return float(model_based_scores(features, None, _single(y), which=("hscore_reg",))["hscore_reg"].iloc[0])
