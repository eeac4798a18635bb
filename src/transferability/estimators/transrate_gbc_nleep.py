"""TransRate, GBC and N-LEEP: the feature-based estimators of the reference toolkits (TLlib, google-research's
stable_transfer) that `model_based` does not have. Higher is better for all three.

Same shape as `model_based`: every target of a transfer row at once, on rows that are labelled for all of
them (`model_based.model_based_scores` groups targets by their labelled rows and calls `scores` per group).
What the targets share is computed once: the centred features and their Gram matrix (`model_based.Centred`,
shared with LogME and the H-scores), one PCA (GBC, N-LEEP) and one Gaussian mixture per number of target
classes (N-LEEP). Float64, deterministic given `seed` and the thread count.
"""
from __future__ import annotations

import numpy as np

from .model_based import Centred, _class_sums, _encode, _leep_targets, _one_blas_thread, _single

ESTIMATORS = ("transrate", "gbc", "nleep")
GAUSSIANS = ("spherical", "diagonal")
_PAIR_BLOCK = 1 << 20   # GBC: class pairs x dimensions per block (8 MiB of float64)
_POSTERIOR_ROWS = 8192  # N-LEEP: rows per block of mixture posteriors
# The reference choices (TLlib; stable_transfer's target-selection config; Li et al. 2021). The run's values
# come from `estimators:` in conf/config.yaml, which says why each was chosen.
DEFAULTS = dict(transrate_eps=1e-4, gbc_pca_dim=64, gbc_gaussian="spherical", gbc_var_floor=1e-4,
                nleep_pca_variance=0.8, nleep_components_per_class=5, nleep_fit_rows=10_000, seed=0)


def scores(F: np.ndarray, codes: np.ndarray, k: np.ndarray, which, *, centred: Centred | None = None,
           **choices) -> dict:
    """{estimator: (T,) scores} for the target columns of `codes` (n, T), compact class codes 0..k_t-1 and
    no missing labels, on features F (n, D); `centred`: F's `model_based.Centred` when the caller has it."""
    c = {**DEFAULTS, **choices}
    which = [w for w in which if w in ESTIMATORS]
    if not which:
        return {}
    centred = centred or Centred(np.asarray(F))
    Z, gram = centred.Z, centred.gram                # centred features and their Gram: shared by all three
    out = {}
    if "transrate" in which:
        out["transrate"] = transrate_targets(Z, gram, codes, k, c["transrate_eps"])
    if "gbc" in which or "nleep" in which:
        with _one_blas_thread():
            w, V = np.linalg.eigh(gram / len(Z))
        w, V = np.clip(w[::-1], 0.0, None), V[:, ::-1]   # PCA: sklearn's full-SVD PCA up to component signs
    if "gbc" in which:
        out["gbc"] = gbc_targets(Z @ V[:, :min(c["gbc_pca_dim"], len(w))], codes, k, c["gbc_gaussian"],
                                 c["gbc_var_floor"])
    if "nleep" in which:
        ratio = np.cumsum(w) / w.sum() if w.sum() > 0 else np.ones(len(w))
        p = min(int(np.searchsorted(ratio, c["nleep_pca_variance"], side="right")) + 1, len(w))   # sklearn's rule
        out["nleep"] = nleep_targets(Z @ V[:, :p], codes, k, c["nleep_components_per_class"], c["nleep_fit_rows"],
                                     c["seed"])
    return out


# ---------- TransRate ----------

def _rate_of_gram(gram: np.ndarray, m: int, eps: float) -> float:
    """R = 1/2 log det(I + gram / (m eps)) by Cholesky (the matrix is symmetric positive definite)."""
    chol = np.linalg.cholesky(np.eye(len(gram)) + gram / (m * eps))
    return float(np.log(np.diag(chol)).sum())


def _rate(Z: np.ndarray, eps: float) -> float:
    """R(Z, eps) for Z (m, D) through whichever Gram is smaller: det(I + A^T A) = det(I + A A^T)."""
    return _rate_of_gram(Z.T @ Z if Z.shape[1] <= len(Z) else Z @ Z.T, len(Z), eps)


def transrate_targets(Z: np.ndarray, gram: np.ndarray, codes: np.ndarray, k: np.ndarray, eps: float) -> np.ndarray:
    """TransRate (Huang et al., ICML 2022) as in TLlib: with Z the globally centred features (gram = Z^T Z),
    TrR = R(Z, eps) - (1/K) sum_y R(Z_y, eps), R(Z, eps) = 1/2 log det(I + Z^T Z / (m eps)), m = rows of Z,
    Z_y the rows of class y (not re-centred): TLlib's constants (scale 1 / (m eps), classes weighted 1/K),
    which are what the toolkits report. Per target, the Gram of
    the largest class is the full Gram minus that of the other rows, so a target costs
    (rows outside its largest class) x D^2, not n x D^2."""
    with _one_blas_thread():
        total = _rate_of_gram(gram, len(Z), eps)
    out = np.empty(len(k))
    for t in range(len(k)):
        counts = np.bincount(codes[:, t], minlength=k[t])
        big = int(np.argmax(counts))
        others = np.flatnonzero(codes[:, t] != big)
        rest = Z[others]
        rest_gram = rest.T @ rest
        order = np.argsort(codes[others, t], kind="stable")
        ends = np.cumsum(np.bincount(codes[others, t], minlength=k[t]))
        with _one_blas_thread():
            rates = [_rate_of_gram(gram - rest_gram, counts[big], eps)]
            if k[t] == 2:   # the other rows are the other class: its Gram is known
                rates.append(_rate_of_gram(rest_gram, len(rest), eps))
            else:
                rates += [_rate(rest[order[ends[y] - counts[y]:ends[y]]], eps) for y in range(k[t]) if y != big]
        out[t] = total - np.mean(rates)
    return out


# ---------- GBC ----------

def bhattacharyya(mu1, mu2, var1, var2) -> np.ndarray:
    """Bhattacharyya distance between Gaussians with diagonal covariances diag(var1), diag(var2) (last axis:
    dimensions; leading axes broadcast): 1/8 d^T S^-1 d + 1/2 log(|S| / sqrt(|S1| |S2|)), S = (S1 + S2) / 2."""
    avg = (var1 + var2) / 2
    return ((mu1 - mu2) ** 2 / avg).sum(-1) / 8 + (np.log(avg) - (np.log(var1) + np.log(var2)) / 2).sum(-1) / 2


def gbc_targets(Z: np.ndarray, codes: np.ndarray, k: np.ndarray, gaussian: str, var_floor: float) -> np.ndarray:
    """GBC (Pandy et al., CVPR 2022, Eq. 2-4) as in stable_transfer, on Z = the features' top `gbc_pca_dim`
    principal components (all of them when D is smaller): one Gaussian per class (mean, population variance
    per dimension floored at `var_floor`; `spherical`: their mean times I), GBC = -sum over ordered class
    pairs i != j of exp(-D_B(i, j)). A single-class target scores 0.

    The spherical distance is the exact one of Eq. 3 for S_c = s_c I, whose log-determinant term is D times
    the per-dimension one; stable_transfer's spherical branch adds that term once (it takes log of the
    averaged scalar), which weights the variance mismatch D times less than the paper's formula."""
    if gaussian not in GAUSSIANS:
        raise ValueError(f"gbc gaussian {gaussian!r}: expected one of {', '.join(GAUSSIANS)}")
    offsets = np.concatenate([[0], np.cumsum(k)])
    counts = np.concatenate([np.bincount(codes[:, t], minlength=k[t]) for t in range(len(k))]).astype(float)
    means = _class_sums(Z, codes, k) / counts[:, None]
    out = np.empty(len(k))
    for t in range(len(k)):
        mu = means[offsets[t]:offsets[t + 1]]
        dev = Z - mu[codes[:, t]]                        # two passes: no cancellation in E[z^2] - mu^2
        var = _class_sums(dev * dev, codes[:, [t]], k[[t]]) / counts[offsets[t]:offsets[t + 1], None]
        var = np.maximum(var, var_floor)
        if gaussian == "spherical":
            var = np.repeat(var.mean(1, keepdims=True), var.shape[1], axis=1)
        total = 0.0
        step = max(1, _PAIR_BLOCK // max(1, k[t] * Z.shape[1]))   # class blocks: an identity task has 10^4 classes
        for a in range(0, k[t], step):
            i = np.arange(a, min(a + step, k[t]))[:, None]
            ci = np.exp(-bhattacharyya(mu[i], mu[None], var[i], var[None]))   # (block, K) coefficients
            ci[np.arange(len(i)), i[:, 0]] = 0.0                               # i != j
            total += ci.sum()
        out[t] = -total
    return out


# ---------- N-LEEP ----------

def nleep_targets(Z: np.ndarray, codes: np.ndarray, k: np.ndarray, components_per_class: int, fit_rows: int,
                  seed: int) -> np.ndarray:
    """N-LEEP (Li et al., CVPR 2021) as in stable_transfer, on Z = the fewest principal components that explain
    at least `nleep_pca_variance` of the variance (sklearn's rule for a fractional n_components): a Gaussian
    mixture (full covariances, k-means initialisation: scikit-learn's defaults; `random_state=seed`) with
    components_per_class x K components
    (at most n), and LEEP with the mixture's posteriors of every row in place of the source softmax.
    Targets with the same K share one mixture. The references fit the mixture on all rows; here it is
    fitted on at most `fit_rows` of them (a sample drawn with `seed`), because EM with full covariances is
    the one cost that grows with n x components x dims^2 x iterations (minutes at CelebA size)."""
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    fit = Z if len(Z) <= fit_rows else Z[np.sort(np.random.default_rng(seed).choice(len(Z), fit_rows, replace=False))]
    out = np.empty(len(k))
    for kk in np.unique(k):
        cols = np.flatnonzero(k == kk)
        # One thread (BLAS and k-means' OpenMP): EM makes thousands of mid-sized BLAS calls, and each hands off
        # between threads. With 2 threads on a machine whose cores were busy, this took 210 CPU-s instead of 7.
        with threadpool_limits(1):
            gmm = GaussianMixture(n_components=int(min(components_per_class * kk, len(fit))),
                                  random_state=seed).fit(fit)
            # In row blocks: the same numbers (row by row), without n x dims temporaries per component
            # (182,637 x 298 rows: 18 -> 11 CPU-s).
            post = np.concatenate([gmm.predict_proba(Z[s:s + _POSTERIOR_ROWS])
                                   for s in range(0, len(Z), _POSTERIOR_ROWS)])
        out[cols] = _leep_targets(post, codes[:, cols], k[cols])
    return out


# ---------- one target ----------

def _one(name: str, features: np.ndarray, y: np.ndarray, choices: dict) -> float:
    codes, k = _encode(_single(y))
    return float(scores(features, codes, k, (name,), **choices)[name][0])


def transrate(features: np.ndarray, y: np.ndarray, **choices) -> float:
    """TransRate of one target (see `transrate_targets`); `choices`: transrate_eps."""
    return _one("transrate", features, y, choices)


def gbc(features: np.ndarray, y: np.ndarray, **choices) -> float:
    """GBC of one target (see `gbc_targets`); `choices`: gbc_pca_dim, gbc_gaussian, gbc_var_floor."""
    return _one("gbc", features, y, choices)


def nleep(features: np.ndarray, y: np.ndarray, **choices) -> float:
    """N-LEEP of one target (see `nleep_targets`); `choices`: nleep_pca_variance, nleep_components_per_class,
    nleep_fit_rows, seed."""
    return _one("nleep", features, y, choices)
