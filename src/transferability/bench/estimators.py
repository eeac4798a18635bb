"""Model-based estimators benchmark: the cost of each model-based estimator for ONE row of the transfer
matrix (one source, all targets), each as a ratio to the paper's label-only CE of the same row.

Sizes: a CelebA-sized row, features 162,770 x 512 (float32, as extracted; CelebA's training split), 41 binary
targets of prevalence 2% to 50%, source softmax 162,770 x 2 (a binary source) and 162,770 x 1,000 (a many-class
source, LEEP only).
The goal: all estimators together < 60 s on 2 cores, judged by `bench.time_goal` from the all-in-one call's
wall and CPU seconds. The obvious alternative to the shared all-targets route is one call per target; it is
timed on one target and extrapolated to the row. The estimators' settings are the run's: conf/config.yaml."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from . import best_of, time_goal

GOAL_S = 60.0   # all estimators of a CelebA-sized row together, on 2 cores


def settings() -> dict:
    """Every estimator setting as a run passes it: the composed config's `estimators:` block and `seed`."""
    from dataclasses import asdict

    from ..stages.compose import run_config

    run = run_config([])
    return {**asdict(run.estimators), "seed": run.seed}


def _timed(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of one call. CPU time counts every thread of the process: on a machine shared with
    other work, wall time stretches much more than CPU time does (which still grows, through shared caches
    and hyperthreads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def make_row(n: int, d: int, t: int, k_many: int, seed: int = 0) -> dict:
    """Features driven by a few latent factors, binary targets read off the same factors (so the
    estimators have something to find) with CelebA-like prevalences (2% to 50%, mean 26%: what TransRate's
    cost follows), the source = target 0, and two source softmax outputs."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 16))
    feats = np.maximum(latent @ rng.standard_normal((16, d)) + rng.standard_normal((n, d)), 0).astype(np.float32)
    scores = latent @ rng.standard_normal((16, t)) + rng.standard_normal((n, t))
    cut = [np.quantile(scores[:, j], q) for j, q in enumerate(np.linspace(0.5, 0.98, t))]
    Y = (scores > np.array(cut)).astype(np.int64)
    src = Y[:, 0]
    binary = _softmax(np.stack([np.zeros(n), 3.0 * (2 * src - 1) + rng.standard_normal(n)], axis=1))
    many = _softmax(feats @ rng.standard_normal((d, k_many)).astype(np.float32) / np.sqrt(d))
    return dict(features=feats, Y=Y, source=src, probs_binary=binary, probs_many=many)


def label_only_ce(Y: np.ndarray, source: np.ndarray) -> pd.Series:
    """H(target | source) for every target of the row (Eq. 7), through the package's CE engine."""
    from ..estimators.label_only import ce_matrix

    lab = pd.DataFrame(Y, columns=[f"t{i}" for i in range(Y.shape[1])])
    return ce_matrix(lab, pd.DataFrame({"source": source}))["source"]


def run(n: int, d: int, t: int, k_many: int):
    """Yields (name, wall seconds, wall / CE wall, CPU seconds), one line at a time (the row takes minutes)."""
    from ..estimators.model_based import model_based_scores
    from ..estimators.registry import COMPUTED, DISPLAY

    s = settings()
    row = make_row(n, d, t, k_many)
    F, Y, probs = row["features"], row["Y"], row["probs_binary"]
    small = make_row(500, 8, 2, 3)   # imports (sklearn.covariance, .mixture) outside the timings
    model_based_scores(small["features"], small["probs_binary"], small["Y"], **s)
    ce_s = best_of(lambda: label_only_ce(Y, row["source"]), repeat=3)
    yield "label-only CE (ce_matrix)", ce_s, 1.0, _timed(lambda: label_only_ce(Y, row["source"]))[1]
    wall, cpu = _timed(lambda: model_based_scores(F, probs, Y, **s))   # the headline: what a transfer row pays
    yield f"all {len(COMPUTED)} in one call (binary source)", wall, wall / ce_s, cpu
    for est in COMPUTED:
        wall, cpu = _timed(lambda: model_based_scores(F, probs, Y, which=(est,), **s))
        yield DISPLAY[est] + (", binary source (2 classes)" if est == "leep" else ""), wall, wall / ce_s, cpu
        if est == "leep":
            wall, cpu = _timed(lambda: model_based_scores(F, row["probs_many"], Y, which=("leep",), **s))
            yield f"{DISPLAY[est]}, {k_many:,}-class source", wall, wall / ce_s, cpu
    # The alternative: one call per target (the one-target route), extrapolated to the row.
    y0 = Y[:, :1]
    wall, cpu = _timed(lambda: [model_based_scores(F, probs, y0, which=(est,), **s) for est in COMPUTED])
    yield f"all {len(COMPUTED)}, one call per target (x{t} from 1)", t * wall, t * wall / ce_s, t * cpu


def main(quick: bool = False) -> None:
    n, d, t, k_many = (2_000, 64, 10, 100) if quick else (162_770, 512, 41, 1_000)
    print(f"one transfer-matrix row: features {n:,} x {d}, {t} binary targets, float64 internally")
    print(f"{'estimator':<50}{'seconds':>10}{'x CE':>10}{'CPU s':>10}")
    lines = []
    for name, s, ratio, cpu in run(n, d, t, k_many):
        lines.append((s, cpu))
        print(f"{name:<50}{s:>10.3f}{ratio:>10.0f}{cpu:>10.3f}", flush=True)
    print("seconds: wall time of one call; CPU s: CPU time of all its threads, the steadier figure on a busy "
          "machine (it too grows when other jobs share the cores)")
    (wall, cpu), (alt_wall, alt_cpu) = lines[1], lines[-1]   # all in one call; one call per target
    print(f"all estimators in one call vs one call per target: {alt_wall / wall:.0f}x less wall time, "
          f"{alt_cpu / cpu:.0f}x less CPU time")
    verdict = time_goal(wall, cpu, GOAL_S) if not quick else "no verdict: --quick runs a smaller row"
    print(f"goal: all estimators of a 162,770 x 512, 41-target row together < {GOAL_S:.0f} s on 2 cores "
          f"({threads()} BLAS threads here): {wall:.1f} s wall, {cpu:.1f} CPU-s -> {verdict}")


def threads() -> int:
    """The BLAS threads numpy's estimators run on."""
    from threadpoolctl import threadpool_info

    return max((i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"), default=1)


if __name__ == "__main__":
    from transferability.logs import to_console

    to_console()
    main()
