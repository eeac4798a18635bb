"""Label-only estimators of the paper: conditional entropy H(Y|Z) (Eq. 6-8) and hardness H(Z|C) (Eq. 14).

Pure numpy/scipy; importing this module does not import torch.

All pairs at once: every task is one-hot encoded and a single Gram product of the one-hot matrix gives
the joint counts of every (target, source) pair (`ce_matrix`). Binary tasks without missing labels keep
one indicator column only (the other class is `1 - indicator`, recovered exactly from the column sums),
so a binary table costs one Gram product of its own size. Counts are exact at any n: each Gram product
covers fewer than 2^24 rows (float32 sums of 0/1 below 2^24 are exact) and blocks are added in float64
(exact below 2^53). Tasks with many classes (an identity source) use sparse one-hot products instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

# Tasks with more classes than this are counted through sparse one-hot products.
MAX_DENSE_CLASSES = 64
# Rows per Gram block: < 2^24 keeps float32 counts exact; the memory cap keeps the block small.
_MAX_BLOCK_ROWS = 1 << 23
_BLOCK_BYTES = 1 << 30


def _xlogx(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, dtype=np.float64)
    out = np.zeros_like(c)
    pos = c > 0
    out[pos] = c[pos] * np.log(c[pos])
    return out


def _factorize(values) -> tuple[np.ndarray, int]:
    """Integer codes (-1 = missing) and the number of classes of one label sequence."""
    if not isinstance(values, (np.ndarray, pd.Series, pd.Index, pd.Categorical)):
        values = pd.Series(list(values))
    codes, uniques = pd.factorize(values)
    return np.asarray(codes, dtype=np.int64), len(uniques)


def _joint_counts(y_codes, ky, z_codes, kz) -> tuple[np.ndarray, np.ndarray]:
    """Nonzero joint counts c(y, z) and marginal counts c(z) over rows where both are labelled."""
    ok = (y_codes >= 0) & (z_codes >= 0)
    y, z = y_codes[ok], z_codes[ok]
    key = z * ky + y
    if kz * ky <= 1 << 22:
        joint = np.bincount(key, minlength=kz * ky)
    else:  # a 10,177-class identity source: count only the cells that occur
        joint = np.unique(key, return_counts=True)[1]
    return joint[joint > 0], np.bincount(z, minlength=kz)


def conditional_entropy(y: Sequence, z: Sequence, bias_correction: bool = False) -> float:
    """H(Y|Z) in nats (Eq. 7) from the empirical joint distribution of two label sequences (Eq. 6, 8).

    `y`, `z`: equal-length sequences of hashable labels; missing labels (None/NaN) drop their row.
    `bias_correction`: Miller-Madow, H + (m_yz - m_z) / 2n with m the number of occupied cells
    (the paper uses the plug-in estimate, the default)."""
    y_codes, ky = _factorize(y)
    z_codes, kz = _factorize(z)
    if len(y_codes) != len(z_codes):
        raise ValueError(f"label sequences differ in length: {len(y_codes)} vs {len(z_codes)}")
    joint, marg = _joint_counts(y_codes, ky, z_codes, kz)
    n = joint.sum()
    if n == 0:
        return float("nan")
    h = (_xlogx(marg).sum() - _xlogx(joint).sum()) / n
    if bias_correction:
        h += (len(joint) - np.count_nonzero(marg)) / (2.0 * n)
    return float(max(h, 0.0))


def hardness(z: Sequence, bias_correction: bool = False) -> float:
    """H(Z|C) of Eq. 14: the CE of a task's labels given a trivial constant task, i.e. the entropy of Z."""
    return conditional_entropy(z, np.zeros(len(z), dtype=np.int8), bias_correction=bias_correction)


# ---------------------------------------------------------------------------------------------
# All pairs at once


def _encode_frame(df: pd.DataFrame) -> tuple[np.ndarray, list[list]]:
    """Codes (n, T) with -1 = missing, and each column's sorted vocabulary of values.

    Integer/bool columns with at most two values (0/1, -1/1) and float columns of two values plus NaN
    take a vectorised path over the whole table; other columns are factorised one by one."""
    n, t = df.shape
    codes = np.empty((n, t), dtype=np.int32)
    vocabs: list[list] = [None] * t  # type: ignore[list-item]
    kinds = [dt.kind if isinstance(dt, np.dtype) else "O" for dt in df.dtypes]
    ints = [j for j, k in enumerate(kinds) if k in "biu"]
    floats = [j for j, k in enumerate(kinds) if k == "f"]
    rest = [j for j, k in enumerate(kinds) if k not in "biuf"]
    if ints:
        a = df.iloc[:, ints].to_numpy() if len(ints) < t else df.to_numpy()
        if a.dtype.kind == "b":
            a = a.view(np.uint8)
        lo, hi = a.min(axis=0), a.max(axis=0)
        wide = np.flatnonzero(hi.astype(np.int64) - lo > 1)
        two = np.ones(len(ints), dtype=bool)
        if len(wide):
            aw = a[:, wide]
            two[wide] = ((aw == lo[wide]) | (aw == hi[wide])).all(axis=0)
        fast = np.flatnonzero(two)
        if len(fast) == len(ints) and not len(wide):
            c = a if not lo.any() else a - lo            # 0/1 already: codes are the values
        else:
            c = (a[:, fast] == hi[fast]) if len(fast) < len(ints) or len(wide) else a[:, fast] - lo[fast]
        cols = [ints[i] for i in fast]
        if len(cols) == t:
            codes = c.astype(np.int8, copy=False)
        else:
            codes[:, cols] = c
        for i in fast:
            vocabs[ints[i]] = [_plain(lo[i])] if lo[i] == hi[i] else [_plain(lo[i]), _plain(hi[i])]
        rest += [ints[i] for i in range(len(ints)) if not two[i]]
    if floats:
        a = df.iloc[:, floats].to_numpy(dtype=np.float64)
        miss = np.isnan(a)
        with np.errstate(invalid="ignore"):
            lo = np.where(miss.all(0), 0.0, np.nanmin(np.where(miss, np.inf, a), axis=0))
            hi = np.where(miss.all(0), 0.0, np.nanmax(np.where(miss, -np.inf, a), axis=0))
        two = ((a == lo) | (a == hi) | miss).all(axis=0)
        fast = np.flatnonzero(two)
        c = (a[:, fast] == hi[fast]).astype(np.int32)
        c[:, lo[fast] == hi[fast]] = 0
        c[miss[:, fast]] = -1
        codes[:, [floats[i] for i in fast]] = c
        for i in fast:
            vals = [] if miss[:, i].all() else ([lo[i]] if lo[i] == hi[i] else [lo[i], hi[i]])
            vocabs[floats[i]] = [_plain(v) for v in vals]
        rest += [floats[i] for i in range(len(floats)) if not two[i]]
    for j in rest:
        c, uniques = pd.factorize(df.iloc[:, j], sort=True)
        codes[:, j] = c
        vocabs[j] = [_plain(v) for v in uniques]
    return codes, vocabs


def _plain(v):
    """A vocabulary key that compares equal across chunks (1 == 1.0 == True for numeric labels)."""
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (np.integer, np.floating, float)) and float(v).is_integer():
        return int(v)
    return v.item() if isinstance(v, np.generic) else v


@dataclass
class CECounter:
    """Joint label counts of every pair of tasks, accumulated over row chunks (streaming).

    `update(chunk)` takes a DataFrame whose columns are `tasks`; `result()` gives H(row task | column task)."""

    tasks: list[str]
    max_dense_classes: int = MAX_DENSE_CLASSES
    vocab: list[dict] = field(init=False)
    dense: list[bool | None] = field(init=False)
    gram: np.ndarray = field(init=False)            # joint counts among dense tasks' classes
    cross: dict = field(init=False)                 # sparse task -> counts (K_s, dense classes)
    sparse_pairs: dict = field(init=False)          # (sparse t, sparse s) -> sparse joint counts
    n_rows: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.tasks = list(self.tasks)
        self.vocab = [dict() for _ in self.tasks]
        self.dense = [None] * len(self.tasks)
        self.gram = np.zeros((0, 0))
        self.cross, self.sparse_pairs = {}, {}
        self._layout: list[int] = [0] * len(self.tasks)   # dense classes per task in `gram`

    # -- layout of the accumulated dense Gram: tasks in order, each with its vocabulary size --
    def _offsets(self, sizes: list[int]) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def _grow(self, new_sizes: list[int]) -> None:
        if new_sizes == self._layout:
            return
        new = self._offsets(new_sizes)
        idx = np.concatenate([np.arange(new[t], new[t] + k) for t, k in enumerate(self._layout)]).astype(np.int64)
        g = np.zeros((new[-1], new[-1]))
        if len(idx):
            g[np.ix_(idx, idx)] = self.gram
        self.gram = g
        for s, c in self.cross.items():
            grown = np.zeros((c.shape[0], new[-1]))
            grown[:, idx] = c
            self.cross[s] = grown
        self._layout = list(new_sizes)

    def update(self, chunk: pd.DataFrame) -> "CECounter":
        chunk = chunk[self.tasks]
        codes, local_vocabs = _encode_frame(chunk)
        # Map each column's local codes onto the task's growing global vocabulary.
        for j, local in enumerate(local_vocabs):
            voc = self.vocab[j]
            lut = np.array([voc.setdefault(v, len(voc)) for v in local], dtype=np.int32)
            if not np.array_equal(lut, np.arange(len(local))):
                c = codes[:, j]
                codes[:, j] = np.where(c >= 0, lut[np.maximum(c, 0)] if len(lut) else -1, -1)
            if self.dense[j] is None:
                self.dense[j] = len(voc) <= self.max_dense_classes
        sizes = [len(v) if d else 0 for v, d in zip(self.vocab, self.dense)]
        self._grow(sizes)
        n = len(chunk)
        block = max(1, min(_MAX_BLOCK_ROWS, _BLOCK_BYTES // (4 * max(1, sum(sizes)))))
        for start in range(0, n, block):
            self._add_block(codes[start:start + block])
        self.n_rows += n
        return self

    def _add_block(self, codes: np.ndarray) -> None:
        n = len(codes)
        dense = [j for j, d in enumerate(self.dense) if d]
        offsets = self._offsets(self._layout)
        # Reduced one-hot R: one column per kept class. A task with no missing label in this block drops
        # its class 0 (recovered below as 1 - sum of its kept columns), so a complete binary task's
        # column is its code itself: a 0/1 table becomes R with one cast and no per-column work.
        binary, other = [], []
        has_missing = codes.min(axis=0) < 0
        for j in dense:
            k = self._layout[j]
            complete = k > 0 and not has_missing[j]
            (binary if complete and k == 2 else other).append((j, k, complete))
        cols = [(j, 1) for j, _, _ in binary]
        for j, k, complete in other:
            cols += [(j, cls) for cls in range(1 if complete else 0, k)]
        r_cols = len(cols)
        if len(binary) == codes.shape[1] == r_cols:
            R = codes.astype(np.float32)
        else:
            R = np.empty((n, r_cols), dtype=np.float32)
            if binary:
                R[:, : len(binary)] = codes[:, [j for j, _, _ in binary]]
            for i in range(len(binary), r_cols):
                j, cls = cols[i]
                R[:, i] = codes[:, j] == cls
        rows_m = list(range(r_cols))
        cols_m = [int(offsets[j]) + cls for j, cls in cols]
        vals_m = [1.0] * r_cols
        first_col = {}
        for i, (j, _) in enumerate(cols):
            first_col.setdefault(j, i)
        drop_col_of = {}
        for j, k, complete in binary + other:
            if complete:   # the dropped class 0 of task j, from kept columns [first, first + k - 1)
                drop_col_of[j] = (int(offsets[j]), first_col.get(j, 0), k - 1)
        gram_r = R.T @ R
        colsum = R.sum(axis=0, dtype=np.float64)
        g_aug = np.empty((r_cols + 1, r_cols + 1))
        g_aug[:r_cols, :r_cols] = gram_r
        g_aug[:r_cols, r_cols] = g_aug[r_cols, :r_cols] = colsum
        g_aug[r_cols, r_cols] = n
        # M maps [R, 1] onto the full one-hot F = [R, 1] @ M; the dropped class d = 1 - sum(kept).
        for full_col, first, kept in drop_col_of.values():
            rows_m.append(r_cols); cols_m.append(full_col); vals_m.append(1.0)
            for r in range(first, first + kept):
                rows_m.append(r); cols_m.append(full_col); vals_m.append(-1.0)
        K = int(offsets[-1])
        M = sp.csr_matrix((vals_m, (rows_m, cols_m)), shape=(r_cols + 1, K))
        left = np.asarray((M.T @ g_aug))                      # (K, r+1) = M^T G
        self.gram += np.rint(np.asarray((M.T @ left.T)).T)    # M^T G M; rint: exact integers
        # Sparse (many-class) tasks: counts against every dense class and against each other.
        sparse_tasks = [j for j, d in enumerate(self.dense) if d is False]
        if sparse_tasks:
            R1 = np.concatenate([R, np.ones((n, 1), dtype=np.float32)], axis=1)
        onehots = {j: self._onehot(codes[:, j], len(self.vocab[j])) for j in sparse_tasks}
        for j, oh in onehots.items():
            c = np.rint(np.asarray(oh.T @ R1) @ M.toarray())   # (K_s, dense classes)
            prev = self.cross.get(j)
            if prev is not None:   # the sparse task's vocabulary may have grown since
                c[: prev.shape[0]] += prev
            self.cross[j] = c
        for t in sparse_tasks:
            for s in sparse_tasks:
                if t != s:
                    joint = (onehots[t].T @ onehots[s]).tocoo()
                    prev = self.sparse_pairs.get((t, s))
                    if prev is not None:
                        shape = (max(prev.shape[0], joint.shape[0]), max(prev.shape[1], joint.shape[1]))
                        joint = sp.coo_matrix((np.r_[prev.data, joint.data], (np.r_[prev.row, joint.row],
                                               np.r_[prev.col, joint.col])), shape=shape)
                    self.sparse_pairs[(t, s)] = joint.tocsr().tocoo()

    @staticmethod
    def _onehot(c: np.ndarray, k: int) -> sp.csr_matrix:
        ok = np.flatnonzero(c >= 0)
        return sp.csr_matrix((np.ones(len(ok)), (ok, c[ok])), shape=(len(c), k))

    def result(self, bias_correction: bool = False) -> pd.DataFrame:
        """H(row task | column task) for every pair, in nats."""
        T = len(self.tasks)
        out = np.full((T, T), np.nan)
        dense = [j for j in range(T) if self.dense[j]]
        sizes = [self._layout[j] for j in dense]
        starts = self._offsets(self._layout)[dense] if dense else np.zeros(0, dtype=np.int64)
        if dense and sum(sizes) > 0:
            G = self.gram
            keep = np.concatenate([np.arange(s, s + k) for s, k in zip(starts, sizes)]).astype(np.int64)
            G = G[np.ix_(keep, keep)]
            bounds = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
            h = _pairwise_ce(G, bounds, sizes, bias_correction)
            out[np.ix_(dense, dense)] = h
        for (t, s), joint in self.sparse_pairs.items():
            out[t, s] = _ce_from_joint(joint.toarray() if joint.shape[0] * joint.shape[1] < 1 << 24 else joint,
                                       bias_correction)
        offs = self._offsets(self._layout)
        for s, c in self.cross.items():   # c: (K_s, dense classes) counts
            for t in dense:
                block = c[:, offs[t]:offs[t] + self._layout[t]]
                out[t, s] = _ce_from_joint(block.T, bias_correction)   # H(t | s): rows t classes, cols s
                out[s, t] = _ce_from_joint(block, bias_correction)     # H(s | t)
            out[s, s] = 0.0 if self.vocab[s] else np.nan
        return pd.DataFrame(out, index=self.tasks, columns=self.tasks)


def _ce_from_joint(joint, bias_correction: bool) -> float:
    """H(rows | cols) from a (K_y, K_z) table of joint counts (dense or sparse)."""
    if sp.issparse(joint):
        joint = joint.tocsc()
        cells = joint.data
        marg = np.asarray(joint.sum(axis=0)).ravel()
    else:
        cells = joint[joint > 0]
        marg = joint.sum(axis=0)
    n = cells.sum()
    if n == 0:
        return float("nan")
    h = (_xlogx(marg).sum() - _xlogx(cells).sum()) / n
    if bias_correction:
        h += (np.count_nonzero(cells) - np.count_nonzero(marg)) / (2.0 * n)
    return float(max(h, 0.0))


def _pairwise_ce(G: np.ndarray, bounds: np.ndarray, sizes: list[int], bias_correction: bool) -> np.ndarray:
    """H(t|s) for all dense pairs from the full one-hot Gram G (classes x classes).

    Block (t, s) of G is the joint count table c(y, z) of the pair over rows where both are labelled:
    H(t|s) = (sum_z c(z) log c(z) - sum_yz c(y,z) log c(y,z)) / N with c(z) = sum_y c(y, z)."""
    nonempty = np.asarray(sizes) > 0
    b = bounds[nonempty]
    A = np.add.reduceat(np.add.reduceat(_xlogx(G), b, axis=0), b, axis=1)
    S = np.add.reduceat(G, b, axis=0)                      # S[t, z-class]: c(z) among rows with t labelled
    B = np.add.reduceat(_xlogx(S), b, axis=1)
    N = np.add.reduceat(S, b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        h = (B - A) / N
        if bias_correction:
            m_joint = np.add.reduceat(np.add.reduceat((G > 0).astype(np.float64), b, axis=0), b, axis=1)
            m_marg = np.add.reduceat((S > 0).astype(np.float64), b, axis=1)
            h = h + (m_joint - m_marg) / (2.0 * N)
    h = np.where(N > 0, np.maximum(h, 0.0), np.nan)
    full = np.full((len(sizes), len(sizes)), np.nan)
    full[np.ix_(nonempty, nonempty)] = h
    return full


def _as_frame(x, prefix: str) -> pd.DataFrame:
    if isinstance(x, pd.DataFrame):
        return x
    if isinstance(x, pd.Series):
        return x.to_frame()
    arr = np.asarray(x)
    return pd.DataFrame(arr.reshape(len(arr), -1)).add_prefix(prefix)


def ce_matrix(targets, sources=None, bias_correction: bool = False) -> pd.DataFrame:
    """Every pair at once: entry [t, s] = H(t | s) in nats (Eq. 7).

    `targets`, `sources`: DataFrames whose columns are tasks and whose rows are the same images
    (`sources` defaults to `targets`). Missing labels (NaN/None) are left out pair by pair."""
    targets = _as_frame(targets, "t")
    if sources is None:
        return CECounter(list(targets.columns)).update(targets).result(bias_correction)
    sources = _as_frame(sources, "s")
    if len(sources) != len(targets):
        raise ValueError(f"targets and sources must have the same rows: {len(targets)} vs {len(sources)}")
    # Internal names keep a target and a source of the same name apart.
    tn = [f"t:{c}" for c in targets.columns]
    sn = [f"s:{c}" for c in sources.columns]
    both = pd.concat([targets.set_axis(tn, axis=1).reset_index(drop=True),
                      sources.set_axis(sn, axis=1).reset_index(drop=True)], axis=1)
    full = CECounter(tn + sn).update(both).result(bias_correction)
    out = full.loc[tn, sn]
    out.index, out.columns = list(targets.columns), list(sources.columns)
    return out


def ce_matrix_stream(chunks: Iterable[pd.DataFrame], tasks: list[str] | None = None,
                     bias_correction: bool = False) -> pd.DataFrame:
    """`ce_matrix` over a label table larger than memory, read in row chunks
    (e.g. `pd.read_csv(path, chunksize=1_000_000)`); every chunk has the same task columns."""
    counter = None
    for chunk in chunks:
        if counter is None:
            counter = CECounter(tasks or list(chunk.columns))
        counter.update(chunk)
    if counter is None:
        raise ValueError("no chunks")
    return counter.result(bias_correction)
