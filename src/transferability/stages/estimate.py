"""stage=estimate: CE of every target given every selected source, and each task's hardness, from labels only.

Writes into the run directory: ce.csv (source, target, ce in nats), hardness.csv (task, hardness),
ce_heatmap.png, config.json; prints a short summary (and the paper's values beside ours when the
experiment config carries a `reference`).

A sparse label table (openimages: ~20,000 classes, no dense table) goes through `estimate_sparse` instead:
the full matrix as ce_matrix.npy (float32, rows = targets, columns = sources, names in ce_matrix_axes.json),
ce.csv with the `estimate.top_k` best sources of each target, hardness.csv, and best_sources.md/.png."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..analysis import figures
from ..config import RunConfig, to_dict
from ..data.registry import load_dataset
from ..data.sparse_labels import SparseLabelTable
from ..errors import UserError
from ..estimators.label_only import ce_matrix
from .run_dirs import view

CONSTANT = "\0constant"   # the trivial task C of Eq. 14, under a name no column of a label file can have
log = logging.getLogger(__name__)


def run_estimate(run: RunConfig) -> Path:
    out = Path(run.run_dir)
    t0 = time.perf_counter()
    table = load_dataset(run.dataset).labels
    if isinstance(table, SparseLabelTable):
        from .estimate_sparse import estimate_sparse

        return estimate_sparse(run, table, out, time.perf_counter() - t0)
    source = table.resolve_source(run.source, run.source_index, default="all")
    sources, targets = table.select(source), table.select(run.target)
    rows = table.subset(run.split)
    t1 = time.perf_counter()
    # One count over every task that is a source or a target (once, if both), with a constant task beside them:
    # H(task | constant) is the task's hardness H(Z|C) (Eq. 14), read off the same counts.
    tasks = list(dict.fromkeys(sources + targets))
    full = ce_matrix(rows.labels[tasks].assign(**{CONSTANT: np.zeros(rows.n, np.int8)}),
                     bias_correction=run.bias_correction)
    t2 = time.perf_counter()
    hard = pd.DataFrame({"task": tasks, "hardness": full.loc[tasks, CONSTANT].to_numpy()})
    # A target with a single class (or none) in these rows: every CE is 0, nothing to compare.
    constant = set(hard.task[~(hard.hardness > 0)])
    if constant & set(targets):
        skipped = [t for t in targets if t in constant]
        log.info(f"skipping {len(skipped)} single-class target(s): {', '.join(skipped)}")
        targets = [t for t in targets if t not in constant]
        if not targets:
            raise UserError(f"every target has a single class in the {run.split} split: nothing to estimate")
    m = full.loc[targets, sources]

    ce = m.rename_axis(index="target").reset_index().melt(id_vars="target", var_name="source", value_name="ce")
    ce = ce[["source", "target", "ce"]]
    io.write_csv(out / "ce.csv", ce)
    io.write_csv(out / "hardness.csv", hard)
    io.write_json(out / "config.json", to_dict(run))
    shown = ", ".join(v for v in (view(run), "Miller-Madow" if run.bias_correction else "") if v)
    figures.ce_heatmap(m, out / "ce_heatmap.png", f"{run.dataset.name}: H(target | source), {run.split} split, nats"
             + (f"\n{shown}" if shown else ""))

    log.info(f"{run.dataset.name}: {rows.n} {run.split} images, {len(sources)} source x {len(targets)} target tasks; "
             f"CE matrix in {t2 - t1:.3f} s (labels loaded in {t1 - t0:.1f} s)")
    if run.reference:
        log.info(_reference_table(ce, run.reference))
    else:
        pairs = ce[ce.source != ce.target].dropna().sort_values("ce")
        if len(pairs):
            show = lambda r: f"H({r.target} | {r.source}) = {r.ce:.3f}"
            log.info("most transferable:  " + "; ".join(show(r) for r in pairs.head(3).itertuples()))
            log.info("least transferable: " + "; ".join(show(r) for r in pairs.tail(3).itertuples()))
        h = hard.sort_values("hardness")
        log.info(f"easiest: {h.task.iloc[0]} (H={h.hardness.iloc[0]:.3f}), hardest: {h.task.iloc[-1]} "
                 f"(H={h.hardness.iloc[-1]:.3f})")
    log.info(f"wrote {out / 'ce.csv'}, {out / 'hardness.csv'}, {out / 'ce_heatmap.png'}")
    return out


def _reference_table(ce: pd.DataFrame, reference: dict) -> str:
    """Published values beside ours, rounded as the paper prints them (three decimals)."""
    lines = [f"{'source':<12}{'target':<22}{'paper':>8}{'ours':>8}  match"]
    for source, targets in reference.items():
        for target, paper in targets.items():
            ours = ce.loc[(ce.source == source) & (ce.target == target), "ce"]
            val = float(ours.iloc[0]) if len(ours) else float("nan")
            ok = "yes" if round(val, 3) == round(float(paper), 3) else "NO"
            lines.append(f"{source:<12}{target:<22}{paper:>8.3f}{val:>8.3f}  {ok}")
    return "\n".join(lines)
