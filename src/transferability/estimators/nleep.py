"""N-LEEP (Li et al., CVPR 2021) as in stable_transfer, of every target of a group at once. Higher is better.

On the fewest principal components that explain at least `nleep_pca_variance` of the variance (scikit-learn's
rule for a fractional n_components): a Gaussian mixture (full covariances, k-means initialisation:
scikit-learn's defaults; `random_state=seed`) with nleep_components_per_class x K components (at most n), and
LEEP (`leep`) with the mixture's posteriors of every row in place of the source softmax. Targets with the
same K share one mixture. The references fit the mixture on all rows; here it is fitted on at most
`nleep_fit_rows` of them (a sample drawn with `seed`), because EM with full covariances is the one cost that
grows with n x components x dims^2 x iterations.
"""
from __future__ import annotations

import numpy as np

from .common import Targets
from .leep import leep_targets

_POSTERIOR_ROWS = 8192  # rows per block of mixture posteriors


def nleep_targets(t: Targets, *, nleep_pca_variance: float, nleep_components_per_class: int, nleep_fit_rows: int,
                  seed: int) -> np.ndarray:
    """N-LEEP of every target of `t` (one group: no missing labels) on `t.centred`'s principal components."""
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    w, V = t.centred.principal_axes
    ratio = np.cumsum(w) / w.sum() if w.sum() > 0 else np.ones(len(w))
    p = min(int(np.searchsorted(ratio, nleep_pca_variance, side="right")) + 1, len(w))   # sklearn's rule
    Z = t.centred.Z @ V[:, :p]
    fit = Z
    if len(Z) > nleep_fit_rows:
        fit = Z[np.sort(np.random.default_rng(seed).choice(len(Z), nleep_fit_rows, replace=False))]
    out = np.empty(len(t.k))
    for kk in np.unique(t.k):
        cols = np.flatnonzero(t.k == kk)
        # One thread for BLAS and k-means' OpenMP: EM is thousands of mid-sized BLAS calls, each of which
        # would hand off between threads.
        with threadpool_limits(1):
            gmm = GaussianMixture(n_components=int(min(nleep_components_per_class * kk, len(fit))),
                                  random_state=seed).fit(fit)
            # In row blocks: the same numbers (row by row), without n x dims temporaries per component.
            post = np.concatenate([gmm.predict_proba(Z[s:s + _POSTERIOR_ROWS])
                                   for s in range(0, len(Z), _POSTERIOR_ROWS)])
        out[cols] = leep_targets(Targets(t.codes[:, cols], t.k[cols], softmax=post))
    return out
