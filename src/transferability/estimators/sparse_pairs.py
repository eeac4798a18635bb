"""H(t|s) for every pair of binary tasks from sparse labels: present P and verified-absent A indicators.

For a target t and a source s, only the images labelled for both count (missing labels are left out pair by
pair, as in `label_only.ce_matrix`). On those images the 2 x 2 joint counts follow from four sparse products,
with K = P + A the known indicator:

    n11 = (P'P)[t, s]    t present, s present
    n1. = (P'K)[t, s]    t present, s known         n10 = n1. - n11
    n.1 = (K'P)[t, s]    t known,   s present       n01 = n.1 - n11
    n   = (K'K)[t, s]    both known                 n00 = n - n1. - n.1 + n11

and H(t|s) = (sum_z c(z) log c(z) - sum_yz c(y, z) log c(y, z)) / n (Eq. 7 with the plug-in Eq. 6, 8), where
c(z=1) = n.1 and c(z=0) = n - n.1. When unverified pairs count as absent (A = None) every image is known:
n = N, n1. = sum P[:, t], n.1 = sum P[:, s], and P'P is the only product.

Products are integer (int32 data, int64 where N >= 2^31): counts are exact at any size, and every entropy is
computed in float64 from them. Work is done for a block of targets at a time against all sources, so memory
is O(block x sources) beyond the sparse inputs; no images x tasks array is ever dense.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import scipy.sparse as sp

# Entries of one dense (2 x block) x (2 x sources) count block: bounds the memory of a block.
BLOCK_CELLS = 40_000_000


@dataclass(frozen=True)
class PairCounts:
    """Joint counts of targets (rows) x sources (columns) over images labelled for both."""
    n11: np.ndarray
    n1_: np.ndarray      # target present, source known
    n_1: np.ndarray      # target known, source present
    n: np.ndarray        # both known


def _int(x: sp.spmatrix, n_rows: int) -> sp.csr_matrix:
    dtype = np.int32 if n_rows < 2**31 else np.int64
    return sp.csr_matrix(x, dtype=dtype)


def pair_counts(pt: sp.spmatrix, at: sp.spmatrix | None, ps: sp.spmatrix, as_: sp.spmatrix | None) -> PairCounts:
    """Counts of targets (columns of pt/at) x sources (columns of ps/as_); all matrices images x tasks.

    `at`, `as_`: verified-absent indicators, or both None when every pair is known (unknown = absent)."""
    if (at is None) != (as_ is None):
        raise ValueError("give absent indicators for both targets and sources, or for neither")
    left, right = _stack(pt, at).T.tocsr(), _stack(ps, as_)
    return _counts(left, right, pt.shape[1], ps, as_ is not None)


def _stack(p: sp.spmatrix, a: sp.spmatrix | None) -> sp.csr_matrix:
    """[P, A] (images x 2 tasks) as integer CSR, or P alone when every pair is known."""
    n_img = p.shape[0]
    return _int(p if a is None else sp.hstack([p, a], format="csr"), n_img)


def _counts(left: sp.csr_matrix, right: sp.csr_matrix, t_n: int, ps: sp.spmatrix, known: bool) -> PairCounts:
    """`left`: the targets' stacked indicators transposed ((2) T x images); `right`: the sources' stacked."""
    n_img = right.shape[0]
    g = (left @ right).toarray().astype(np.int64)
    if not known:
        ct = np.asarray(left.sum(axis=1), dtype=np.int64)
        cs = np.asarray(ps.sum(axis=0), dtype=np.int64)
        shape = g.shape
        return PairCounts(g, np.broadcast_to(ct, shape), np.broadcast_to(cs, shape),
                          np.full(shape, n_img, dtype=np.int64))
    s_n = right.shape[1] // 2
    pp, pa, ap, aa = g[:t_n, :s_n], g[:t_n, s_n:], g[t_n:, :s_n], g[t_n:, s_n:]
    return PairCounts(pp, pp + pa, pp + ap, pp + pa + ap + aa)


def xlogx_table(n_max: int) -> np.ndarray:
    """c log c for c = 0..n_max (0 log 0 = 0): counts index it instead of calling log on every cell."""
    c = np.arange(n_max + 1, dtype=np.float64)
    out = np.zeros_like(c)
    out[1:] = c[1:] * np.log(c[1:])
    return out


def ce_from_counts(c: PairCounts, bias_correction: bool = False, table: np.ndarray | None = None) -> np.ndarray:
    """H(t|s) in nats for every (t, s) of `c`; NaN where no image is labelled for both (Eq. 7).

    `bias_correction`: Miller-Madow, + (occupied joint cells - occupied source cells) / 2n, as `ce_matrix`."""
    n11, n1_, n_1, n = c.n11, c.n1_, c.n_1, c.n
    n10, n01 = n1_ - n11, n_1 - n11
    n00 = n - n1_ - n01
    z0 = n - n_1
    if table is None:
        table = xlogx_table(int(np.max(n, initial=0)))
    f = table.take
    with np.errstate(invalid="ignore", divide="ignore"):
        h = (f(n_1) + f(z0) - f(n11) - f(n10) - f(n01) - f(n00)) / n
        if bias_correction:
            cells = ((n11 > 0).astype(np.int8) + (n10 > 0) + (n01 > 0) + (n00 > 0))
            h += (cells - (n_1 > 0) - (z0 > 0)) / (2.0 * n)
    return np.where(n > 0, np.maximum(h, 0.0), np.nan)


def entropies(p: sp.spmatrix, a: sp.spmatrix | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H(t) in nats over the images labelled for t, images labelled, images present) for each column t;
    the hardness H(Z|C) of Eq. 14."""
    n_img = p.shape[0]
    present = np.asarray(p.sum(axis=0), dtype=np.int64).ravel()
    known = present + np.asarray(a.sum(axis=0), dtype=np.int64).ravel() if a is not None \
        else np.full(p.shape[1], n_img, dtype=np.int64)
    table = xlogx_table(int(known.max(initial=0)))
    with np.errstate(invalid="ignore", divide="ignore"):
        h = (table[known] - table[present] - table[known - present]) / known
    return np.where(known > 0, np.maximum(h, 0.0), np.nan), known, present


def block_size(n_targets: int, n_sources: int, cells: int = BLOCK_CELLS) -> int:
    return int(max(1, min(n_targets, cells // max(1, 4 * n_sources))))


def ce_blocks(pt: sp.spmatrix, at: sp.spmatrix | None, ps: sp.spmatrix, as_: sp.spmatrix | None,
              bias_correction: bool = False, block: int | None = None
              ) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """(target rows, H(t|s) block, images labelled for both) for consecutive blocks of targets.

    Columns of `pt` are sliced once into CSC; the sources' matrices are reused for every block."""
    t_n = pt.shape[1]
    if (at is None) != (as_ is None):
        raise ValueError("give absent indicators for both targets and sources, or for neither")
    block = block or block_size(t_n, ps.shape[1])
    left_all = _stack(pt, at).T.tocsr()       # (2) T x images: a block of targets is a set of its rows
    right = _stack(ps, as_)
    table = xlogx_table(pt.shape[0])
    for start in range(0, t_n, block):
        rows = np.arange(start, min(t_n, start + block))
        left = left_all[rows if at is None else np.r_[rows, rows + t_n]]
        c = _counts(left, right, len(rows), ps, at is not None)
        yield slice(rows[0], rows[-1] + 1), ce_from_counts(c, bias_correction, table), c.n


def ce_all_pairs(pt, at, ps, as_, bias_correction: bool = False, block: int | None = None) -> np.ndarray:
    """The whole (targets x sources) matrix of H(t|s) in float64 (small inputs; the stage streams blocks)."""
    out = np.full((pt.shape[1], ps.shape[1]), np.nan)
    for rows, h, _ in ce_blocks(pt, at, ps, as_, bias_correction, block):
        out[rows] = h
    return out


def top_k(h: np.ndarray, n: np.ndarray, k: int, min_rows: int = 1, exclude: np.ndarray | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """The k lowest H(t|s) per row among sources with at least `min_rows` images labelled for both,
    skipping source column exclude[row] (the target itself); ties go to the lower column.

    Returns (columns, values), each (rows x k); -1 / NaN where fewer than k sources qualify."""
    score = np.where((n >= min_rows) & np.isfinite(h), h, np.inf)
    if exclude is not None:
        ok = (exclude >= 0) & (exclude < h.shape[1])
        score[np.flatnonzero(ok), exclude[ok]] = np.inf
    k_eff = min(k, h.shape[1])
    if k_eff < h.shape[1]:
        # The k-th smallest score; of the columns tied with it, the lowest ones fill the k places.
        kth = np.partition(score, k_eff - 1, axis=1)[:, k_eff - 1:k_eff]
        less, tied = score < kth, score == kth
        need = k_eff - less.sum(axis=1, keepdims=True)
        chosen = less | (tied & (np.cumsum(tied, axis=1) <= need))
        part = np.nonzero(chosen)[1].reshape(len(h), k_eff)
    else:
        part = np.broadcast_to(np.arange(h.shape[1]), score.shape).copy()
    vals = np.take_along_axis(score, part, axis=1)
    order = np.lexsort((part, vals), axis=1)
    cols = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    cols = np.where(np.isfinite(vals), cols, -1)
    vals = np.where(np.isfinite(vals), vals, np.nan)
    if k_eff < k:
        pad = k - k_eff
        cols = np.pad(cols, ((0, 0), (0, pad)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, pad)), constant_values=np.nan)
    return cols, vals
