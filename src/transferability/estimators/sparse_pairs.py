"""H(t|s) for every pair of binary tasks from sparse labels: present P and verified-absent A indicators.

For a target t and a source s, only the images labelled for both count (missing labels are left out pair by
pair, as in `label_only.ce_matrix`). On those images the 2 x 2 joint counts follow from four sparse products
(computed two at a time in one packed product, see `ce_blocks`), with K = P + A the known indicator:

    n11 = (P'P)[t, s]    t present, s present
    n1. = (P'K)[t, s]    t present, s known         n10 = n1. - n11
    n.1 = (K'P)[t, s]    t known,   s present       n01 = n.1 - n11
    n   = (K'K)[t, s]    both known                 n00 = n - n1. - n.1 + n11

and H(t|s) = (sum_z c(z) log c(z) - sum_yz c(y, z) log c(y, z)) / n (Eq. 7 with the plug-in Eq. 6, 8), where
c(z=1) = n.1 and c(z=0) = n - n.1. When unverified pairs count as absent (A = None) every image is known:
n = N, n1. = sum P[:, t], n.1 = sum P[:, s], and P'P is the only product.

Products are int64 with two counts packed per entry (each < 2^31): counts are exact, and every entropy is
computed in float64 from them (c log c looked up by count). Work is done for a block of targets at a time
against all sources, so memory is O(block x sources) beyond the sparse inputs; no images x tasks array is
ever dense. Tested against `ce_matrix` and Eq. 7 written out per pair (tests/estimators/test_sparse_pairs.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import scipy.sparse as sp

# block x sources <= BLOCK_CELLS / 4: a block's dense arrays (H, counts, positions) stay near 100 MB each.
BLOCK_CELLS = 40_000_000


@dataclass(frozen=True)
class PairCounts:
    """Joint counts of targets (rows) x sources (columns) over images labelled for both."""
    n11: np.ndarray
    n1_: np.ndarray      # target present, source known
    n_1: np.ndarray      # target known, source present
    n: np.ndarray        # both known


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


# Two counts share one int64 in the products below: low 32 bits + _SHIFT-bit high part (counts < 2^31).
_SHIFT = 32
_LOW = (1 << _SHIFT) - 1


def ce_blocks(pt: sp.spmatrix, at: sp.spmatrix | None, ps: sp.spmatrix, as_: sp.spmatrix | None,
              bias_correction: bool = False, block: int | None = None
              ) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """(target rows, H(t|s) block (float64), images labelled for both (int64)) for consecutive blocks of targets.

    With missing labels, most pairs of classes are never labelled on one image: one sparse product per block,
    L = [K_t ; P_t]' (K_s + 2^32 P_s), carries n + 2^32 n.1 in its top rows and n1. + 2^32 n11 in its bottom
    rows, and H is computed on its nonzero pattern only (every other pair: NaN, n = 0). When every pair is
    known (unknown = absent), H is dense: a closed form for the pairs never present together (n11 = 0) plus
    the sparse P_t'P_s for the rest."""
    n_img, t_n = pt.shape
    if (at is None) != (as_ is None):
        raise ValueError("give absent indicators for both targets and sources, or for neither")
    if n_img >= 2**31:
        raise ValueError(f"{n_img} images: counts are packed in 32 bits (at most 2^31 - 1 images)")
    block = block or block_size(t_n, ps.shape[1])
    table = xlogx_table(n_img)
    as64 = lambda m: sp.csr_matrix(m, dtype=np.int64)
    p_t = as64(pt).T.tocsr()                                  # targets x images
    if at is None:
        ct = np.asarray(pt.sum(axis=0), dtype=np.int64).ravel()
        cs = np.asarray(ps.sum(axis=0), dtype=np.int64).ravel()
        p_s = as64(ps)
        for start in range(0, t_n, block):
            rows = slice(start, min(t_n, start + block))
            h = _dense_block(p_t[rows] @ p_s, ct[rows], cs, n_img, table, bias_correction)
            yield rows, h, np.full(h.shape, n_img, dtype=np.int64)
        return
    k_t = as64(pt + at).T.tocsr()
    right = as64(ps + as_) + as64(ps) * (1 << _SHIFT)        # K_s + 2^32 P_s
    s_n = ps.shape[1]
    for start in range(0, t_n, block):
        rows = slice(start, min(t_n, start + block))
        b = rows.stop - rows.start
        g = (sp.vstack([k_t[rows], p_t[rows]], format="csr") @ right).tocoo()
        top = g.row < b
        r, c, v = g.row[top], g.col[top], g.data[top]
        n, n_1 = v & _LOW, v >> _SHIFT
        pos = np.empty((b, s_n), dtype=np.int64)              # only the cells set here are read back
        pos[r, c] = np.arange(len(r))
        at_ = pos[g.row[~top] - b, g.col[~top]]               # the bottom pattern lies within the top one
        n1_, n11 = np.zeros_like(n), np.zeros_like(n)
        n1_[at_], n11[at_] = g.data[~top] & _LOW, g.data[~top] >> _SHIFT
        h = np.full((b, s_n), np.nan)
        h[r, c] = ce_from_counts(PairCounts(n11, n1_, n_1, n), bias_correction, table)
        both = np.zeros((b, s_n), dtype=np.int64)
        both[r, c] = n
        yield rows, h, both


def _dense_block(n11: sp.spmatrix, ct: np.ndarray, cs: np.ndarray, n_img: int, table: np.ndarray,
                 bias_correction: bool) -> np.ndarray:
    """H(t|s) when every image is labelled: pairs never present together have n11 = 0, so
    H = (x(N - cs) - x(ct) - x(N - ct - cs)) / N with x(c) = c log c; the pairs present together are redone
    from their counts."""
    f = table.take
    rest = n_img - ct[:, None] - cs[None, :]
    h = (f(n_img - cs)[None, :] - f(ct)[:, None] - f(np.maximum(rest, 0))) / n_img
    if bias_correction:
        cells = (ct > 0)[:, None].astype(np.int8) + (cs > 0)[None, :] + (rest > 0)
        h += (cells - (cs > 0)[None, :] - (n_img - cs > 0)[None, :]) / (2.0 * n_img)
    h = np.maximum(h, 0.0)
    co = n11.tocoo()
    r, c, v = co.row, co.col, co.data
    n_all = np.full(len(v), n_img, dtype=np.int64)
    h[r, c] = ce_from_counts(PairCounts(v, ct[r], cs[c], n_all), bias_correction, table)
    return h


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
        kth = np.partition(score, k_eff - 1, axis=1)[:, k_eff - 1:k_eff]
        chosen = score < kth
        # Rows whose k-th score is tied: of the tied columns, the lowest ones fill the k places.
        fix = np.flatnonzero(np.isfinite(kth[:, 0]))
        tied = score[fix] == kth[fix]
        need = k_eff - chosen[fix].sum(axis=1, keepdims=True)
        chosen[fix] |= tied & (np.cumsum(tied, axis=1) <= need)
        part = np.full((len(h), k_eff), -1, dtype=np.int64)
        r, c = np.nonzero(chosen)
        first = np.searchsorted(r, np.arange(len(h)))
        part[r, np.arange(len(r)) - first[r]] = c
    else:
        part = np.broadcast_to(np.arange(h.shape[1]), score.shape).copy()
    vals = np.where(part >= 0, np.take_along_axis(score, np.maximum(part, 0), axis=1), np.inf)
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
