"""Benchmarks: one module per `make bench` section (`ce`, `heads`, `estimators`), the GPU one (`gpu`, for
`make bench-gpu`) and the full-size rehearsal (`scale`, for `make bench-scale`), each printing its figure
beside the obvious alternative or its goal, from one run.

May import anything in the package; nothing imports it. Needs no Hydra: a GPU machine may lack it."""
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
CONF = REPO / "conf"


def conf_group(group: str, name: str) -> dict:
    """conf/<group>/<name>.yaml as a plain dict (these files hold plain values, no interpolations)."""
    import yaml

    path = CONF / group / f"{name}.yaml"
    if not path.is_file():
        raise SystemExit(f"{path}: no such config (options: {sorted(p.stem for p in path.parent.glob('*.yaml'))})")
    return yaml.safe_load(path.read_text())


def best_of(fn, repeat: int = 1) -> float:
    """Best wall time of `repeat` calls: the least disturbed by the machine's other work."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best
