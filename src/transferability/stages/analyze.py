"""stage=analyze: every finished transfer run of one (dataset, backbone, head) -> the paper's tables,
figures and an honest summary.

Reads `<outputs>/<dataset>/<backbone>/<head>/source=*/seed=*[/fraction=*]/results.csv` (+ source.json)
from disk only, and writes into the run directory (atomically): matrix.csv, ce_matrix.csv, matrix_seed_std.csv,
correlations.csv (by view: binary -> binary, each multi-class target, all pairs), fig2.png (binary -> binary) and
fig2_multiclass_targets.png, hardness.csv + fig6.png, table1_<source>.md/.csv (+ _all.csv) and
fig3_<source>.png / fig4_<source>.png per multi-class source, fig5_<source>.png/.csv when
train_fraction runs exist, theorem1.csv, estimators.csv + estimators.png, selection.csv + selection.png (choosing
a source per target, the margins over the baselines of both directions, the stability over setups, the
multi-label target), summary.md.

With rows of other ground truths beside these (the same dataset, backbone, head and settings but for head.C,
head.C_grid or the transfer group: stages/siblings.py), each is analysed into its own settings folder's
analysis/ as well, and the invoked analysis folder gets ground_truths.csv (analysis/ground_truths.py) and a
summary.md that opens with the claims holding under every ground truth present.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .. import identity, io
from ..analysis import figures
from ..analysis import ground_truths as gt
from ..analysis.design import (
    ALL,
    BINARY,
    MULTI_TARGET,
    RANDOM,
    add_baselines,
    add_source_baselines,
    ce_correlations,
    estimator_partials,
    random_baseline,
    target_baselines,
    views,
)
from ..analysis.matrix import hardness_table, matrix, mean_over_seeds, transfers
from ..analysis.ranking import MEAN, best_estimator, estimator_columns, estimator_comparison, signs
from ..analysis.selection import RANK, best_chooser, multilabel_rows, rank_margins, selection_table
from ..analysis.stability import Setup, half_subsets, stability
from ..analysis.summary import (
    HELD,
    NOT_HELD,
    Claim,
    design_claims,
    estimator_lines,
    hardness_claim,
    judged,
    kbar_note,
    margin_lines,
    partial_lines,
    provenance_lines,
    random_claim,
    selection_lines,
    summary_markdown,
    table1_claims,
    theorem1_claims,
    thread_counts_line,
)
from ..analysis.tables import fraction_curves, table1, table1_layout, table1_markdown, table1_pattern, theorem1_check
from ..analysis.width_study import quantile_groups
from ..config import RunConfig, to_dict
from ..data.registry import load_dataset
from ..errors import UserError
from ..estimators.registry import COMPUTED, MULTILABEL
from ..io import component
from ..provenance import provenance
from ..tracking import Tracker
from . import row_record, siblings
from .run_dirs import other_settings, rows_root, run_dir_for, settings_root, view

log = logging.getLogger(__name__)

REQUIRED = ["source", "target", "n_classes", "n_train", "n_test", "ce", "ce_mm", "nce", "test_error", "test_accuracy",
            "train_error", "train_nll", "l_z", "theorem1_bound", "ce_head_train_ll"]
OPTIONAL = list(COMPUTED)   # the score columns of results.csv (rows made before a score existed lack it)
META = ["source_n_classes", "source_test_accuracy", "source_train_nll", "epochs", "threads", "train_threads",
        "multilabel_n_targets", *MULTILABEL]
N_BOOT, N_BOOT_SOURCE = 1000, 200   # bootstrap resamples: pooled / mean over sources, and per source
N_SUBSETS = 200    # setups of half the sources and half the targets for the stability of the verdicts
TRAIN_SPLIT = "trainval"   # the rows the transfer stage fits heads and computes CE on


def load_runs(root: Path, cfg: RunConfig | None = None) -> pd.DataFrame:
    """Every checked finished run's rows (results.csv matching its done.json), with seed, train_fraction and
    source.json's scalars added. Folder names are the fallback for seed/fraction when source.json lacks them.
    With `cfg`, a row whose config.json records other settings than `cfg`'s (identity.differences; a row written
    into this folder before its settings had a folder of their own) is left out too: one setting's rows only.
    The rows left out, with why, are in `.attrs["unchecked"]` as (run_dir, reason) pairs."""
    paths = (sorted(root.glob("source=*/seed=*/results.csv"))
             + sorted(root.glob("source=*/seed=*/fraction=*/results.csv")))
    frames, unchecked, provenance = [], [], {}
    for path in paths:
        why = row_record.problem(path.parent) or (_other_setting(path.parent, cfg) if cfg is not None else None)
        if why:
            unchecked.append((str(path.parent), why))
            continue
        try:
            df = pd.read_csv(path)
        except (pd.errors.EmptyDataError, pd.errors.ParserError) as e:
            raise UserError(f"{path}: not a results table ({str(e).splitlines()[0]})") from None
        missing = [c for c in REQUIRED if c not in df.columns]
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(missing)}; expected the transfer stage's "
                            "results.csv")
        meta = _read_meta(path.parent / "source.json")
        folder = {k: v for k, v in re.findall(r"(seed|fraction)=([^/]+)", path.parent.relative_to(root).as_posix())}
        df["seed"] = int(meta.get("seed", folder.get("seed", 0)))
        df["train_fraction"] = float(meta.get("train_fraction", folder.get("fraction", 1.0)))
        for k in META:
            df[k] = np.nan if meta.get(k) is None else meta[k]
        for k in OPTIONAL:
            if k not in df:
                df[k] = np.nan
        df["run_dir"] = str(path.parent)
        provenance[str(path.parent)] = meta.get("provenance") or {}
        frames.append(df)
    if not frames:
        runs = pd.DataFrame(columns=REQUIRED + OPTIONAL + ["seed", "train_fraction", *META, "run_dir"])
    else:
        runs = pd.concat(frames, ignore_index=True)
        runs["source"], runs["target"] = runs["source"].astype(str), runs["target"].astype(str)
    runs.attrs["unchecked"] = unchecked
    runs.attrs["provenance"] = provenance   # run folder -> the code and libraries that made it
    return runs


def _other_setting(row: Path, cfg: RunConfig) -> str | None:
    """Why the row in `row` is not of `cfg`'s setting (None when it is, or when it records no config). The
    untrained `random` row never trains: its trainer and callbacks settings are not compared."""
    path = row / "config.json"
    if not path.exists():
        return None
    try:
        made = json.loads(path.read_text())
        assert isinstance(made, dict)
    except (OSError, ValueError, AssertionError):
        return "config.json unreadable"
    ignore = identity.IN_PATH + (("trainer", "callbacks") if made.get("source") == RANDOM else ())
    diff = identity.differences(made, cfg, ignore=ignore)
    return f"made with other settings ({'; '.join(diff[:3])})" if diff else None


def row_artifacts(runs: pd.DataFrame) -> list[tuple[str, Path]]:
    """(wandb artifact, results.csv) of every row read that logged its results to wandb (source.json's
    `wandb_artifact`): the analysis run's inputs."""
    out = []
    for run_dir in sorted(runs["run_dir"].unique()) if len(runs) else []:
        name = _read_meta(Path(run_dir) / "source.json").get("wandb_artifact")
        if name:
            out.append((str(name), Path(run_dir) / "results.csv"))
    return out


def _read_meta(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None


def label_table(cfg: RunConfig):
    """The dataset's label table, or None (with the reason) when it cannot be loaded here: the
    analysis of the rows still runs, without hardness and the list of missing sources."""
    try:
        return load_dataset(cfg.dataset).labels, ""
    except (UserError, OSError, ImportError) as e:
        return None, f"dataset {cfg.dataset.name!r} could not be loaded ({e})"


@dataclass
class Matrix:
    """The finished rows of one (dataset, backbone, head) as the steps below read them."""
    root: Path                    # where the rows are
    runs: pd.DataFrame            # every checked row, one line per (run, target); attrs: unchecked, provenance
    table: object | None          # the dataset's label table (None when it cannot be loaded here)
    why: str                      # why `table` is None
    rows: pd.DataFrame            # seeds averaged per (source, target, fraction), with the target and source baselines
    full: pd.DataFrame            # train fraction 1, trained sources only: what the statistics read
    with_random: pd.DataFrame     # `full` plus the untrained backbone's row (matrix.csv shows it)
    found: list[str]              # sources with a full-data row
    expected: list[str]           # sources the dataset has (empty when unknown)
    missing: list[str]
    base: pd.DataFrame | None     # the label table's per-task baselines (design.target_baselines)
    keep: set | None              # the tasks of a sub-matrix view (None: all)

    def full_rows(self, runs: pd.DataFrame) -> pd.DataFrame:
        """Rows of another setup (a seed, a head) read as `full` is: seeds averaged, baselines added, the view
        applied, train fraction 1, trained sources only."""
        rows = _with_baselines(mean_over_seeds(runs), self.base, self.keep)
        return rows[(rows["train_fraction"] == 1.0) & (rows["source"] != RANDOM)]


class Written:
    """The analysis folder: every file goes in atomically and is listed (for the wandb view)."""

    def __init__(self, out: Path):
        self.out, self.paths = out, []

    def csv(self, name: str, df: pd.DataFrame) -> None:
        io.write_csv(self.out / name, df)
        self.paths.append(self.out / name)

    def text(self, name: str, text: str) -> None:
        io.write_text(self.out / name, text)
        self.paths.append(self.out / name)

    def figure(self, path: Path) -> None:
        self.paths.append(path)


def run_analyze(cfg: RunConfig) -> Path:
    """The analysis of `cfg`'s rows, and, with other ground truths beside them, theirs and the comparison."""
    out, claims, full = analyze_setting(cfg)
    ground_truths_step(cfg, out, claims, full)
    return out


def analyze_setting(cfg: RunConfig) -> tuple[Path, list[Claim], pd.DataFrame]:
    """One setting's analysis into cfg.run_dir: (the folder, the claims' verdicts, the matrix as analysed)."""
    m = read_matrix(cfg)
    w = Written(Path(cfg.run_dir))
    w.csv("matrix.csv", matrix(m.with_random).reset_index())
    w.csv("ce_matrix.csv", matrix(m.with_random, "ce").reset_index())
    w.csv("matrix_seed_std.csv", matrix(m.with_random, "test_accuracy_std").reset_index())
    corr, claims = correlations_step(w, m, cfg)
    claims += hardness_step(w, m, cfg)
    claims += table1_step(w, m, cfg)
    notes = _fig5(m.runs, m.rows, _multiclass_sources(m.table, m.runs, sorted(m.rows["source"].unique())), w)
    cells, t1 = theorem1_check(m.runs, cfg.head.name)
    w.csv("theorem1.csv", cells)
    claims += theorem1_claims(t1)
    comparison, partials, best = estimators_step(w, m, cfg)
    selection, chosen_best, selection_text = selection_step(w, m, cfg, comparison, best)
    text = summary_step(w, m, cfg, corr, claims, notes, t1,
                        ["### Ranking the targets of a source", ""] + estimator_lines(comparison, best)
                        + margin_lines(selection, RANK, MEAN) + partial_lines(partials)
                        + ["", "### Choosing a source for a target", ""] + selection_text)
    log.info(text)
    sel = corr[(corr["view"] == ALL) & (corr["scope"] == "pooled")]
    pooled = sel.iloc[0] if len(sel) else pd.Series({"pearson_r": np.nan, "pearson_p": np.nan})
    _track(cfg, w.paths, {"pooled_pearson_r": pooled["pearson_r"], "pooled_pearson_p": pooled["pearson_p"],
                          "theorem1_violations": t1["train"]["n_violations"],
                          "theorem1_checked": t1["train"]["n_checked"],
                          "theorem1_test_violations": t1["test"]["n_violations"],
                          "n_sources": len(m.found), "n_missing_sources": len(m.missing),
                          "best_estimator": best or "", "best_estimator_choosing_a_source": chosen_best or "",
                          **{f"verdict/{c.claim[:60]}": c.verdict for c in claims}},
           row_artifacts(m.runs))
    log.info(f"wrote {len(w.paths)} files into {w.out}")
    return w.out, claims, m.full


def ground_truths_step(cfg: RunConfig, out: Path, claims: list[Claim], full: pd.DataFrame) -> None:
    """Every other ground truth's rows beside `cfg`'s analysed into its own folder; then in each of those analysis
    folders (`out` included) ground_truths.csv and the opening of summary.md (the claims under every ground
    truth), each with its own ground truth first. Nothing with one ground truth."""
    found = siblings.siblings(cfg, siblings.GROUND_TRUTH)
    mine = rows_root(cfg)
    if len(found) < 2 or found[0][0] != mine:
        return
    names = [siblings.ground_truth_name(made) for _, made in found]
    log.info(f"{len(found)} ground truths beside each other: {', '.join(names)}")
    truths, verdicts, folders = {names[0]: full}, {names[0]: claims}, {names[0]: out}
    for (folder, made), name in zip(found[1:], names[1:]):
        other = siblings.with_ground_truth(cfg, made)
        other = replace(other, run_dir=str(Path(run_dir_for(_plain_dict(other)))))
        log.info(f"analysing the ground truth {name} into {other.run_dir}")
        try:
            folders[name], verdicts[name], truths[name] = analyze_setting(other)
        except UserError as e:
            log.info(f"ground truth {name} not compared: {e}")
    if len(truths) < 2:
        return
    by_claim: dict[str, dict] = {}
    for name, cl in verdicts.items():
        for c in cl:
            by_claim.setdefault(c.claim, {})[name] = True if c.verdict == HELD else False if c.verdict == NOT_HELD \
                else None
    by_claim.update(gt.estimator_claims(truths))
    for name, folder in folders.items():
        order = [name] + [n for n in truths if n != name]
        io.write_csv(folder / "ground_truths.csv", gt.compare({n: truths[n] for n in order}))
        summary = folder / "summary.md"
        title, _, rest = (summary.read_text() if summary.exists() else "").partition("\n")
        io.write_text(summary, "\n".join([title, "", *gt.holds_lines(by_claim, order)]) + rest)
    log.info(f"ground truths compared: {out / 'ground_truths.csv'}")


def _plain_dict(cfg: RunConfig) -> dict:
    """A RunConfig as the plain dict run_dir_for reads (the dataset's options beside its common keys)."""
    d = to_dict(cfg)
    d["dataset"] = {**{k: v for k, v in d["dataset"].items() if k != "params"}, **d["dataset"]["params"]}
    return d


def read_matrix(cfg: RunConfig) -> Matrix:
    """The checked rows (the others listed), seeds averaged, the target baselines added, the view applied."""
    root = rows_root(cfg)
    runs = load_runs(root, cfg)
    unchecked = runs.attrs["unchecked"]
    for run_dir, why in unchecked:
        log.info(f"left out (not a checked finished row): {run_dir}: {why}")
    others = other_settings(cfg)
    if others:
        log.info(f"rows of other settings beside these (not used): {_others_text(others)}")
    runs.attrs["other_settings"] = others
    if runs.empty:
        raise UserError(f"no checked finished transfer runs (results.csv + done.json) under {root}"
                        f"{f' ({len(unchecked)} left out, listed above)' if unchecked else ''}; create them with: "
                        "python run.py -m "
                        f"stage=transfer dataset={cfg.dataset.name} backbone={cfg.backbone.name} head={cfg.head.name} "
                        f"{' '.join(identity.entries(cfg))}{' ' if identity.entries(cfg) else ''}"
                        "source_index=all"
                        + (f"; rows of other settings: {_others_text(others)}" if others else ""))
    table, why = label_table(cfg)
    if table is None:
        log.info(f"note: {why}; hardness and missing sources not analysed")
    base = target_baselines(table.subset(TRAIN_SPLIT).labels) if table is not None else None
    keep = set(table.select(cfg.target)) if cfg.target != "all" and table is not None else None
    rows = _with_baselines(mean_over_seeds(runs), base, keep)
    if keep is not None:
        log.info(f"analysing the {len(keep)}-task sub-matrix target={cfg.target}")
    # source=random (the untrained backbone) is a row of matrix.csv, never a source in the statistics
    with_random = rows[rows["train_fraction"] == 1.0]
    full = with_random[with_random["source"] != RANDOM]
    found = sorted(full["source"].unique())
    expected = _expected_sources(table, cfg.target)
    missing = [s for s in expected if s not in set(found)] if expected else []
    if missing:
        log.info(f"missing sources ({len(missing)} of {len(expected)} expected have no finished full-data run): "
                 + ", ".join(missing))
    return Matrix(root, runs, table, why, rows, full, with_random, found, expected, missing, base, keep)


def _with_baselines(rows: pd.DataFrame, base: pd.DataFrame | None, keep: set | None) -> pd.DataFrame:
    """The target's H(Y) and majority error and the source's H(Z) (the baselines); with `keep`, the sub-matrix
    of those tasks as sources and targets."""
    rows = add_source_baselines(add_baselines(rows, base), base)
    if keep is not None:   # analyse a sub-matrix: these tasks as sources and targets
        rows = rows[rows["source"].isin(keep | {RANDOM}) & rows["target"].isin(keep)]
    return rows


def _others_text(others: list[tuple[str, int]]) -> str:
    return ", ".join(f"{name or 'the defaults'} ({n} rows)" for name, n in others)


def correlations_step(w: Written, m: Matrix, cfg: RunConfig) -> tuple[pd.DataFrame, list[Claim]]:
    """correlations.csv (CE against transfer error, by view), Fig. 2, and the claims they decide."""
    log.info(f"correlations: crossed source x target bootstrap ({N_BOOT} resamples) ...")
    corr = ce_correlations(m.full, m.runs, n_boot=N_BOOT, seed=cfg.seed)
    w.csv("correlations.csv", corr)
    claims = design_claims(corr) + [random_claim(random_baseline(m.with_random))]
    parts = views(m.full)
    fig2_view = BINARY if len(parts[BINARY]) else ALL   # the paper's Fig. 2: binary -> binary
    if len(m.full):
        w.figure(figures.fig2(parts[fig2_view], figures.select_sources(corr[corr["view"] == fig2_view]),
                              w.out / "fig2.png", cfg.dataset.name))
    if len(parts[MULTI_TARGET]):
        w.figure(figures.fig2_multiclass_targets(parts[MULTI_TARGET], w.out / "fig2_multiclass_targets.png",
                                                 cfg.dataset.name))
    return corr, claims


def hardness_step(w: Written, m: Matrix, cfg: RunConfig) -> list[Claim]:
    """hardness.csv and Fig. 6: H(Z|C) of every task against its dedicated model's error (Eq. 14)."""
    hard = None
    if m.table is not None:
        from ..estimators.label_only import hardness

        lab = m.table.subset(TRAIN_SPLIT).labels
        tasks = [t for t in dict.fromkeys(m.found + list(m.full["target"])) if t in lab.columns]
        hard = hardness_table(m.full, {t: hardness(lab[t].to_numpy(), cfg.bias_correction) for t in tasks})
        w.csv("hardness.csv", hard)
        w.figure(figures.fig6(hard, w.out / "fig6.png", cfg.dataset.name))
    claims = [hardness_claim(hard, m.why)]
    if hard is not None and m.table.multiclass:   # the multi-class tasks can decide Fig. 6 alone
        binary = hard[~hard["task"].isin(m.table.multiclass)]
        claims.append(judged(binary["hardness"], binary["dedicated_test_error"], "Fig. 6 on the binary tasks only: "
                             "hardness H(Z|C) tracks the dedicated model's test error", labels=binary["task"]))
    return claims


def table1_step(w: Written, m: Matrix, cfg: RunConfig) -> list[Claim]:
    """Table 1 and Figs. 3-4 for every multi-class source (the paper's Sec. 5.2 case study)."""
    multi = _multiclass_sources(m.table, m.runs, m.found)
    if not multi:
        return [Claim("Table 1 / Figs. 3-4: a multi-class source transfers best to low-CE targets", "",
                      "not tested: no rows from a multi-class source")]
    claims = []
    for s in multi:
        long = table1(m.full, s)
        name = component(s)   # a task name from the data, as a file name
        w.csv(f"table1_{name}.csv", table1_layout(long).reset_index())
        w.csv(f"table1_{name}_all.csv", long)
        w.text(f"table1_{name}.md", table1_markdown(
            table1_layout(long),
            f"{cfg.dataset.name}: transfer from {s} ({len(long)} targets, sorted by CE ascending)"))
        w.figure(figures.fig3(m.full, s, w.out / f"fig3_{name}.png"))
        w.figure(figures.fig4(long, s, w.out / f"fig4_{name}.png"))
        g = transfers(m.full)
        claims += table1_claims(s, g[g["source"] == s], table1_pattern(long))
    return claims


def estimators_step(w: Written, m: Matrix, cfg: RunConfig) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """estimators.csv and its figure: every estimator's rank agreement with transfer accuracy, and its partial r
    given the target entropy; returns (comparison, partials, the best estimator)."""
    log.info(f"estimator comparison: bootstrap over targets ({N_BOOT} pooled, {N_BOOT_SOURCE} per source "
             "resamples) ...")
    comparison = estimator_comparison(m.full, n_boot=N_BOOT, n_boot_source=N_BOOT_SOURCE, seed=cfg.seed)
    partials = estimator_partials(m.full, {e: signs()[e] for e in estimator_columns(transfers(m.full))}, m.runs,
                                  n_boot=N_BOOT, seed=cfg.seed)
    ceiling = partials.drop_duplicates("scope").set_index("scope")["noise_ceiling"]
    w.csv("estimators.csv", pd.concat([comparison.assign(noise_ceiling=comparison["scope"].map(ceiling)),
                                       partials], ignore_index=True))
    if len(comparison):
        w.figure(figures.fig_estimators(comparison, w.out / "estimators.png"))
    return comparison, partials, best_estimator(comparison)


def selection_step(w: Written, m: Matrix, cfg: RunConfig, comparison: pd.DataFrame,
                   best_rank: str | None) -> tuple[pd.DataFrame, str | None, list[str]]:
    """selection.csv and selection.png: every score choosing a source for each target (and for the multi-label
    target), the margins of both directions over their best baseline, the stability over setups; returns (the
    table, the best estimator for choosing a source, the summary's lines)."""
    from ..analysis.selection import MEAN_OVER_TARGETS, SELECT

    log.info(f"choosing a source per target: crossed source x target bootstrap ({N_BOOT} resamples) ...")
    parts = [selection_table(m.full, n_boot=N_BOOT, seed=cfg.seed)]
    ml, attributes = multilabel_rows(m.full)
    scope = None
    if ml["source"].nunique() >= 2:
        scope = f"multilabel:{cfg.dataset.name}"
        parts.append(selection_table(ml, n_boot=N_BOOT, seed=cfg.seed, scope=scope, extra=MULTILABEL))
        log.info(f"multi-label target: {len(attributes)} binary targets, {ml['source'].nunique()} sources")
    parts.append(rank_margins(comparison, n_boot=N_BOOT, seed=cfg.seed))
    setups = _setups(m, cfg)
    log.info(f"stability over {len(setups)} setups ({', '.join(dict.fromkeys(s.axis for s in setups))}) ...")
    parts.append(stability(m.full, setups))
    selection = pd.concat([p for p in parts if len(p)], ignore_index=True)
    w.csv("selection.csv", selection)
    mean = selection[(selection["direction"] == SELECT) & (selection["scope"] == MEAN_OVER_TARGETS)]
    if mean["value"].notna().any():
        w.figure(figures.fig_selection(mean, w.out / "selection.png",
                                       f"{cfg.dataset.name}: choosing a source per target, mean over "
                                       f"{m.full['target'].nunique()} targets (95% crossed bootstrap CI); grey: "
                                       "baselines, dashed: random ranking"))
    return selection, best_chooser(selection), selection_lines(selection, best_rank, scope)


def _setups(m: Matrix, cfg: RunConfig) -> list[Setup]:
    """The setups the verdicts are re-taken on: each seed alone (with two or more), each transfer head and each
    ground truth present beside these rows (stages/siblings.py: the same settings but for the head, or but for
    head.C / head.C_grid / transfer; with two or more, this one included), and N_SUBSETS random halves of the
    sources and the targets."""
    runs = m.runs[(m.runs["train_fraction"] == 1.0) & (m.runs["source"] != RANDOM)]
    out = []
    if runs["seed"].nunique() > 1:
        out += [Setup("seed", f"seed={k}", m.full_rows(g)) for k, g in runs.groupby("seed", sort=True)]
    mine, heads_root = rows_root(cfg), settings_root(cfg).parent
    head_of = lambda folder: folder.relative_to(heads_root).parts[0]   # noqa: E731  (the head folder)
    heads = [(f, made) for f, made in siblings.siblings(cfg, ("head",), all_heads=True)
             if f == mine or head_of(f) != head_of(mine)]
    truths = siblings.siblings(cfg, siblings.GROUND_TRUTH)
    for axis, found, name in (("head", heads, lambda f, made: f"head={head_of(f)}"),
                              ("ground truth", truths, lambda f, made: siblings.ground_truth_name(made))):
        if len(found) > 1:
            for folder, made in found:
                other = m.runs if folder == mine else load_runs(folder)
                if len(other):
                    out.append(Setup(axis, name(folder, made), m.full_rows(other)))
    if m.full["source"].nunique() >= 2 and m.full["target"].nunique() >= 2:
        out += half_subsets(m.full, N_SUBSETS, cfg.seed)
    return out


def summary_step(w: Written, m: Matrix, cfg: RunConfig, corr: pd.DataFrame, claims: list[Claim], notes: list[str],
                 t1: dict, estimator_text: list[str]) -> str:
    """summary.md: what was read, a verdict per claim, the estimators, the notes; and config.json with the
    analysis' own provenance."""
    unchecked, runs = m.runs.attrs["unchecked"], m.runs
    facts = [f"rows read from `{m.root}`: {runs['run_dir'].nunique()} finished runs, {len(m.found)} sources with "
             f"full-data runs, seeds {sorted(runs['seed'].unique().tolist())}, train fractions "
             f"{sorted(runs['train_fraction'].unique().tolist())}",
             _seed_spread(m.full, corr),
             f"missing sources ({len(m.missing)}): {', '.join(m.missing)}" if m.missing else
             ("missing sources: none" if m.expected else f"missing sources: unknown ({m.why})"),
             f"rows left out, not checked finished ({len(unchecked)}): "
             + "; ".join(f"`{d}` ({w})" for d, w in unchecked) if unchecked else "rows left out: none",
             f"settings: {', '.join(identity.entries(cfg))}" if identity.entries(cfg) else
             "settings: the defaults (conf/)"]
    if runs.attrs.get("other_settings"):
        facts.append(f"rows of other settings beside these, not used: {_others_text(runs.attrs['other_settings'])}")
    mixed = thread_counts_line(runs)
    if mixed:
        facts.append(mixed)
        log.info(f"note: {mixed}")
    made_by = provenance_lines(runs.attrs["provenance"], provenance())
    facts += made_by
    if "mixes" in made_by[-1]:
        log.info(f"note: {made_by[-1]}")
    notes = notes + [
        "Transfer correlations exclude the dedicated cell (target == source): its CE is H(Y|Y) = 0 and it is "
        "not a transfer.", "Seeds are averaged per (source, target, train fraction) before correlating.",
        f"Hardness is H(Z|C) on the {TRAIN_SPLIT} labels, the rows the transfer heads were fitted on.",
        f"Theorem 1 tolerance: {t1['tol']:g} nats (float32 softmax and the 1e-12 clip in l_Z are far below it).",
        kbar_note(t1)] + nested_cuts_note(sorted(set(m.full["target"])))
    text = summary_markdown(f"{cfg.dataset.name} / {cfg.backbone.name} / {cfg.head.name}: analysis of "
                            + (f"the view {view(cfg)} (sub-matrix)" if view(cfg) else "the full matrix (all targets)"),
                            facts, claims, estimator_text, notes)
    w.text("summary.md", text)
    io.write_json(w.out / "config.json", {**to_dict(cfg), "provenance": provenance()})
    return text


def nested_cuts_note(targets: list[str]) -> list[str]:
    """With `dataset.quantiles`, the cuts of one measure are nested targets (q and 1 - q near-complements):
    say so, since pooled statistics count them as separate targets."""
    groups = quantile_groups(targets)
    if not groups:
        return []
    return [f"{sum(map(len, groups.values()))} targets are cuts of {len(groups)} measures at several quantiles "
            f"({', '.join(sorted(groups)[:4])}{', ...' if len(groups) > 4 else ''}): "
            "the cuts of one measure are nested "
            "(@q90 implies @q75) and q / 1-q are near-complements, so they are not independent targets; pooled "
            "statistics and the crossed bootstrap treat them as separate targets and overstate the evidence."]


def _seed_spread(full: pd.DataFrame, corr: pd.DataFrame) -> str:
    """One line: how many seeds each transfer cell has, how much its test error moves between them
    (matrix_seed_std.csv), and the noise ceiling that movement puts on any predictor's r."""
    t = transfers(full)
    std = t["test_accuracy_std"].dropna()
    pooled = corr[(corr["view"] == ALL) & (corr["scope"] == "pooled")]
    ceiling = float(pooled["noise_ceiling"].iloc[0]) if len(pooled) else float("nan")
    if std.empty:
        return (f"seed spread: one seed per cell (n_seeds {int(t['n_seeds'].min()) if len(t) else 0}); "
                "no spread and no noise ceiling: run several seeds (the matrix experiments sweep seed=0,1,2)")
    return (f"seed spread: {int(t['n_seeds'].min())}-{int(t['n_seeds'].max())} seeds per transfer cell; "
            f"std of the test error over seeds median {std.median():.4f}, max {std.max():.4f} (matrix_seed_std.csv); "
            f"split-half noise ceiling of any predictor's r over all pairs {ceiling:.3f}")


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


def _fig5(runs, rows, multi, w: Written) -> list[str]:
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
        w.csv(f"fig5_{component(s)}.csv", curves)
        w.figure(figures.fig5(curves, s, w.out / f"fig5_{component(s)}.png"))
    if not any(p.name.startswith("fig5_") for p in w.paths):
        notes.append("Fig. 5 not drawn: train_fraction runs exist, but none from a multi-class source.")
    return notes


def _track(cfg: RunConfig, written: list[Path], headline: dict, inputs: list[tuple[str, Path]]) -> None:
    """The tables, images and headline numbers, logged to one wandb run (a view of the files; the
    other loggers have nothing to add here)."""
    if cfg.logger.name != "wandb":
        return
    name = "/".join(p for p in ("analyze", view(cfg), ",".join(identity.entries(cfg))) if p)
    with Tracker(cfg, name=name, job_type="analyze") as tracker:
        tracker.use_results(inputs)   # lineage: the rows' results artifacts this matrix was read from
        tracker.log_metrics(headline)
        for p in written:
            if p.suffix == ".csv":
                tracker.log_table(p.stem, pd.read_csv(p))
            elif p.suffix == ".png":
                tracker.log_image(p.stem, p)
