"""dataset=folder at scale: `stage=estimate` on a generated metadata.csv of 1,000,000 rows and 100 tasks (binary and
multi-class; integers, true/false and text; 5% of the cells empty in half of the tasks), run through run.py in a
child process as a user would. Prints the child's wall time, CPU time and peak RSS beside the goals (30 s and
4 GB on 2 cores). Labels only: the listed images do not exist, and estimate never opens them.

    python -m transferability.bench --only folder [--quick]
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import REPO, time_goal

GOAL_S, GOAL_GB = 30.0, 4.0


def write_metadata(path: Path, n: int, n_tasks: int, seed: int = 0) -> dict:
    """A metadata.csv of `n` rows: file_name, split and `n_tasks` task columns driven by 8 latent factors (so tasks
    are correlated, as attributes are). Every fourth task is multi-class (3-12 classes), the rest binary; the kinds
    of values alternate (integers, true/false, text) and every other task has 5% empty cells."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 8)).astype(np.float32)
    cols = {"file_name": pa.array(np.char.add(np.char.add("images/", np.char.zfill(np.arange(n).astype(str), 7)),
                                              ".jpg")),
            "split": pa.array(np.array(["train", "validation", "test"])[rng.choice(3, n, p=[0.8, 0.1, 0.1])])}
    kinds = {"binary": 0, "multiclass": 0}
    for j in range(n_tasks):
        score = latent @ rng.standard_normal(8).astype(np.float32) + rng.standard_normal(n).astype(np.float32)
        empty = rng.random(n) < 0.05 if j % 2 else None
        if j % 4 == 3:
            k = 3 + j % 10
            value = np.searchsorted(np.quantile(score, np.linspace(0, 1, k + 1)[1:-1]), score)
            column = np.array([f"class_{c}" for c in range(k)])[value] if j % 8 == 3 else value
            kinds["multiclass"] += 1
        else:
            value = score > np.quantile(score, rng.uniform(0.5, 0.95))
            column = [value.astype(np.int8), value, np.where(value, "yes", "no")][j % 3]
            kinds["binary"] += 1
        cols[f"task_{j:03d}"] = pa.array(column, mask=empty)
    pcsv.write_csv(pa.table(cols), path, write_options=pcsv.WriteOptions(quoting_style="needed"))
    return kinds


def run_estimate(root: Path, outputs: Path) -> dict:
    """stage=estimate on dataset=folder through run.py, in a child: wall, CPU seconds and peak RSS of the child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    t = time.perf_counter()
    done = subprocess.run([sys.executable, str(REPO / "run.py"), "stage=estimate", "dataset=folder",
                           f"dataset.root={root}", f"paths.outputs={outputs}"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"stage=estimate failed ({done.returncode}):\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # ru_maxrss of RUSAGE_CHILDREN: the largest peak of any waited-for child (KiB on Linux), here the estimate.
    return dict(wall_s=wall, cpu_s=cpu, peak_gb=after.ru_maxrss * 1024 / 1e9, stdout=done.stdout)


def main(quick: bool = False) -> None:
    n, n_tasks = (20_000, 20) if quick else (1_000_000, 100)
    with tempfile.TemporaryDirectory(prefix="bench-folder-") as tmp:
        root = Path(tmp) / "data"
        root.mkdir()
        t = time.perf_counter()
        kinds = write_metadata(root / "metadata.csv", n, n_tasks)
        size = (root / "metadata.csv").stat().st_size
        print(f"metadata.csv: {n:,} rows x {n_tasks} tasks ({kinds['binary']} binary, {kinds['multiclass']} "
              f"multi-class), {size / 1e6:.0f} MB, written in {time.perf_counter() - t:.1f} s", flush=True)
        load = os.getloadavg()
        r = run_estimate(root, Path(tmp) / "outputs")
    line = next((x for x in r["stdout"].splitlines() if "CE matrix in" in x), "")
    print(f"stage=estimate (run.py, child process): {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} CPU-s, "
          f"peak RSS {r['peak_gb']:.2f} GB; load average before {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}")
    if line:
        print(f"  the stage's own line: {line.strip()}")
    cores = os.cpu_count() or 2
    print(f"goal: < {GOAL_S:.0f} s and < {GOAL_GB:.0f} GB peak on 2 cores (this machine: {cores}); "
          f"time {time_goal(r['wall_s'], r['cpu_s'], GOAL_S)}, memory "
          f"{'met' if r['peak_gb'] < GOAL_GB else 'NOT met'}" + (" (--quick: not the reported size)" if quick else ""))


if __name__ == "__main__":
    main()
