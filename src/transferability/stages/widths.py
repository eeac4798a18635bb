"""stage=widths: the width x prevalence study, from the transfer rows on disk.

For each embedding size D in `widths`, the finished rows of `backbone.embedding_dim=D` (their own folder,
`<backbone>-D<D>`, with the run's settings folder below the head when it has one) are read like stage=analyze
reads them (checked rows of that setting only, seeds averaged), and every
estimator's per-source correlation with transfer and its partial correlation given H(Y) are summarised per D
(analysis/width_study.py). Writes into `<dataset>/<backbone>/<head>/widths/`: per_source.csv, widths.csv,
widths.md, widths.png and summary.md.

    python run.py -m experiment=width_prevalence_digits      # trains the rows, then runs this stage
    python run.py stage=widths dataset=digits 'dataset.quantiles=[0.1,0.25,0.5,0.75,0.9]'   # this stage alone
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..analysis import figures
from ..analysis.design import add_baselines, seed_errors, target_baselines
from ..analysis.inference import split_half_ceiling
from ..analysis.matrix import mean_over_seeds
from ..analysis.ranking import signs
from ..analysis.width_study import (
    PARTIAL,
    R,
    binary_cells,
    per_source,
    quantile_groups,
    reading,
    summarise,
    table_markdown,
)
from ..config import RunConfig
from ..errors import UserError
from ..estimators.registry import FIGURE_ORDER
from .analyze import TRAIN_SPLIT, label_table, load_runs
from .run_dirs import rows_root

log = logging.getLogger(__name__)

ORDER = list(FIGURE_ORDER)   # rows of the tables and lines of the figure


def run_widths(cfg: RunConfig) -> Path:
    if cfg.backbone.name != "small_cnn":
        raise UserError(f"stage=widths compares small_cnn embedding sizes; backbone={cfg.backbone.name} fixes its own "
                        "D (use backbone=small_cnn)")
    out = Path(cfg.run_dir)
    table, why = label_table(cfg)
    if table is None:
        raise UserError(f"stage=widths needs the label table for H(Y): {why}")
    base = target_baselines(table.subset(TRAIN_SPLIT).labels)
    frames, ceilings, errors, missing, roots = [], {}, {}, [], []
    for d in cfg.widths:
        sub = dataclasses.replace(cfg, backbone=dataclasses.replace(cfg.backbone, embedding_dim=d))
        root = rows_root(sub)
        roots.append(str(root))
        runs = load_runs(root, sub)
        for run_dir, reason in runs.attrs["unchecked"]:
            log.info(f"left out (not a checked finished row): {run_dir}: {reason}")
        runs = runs[runs["train_fraction"] == 1.0]
        if runs.empty:
            missing.append(d)
            continue
        cells = binary_cells(add_baselines(mean_over_seeds(runs), base))
        ceilings[d] = split_half_ceiling(seed_errors(runs, cells))
        errors[d] = (float(cells["test_error"].mean()), float(cells["test_error"].std()))
        frames.append(per_source(cells, signs()).assign(D=d, n_seeds=int(runs["seed"].nunique())))
        log.info(f"D = {d}: {cells['source'].nunique()} sources x {cells['target'].nunique()} binary targets, "
                 f"{runs['seed'].nunique()} seed(s)")
    if not frames:
        raise UserError(f"no checked finished transfer rows for any of widths={list(cfg.widths)} (looked in "
                        f"{roots[0]} and the other -D<D> folders); create them with: python run.py -m "
                        f"experiment=width_prevalence_{cfg.dataset.name}")
    if missing:
        log.info(f"widths without finished rows (left out): {', '.join(map(str, missing))}")
    rows = pd.concat(frames, ignore_index=True)
    summary = summarise(rows, seed=cfg.seed).assign(
        noise_ceiling=lambda s: s["D"].map({d: c["ceiling"] for d, c in ceilings.items()}),
        mean_error=lambda s: s["D"].map({d: e[0] for d, e in errors.items()}),
        sd_error=lambda s: s["D"].map({d: e[1] for d, e in errors.items()}))
    io.write_csv(out / "per_source.csv", rows)
    io.write_csv(out / "widths.csv", summary)
    title = f"{cfg.dataset.name}: {rows['source'].nunique()} sources, binary targets of controlled prevalence"
    io.write_text(out / "widths.md", _tables(summary, title))
    figures.fig_widths(summary, out / "widths.png", ORDER, title)
    io.write_text(out / "summary.md", _summary(summary, ceilings, errors, title, _binary_tasks(table), missing))
    log.info(f"wrote {out}/widths.md, widths.csv, widths.png, per_source.csv, summary.md")
    return out


def _binary_tasks(table) -> list[str]:
    """The dataset's binary tasks (the study's targets)."""
    return [t for t in table.tasks if table.n_classes(t) == 2]


def _tables(summary: pd.DataFrame, title: str) -> str:
    return (f"# Width x prevalence: {title}\n\n"
            "Cells: median over sources [95% bootstrap interval over sources] (sources with r > 0 and BH q < 0.05 / "
            "sources).\n\n## Per-source r of the estimator with transfer (CE: r(CE, test error))\n\n"
            f"{table_markdown(summary, R, ORDER)}\n\n## Per-source partial r given the target entropy H(Y)\n\n"
            f"{table_markdown(summary, PARTIAL, ORDER)}\n")


def _summary(summary: pd.DataFrame, ceilings: dict, errors: dict, title: str, targets: list[str],
             missing: list[int]) -> str:
    groups = quantile_groups(targets)
    nested = (f"{sum(len(v) for v in groups.values())} of the {len(targets)} binary targets are cuts of "
              f"{len(groups)} measures at several quantiles ({', '.join(sorted(groups)[:4])}, ...): the cuts of "
              "one measure are nested and q / 1-q are near-complements, so they are not independent targets; "
              "each interval resamples sources, never targets.") if groups else ""
    ceil = "; ".join(f"D = {d}: {c['ceiling']:.3f}" for d, c in sorted(ceilings.items()) if np.isfinite(c["ceiling"]))
    lines = [f"# Width x prevalence study: {title}", "", *[f"- {l}" for l in reading(summary)], ""]
    if nested:
        lines += [nested, ""]
    lines += ["Transfer test error over the cells (seeds averaged), what the correlations have to explain: "
              + "; ".join(f"D = {d}: mean {m:.3f}, sd {sd:.3f}" for d, (m, sd) in sorted(errors.items())) + ".", ""]
    if ceil:
        lines += [f"Noise ceiling of any predictor's r (split-half reliability of the error matrix over seeds): "
                  f"{ceil}.", ""]
    if missing:
        lines += [f"Widths with no finished rows, left out: {', '.join(map(str, missing))}.", ""]
    lines += ["Tables: widths.md; figure: widths.png; per source: per_source.csv."]
    return "\n".join(lines) + "\n"
