"""Batched Newton-CG for many independent linear classifiers sharing one design matrix, and the batched
Platt / temperature calibration of their decision values (both used by heads.py).

All targets' weight columns live in one (d, M) matrix W and every column belongs to a *group*: a group
is one independent convex problem (one SVM column, or one target's multinomial/sigmoid logistic model).
The objectives separate over groups, so minimising their sum is exact, but scalars that a Newton-CG
step needs (CG step sizes, line-search steps, convergence) are computed per group with segment sums,
so an easy group never waits on a hard one and a hard group does not stop early. Each Hessian-vector
product for all groups at once is two matrix products X^T (H (X V)): that is where the time goes, so they
run in float32 (on a float32 copy of X; 3-4x faster than float64 on CPU). That only perturbs the CG
direction of an inexact Newton method: gradients, objective values, line searches and the margins X W stay
float64, so the iterates still converge to the float64 optimum at the requested tolerance.

Solver: truncated Newton (Nocedal & Wright, Alg. 7.1) with forcing term min(0.5, sqrt(|g|/|g0|)),
Armijo backtracking per group, zero start, stop when |g| <= tol |g0| per group (liblinear's criterion).
The squared hinge is once differentiable; its generalised Hessian (Mangasarian 2002) is used, as in
liblinear's primal solver for LinearSVC.
"""
from __future__ import annotations

import math

import numpy as np
import torch

_HV_DTYPE = torch.float32   # Hessian-vector products (see the module doc)
_PLATT_BLOCK = 1 << 15      # elements per row block of the Platt fit on CPU (256 KiB of float64 per temporary)


def mm(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """A @ B. Float64 on CPU goes through numpy's OpenBLAS: for the tall products here (182,637 x 513 by
    40 columns) it ran 2x faster than torch's CPU BLAS on this machine (5.9 vs 11.8 GMAC/s)."""
    if A.device.type == "cpu" and A.dtype == torch.float64 and B.dtype == torch.float64:
        return torch.from_numpy(A.numpy() @ B.numpy())
    return A @ B


def segsum_cols(A: torch.Tensor, gl: torch.Tensor, G: int) -> torch.Tensor:
    """Sum the columns of A (n, M) into their groups: (n, G)."""
    return torch.zeros(A.shape[0], G, dtype=A.dtype, device=A.device).index_add_(1, gl, A)


def segsum(v: torch.Tensor, gl: torch.Tensor, G: int) -> torch.Tensor:
    """Sum per-column scalars v (M,) into their groups: (G,)."""
    return torch.zeros(G, dtype=v.dtype, device=v.device).index_add_(0, gl, v)


def group_logsumexp(Z: torch.Tensor, gl: torch.Tensor, G: int, implicit: torch.Tensor) -> torch.Tensor:
    """log sum_k exp(Z_k) over each group's columns (n, G); groups with `implicit` add a logit fixed at 0.

    The implicit zero logit makes a one-column group a sigmoid model (p(class 1) = sigmoid(z)), so
    binary and multinomial targets share one code path.
    """
    n = Z.shape[0]
    init = torch.where(implicit, 0.0, -math.inf).to(Z.dtype).expand(n, G).clone()
    top = init.scatter_reduce(1, gl.expand(n, -1), Z, reduce="amax", include_self=True)
    s = segsum_cols(torch.exp(Z - top[:, gl]), gl, G) + implicit.to(Z.dtype) * torch.exp(-top)
    return top + torch.log(s)


def _per(C, index: torch.Tensor) -> torch.Tensor | float:
    """A scalar C as it is, or the entries of a per-column / per-group C tensor at `index`."""
    return C[index] if isinstance(C, torch.Tensor) else C


class SquaredHinge:
    """C * sum_i m_i max(0, 1 - s_i z_i)^2 per column (LinearSVC's loss), s = +-1, m = labelled.
    `C`: one value, or a (M,) tensor of one value per column."""

    def __init__(self, sign: torch.Tensor, mask: torch.Tensor, C):
        self.sign, self.mask, self.C = sign, mask, C

    def value(self, Z, cols, gl, G, groups):
        margin = torch.clamp(1 - self.sign[:, cols] * Z, min=0) * self.mask[:, cols]
        return segsum(_per(self.C, cols) * (margin * margin).sum(0), gl, G)

    def evaluate(self, Z, cols, gl, G, groups):
        margin = torch.clamp(1 - self.sign[:, cols] * Z, min=0) * self.mask[:, cols]
        C = _per(self.C, cols)
        f = segsum(C * (margin * margin).sum(0), gl, G)
        dZ = -2 * C * self.sign[:, cols] * margin
        return f, dZ, (margin > 0).to(Z.dtype)

    def hess(self, h, ZV, gl, G, cols, col_groups):
        return 2 * _as(_per(self.C, cols), ZV) * h * ZV

    def curvature(self, h, cols, col_groups):
        return 2 * _per(self.C, cols) * h.mean(0)


class Softmax:
    """C * sum_i m_i (logsumexp(z_i) - z_i,y_i) per group: multinomial, or sigmoid for implicit groups.

    `onehot` (n, M) marks each row's class column (all zero for class 0 of a sigmoid group),
    `mask` (n, T) marks labelled rows of each group, `implicit` (T,) flags sigmoid groups.
    `C`: one value, or a (T,) tensor of one value per group.
    """

    def __init__(self, onehot, mask, implicit, C):
        self.onehot, self.mask, self.implicit, self.C = onehot, mask, implicit, C

    def _parts(self, Z, cols, gl, G, groups):
        lse = group_logsumexp(Z, gl, G, self.implicit[groups])
        zy = segsum_cols(self.onehot[:, cols] * Z, gl, G)
        m = self.mask[:, groups]
        return lse, m, _per(self.C, groups) * (m * (lse - zy)).sum(0)

    def value(self, Z, cols, gl, G, groups):
        return self._parts(Z, cols, gl, G, groups)[2]

    def evaluate(self, Z, cols, gl, G, groups):
        lse, m, f = self._parts(Z, cols, gl, G, groups)
        P = torch.exp(Z - lse[:, gl]) * m[:, gl]  # masked probabilities; m in {0, 1}
        return f, _per(self.C, groups[gl]) * (P - self.onehot[:, cols] * m[:, gl]), P

    def hess(self, h, ZV, gl, G, cols, col_groups):
        # Softmax Hessian (diag(p) - p p^T) per row and group, applied to ZV.
        hz = h * ZV
        return _as(_per(self.C, col_groups), ZV) * (hz - h * segsum_cols(hz, gl, G)[:, gl])

    def curvature(self, h, cols, col_groups):
        return _per(self.C, col_groups) * (h - h * h).mean(0)  # the diagonal p(1 - p) of each column's block


def _as(C, like: torch.Tensor):
    """C in the dtype of `like` (the Hessian-vector products run in float32)."""
    return C.to(like.dtype) if isinstance(C, torch.Tensor) else C


def newton_cg(X: torch.Tensor, loss, col_group: torch.Tensor, penalise_bias: bool,
              tol: float, max_iter: int, max_cg: int = 200, W0: torch.Tensor | None = None) -> torch.Tensor:
    """Minimise, per group g, 0.5 sum_{c in g} |R w_c|^2 + loss_g(X W) over W (d, M); returns W.

    X's last column is the constant 1 (the bias); R drops the bias row unless `penalise_bias`.
    `col_group` (M,) maps columns to groups, sorted so each group's columns are contiguous.
    `W0`: a warm start (e.g. the solution at the previous value of a regularisation path); zero otherwise.
    The stopping rule is relative to the gradient at W = 0 (liblinear's), whatever the start, so a warm
    start changes how many steps are taken, not where they stop.
    """
    d, M = X.shape[1], col_group.numel()
    dt, dev = X.dtype, X.device
    reg = torch.ones(d, 1, dtype=dt, device=dev)
    if not penalise_bias:
        reg[-1] = 0
    W = torch.zeros(d, M, dtype=dt, device=dev) if W0 is None else W0.to(dtype=dt, device=dev).clone()
    Z = torch.zeros(X.shape[0], M, dtype=dt, device=dev) if W0 is None else mm(X, W)
    n_groups = int(col_group.max()) + 1
    g0 = torch.full((n_groups,), math.nan, dtype=dt, device=dev)
    if W0 is not None:   # the reference gradient is the one at W = 0
        every = torch.arange(M, device=dev)
        groups, gl = torch.unique(col_group, return_inverse=True)
        dZ0 = loss.evaluate(torch.zeros(X.shape[0], M, dtype=dt, device=dev), every, gl, n_groups, groups)[1]
        grad0 = mm(X.T, dZ0)
        g0[groups] = torch.sqrt(segsum((grad0 * grad0).sum(0), gl, n_groups))
    live = torch.ones(n_groups, dtype=torch.bool, device=dev)
    X_hv = X.to(_HV_DTYPE)   # Hessian-vector products and the preconditioner's Gram (see the module doc)
    precond = _preconditioner(X_hv, reg)
    newton_steps = 0
    while newton_steps < max_iter:
        cols = torch.nonzero(live[col_group]).squeeze(1)
        if cols.numel() == 0:
            break
        groups, gl = torch.unique(col_group[cols], return_inverse=True)
        G = groups.numel()
        Wa, Za = W[:, cols], Z[:, cols]
        f_loss, dZ, h = loss.evaluate(Za, cols, gl, G, groups)
        grad = reg * Wa + mm(X.T, dZ)
        gn = torch.sqrt(segsum((grad * grad).sum(0), gl, G))
        g0[groups] = torch.where(torch.isnan(g0[groups]), gn, g0[groups])
        done = gn <= tol * g0[groups]
        if done.any():
            live[groups[done]] = False
            keep_g = ~done
            keep = keep_g[gl]
            if not keep.any():
                break
            cols, Wa, Za, dZ, h, grad = cols[keep], Wa[:, keep], Za[:, keep], dZ[:, keep], h[:, keep], grad[:, keep]
            f_loss, gn, groups = f_loss[keep_g], gn[keep_g], groups[keep_g]
            gl = torch.cumsum(keep_g, 0)[gl[keep]] - 1  # renumber the remaining groups 0..G'-1
            G = groups.numel()
        newton_steps += 1

        h_hv = h.to(_HV_DTYPE)
        col_groups = groups[gl]

        def hv(V):
            return reg * V + (X_hv.T @ loss.hess(h_hv, X_hv @ V.to(_HV_DTYPE), gl, G, cols, col_groups)).to(dt)

        eta = torch.clamp(torch.sqrt(gn / g0[groups]), max=0.5)
        s_c = loss.curvature(h, cols, col_groups)
        D = _cg(hv, -grad, gl, G, eta, max_cg, lambda R: precond(R, s_c))
        XD = mm(X, D)
        f0 = 0.5 * segsum((reg * Wa * Wa).sum(0), gl, G) + f_loss
        slope = segsum((grad * D).sum(0), gl, G)
        step = torch.ones(G, dtype=dt, device=dev)
        for _ in range(40):
            s = step[gl]
            Wn = Wa + s * D
            fn = 0.5 * segsum((reg * Wn * Wn).sum(0), gl, G) + loss.value(Za + s * XD, cols, gl, G, groups)
            ok = fn <= f0 + 1e-4 * step * slope
            if ok.all():
                break
            step = torch.where(ok, step, step / 2)
        s = step[gl]
        W[:, cols] = Wa + s * D
        Z[:, cols] = Za + s * XD
    return W


def _preconditioner(X: torch.Tensor, reg: torch.Tensor):
    """M_c^-1 for M_c = R + s_c X^T X, with s_c a column's mean loss curvature (diagonal approximation).

    The data Hessian X^T diag(h_c) X is approximated by s_c X^T X with the weights h_c replaced by their
    mean: one eigendecomposition of the feature Gram matrix serves every column, and it undoes the
    correlation between embedding dimensions, which is what makes plain CG slow. Standardised features
    are centred, so the bias decouples from them (X^T X is block diagonal up to rounding).
    """
    Xf = X[:, :-1]
    lam, V = torch.linalg.eigh((Xf.T @ Xf).to(reg.dtype))   # X may be the float32 copy: only a preconditioner
    lam = lam.clamp(min=0)[:, None]
    nb = (X[:, -1] @ X[:, -1]).to(reg.dtype)

    def apply(R, s):
        top = V @ ((V.T @ R[:-1]) / (reg[:-1] + s * lam))
        return torch.cat([top, R[-1:] / (reg[-1] + s * nb).clamp(min=1e-12)], 0)
    return apply


def _cg(hv, B, gl, G, eta, max_cg, precond):
    """Preconditioned CG for H x = B, run independently per group until |r_g| <= eta_g |B_g|."""
    x = torch.zeros_like(B)
    r = B.clone()
    zr = precond(r)
    p = zr.clone()
    rz = segsum((r * zr).sum(0), gl, G)
    stop = eta * eta * segsum((r * r).sum(0), gl, G)
    for _ in range(max_cg):
        active = segsum((r * r).sum(0), gl, G) > stop
        if not active.any():
            break
        Hp = hv(p)
        pHp = segsum((p * Hp).sum(0), gl, G)
        alpha = torch.where(active, rz / torch.where(active, pHp, 1.0), 0.0)
        x += alpha[gl] * p
        r -= alpha[gl] * Hp
        zr = precond(r)
        rz_new = segsum((r * zr).sum(0), gl, G)
        beta = torch.where(active, rz_new / torch.where(active, rz, 1.0), 0.0)
        p = zr + beta[gl] * p
        rz = torch.where(active, rz_new, rz)
    return x


def calibrate(F: torch.Tensor, y: np.ndarray, k: np.ndarray, layout,
              iters: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-target Platt (a, b) for binary targets, temperature a for multi-class ones, fitted on train.

    Logits a F_c + b e_c (e_c = 1 on a binary target's column, whose class 0 has the implicit logit 0).
    Each target's two parameters are fitted by Newton's method on the mean soft cross-entropy against
    Platt's targets, all targets at once; the 2 x 2 Hessians are E_p[J J^T] - E_p[J] E_p[J]^T with J = (F, e).
    Binary targets take `_platt`, the same iteration written for one column per target (the grouped
    softmax machinery cost 5-10x as much and was half of all heads' time on 40 binary CelebA targets).
    """
    col_target = layout[0]   # heads._layout(k): weight columns per target
    binary = k == 2
    if binary.all():
        return _platt(F, y, iters)
    if not binary.any():
        return _calibrate_softmax(F, y, k, layout, iters)
    dev, dt = F.device, F.dtype
    a, b = torch.ones(k.size, dtype=dt, device=dev), torch.zeros(k.size, dtype=dt, device=dev)
    on_binary = torch.as_tensor(binary[col_target], device=dev)
    bi, mi = torch.as_tensor(binary, device=dev), torch.as_tensor(~binary, device=dev)
    a[bi], b[bi] = _platt(F[:, on_binary], y[:, binary], iters)
    km = k[~binary]   # the multi-class targets' own layout: K columns each
    ct = np.repeat(np.arange(km.size), km)
    starts = np.concatenate([[0], np.cumsum(km)])
    a[mi], b[mi] = _calibrate_softmax(F[:, ~on_binary], y[:, ~binary], km,
                                      (ct, np.arange(ct.size) - starts[ct], starts), iters)
    return a, b


def _platt(F: torch.Tensor, y: np.ndarray, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`calibrate` for binary targets, F (n, T) one decision column per target: p(1) = sigmoid(a F + b)
    against Platt's targets (N_1 + 1) / (N_1 + 2) on class 1 rows and 1 / (N_0 + 2) on class 0 rows.

    Every pass is a handful of elementwise operations over F; on CPU they run over row blocks of
    `_PLATT_BLOCK` elements, which stay in the core's cache (6x faster than whole (n, T) temporaries
    at 182,637 x 40), and the labels travel as int8."""
    dev, dt, T = F.device, F.dtype, F.shape[1]
    yt = torch.as_tensor(y, device=dev).to(torch.int8)
    n1, n0 = (yt == 1).sum(0).to(dt), (yt == 0).sum(0).to(dt)
    inv_n = 1 / (n1 + n0).clamp(min=1)                          # mean over each target's labelled rows
    hi, lo = (n1 + 1) / (n1 + 2), 1 / (n0 + 2)
    rows = len(F) if dev.type != "cpu" else max(1, _PLATT_BLOCK // max(T, 1))

    def sums(a, b, derivatives):
        """The objective at (a, b), or its gradient (2, T) and Hessian entries (haa, hab, hbb)."""
        acc = torch.zeros(5 if derivatives else 1, T, dtype=dt, device=dev)
        for start in range(0, len(F), rows):
            f, yc = F[start:start + rows], yt[start:start + rows]
            w = (yc >= 0).to(dt) * inv_n
            target = torch.where(yc == 1, hi, lo)
            L = a * f + b
            if not derivatives:
                softplus = L.clamp(min=0) + torch.log1p(torch.exp(-L.abs()))   # log(1 + e^L), exact for any L
                acc[0] += (w * (softplus - target * L)).sum(0)
                continue
            P = torch.sigmoid(L)
            wR, V = w * (P - target), w * P * (1 - P)
            VF = V * f
            acc += torch.stack([(wR * f).sum(0), wR.sum(0), (VF * f).sum(0), VF.sum(0), V.sum(0)])
        return acc if derivatives else acc[0]

    a, b = torch.ones(T, dtype=dt, device=dev), torch.zeros(T, dtype=dt, device=dev)
    f = sums(a, b, False)
    for _ in range(iters):
        d = sums(a, b, True)
        g, (haa, hab, hbb) = d[:2], d[2:]
        det = (haa * hbb - hab * hab).clamp(min=1e-12)
        da = -(hbb * g[0] - hab * g[1]) / det
        db = -(haa * g[1] - hab * g[0]) / det
        slope = g[0] * da + g[1] * db
        # A step whose predicted decrease is below the rounding of f cannot be checked by Armijo (a converged
        # target would halve its step 30 times, each halving one pass over F): take it.
        negligible = -slope <= 1e-13 * f.abs()
        step = torch.ones(T, dtype=dt, device=dev)
        for _ in range(30):                                       # Armijo backtracking per target
            fn = sums(a + step * da, b + step * db, False)
            ok = (fn <= f + 1e-4 * step * slope) | negligible
            if ok.all():
                break
            step = torch.where(ok, step, step / 2)
        step = torch.where(ok, step, 0.0)
        a, b = a + step * da, b + step * db
        f = torch.where(ok, fn, f)                                # the objective at the new (a, b)
        if (g.abs().max(0).values <= 1e-9).all():
            break
    return a, b


def _calibrate_softmax(F: torch.Tensor, y: np.ndarray, k: np.ndarray, layout,
                       iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`calibrate` through the grouped softmax: any mix of binary and multi-class targets."""
    col_target, col_class, _ = layout
    dev, dt, T = F.device, F.dtype, k.size
    ct = torch.as_tensor(col_target, device=dev)
    yt = torch.as_tensor(y, device=dev)
    w = (yt >= 0).to(dt)
    w = w / w.sum(0).clamp(min=1)                                # mean over each target's labelled rows
    onehot = (yt[:, col_target] == torch.as_tensor(col_class, device=dev)).to(dt)
    counts = np.stack([np.bincount(y[:, t][y[:, t] >= 0], minlength=k.max()) for t in range(T)])
    n_y = torch.as_tensor(np.take_along_axis(counts, np.maximum(y, 0).T, 1).T, dtype=dt, device=dev)
    hi = (n_y + 1) / (n_y + 2)                                    # Platt's smoothed target for the true class
    lo = (1 - hi) / torch.as_tensor(k - 1, dtype=dt, device=dev)  # the rest, shared by the other classes
    target = lo[:, ct] + (hi - lo)[:, ct] * onehot                # soft targets of the explicit columns
    binary = torch.as_tensor(k == 2, device=dev)
    e = binary[ct].to(dt).expand_as(F)
    kk = torch.as_tensor(k, dtype=dt, device=dev)

    def objective(a, b):
        L = a[ct] * F + b[ct] * e
        lse = group_logsumexp(L, ct, T, binary)
        sum_logp = segsum_cols(L, ct, T) - kk * lse               # an implicit class adds logit 0
        logp_y = segsum_cols(onehot * L, ct, T) - lse
        return (-(lo * sum_logp + (hi - lo) * logp_y) * w).sum(0), L, lse

    a, b = torch.ones(T, dtype=dt, device=dev), torch.zeros(T, dtype=dt, device=dev)
    f, L, lse = objective(a, b)
    for _ in range(iters):
        P = torch.exp(L - lse[:, ct])
        R = P - target
        g = torch.stack([(w * segsum_cols(R * F, ct, T)).sum(0), (w * segsum_cols(R * e, ct, T)).sum(0)])
        m_a, m_b = segsum_cols(P * F, ct, T), segsum_cols(P * e, ct, T)
        haa = (w * (segsum_cols(P * F * F, ct, T) - m_a * m_a)).sum(0)
        hab = (w * (segsum_cols(P * F * e, ct, T) - m_a * m_b)).sum(0)
        hbb = (w * (segsum_cols(P * e, ct, T) - m_b * m_b)).sum(0)
        hbb = torch.where(binary, hbb, 1.0)                      # multi-class: b stays 0 (zero gradient)
        det = (haa * hbb - hab * hab).clamp(min=1e-12)
        da = -(hbb * g[0] - hab * g[1]) / det
        db = -(haa * g[1] - hab * g[0]) / det
        step = torch.ones(T, dtype=dt, device=dev)
        for _ in range(30):                                       # Armijo backtracking per target
            fn, Ln, lsen = objective(a + step * da, b + step * db)
            ok = fn <= f + 1e-4 * step * (g[0] * da + g[1] * db)
            if ok.all():
                break
            step = torch.where(ok, step, step / 2)
        step = torch.where(ok, step, 0.0)
        a, b = a + step * da, b + step * db
        f, L, lse = objective(a, b)
        if (g.abs().max(0).values <= 1e-9).all():
            break
    return a, b
