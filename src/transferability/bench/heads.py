"""Benchmark: all targets' linear SVMs at once (heads.fit_heads) vs a loop of scikit-learn LinearSVC fits.

Run: `.venv/bin/python -m transferability.bench.heads` (add `--quick` for a seconds-long smoke run).
One run, one table: wall time of each, the speed-up, and the mean test-accuracy difference in points.
Goals: >= 10x faster, accuracy within 0.5 points. Then head.C=auto (a C per target chosen on a 10% validation
split from the 6-value grid, warm starts along it, then the refit) against the single-C fit: goal within 3x.

Synthetic embeddings of realistic size: a few latent factors drive both a 512-d embedding (through a
random linear map, plus noise) and 40 binary targets (a random direction in factor space, a per-target
noise level and a per-target threshold), so targets range from easy to hard and from balanced to skewed,
like face attributes.
"""
from __future__ import annotations

import sys
import time

import numpy as np
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from ..config import group_config
from ..models.heads import fit_heads


def make_data(n: int, m: int, dim: int, n_targets: int, n_factors: int = 8, seed: int = 0):
    """(z_train, y_train, z_test, y_test): float32 embeddings and int64 binary targets."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n + m, n_factors))
    z = f @ rng.normal(size=(n_factors, dim)) + 3.0 * rng.normal(size=(n + m, dim))
    direction = rng.normal(size=(n_factors, n_targets))
    noise = rng.uniform(0.2, 3.0, size=n_targets)         # easy to hard targets
    logits = f @ direction / np.linalg.norm(direction, axis=0) + noise * rng.normal(size=(n + m, n_targets))
    cut = np.quantile(logits, rng.uniform(0.1, 0.9, size=n_targets), axis=0).diagonal()  # class balance
    y = (logits > cut).astype(np.int64)
    z = z.astype(np.float32)
    return z[:n], y[:n], z[n:], y[n:]


def main(quick: bool = False) -> None:
    n, m, dim, T = (2000, 500, 64, 6) if quick else (20_000, 5_000, 512, 40)
    z, y, zt, yt = make_data(n, m, dim, T)
    head = group_config("head", "linear_svm")

    t0 = time.perf_counter()
    fit = fit_heads(head, z, y, zt, [2] * T, y_test=yt)
    ours = time.perf_counter() - t0

    # The reference sees the same standardised features; liblinear's primal solver (n >> D), default tol.
    scaler = StandardScaler().fit(z)
    xs, xts = scaler.transform(z), scaler.transform(zt)
    t0 = time.perf_counter()
    ref_pred = np.stack([LinearSVC(C=head.C, dual=False, tol=1e-4, max_iter=1000).fit(xs, y[:, t]).predict(xts)
                         for t in range(T)], 1)
    ref = time.perf_counter() - t0

    acc_ours = (fit.test_pred == yt).mean(0) * 100
    acc_ref = (ref_pred == yt).mean(0) * 100
    agree = (fit.test_pred == ref_pred).mean() * 100
    print(f"linear_svm heads: {T} binary targets, train {n} x {dim}, test {m}, C={head.C}")
    print(f"{'':28s}{'seconds':>10s}{'mean test acc':>16s}")
    print(f"{'fit_heads (batched)':28s}{ours:10.2f}{acc_ours.mean():15.2f}%")
    print(f"{'LinearSVC loop (sklearn)':28s}{ref:10.2f}{acc_ref.mean():15.2f}%")
    print(f"speed-up {ref / ours:.1f}x (goal >= 10x); accuracy difference {np.mean(acc_ours - acc_ref):+.3f} points "
          f"(goal within 0.5); max |diff| over targets {np.abs(acc_ours - acc_ref).max():.2f} points; "
          f"test predictions agree on {agree:.2f}%; target accuracies {acc_ref.min():.1f}-{acc_ref.max():.1f}%")

    val = np.random.default_rng(1).random(n) < 0.1
    auto = group_config("head", "linear_svm", C="auto")
    t0 = time.perf_counter()
    tuned = fit_heads(auto, z, y, zt, [2] * T, y_test=yt, val=val)
    auto_s = time.perf_counter() - t0
    chosen = ", ".join(f"{c:g}: {n_c}" for c, n_c in zip(*np.unique(tuned.C, return_counts=True)))
    print(f"head.C=auto over {auto.C_grid}: {auto_s:.2f} s = {auto_s / ours:.1f}x the single-C fit (goal within 3x); "
          f"mean test acc {(tuned.test_pred == yt).mean() * 100:.2f}%; chosen C (targets): {chosen}")


if __name__ == "__main__":
    from transferability.logs import to_console

    to_console()
    main(quick="--quick" in sys.argv[1:])
