"""LEEP (Nguyen, Hassner, Seeger, Archambeau, ICML 2020, Eq. 1-2) of every target of a row at once.

With theta(x_i) the source softmax over source labels z: empirical joint
P^(y, z) = 1/n sum_i theta(x_i)_z 1[y_i = y], conditional P^(y|z) = P^(y, z) / P^(z), and
LEEP = 1/n sum_i log sum_z P^(y_i|z) theta(x_i)_z. A source class never predicted (P^(z) = 0)
has theta(x_i)_z = 0 for every i, so its P^(y|z) (set to 0) never contributes. With one-hot
theta (the source's hard labels) LEEP = -H(Y|Z) of the paper's Eq. 7. Higher is better.
N-LEEP (`nleep`) is this score with a Gaussian mixture's posteriors in place of the softmax.
"""
from __future__ import annotations

import numpy as np

from .common import BLOCK_ELEMENTS, Targets, class_sums


def leep_targets(t: Targets) -> np.ndarray:
    """LEEP of every target column of `t` on `t.softmax`; each target over its own labelled rows (codes >= 0),
    NaN for a target without any. The joint of all targets is one product of the softmax with a stacked
    one-hot matrix, and the per-row scores one product with the stacked conditionals."""
    theta, codes, k, offsets = t.softmax, t.codes, t.k, t.offsets
    joint = class_sums(theta, codes, k)                    # n_t * P^(y, z), stacked over targets
    cond = np.zeros_like(joint)
    for j in range(len(k)):
        block = joint[offsets[j]:offsets[j + 1]]
        pz = block.sum(0)                                  # n_t * P^(z); n_t cancels in P^(y|z)
        np.divide(block, pz, out=cond[offsets[j]:offsets[j + 1]], where=pz > 0)   # never-predicted z: 0
    total = np.zeros(len(k))
    rows = max(1, BLOCK_ELEMENTS // max(offsets[-1], 1))
    for start in range(0, len(theta), rows):
        c = codes[start:start + rows]
        q = theta[start:start + rows] @ cond.T             # q[i, (t, y)] = sum_z P^(y|z) theta(x_i)_z
        r, j = np.nonzero(c >= 0)
        total += np.bincount(j, weights=np.log(q[r, offsets[j] + c[r, j]]), minlength=len(k))
    n_t = (codes >= 0).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_t > 0, total / n_t, np.nan)
