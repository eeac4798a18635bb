"""head_solver.py's fast paths against its general ones: the binary Platt fit against the grouped-softmax
calibration, float32 Hessian-vector products against float64 ones."""
from __future__ import annotations

import numpy as np
import torch

import transferability.models.head_solver as hs
import transferability.models.heads as heads
from transferability.config import group_config
from transferability.models.heads import linear_weights


def _decisions(k, n=300, seed=0):
    """Decision values laid out as heads._layout(k), labels driven by them, some missing."""
    rng = np.random.default_rng(seed)
    y = np.stack([rng.integers(0, kk, n) for kk in k], 1)
    y[rng.choice(n, 25, replace=False), 0] = -1
    col_target, col_class, _ = heads._layout(np.array(k))
    signal = (y[:, col_target] == col_class) * rng.uniform(0.5, 3, col_target.size)
    F = torch.as_tensor(signal + rng.normal(size=(n, col_target.size)) * rng.uniform(0.3, 2, col_target.size))
    return F, y, np.array(k)


def test_binary_platt_equals_grouped_softmax_calibration():
    for k in ([2, 2, 2], [2, 3, 2, 4]):   # all binary (the Platt path alone), and mixed (split in two)
        F, y, k = _decisions(k)
        a, b = hs.calibrate(F, y, k, heads._layout(k))
        a_ref, b_ref = hs._calibrate_softmax(F, y, k, heads._layout(k), 50)
        np.testing.assert_allclose(a.numpy(), a_ref.numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(b.numpy(), b_ref.numpy(), rtol=1e-9, atol=1e-12)
        assert (b_ref.numpy()[k == 2] != 0).all()   # the binary biases are fitted (the check is not vacuous)


def test_platt_over_row_blocks_equals_one_block(monkeypatch):
    F, y, k = _decisions([2, 2, 2, 2], n=1000, seed=3)
    whole = hs._platt(F, y, 50)
    monkeypatch.setattr(hs, "_PLATT_BLOCK", 4 * 37)   # 37 rows per block, the last one short
    blocks = hs._platt(F, y, 50)
    for u, v in zip(whole, blocks):
        np.testing.assert_allclose(u.numpy(), v.numpy(), rtol=1e-10, atol=1e-13)


def test_float32_hessian_products_reach_the_float64_optimum(monkeypatch):
    rng = np.random.default_rng(1)
    z = (rng.normal(size=(400, 12)) * rng.uniform(0.5, 3, 12)).astype(np.float32)
    y = np.stack([(z @ rng.normal(size=12) + rng.normal(size=400) > q).astype(np.int64) for q in (0, 1, -2)], 1)
    for name in ("linear_svm", "logistic"):
        head = group_config("head", name, C=1.0, max_iter=100, tol=1e-10)
        fast = linear_weights(head, z, y, [2, 2, 2])
        monkeypatch.setattr(hs, "_HV_DTYPE", torch.float64)
        exact = linear_weights(head, z, y, [2, 2, 2])
        monkeypatch.undo()
        np.testing.assert_allclose(fast, exact, rtol=1e-7, atol=1e-9)
