"""What the model-based estimator families share: the label encoding, class sums, the centred features of a
set of labelled rows (with their principal axes), the targets a batched score sees, one-BLAS-thread sections,
and the single-target adapter."""
from __future__ import annotations

from functools import cached_property

import numpy as np
import scipy.sparse as sp

# Targets with more classes than this get their class sums from a sparse one-hot product.
MAX_DENSE_CLASSES = 64
BLOCK_ELEMENTS = 1 << 24   # one-hot / score blocks of at most 128 MiB of float64


def encode(Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def single_target(y: np.ndarray) -> np.ndarray:
    """One target's labels as the (n, 1) label matrix of the batched route; every label must be present."""
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (y < 0).any():
        raise ValueError("y must be a 1-d array of integer class codes >= 0 "
                         "(for missing labels use model_based_scores with -1)")
    return y[:, None]


def class_sums(X: np.ndarray, codes: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Row c = offsets[t] + y of the result is the sum of X's rows i with codes[i, t] == y: (sum K_t, X cols).

    Few-class targets go through a dense one-hot product in row blocks (BLAS); many-class ones (an
    identity task) through a sparse one, whose cost does not grow with the number of classes."""
    offsets = np.concatenate([[0], np.cumsum(k)])
    out = np.zeros((offsets[-1], X.shape[1]))
    dense = np.flatnonzero(k <= MAX_DENSE_CLASSES)
    if len(dense):
        cols = np.concatenate([np.arange(offsets[t], offsets[t + 1]) for t in dense])
        pos = np.full(offsets[-1], -1)
        pos[cols] = np.arange(len(cols))
        block = max(1, BLOCK_ELEMENTS // max(len(cols), 1))
        acc = np.zeros((len(cols), X.shape[1]))
        for start in range(0, len(X), block):
            c = codes[start:start + block, dense]
            onehot = np.zeros((len(c), len(cols)))
            r, j = np.nonzero(c >= 0)
            onehot[r, pos[offsets[dense[j]] + c[r, j]]] = 1.0
            xb = X[start:start + block]
            # The wide operand goes first: OpenBLAS is slow on a product whose left operand is short and wide.
            acc += (xb.T @ onehot).T if X.shape[1] >= len(cols) else onehot.T @ xb
        out[cols] = acc
    for t in np.flatnonzero(k > MAX_DENSE_CLASSES):
        ok = np.flatnonzero(codes[:, t] >= 0)
        m = sp.csr_matrix((np.ones(len(ok)), (codes[ok, t], ok)), shape=(k[t], len(X)))
        out[offsets[t]:offsets[t + 1]] = m @ X
    return out


def one_blas_thread():
    """A context in which BLAS and LAPACK run on one thread: the D x D decompositions and EM are many small
    steps, so thread hand-offs cost more than the threads gain, most of all on a machine whose cores are busy."""
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    return threadpool_limits(1, user_api="blas")


class Centred:
    """What every feature-based estimator of one set of labelled rows starts from, computed once: the
    float64 feature mean, the centred features Z = F - mean (float64 even for float32 F) and their Gram
    Z^T Z (the one n x D^2 product, the largest cost the feature-based estimators share)."""

    def __init__(self, F: np.ndarray):
        self.mean = F.mean(0, dtype=np.float64)
        self.Z = np.subtract(F, self.mean, dtype=np.float64)
        self.gram = self.Z.T @ self.Z
        # What one estimator family computes once per set of rows and shares between its scores, keyed by the
        # family and its settings (the k-NN probe's neighbours serve k = 1 and k = 5).
        self.memo: dict = {}

    @cached_property
    def principal_axes(self) -> tuple[np.ndarray, np.ndarray]:
        """(variances w (D,), axes V (D, D)), largest variance first: the eigendecomposition of the (1/n)
        covariance, which is scikit-learn's full-SVD PCA up to the signs of the components (GBC, N-LEEP)."""
        with one_blas_thread():
            w, V = np.linalg.eigh(self.gram / len(self.Z))
        return np.clip(w[::-1], 0.0, None), V[:, ::-1]


class Targets:
    """The targets of one transfer row as a batched score sees them: compact class codes (n, T) (-1 = missing),
    K_t per target, and the inputs a score may need, on the same rows (None when not given): the source's own
    labels (n,) (integer codes, -1 = missing), the source softmax (n, K_z) float64 and the `Centred` features.
    Feature-based scores see one group of targets that share their labelled rows (no -1 in `codes`); the class
    counts and centred class sums they share are computed once."""

    def __init__(self, codes: np.ndarray, k: np.ndarray, *, source: np.ndarray | None = None,
                 softmax: np.ndarray | None = None, centred: Centred | None = None):
        self.codes, self.k, self.source, self.softmax, self.centred = codes, k, source, softmax, centred

    @cached_property
    def offsets(self) -> np.ndarray:
        """Where each target's classes start in the stacked (sum K_t) class axis."""
        return np.concatenate([[0], np.cumsum(self.k)])

    @cached_property
    def counts(self) -> np.ndarray:
        """Labelled rows per stacked class, as floats."""
        return np.concatenate([np.bincount(self.codes[self.codes[:, t] >= 0, t], minlength=self.k[t])
                               for t in range(len(self.k))]).astype(float)

    @cached_property
    def centred_sums(self) -> np.ndarray:
        """n_y (mu_y - mu) per stacked class row: the class sums of the centred features."""
        return class_sums(self.centred.Z, self.codes, self.k)

    def per_target(self, v: np.ndarray) -> np.ndarray:
        """(T,) sums of a per-class (sum K_t,) vector over each target's classes."""
        return np.array([v[self.offsets[t]:self.offsets[t + 1]].sum() for t in range(len(self.k))])
