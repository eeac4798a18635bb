"""`make bench`: each performance figure beside the obvious alternative, as a ratio from one run."""
import time


def best_of(fn, repeat: int = 1) -> float:
    """Best wall time of `repeat` calls: the least disturbed by the machine's other work."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best
