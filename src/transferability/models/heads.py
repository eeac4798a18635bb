"""Transfer heads k_Y (Sec. 3.1, Eq. 3) fitted for every target of a dataset at once on one embedding matrix.

The source network w_Z is frozen; its embeddings are extracted once and a classifier is fitted per target:
extract once, fit many. Three heads:

* `linear_svm` (the paper's choice, Sec. 5.1): scikit-learn LinearSVC's primal objective,
  0.5 |w|^2 + 0.5 b^2 + C sum_i max(0, 1 - y_i f(x_i))^2 (LinearSVC also penalises its bias, as a feature of
  constant value 1), one-vs-rest for multi-class targets, one column for a binary target (class 1 positive).
* `logistic`: scikit-learn LogisticRegression's objective 0.5 |W|^2 + C sum_i -log p(y_i|x_i) with an
  unpenalised bias; multinomial softmax for K > 2, sigmoid for K = 2.
* `ce_head`: the classifier k-bar of Theorem 1 (Eq. 9), p_Y(y|x) = sum_z P^(y|z) p_Z(z|x).

The two fitted heads see features standardised with train statistics (mean, std; a constant feature
keeps std 1, as StandardScaler does). Every target's weight columns are stacked into one matrix and
optimised jointly by a batched Newton-CG (head_solver.py); the objectives separate, so this is exact.

NLL (Eq. 5: train_nll = -l_Y(w_Z, k_Y)) is the mean of -log p(y_i|x_i) over the rows labelled for that
target. SVMs give no probabilities: each target's decision values are calibrated on train, a Platt
sigmoid(a f + b) for binary targets and a softmax temperature softmax(a F) for multi-class ones, fitted
to Platt's smoothed targets (N_y + 1) / (N_y + 2) so separable data keep a finite scale; the NLL reported
is that of the calibrated probabilities against the hard labels.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import HeadConfig
from ..errors import UserError, unknown_name
from .head_solver import Softmax, SquaredHinge, calibrate, group_logsumexp, mm, newton_cg, segsum_cols

HEADS = ("linear_svm", "logistic", "ce_head")
AUTO = "auto"                # head.C: chosen per target on the validation split
PROB_FLOOR = 1e-12          # ce_head: log(0) guard, probabilities are clipped at this floor
_CHUNK_ELEMENTS = 1 << 25   # (n x weight columns) per solver call; more targets are fitted in chunks
_DTYPE = torch.float64


@dataclass
class HeadFit:
    test_pred: np.ndarray    # (m, T) int64 predicted class codes per target
    train_pred: np.ndarray   # (n, T)
    train_nll: np.ndarray    # (T,) mean -log p(y|x) on train over labelled rows (Eq. 5: -l_Y(w_Z, k_Y))
    test_nll: np.ndarray     # (T,) the same on test rows; nan unless fit_heads is given y_test
    seconds: float
    C: np.ndarray | None = None   # (T,) the C each target's head was fitted with (nan for ce_head)


def _check(head, z_train, y_train, z_test, n_classes):
    if head.name not in HEADS:
        raise unknown_name("head", head.name, HEADS)
    z_train, z_test = np.asarray(z_train), np.asarray(z_test)
    y_train = np.asarray(y_train)
    if z_train.ndim != 2 or z_test.ndim != 2 or z_train.shape[1] != z_test.shape[1]:
        raise UserError(f"embeddings: expected z_train (n, D) and z_test (m, D), got {z_train.shape} and "
                        f"{z_test.shape}")
    if y_train.ndim != 2 or y_train.shape[0] != z_train.shape[0] or not np.issubdtype(y_train.dtype, np.integer):
        raise UserError(f"y_train: expected integer codes of shape ({z_train.shape[0]}, T), got {y_train.dtype} "
                        f"{y_train.shape}")
    k = np.asarray(n_classes, dtype=np.int64)
    if k.shape != (y_train.shape[1],) or (k < 2).any():
        raise UserError(f"n_classes: expected {y_train.shape[1]} class counts >= 2, got {list(n_classes)}")
    _check_codes(y_train, k, "y_train")
    return z_train, y_train, z_test, k


def _check_codes(y: np.ndarray, k: np.ndarray, what: str) -> None:
    bad = (y < -1) | (y >= k[None, :])
    if bad.any():
        i, t = np.argwhere(bad)[0]
        raise UserError(f"{what}[{i}, {t}] = {y[i, t]}: expected a code in -1..{k[t] - 1} (-1 = missing)")


def _layout(k: np.ndarray):
    """Weight columns per target: one for a binary target (class 1 vs 0), K for a multi-class one."""
    width = np.where(k == 2, 1, k)
    col_target = np.repeat(np.arange(k.size), width)
    starts = np.concatenate([[0], np.cumsum(width)])
    col_class = np.arange(col_target.size) - starts[col_target] + (k[col_target] == 2)
    return col_target, col_class, starts


def _predict(F: np.ndarray, k: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Class codes from decision values: sign for binary targets, argmax over columns otherwise."""
    out = np.empty((F.shape[0], k.size), dtype=np.int64)
    for t in range(k.size):
        block = F[:, starts[t]:starts[t + 1]]
        out[:, t] = (block[:, 0] > 0) if k[t] == 2 else block.argmax(1)
    return out


def _softmax_nll(L: torch.Tensor, y: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Mean -log p(y|x) over labelled rows per target, for logits L laid out as `_layout(k)`."""
    col_target, col_class, _ = _layout(k)
    gl = torch.as_tensor(col_target, device=L.device)
    yt = torch.as_tensor(y, device=L.device)
    mask = (yt >= 0).to(L.dtype)
    onehot = (yt[:, col_target] == torch.as_tensor(col_class, device=L.device)).to(L.dtype)
    lse = group_logsumexp(L, gl, k.size, torch.as_tensor(k == 2, device=L.device))
    nll = (mask * (lse - segsum_cols(onehot * L, gl, k.size))).sum(0) / mask.sum(0)
    return nll.cpu().numpy()  # nan for a target without labelled rows


def _solve(head, X, y, k, C: np.ndarray, W0: torch.Tensor | None = None) -> torch.Tensor:
    """Weights (d, M) of one chunk of targets on the design X (standardised features and a 1 column), target t
    regularised with C[t]; `W0` a warm start."""
    col_target, col_class, _ = _layout(k)
    dev = X.device
    ct = torch.as_tensor(col_target, device=dev)
    yt = torch.as_tensor(y, device=dev)
    mask = (yt >= 0).to(X.dtype)
    onehot = (yt[:, col_target] == torch.as_tensor(col_class, device=dev)).to(X.dtype)
    C = torch.as_tensor(np.asarray(C, dtype=np.float64), dtype=X.dtype, device=dev)
    if head.name == "linear_svm":   # one problem per column: C per column
        loss = SquaredHinge(2 * onehot - 1, mask[:, col_target], C[ct])
        return newton_cg(X, loss, torch.arange(ct.numel(), device=dev), True, head.tol, head.max_iter, W0=W0)
    loss = Softmax(onehot * mask[:, col_target], mask, torch.as_tensor(k == 2, device=dev), C)
    return newton_cg(X, loss, ct, False, head.tol, head.max_iter, W0=W0)


def select_C(head: HeadConfig, z: np.ndarray, y: np.ndarray, k: np.ndarray, val: np.ndarray,
             device: str = "cpu") -> tuple[np.ndarray, np.ndarray, list[torch.Tensor]]:
    """Per target, the C of `head.C_grid` whose head, fitted on the rows outside `val` (features standardised with
    their statistics), has the highest accuracy on the labelled rows of `val`; ties go to the first in ascending
    grid order (the strongest regularisation, as a grid search over an ascending grid picks). The grid is walked
    in ascending C, each value warm-started from the previous one's weights (all targets together).
    Returns (C per target, validation accuracy (grid, T), the weights per grid value). A target with no labelled
    validation row, or a single class among its fitted rows, cannot be tuned: it gets the grid value nearest to 1
    (scikit-learn's default C), and NaN accuracies."""
    grid = np.array(sorted(head.C_grid), dtype=np.float64)
    design = _designer(z[~val], device)
    X, Xv = design(z[~val]), design(z[val])
    yf, yv = y[~val], y[val]
    tunable = np.array([(yv[:, t] >= 0).any() and len(np.unique(yf[yf[:, t] >= 0, t])) > 1 for t in range(k.size)])
    acc = np.full((grid.size, k.size), np.nan)
    weights, W = [], None
    starts = _layout(k)[2]
    for i, C in enumerate(grid):
        W = _solve(head, X, yf, k, np.full(k.size, C), W0=W)
        weights.append(W)
        pred = _predict(mm(Xv, W).cpu().numpy(), k, starts)
        ok = yv >= 0
        with np.errstate(invalid="ignore"):
            acc[i] = np.where(tunable, ((pred == yv) & ok).sum(0) / ok.sum(0), np.nan)
    best = np.where(tunable, np.argmax(np.where(np.isnan(acc), -np.inf, acc), axis=0),
                    np.argmin(np.abs(np.log(grid)))[None])
    return grid[best], acc, weights


def _fit_linear(head, X, Xt, y, k, C: np.ndarray, W0: torch.Tensor | None = None):
    """Fit one chunk of targets: train and test decision values, and the logits their NLL is taken of."""
    W = _solve(head, X, y, k, C, W0)
    F, Ft = mm(X, W), mm(Xt, W)
    if head.name == "linear_svm":
        ct = torch.as_tensor(_layout(k)[0], device=X.device)
        a, b = calibrate(F, y, k, _layout(k))
        return F, Ft, a[ct] * F + b[ct], a[ct] * Ft + b[ct]
    return F, Ft, F, Ft


def _designer(z_train: np.ndarray, device: str):
    """z -> [standardised z, 1] as a torch matrix, with the train mean and std (StandardScaler's)."""
    mu = z_train.mean(0, dtype=np.float64)
    sd = z_train.std(0, dtype=np.float64)
    sd[sd == 0] = 1

    def design(z):
        x = np.empty((len(z), len(mu) + 1))   # filled in place: one n x (D + 1) float64 matrix, no temporaries
        np.subtract(z, mu, out=x[:, :-1])
        x[:, :-1] /= sd
        x[:, -1] = 1.0
        return torch.as_tensor(x, dtype=_DTYPE, device=device)
    return design


def linear_weights(head: HeadConfig, z_train: np.ndarray, y_train: np.ndarray, n_classes: Sequence[int],
                   device: str = "cpu") -> np.ndarray:
    """The fitted weights (D + 1, M) of `linear_svm` / `logistic` on standardised features, bias last.

    Columns: one per binary target (class 1 vs 0), K_t per multi-class target, in target order.
    """
    z_train, y_train, _, k = _check(head, z_train, y_train, z_train[:0], n_classes)
    if head.name == "ce_head":
        raise UserError("linear_weights: ce_head has no weights (it counts, Eq. 9)")
    if head.C == AUTO:
        raise UserError("linear_weights: head.C=auto chooses C per target inside fit_heads; give a number")
    return _solve(head, _designer(z_train, device)(z_train), y_train, k, np.full(k.size, head.C)).cpu().numpy()


def _ce_head(p_train, p_test, source, y, k):
    """Eq. 9: p_Y = p_Z P^(y|z), with P^(y|z) counted on train rows labelled in both tasks."""
    col_target = np.repeat(np.arange(k.size), k)                # every class gets its own column
    starts = np.concatenate([[0], np.cumsum(k)])
    col_class = np.arange(col_target.size) - starts[col_target]
    K_z = p_train.shape[1]
    valid = (y >= 0) & (source[:, None] >= 0)
    S = np.zeros((source.size, K_z))
    S[np.flatnonzero(source >= 0), source[source >= 0]] = 1
    Y = ((y[:, col_target] == col_class) & valid[:, col_target]).astype(np.float64)
    joint = S.T @ Y                                             # (K_z, sum K_t) counts of (z, y) pairs
    per_z = np.add.reduceat(joint, starts[:-1], axis=1)[:, col_target]
    # A source class never seen with a labelled target row gives no evidence: uniform P^(y|z).
    cond = np.where(per_z > 0, joint / np.maximum(per_z, 1), 1.0 / k[col_target])
    probs = [np.clip(p @ cond, PROB_FLOOR, None) for p in (p_train, p_test)]
    return [np.log(p) for p in probs], starts


def fit_heads(head: HeadConfig, z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray,
              n_classes: Sequence[int], *, seed: int = 0,
              source_probs_train: np.ndarray | None = None, source_probs_test: np.ndarray | None = None,
              source_train: np.ndarray | None = None, device: str = "cpu", y_test: np.ndarray | None = None,
              val: np.ndarray | None = None) -> HeadFit:
    """Fit head k_Y (Eq. 3) for every target column of y_train at once; predict train and test.

    y_train: (n, T) codes 0..K_t-1, -1 = missing (that row is left out of that target's fit).
    linear_svm / logistic standardise the features with the train mean and std before fitting.
    head.C = `auto`: each target's C is chosen on the training rows marked by `val` (n,) bool (`select_C`), then
    its head is refitted on all training rows at that C (warm-started from the chosen grid fit).
    test_nll needs test labels: pass y_test (m, T); without it test_nll is nan.
    The solvers use no randomness; `seed` seeds torch for any future stochastic head.
    """
    start = time.perf_counter()
    z_train, y_train, z_test, k = _check(head, z_train, y_train, z_test, n_classes)
    torch.manual_seed(seed)
    n, m, T = z_train.shape[0], z_test.shape[0], k.size
    if y_test is not None:
        y_test = np.asarray(y_test)
        if y_test.shape != (m, T) or not np.issubdtype(y_test.dtype, np.integer):
            raise UserError(f"y_test: expected integer codes of shape ({m}, {T}), got {y_test.dtype} {y_test.shape}")
        _check_codes(y_test, k, "y_test")
    if head.name == "ce_head":
        return _fit_ce(z_train, z_test, y_train, y_test, k, source_probs_train, source_probs_test,
                       source_train, start)
    design = _designer(z_train, device)
    X, Xt = design(z_train), design(z_test)
    width = np.where(k == 2, 1, k)
    chunks, cur, size = [], [], 0
    for t in range(T):  # group targets so that n x (weight columns) stays within the memory budget
        if cur and (size + width[t]) * n > _CHUNK_ELEMENTS:
            chunks.append(cur)
            cur, size = [], 0
        cur.append(t)
        size += width[t]
    chunks.append(cur)
    auto = head.C == AUTO
    if auto and (val is None or np.asarray(val).shape != (n,) or not np.asarray(val).any()):
        raise UserError("head.C=auto chooses C on a validation split: none was given (trainer.val_fraction > 0 "
                        "makes one)")
    fit = HeadFit(np.empty((m, T), np.int64), np.empty((n, T), np.int64), np.empty(T), np.full(T, np.nan), 0.0,
                  np.full(T, np.nan))
    for idx in tqdm(chunks, desc=f"{head.name} heads", disable=len(chunks) == 1, leave=False):
        kc, yc = k[idx], y_train[:, idx]
        C, W0 = np.full(len(idx), head.C if not auto else np.nan), None
        if auto:
            C, _, grid_weights = select_C(head, z_train, yc, kc, np.asarray(val, bool), device)
            grid = sorted(head.C_grid)
            W0 = torch.cat([grid_weights[grid.index(c)][:, cols] for c, cols in
                            zip(C, np.split(np.arange(_layout(kc)[2][-1]), _layout(kc)[2][1:-1]))], 1)
        fit.C[idx] = C
        F, Ft, L, Lt = _fit_linear(head, X, Xt, yc, kc, C, W0)
        starts = _layout(kc)[2]
        fit.train_pred[:, idx] = _predict(F.cpu().numpy(), kc, starts)
        fit.test_pred[:, idx] = _predict(Ft.cpu().numpy(), kc, starts)
        fit.train_nll[idx] = _softmax_nll(L, yc, kc)
        if y_test is not None:
            fit.test_nll[idx] = _softmax_nll(Lt, y_test[:, idx], kc)
    fit.seconds = time.perf_counter() - start
    return fit


def _fit_ce(z_train, z_test, y_train, y_test, k, p_train, p_test, source, start) -> HeadFit:
    if p_train is None or p_test is None or source is None:
        raise UserError("ce_head needs source_probs_train, source_probs_test and source_train")
    p_train, p_test = np.asarray(p_train, np.float64), np.asarray(p_test, np.float64)
    source = np.asarray(source)
    if p_train.ndim != 2 or p_train.shape[0] != len(z_train) or p_test.shape != (len(z_test), p_train.shape[1]):
        raise UserError(f"source probabilities: expected ({len(z_train)}, K_z) and ({len(z_test)}, K_z), "
                        f"got {p_train.shape} and {p_test.shape}")
    if source.shape != (len(z_train),) or (source < -1).any() or (source >= p_train.shape[1]).any():
        raise UserError(f"source_train: expected ({len(z_train)},) codes in -1..{p_train.shape[1] - 1}")
    (logp, logp_t), starts = _ce_head(p_train, p_test, source, y_train, k)
    T = k.size
    pred = [np.stack([lp[:, starts[t]:starts[t + 1]].argmax(1) for t in range(T)], 1) for lp in (logp, logp_t)]

    def nll(lp, y):
        picked = np.take_along_axis(lp, starts[:-1] + np.maximum(y, 0), 1)
        lab = y >= 0
        with np.errstate(invalid="ignore"):  # nan for a target without labelled rows
            return -(picked * lab).sum(0) / lab.sum(0)

    test_nll = nll(logp_t, y_test) if y_test is not None else np.full(T, np.nan)
    return HeadFit(pred[1].astype(np.int64), pred[0].astype(np.int64), nll(logp, y_train), test_nll,
                   time.perf_counter() - start)
