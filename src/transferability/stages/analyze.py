"""stage=analyze: every finished transfer run of one (dataset, backbone, head) -> the paper's tables,
figures and an honest summary.

Reads `<outputs>/<dataset>/<backbone>/<head>/source=*/seed=*[/fraction=*]/results.csv` (+ source.json)
from disk only, and writes into the run directory (atomically): matrix.csv, ce_matrix.csv,
correlations.csv, fig2.png, hardness.csv + fig6.png, table1_<source>.md/.csv (+ _all.csv) and
fig3_<source>.png / fig4_<source>.png per multi-class source, fig5_<source>.png/.csv when
train_fraction runs exist, theorem1.csv, estimators.csv + estimators.png, summary.md.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis import figures
from .. import io
from ..analysis.matrix import correlate, correlations, hardness_table, matrix, mean_over_seeds, transfers
from ..analysis.ranking import best_estimator, estimator_comparison
from ..analysis.summary import (Claim, ce_claims, estimator_lines, hardness_claim, summary_markdown, table1_claims,
                                theorem1_claim)
from ..analysis.tables import fraction_curves, table1, table1_layout, table1_markdown, table1_pattern, theorem1_check
from ..config import RunConfig
from ..data.registry import load_dataset
from ..errors import UserError
from ..tracking import Tracker

REQUIRED = ["source", "target", "n_classes", "n_train", "n_test", "ce", "ce_mm", "nce", "test_error", "test_accuracy",
            "train_error", "train_nll", "l_z", "theorem1_bound", "ce_head_train_ll"]
OPTIONAL = ["leep", "logme", "hscore", "hscore_reg", "transrate", "gbc", "nleep"]
META = ["source_n_classes", "source_test_accuracy", "source_train_nll", "epochs"]
N_BOOT, N_BOOT_SOURCE = 1000, 200   # bootstrap resamples: pooled / mean over sources, and per source
TRAIN_SPLIT = "trainval"   # the rows the transfer stage fits heads and computes CE on


def rows_root(cfg: RunConfig) -> Path:
    return Path(cfg.paths.outputs) / cfg.dataset.name / cfg.backbone.name / cfg.head.name


def load_runs(root: Path) -> pd.DataFrame:
    """Every finished run's rows (results.csv present), with seed, train_fraction and source.json's
    scalars added. Folder names are the fallback for seed/fraction when source.json lacks them."""
    paths = sorted(root.glob("source=*/seed=*/results.csv")) + sorted(root.glob("source=*/seed=*/fraction=*/results.csv"))
    frames = []
    for path in paths:
        try:
            df = pd.read_csv(path)
        except (pd.errors.EmptyDataError, pd.errors.ParserError) as e:
            raise UserError(f"{path}: not a results table ({str(e).splitlines()[0]})") from None
        missing = [c for c in REQUIRED if c not in df.columns]
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(missing)}; expected the transfer stage's results.csv")
        meta = _read_meta(path.parent / "source.json")
        folder = {k: v for k, v in re.findall(r"(seed|fraction)=([^/]+)", path.parent.relative_to(root).as_posix())}
        df["seed"] = int(meta.get("seed", folder.get("seed", 0)))
        df["train_fraction"] = float(meta.get("train_fraction", folder.get("fraction", 1.0)))
        for k in META:
            df[k] = meta.get(k, np.nan)
        for k in OPTIONAL:
            if k not in df:
                df[k] = np.nan
        df["run_dir"] = str(path.parent)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=REQUIRED + OPTIONAL + ["seed", "train_fraction", *META, "run_dir"])
    runs = pd.concat(frames, ignore_index=True)
    runs["source"], runs["target"] = runs["source"].astype(str), runs["target"].astype(str)
    return runs


def _read_meta(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None


def _labels(cfg: RunConfig):
    """The dataset's label table, or None (with the reason) when it cannot be loaded here: the
    analysis of the rows still runs, without hardness and the list of missing sources."""
    try:
        return load_dataset(cfg.dataset).labels, ""
    except (UserError, OSError, ImportError) as e:
        return None, f"dataset {cfg.dataset.name!r} could not be loaded ({e})"


def run_analyze(cfg: RunConfig) -> Path:
    out = Path(cfg.run_dir)
    root = rows_root(cfg)
    runs = load_runs(root)
    if runs.empty:
        raise UserError(f"no finished transfer runs (results.csv) under {root}; create them with: python run.py -m "
                        f"stage=transfer dataset={cfg.dataset.name} backbone={cfg.backbone.name} head={cfg.head.name} "
                        f"'source_index=range(0,<number of tasks>)'")
    table, why = _labels(cfg)
    if table is None:
        print(f"note: {why}; hardness and missing sources not analysed")
    rows = mean_over_seeds(runs)
    if cfg.target != "all" and table is not None:   # analyse a sub-matrix: these tasks as sources and targets
        keep = set(table.select(cfg.target))
        rows = rows[rows["source"].isin(keep) & rows["target"].isin(keep)]
        print(f"analysing the {len(keep)}-task sub-matrix target={cfg.target}")
    full = rows[rows["train_fraction"] == 1.0]
    found = sorted(full["source"].unique())
    expected = _expected_sources(table, cfg.target)
    missing = [s for s in expected if s not in set(found)] if expected else []
    if missing:
        print(f"missing sources ({len(missing)} of {len(expected)} expected have no finished full-data run): "
              + ", ".join(missing))

    written: list[Path] = []
    write_csv = lambda name, df: (io.write_csv(out / name, df), written.append(out / name))
    write_csv("matrix.csv", matrix(full).reset_index())
    write_csv("ce_matrix.csv", matrix(full, "ce").reset_index())
    corr = correlations(full)
    write_csv("correlations.csv", corr)
    claims = ce_claims(corr)
    if len(full):
        written.append(figures.fig2(full, figures.select_sources(corr), out / "fig2.png", cfg.dataset.name))

    hard = None
    if table is not None:
        from ..estimators.label_only import hardness

        lab = table.subset(TRAIN_SPLIT).labels
        tasks = [t for t in dict.fromkeys(found + list(full["target"])) if t in lab.columns]
        hard = hardness_table(full, {t: hardness(lab[t].to_numpy(), cfg.bias_correction) for t in tasks})
        write_csv("hardness.csv", hard)
        written.append(figures.fig6(hard, out / "fig6.png", cfg.dataset.name))
    claims.append(hardness_claim(hard, why))

    multi = _multiclass_sources(table, runs, found)
    for s in multi:
        long = table1(full, s)
        write_csv(f"table1_{s}.csv", table1_layout(long).reset_index())
        write_csv(f"table1_{s}_all.csv", long)
        io.write_text(out / f"table1_{s}.md", table1_markdown(
            table1_layout(long), f"{cfg.dataset.name}: transfer from {s} ({len(long)} targets, sorted by CE ascending)"))
        written += [out / f"table1_{s}.md", figures.fig3(full, s, out / f"fig3_{s}.png"),
                    figures.fig4(long, s, out / f"fig4_{s}.png")]
        g = transfers(full)
        g = g[g["source"] == s]
        claims += table1_claims(s, correlate(g["ce"], g["test_error"]), table1_pattern(long))
    if not multi:
        claims.append(Claim("Table 1 / Figs. 3-4: a multi-class source transfers best to low-CE targets", "",
                            "not tested: no rows from a multi-class source"))

    notes = _fig5(runs, rows, _multiclass_sources(table, runs, sorted(rows["source"].unique())), out, written)
    cells, t1 = theorem1_check(runs)
    write_csv("theorem1.csv", cells)
    claims.append(theorem1_claim(t1))

    print(f"estimator comparison: bootstrap over targets ({N_BOOT} pooled, {N_BOOT_SOURCE} per source resamples) ...")
    comparison = estimator_comparison(full, n_boot=N_BOOT, n_boot_source=N_BOOT_SOURCE, seed=cfg.seed)
    write_csv("estimators.csv", comparison)
    if len(comparison):
        written.append(figures.fig_estimators(comparison, out / "estimators.png"))
    best = best_estimator(comparison)

    facts = [f"rows read from `{root}`: {runs['run_dir'].nunique()} finished runs, {len(found)} sources with full-data runs, "
             f"seeds {sorted(runs['seed'].unique().tolist())}, train fractions {sorted(runs['train_fraction'].unique().tolist())}",
             f"missing sources ({len(missing)}): {', '.join(missing)}" if missing else
             ("missing sources: none" if expected else f"missing sources: unknown ({why})")]
    notes += ["Transfer correlations exclude the dedicated cell (target == source): its CE is H(Y|Y) = 0 and it is "
              "not a transfer.", "Seeds are averaged per (source, target, train fraction) before correlating.",
              f"Hardness is H(Z|C) on the {TRAIN_SPLIT} labels, the rows the transfer heads were fitted on.",
              f"Theorem 1 tolerance: {t1['tol']:g} nats (float32 softmax and the 1e-12 clip in l_Z are far below it)."]
    text = summary_markdown(f"{cfg.dataset.name} / {cfg.backbone.name} / {cfg.head.name}: analysis", facts, claims,
                            estimator_lines(comparison, best), notes)
    io.write_text(out / "summary.md", text)
    written.append(out / "summary.md")
    print(text)
    pooled = corr[corr["scope"] == "pooled"].iloc[0]
    _track(cfg, written, {"pooled_pearson_r": pooled["pearson_r"], "pooled_pearson_p": pooled["pearson_p"],
                          "theorem1_violations": t1["n_violations"], "theorem1_checked": t1["n_checked"],
                          "n_sources": len(found), "n_missing_sources": len(missing), "best_estimator": best or "",
                          **{f"verdict/{c.claim[:60]}": c.verdict for c in claims}})
    print(f"wrote {len(written)} files into {out}")
    return out


def _expected_sources(table, target) -> list[str]:
    """The dataset's tasks named by cfg.target, less single-class tasks (the transfer stage refuses them)."""
    if table is None:
        return []
    lab = table.subset(TRAIN_SPLIT)
    return [t for t in table.select(target) if lab.n_classes(t) >= 2]


def _multiclass_sources(table, runs: pd.DataFrame, found: list[str]) -> list[str]:
    """Sources that are the dataset's multi-class tasks (identity, class, species, digit, shape); without
    labels, those whose source model had more than two classes."""
    if table is not None:
        return [s for s in found if s in table.multiclass]
    k = runs.groupby("source")["source_n_classes"].max()
    return [s for s in found if k.get(s, 0) > 2]


def _fig5(runs, rows, multi, out: Path, written: list) -> list[str]:
    """Fig. 5 for each multi-class source with train_fraction < 1 runs: targets with dedicated
    fraction runs, else the two most transferable (lowest CE) targets."""
    partial = rows[rows["train_fraction"] < 1.0]
    if partial.empty:
        return ["Fig. 5 not drawn: no train_fraction < 1 runs."]
    notes = []
    for s in [m for m in multi if m in set(partial["source"])]:
        ded = sorted(set(partial.loc[partial["source"] == partial["target"], "source"]) - {s})
        mine = transfers(rows[(rows["source"] == s) & (rows["train_fraction"] == 1.0)]).sort_values("ce")
        targets = [t for t in ded if t in set(mine["target"])] or list(mine["target"].head(2))
        curves = fraction_curves(runs, s, targets)
        io.write_csv(out / f"fig5_{s}.csv", curves)
        written += [out / f"fig5_{s}.csv", figures.fig5(curves, s, out / f"fig5_{s}.png")]
    if not written or not any(p.name.startswith("fig5_") for p in written):
        notes.append("Fig. 5 not drawn: train_fraction runs exist, but none from a multi-class source.")
    return notes


def _track(cfg: RunConfig, written: list[Path], headline: dict) -> None:
    """The tables, images and headline numbers, logged to one wandb run (a view of the files; the
    other loggers have nothing to add here)."""
    if cfg.logger.name != "wandb":
        return
    with Tracker(cfg, name="analyze", job_type="analyze") as tracker:
        tracker.log_metrics(headline)
        for p in written:
            if p.suffix == ".csv":
                tracker.log_table(p.stem, pd.read_csv(p))
            elif p.suffix == ".png":
                tracker.log_image(p.stem, p)
