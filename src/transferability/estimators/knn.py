"""The k-nearest-neighbour probe of every target of a group at once: leave-one-out k-NN accuracy of the target
labels on the frozen embedding (k = 1 and 5). Higher is better.

Each row is classified by the majority label of its k nearest other rows (Euclidean distance on the features,
uniform votes), and the score is the share of rows classified correctly. Ties are broken as scikit-learn's
`KNeighborsClassifier` breaks them: a tied vote goes to the smallest class code (its argmax over classes), and
rows at equal distance are taken lower row index first (a tie at the k-th neighbour included).

Exact leave-one-out over n rows costs O(n^2 D); on more than `knn_rows` rows (CelebA: 162,770) the probe runs on
a sample of `knn_rows` of them drawn with `seed` (the same rows for every target of the group and for k = 1 and
5): each sampled row is classified by its neighbours among the sampled rows. The neighbours of the sample are
searched once per group of targets (in blocks of rows) and shared by both scores and every target.
"""
from __future__ import annotations

import numpy as np

from .common import Targets

K_MAX = 5                 # neighbours searched once: enough for every k below
_BLOCK_ELEMENTS = 1 << 23  # query rows x sample rows per block of distances (64 MiB of float64)


def knn1_targets(t: Targets, *, knn_rows: int, seed: int) -> np.ndarray:
    """1-NN leave-one-out accuracy of every target of `t` (one group: no missing labels)."""
    return knn_accuracy(t, 1, knn_rows=knn_rows, seed=seed)


def knn5_targets(t: Targets, *, knn_rows: int, seed: int) -> np.ndarray:
    """5-NN leave-one-out accuracy of every target of `t` (one group: no missing labels)."""
    return knn_accuracy(t, 5, knn_rows=knn_rows, seed=seed)


def knn_accuracy(t: Targets, k: int, *, knn_rows: int, seed: int) -> np.ndarray:
    """Leave-one-out k-NN accuracy (k <= K_MAX) of every target of `t` on `t.centred`'s features (distances are
    those of the features: centring moves every row alike)."""
    if not 1 <= k <= K_MAX:
        raise ValueError(f"k = {k}: the probe searches {K_MAX} neighbours")
    rows, nbrs = t.centred.memo.get(("knn", knn_rows, seed)) or _searched(t, knn_rows, seed)
    if len(rows) < 2:
        return np.full(len(t.k), np.nan)
    codes = t.codes[rows]
    k = min(k, nbrs.shape[1])
    return (vote(codes[nbrs[:, :k]]) == codes).mean(0)


def _searched(t: Targets, knn_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(t.centred.Z)
    rows = np.arange(n)
    if n > knn_rows:
        rows = np.sort(np.random.default_rng(seed).choice(n, knn_rows, replace=False))
    found = (rows, nearest(t.centred.Z[rows], min(K_MAX, len(rows) - 1)))
    t.centred.memo[("knn", knn_rows, seed)] = found
    return found


def nearest(X: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of each row's k nearest other rows of X, nearest first, equal distances lower index
    first. Squared distances |x|^2 + |y|^2 - 2 x.y in blocks of query rows (BLAS), the row itself excluded."""
    n = len(X)
    out = np.zeros((n, k), dtype=np.int64)
    if k < 1:
        return out
    sq = np.einsum("ij,ij->i", X, X)
    block = max(1, _BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, n, block):
        q = slice(start, min(start + block, n))
        d = sq[q, None] + sq[None, :] - 2.0 * (X[q] @ X.T)
        local = np.arange(q.stop - q.start)
        d[local, local + start] = np.inf              # leave one out
        part = np.argpartition(d, k - 1, axis=1)[:, :k]
        dk = np.take_along_axis(d, part, 1)
        # Nearest first, equal distances by index; a row whose k-th distance is shared with a row outside the
        # partition (argpartition picks among those arbitrarily) is sorted in full, stably.
        order = np.lexsort((part, dk), axis=1)
        part, dk = np.take_along_axis(part, order, 1), np.take_along_axis(dk, order, 1)
        tied = (d <= dk[:, -1:]).sum(1) > k
        for i in np.flatnonzero(tied):
            part[i] = np.argsort(d[i], kind="stable")[:k]
        out[q] = part
    return out


def vote(labels: np.ndarray) -> np.ndarray:
    """The majority label over axis 1 of (n, k, T) integer labels, a tie going to the smallest label: for each
    of the k positions, how many of the k labels equal it, and the smallest label among the most frequent. No
    per-class work, so a target with 10,177 classes costs what a binary one does."""
    same = (labels[:, :, None, :] == labels[:, None, :, :]).sum(2)          # (n, k, T)
    top = same == same.max(1, keepdims=True)
    return np.where(top, labels, np.iinfo(labels.dtype).max).min(1)
