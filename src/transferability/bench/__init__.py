"""Benchmarks: one module per `make bench` section (`ce`, `heads`, `estimators`) and the GPU one (`gpu`, for
`make bench-gpu`), each printing its figure beside the obvious alternative, as a ratio from one run.

May import anything in the package; nothing imports it."""
import time


def best_of(fn, repeat: int = 1) -> float:
    """Best wall time of `repeat` calls: the least disturbed by the machine's other work."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best
