"""GBC (Pandy et al., CVPR 2022, Eq. 2-4) as in stable_transfer, of every target of a group at once.
Higher (closer to 0) is better.

On the features' top `gbc_pca_dim` principal components (all of them when D is smaller): one Gaussian per
class (mean, population variance per dimension floored at `gbc_var_floor`; `spherical`: their mean times I),
GBC = -sum over ordered class pairs i != j of exp(-D_B(i, j)), D_B the Bhattacharyya distance. A
single-class target scores 0.

The spherical distance is the exact one of Eq. 3 for S_c = s_c I, whose log-determinant term is D times
the per-dimension one; stable_transfer's spherical branch adds that term once (it takes log of the
averaged scalar), which weights the variance mismatch D times less than the paper's formula.
"""
from __future__ import annotations

import numpy as np

from .common import Targets, class_sums

GAUSSIANS = ("spherical", "diagonal")
_PAIR_BLOCK = 1 << 20   # class pairs x dimensions per block (8 MiB of float64)


def bhattacharyya(mu1, mu2, var1, var2) -> np.ndarray:
    """Bhattacharyya distance between Gaussians with diagonal covariances diag(var1), diag(var2) (last axis:
    dimensions; leading axes broadcast): 1/8 d^T S^-1 d + 1/2 log(|S| / sqrt(|S1| |S2|)), S = (S1 + S2) / 2."""
    avg = (var1 + var2) / 2
    return ((mu1 - mu2) ** 2 / avg).sum(-1) / 8 + (np.log(avg) - (np.log(var1) + np.log(var2)) / 2).sum(-1) / 2


def gbc_targets(t: Targets, *, gbc_pca_dim: int, gbc_gaussian: str, gbc_var_floor: float) -> np.ndarray:
    """GBC of every target of `t` (one group: no missing labels) on `t.centred`'s principal components."""
    if gbc_gaussian not in GAUSSIANS:
        raise ValueError(f"gbc gaussian {gbc_gaussian!r}: expected one of {', '.join(GAUSSIANS)}")
    w, V = t.centred.principal_axes
    Z = t.centred.Z @ V[:, :min(gbc_pca_dim, len(w))]
    codes, k, offsets, counts = t.codes, t.k, t.offsets, t.counts
    means = class_sums(Z, codes, k) / counts[:, None]
    out = np.empty(len(k))
    for j in range(len(k)):
        mu = means[offsets[j]:offsets[j + 1]]
        dev = Z - mu[codes[:, j]]                        # two passes: no cancellation in E[z^2] - mu^2
        var = class_sums(dev * dev, codes[:, [j]], k[[j]]) / counts[offsets[j]:offsets[j + 1], None]
        var = np.maximum(var, gbc_var_floor)
        if gbc_gaussian == "spherical":
            var = np.repeat(var.mean(1, keepdims=True), var.shape[1], axis=1)
        total = 0.0
        step = max(1, _PAIR_BLOCK // max(1, k[j] * Z.shape[1]))   # class blocks: an identity task has 10^4 classes
        for a in range(0, k[j], step):
            i = np.arange(a, min(a + step, k[j]))[:, None]
            ci = np.exp(-bhattacharyya(mu[i], mu[None], var[i], var[None]))   # (block, K) coefficients
            ci[np.arange(len(i)), i[:, 0]] = 0.0                               # i != j
            total += ci.sum()
        out[j] = -total
    return out
