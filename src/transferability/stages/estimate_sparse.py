"""stage=estimate on a sparse label table (openimages): H(t|s) for every pair of classes, streamed by blocks of
targets from sparse indicator products (estimators/sparse_pairs.py); no images x classes table is ever dense.

Writes into the run directory:
  ce_matrix.npy         float32 (targets x sources) H(target | source) in nats; NaN: no image labelled for both
  ce_matrix_axes.json   the task ids of its rows (targets) and columns (sources)
  ce.csv                the estimate.top_k best sources of each target (lowest H(t|s), the target itself left
                        out, only sources with >= estimate.min_pair_rows images labelled for both), with the
                        target's entropy beside them
  hardness.csv          each task's entropy H(Z|C) over the images labelled for it, and its counts
  best_sources.md/.png  the best source of a sample of targets
  config.json
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..analysis import best_sources
from ..config import RunConfig, to_dict
from ..data.sparse_labels import SparseLabelTable
from ..errors import UserError
from ..estimators.sparse_pairs import block_size, ce_blocks, entropies, top_k
from ..logs import progress

log = logging.getLogger(__name__)


def estimate_sparse(run: RunConfig, table: SparseLabelTable, out: Path, load_s: float) -> Path:
    source = table.resolve_source(run.source, run.source_index, default="all")
    sources, targets = table.select(source), table.select(run.target)
    rows = table.subset(run.split)
    if rows.n == 0:
        raise UserError(f"{run.dataset.name}: no images in split {run.split!r} (files read from {run.dataset.root})")
    tasks = list(dict.fromkeys(targets + sources))
    pu, au = rows.indicators(rows.positions(tasks))
    col = {t: j for j, t in enumerate(tasks)}
    ti, si = np.array([col[t] for t in targets]), np.array([col[t] for t in sources])
    pick = lambda m, idx: None if m is None else (m if np.array_equal(idx, np.arange(len(tasks))) else m[:, idx])
    h_u, known_u, present_u = entropies(pu, au)

    t0 = time.perf_counter()
    k, min_rows = run.estimate.top_k, run.estimate.min_pair_rows
    self_col = pd.Index(sources).get_indexer(targets)   # the target among the sources, or -1
    best_cols, best_vals, best_n = [], [], []
    block = block_size(len(targets), len(sources))
    with io.atomic_path(out / "ce_matrix.npy") as tmp:
        matrix = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(targets), len(sources)))
        # the blocks now: a full disk is one line, not a SIGBUS in the middle of the matrix
        io.reserve(tmp, tmp.stat().st_size, name=out / "ce_matrix.npy")
        blocks = ce_blocks(pick(pu, ti), pick(au, ti), pick(pu, si), pick(au, si), run.bias_correction, block)
        for r, h, n in progress(blocks, total=math.ceil(len(targets) / block), desc="H(t|s) blocks of targets",
                           disable=None, leave=False):
            matrix[r] = h
            cols, vals = top_k(h, n, k, min_rows, exclude=self_col[r])
            best_cols.append(cols)
            best_vals.append(vals)
            best_n.append(np.take_along_axis(n, np.maximum(cols, 0), axis=1))
        matrix.flush()
        del matrix
    t1 = time.perf_counter()

    cols, vals, n_both = np.concatenate(best_cols), np.concatenate(best_vals), np.concatenate(best_n)
    t_rep, rank = np.repeat(np.arange(len(targets)), k), np.tile(np.arange(1, k + 1), len(targets))
    ok = cols.ravel() >= 0
    t_rep, rank, s_col = t_rep[ok], rank[ok], cols.ravel()[ok]
    display = pd.Series(table.display, index=table.task_ids)
    tgt, src = np.asarray(targets, dtype=object)[t_rep], np.asarray(sources, dtype=object)[s_col]
    ce = pd.DataFrame({"source": src, "target": tgt, "ce": vals.ravel()[ok], "rank": rank, "n": n_both.ravel()[ok],
                       "target_entropy": h_u[ti][t_rep], "target_present": present_u[ti][t_rep],
                       "source_name": display[src].to_numpy(), "target_name": display[tgt].to_numpy()})
    hard = pd.DataFrame({"task": tasks, "hardness": h_u, "name": display[tasks].to_numpy(),
                         "n_labelled": known_u, "n_present": present_u})
    io.write_json(out / "ce_matrix_axes.json", {"rows (targets)": targets, "columns (sources)": sources,
                                                "dtype": "float32", "value": "H(target | source), nats"})
    io.write_csv(out / "ce.csv", ce)
    io.write_csv(out / "hardness.csv", hard)
    best = best_sources.sample_best(ce)
    how = "unknown = absent" if table.unverified_negative else "unknown pairs left out"
    title = (f"{run.dataset.name}: most transferable source of {len(best)} targets\n({run.split} split, {how}, "
             f"sources with >= {min_rows} images labelled for both)")
    best_sources.write(best, title, out / "best_sources.md", out / "best_sources.png")
    io.write_json(out / "config.json", to_dict(run))

    n_pos = int(rows.present.sum())
    log.info(f"{run.dataset.name}: {rows.n:,} {run.split} images, {len(rows.present):,} labels ({n_pos:,} present, "
             f"{len(rows.present) - n_pos:,} verified absent; {how}); {len(targets):,} targets x {len(sources):,} "
             f"sources: all pairs in {t1 - t0:.1f} s (labels loaded in {load_s:.1f} s)")
    log.info(best_sources.markdown(best).rstrip("\n"))
    log.info(f"wrote {out / 'ce_matrix.npy'}, {out / 'ce.csv'} (top {k} per target), {out / 'hardness.csv'}, "
             f"{out / 'best_sources.md'}")
    return out
