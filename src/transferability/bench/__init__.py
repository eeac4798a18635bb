"""Benchmarks: one module per `make bench` section (`ce`, `heads`, `estimators`, `openimages`, `folder`,
`stacked`), the GPU one (`gpu`, for `make bench-gpu`) and the full-size rehearsal (`scale`, for `make bench-scale`),
each printing its figure beside the obvious alternative or its goal, from one run.

May import anything in the package; nothing imports it. Configs come from conf/ (`config.group_config`)."""
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def best_of(fn, repeat: int = 1) -> float:
    """Best wall time of `repeat` calls: the least disturbed by the machine's other work."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def time_goal(wall: float, cpu: float, goal: float, cores: int = 2) -> str:
    """The verdict on a goal of `goal` seconds on `cores` cores, from one run's wall and CPU seconds. Wall time
    is what the goal names, but on a machine shared with other work it also counts the neighbours' turns; the
    CPU seconds (all threads) bound what idle cores would take: under the goal, even one idle core meets it;
    under cores x goal, only cores that are all kept busy would."""
    if wall < goal:
        return "met"
    if cpu < goal:
        return (f"met on CPU time: {cpu:.0f} CPU-s < {goal:.0f}, so one idle core would meet it; the {wall:.0f} s "
                "wall here counts other jobs' turns on the cores")
    if cpu < cores * goal:
        return (f"NOT met here; {cpu:.0f} CPU-s, so only {cores} idle cores kept busy throughout ({cpu / cores:.0f} s) "
                "would meet it")
    return f"NOT met ({cpu:.0f} CPU-s: more than {cores} x {goal:.0f})"
