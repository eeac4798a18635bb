"""`make bench` section openimages: all-pairs CE at Open Images size, end to end from the CSV.

A generated table (9,000,000 images x 20,000 classes, data/openimages_synth.py; made once and kept under
outputs/bench/, never committed) goes through `python run.py stage=estimate dataset=openimages` in a child
process: wall time and peak RSS of the whole run (reading the CSV, the sparse products, writing the 1.6 GB
matrix and ce.csv). Beside it, the dense engine (`ce_matrix`) timed on a dense sample of the same kind of table
and extrapolated by its cost, rows x tasks^2. Goals on 2 cores: < 10 minutes and < 12 GB peak RSS."""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import best_of

REPO = Path(__file__).resolve().parents[3]


def generated(n: int, c: int) -> Path:
    from ..data import openimages_synth as synth

    root = REPO / "outputs" / "bench" / f"openimages_{n}x{c}"
    spec = synth.SynthSpec(n_images=n, n_classes=c)
    stamp = root / synth.SPEC_FILE
    import dataclasses

    if not stamp.exists() or json.loads(stamp.read_text())["spec"] != dataclasses.asdict(spec):
        print(f"generating {root} (once; kept for later runs)", flush=True)
        synth.generate(root, spec)
    return root


def dense_engine_seconds(n: int, c: int, n_s: int = 50_000, c_s: int = 1_000) -> tuple[float, float]:
    """`ce_matrix` on an n_s x c_s dense table (1 / 0 / NaN) of the generator's kind; (measured, extrapolated)."""
    from ..data import openimages_synth as synth
    from ..estimators.label_only import ce_matrix

    spec = synth.SynthSpec(n_images=n_s, n_classes=c_s)
    rng = np.random.default_rng(0)
    weights = (np.arange(c_s) + 1.0) ** -spec.alpha
    img, cls, conf = synth.chunk_labels(0, n_s, spec, np.cumsum(weights / weights.sum()), synth.hierarchy(spec, rng),
                                        rng)
    x = np.full((n_s, c_s), np.nan)
    x[img, cls] = conf
    df = pd.DataFrame(x, columns=[f"c{j}" for j in range(c_s)])
    t = best_of(lambda: ce_matrix(df), 1)
    return t, t * (n / n_s) * (c / c_s) ** 2


def hierarchy_hits(root: Path, run_dir: Path) -> tuple[int, int]:
    """Targets whose best source is their parent or one of their children in the generator's hierarchy."""
    edges = pd.read_csv(root / "hierarchy.csv")
    related = set(zip(edges.LabelName, edges.ParentLabelName)) | set(zip(edges.ParentLabelName, edges.LabelName))
    best = pd.read_csv(run_dir / "ce.csv").query("rank == 1")
    return sum((t, s) in related for t, s in zip(best.target, best.source)), len(best)


def main(quick: bool = False) -> None:
    n, c = (20_000, 300) if quick else (9_000_000, 20_000)
    root = generated(n, c)
    size = (root / "oidv6-train-annotations-human-imagelabels.csv").stat().st_size
    lines = json.loads((root / "synth.json").read_text())["stats"]["lines"]
    out = REPO / "outputs" / "bench" / f"openimages_runs_{n}x{c}"
    cmd = [sys.executable, str(REPO / "run.py"), "stage=estimate", "dataset=openimages", f"dataset.root={root}",
           f"paths.outputs={out}"]
    print("$ " + " ".join(cmd), flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)   # robust to a shared machine
    peak_gb = after.ru_maxrss * 1024 / 1e9
    hits, targets = hierarchy_hits(root, out / "openimages" / "estimate" / "split=train")
    measured, dense = dense_engine_seconds(n, c, *((5_000, 100) if quick else (50_000, 1_000)))
    print(f"\n{'table':<44}{'whole estimate':>16}{'CPU':>7}{'peak RSS':>10}{'dense ce_matrix (extrapolated)':>32}"
          f"{'ratio':>8}")
    print(f"{f'{n:,} images x {c:,} classes, {lines:,} lines':<44}{wall:>15.0f}s{cpu:>6.0f}s{peak_gb:>8.1f}GB"
          f"{dense:>31.0f}s{dense / wall:>7.1f}x")
    print(f"CSV {size / 1e9:.2f} GB; dense engine measured {measured:.1f} s on a dense sample, scaled by rows x "
          f"tasks^2; its dense table alone would hold {n * c / 1e9:,.0f} G cells ({n * c * 8 / 1e12:.1f} TB as "
          f"float64 with NaN)")
    print(f"best source is the target's parent or child in the generated hierarchy for {hits:,} of {targets:,} "
          f"targets with a ranked source")
    print("goals (2 cores): whole estimate < 600 s, peak RSS < 12 GB. The machine may be shared: rerun alone.")


if __name__ == "__main__":
    from transferability.logs import to_console

    to_console()
    main()
