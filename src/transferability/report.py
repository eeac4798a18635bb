"""A results page rendered from an analysis folder, so that no number on it is typed by hand:

    python -m transferability.report <analysis folder> [--notes reading.md] [--figures DIR] > docs/results/<name>.md

The folder is what `stage=analyze` writes (summary.md, correlations.csv, hardness.csv, theorem1.csv,
table1_<source>.md, fig5_<source>.csv, figures), what `stage=widths` writes (summary.md, widths.md, widths.csv,
widths.png) or what `stage=estimate` writes (ce.csv, hardness.csv, config.json; best_sources.md for a sparse table).
The page's header says where its numbers came from, read from the records of the rows the folder was made
from (each row's config.json, source.json, done.json and Hydra's .hydra/overrides.yaml): the commands that made
them, every distinct code version, library set and machine found in their `provenance` blocks ("not recorded"
where a row has none), and when the files were written; an estimate folder has no rows, so its own config.json
and .hydra/ speak for it. `--notes` adds hand-written prose verbatim under its own heading; `--figures DIR` copies
the folder's figures into DIR and links them relative to the page, which is taken to sit two levels above DIR
(docs/results/<name>.md beside docs/results/figures/<name>/), or relative to `--page` when given.

Reading is pure (`render`: files in, markdown out); only `copy_figures` and `main` touch the disk.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .config import group_config
from .errors import UserError
from .identity import is_segment
from .stages import row_record

CODE_KEYS = ("commit", "dirty", "version")
LIBRARY_KEYS = ("python", "torch", "lightning", "numpy", "scipy", "sklearn")
MACHINE_KEYS = ("hostname", "cpu", "device", "threads")
NOT_RECORDED = "not recorded"


@dataclass
class Row:
    """What one finished row's records say about how it was made."""

    folder: Path
    overrides: list[str] | None          # .hydra/overrides.yaml; None when the row has no .hydra/
    provenance: dict | None              # source.json's (else config.json's) `provenance` block
    threads: tuple                       # (train_threads, threads) from source.json
    written: datetime                    # done.json's modification time (UTC)
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- reading files

def folder_kind(folder: Path) -> str:
    """`analyze`, `widths` or `estimate`, from the files the folder holds."""
    if (folder / "widths.csv").is_file() and (folder / "summary.md").is_file():
        return "widths"
    if (folder / "correlations.csv").is_file() and (folder / "summary.md").is_file():
        return "analyze"
    if all((folder / f).is_file() for f in ("ce.csv", "hardness.csv", "config.json")):
        return "estimate"
    raise UserError(f"{folder}: not an analysis folder (expected summary.md with correlations.csv from "
                    "stage=analyze or with widths.csv from stage=widths, or ce.csv, hardness.csv and config.json "
                    "from stage=estimate)")


def row_roots(folder: Path, kind: str) -> list[Path]:
    """The folders whose `source=*/seed=*` rows the analysis read (run_dirs.run_dir_for's layout):
    analyze: `<dataset>/<backbone>/<head>[/<settings>]/analysis[/target=...]` -> the folder above `analysis`;
    widths: `<dataset>/<backbone>/<head>[/<settings>]/widths` -> `<dataset>/<backbone>[-D<D>]/<head>[/<settings>]`
    for each D it studied."""
    folder = folder.resolve()
    if kind == "estimate":   # labels only: no rows
        return []
    if kind == "analyze":
        return [folder.parent if folder.name == "analysis" else folder.parent.parent]
    up = folder.parent
    settings = up.name if is_segment(up.name) else ""   # <head>/<settings>/widths: the rows are in <settings> too
    up = up.parent if settings else up
    head, backbone, dataset = up.name, up.parent.name, up.parent.parent
    dims = sorted(int(d) for d in pd.read_csv(folder / "widths.csv")["D"].dropna().unique())
    default = group_config("backbone", "small_cnn").embedding_dim   # the width whose folder has no -D suffix
    names = [backbone if d == default else f"{backbone}-D{d}" for d in dims]
    return [dataset / name / head / settings if settings else dataset / name / head for name in names]


def read_rows(roots: list[Path]) -> tuple[list[Row], list[tuple[Path, str]]]:
    """Every checked finished row under `roots` (its done.json matches its files: the rows the analysis
    used), and the rows left out with why."""
    rows, left_out = [], []
    for root in roots:
        for results in sorted(root.glob("source=*/seed=*/results.csv")) + sorted(
                root.glob("source=*/seed=*/fraction=*/results.csv")):
            d = results.parent
            why = row_record.problem(d)
            if why:
                left_out.append((d, why))
                continue
            source, config = _json(d / "source.json"), _json(d / "config.json")
            prov = source.get("provenance") or config.get("provenance")
            rows.append(Row(folder=d, overrides=_overrides(d), provenance=prov if isinstance(prov, dict) else None,
                            threads=(source.get("train_threads"), source.get("threads")),
                            written=_mtime(d / row_record.NAME)))
    return rows, left_out


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _overrides(folder: Path) -> list[str] | None:
    path = folder / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    import yaml

    data = yaml.safe_load(path.read_text()) or []
    return [str(o) for o in data] if isinstance(data, list) else None


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)


def _when(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC")


def _span(first: datetime, last: datetime) -> str:
    a, b = _when(first), _when(last)
    return a if a == b else f"{a} to {b}"


# ---------------------------------------------------------------------------------------------- the header

def _split_override(o: str) -> tuple[str, str]:
    key, _, value = o.partition("=")
    return key, value


def _quote(arg: str) -> str:
    return arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else shlex.quote(arg)


def _values(values: list[str]) -> str:
    """A sweep's values in Hydra's syntax: `range(a,b)` for 3+ consecutive integers, else `v1,v2,...`."""
    if all(re.fullmatch(r"-?\d+", v) for v in values):
        ints = sorted(int(v) for v in values)
        if len(ints) >= 3 and ints == list(range(ints[0], ints[-1] + 1)):
            return f"range({ints[0]},{ints[-1] + 1})"
        return ",".join(map(str, ints))
    return ",".join(values)


def commands(rows: list[Row]) -> list[str]:
    """The commands that made the rows, one per set of override keys: keys with one value as typed, keys
    whose value differs between rows as a multirun sweep over those values; how many rows each made."""
    groups: dict[tuple, list[list[tuple[str, str]]]] = {}
    unrecorded = 0
    for r in rows:
        if r.overrides is None:
            unrecorded += 1
            continue
        pairs = [_split_override(o) for o in r.overrides]
        groups.setdefault(tuple(k for k, _ in pairs), []).append(pairs)
    out = []
    for keys, members in groups.items():
        seen = {k: list(dict.fromkeys(dict(p)[k] for p in members)) for k in keys}
        swept = [k for k in keys if len(seen[k]) > 1]   # after the fixed overrides, as a reader types a sweep
        args = [f"{k}={seen[k][0]}" for k in keys if k not in swept] + [f"{k}={_values(seen[k])}" for k in swept]
        combos = int(np.prod([len(seen[k]) for k in swept])) if swept else 1
        count = (f"{len(members)} row{'s' if len(members) != 1 else ''}" if len(members) == combos
                 else f"{len(members)} of the sweep's {combos} combinations")
        words = ["python", "run.py"] + (["-m"] if swept else []) + [_quote(a) for a in args]
        out.append(f"`{' '.join(words)}` ({count})")
    if unrecorded:
        out.append(f"{NOT_RECORDED} for {unrecorded} row{'s' if unrecorded != 1 else ''} (no .hydra/overrides.yaml)")
    return out


def _cell(prov: dict | None, keys) -> str:
    if prov is None:
        return NOT_RECORDED
    parts = []
    for k in keys:
        v = prov.get(k)
        if k == "dirty" and v is not None:
            parts.append("uncommitted changes" if v else "clean")
        elif v not in (None, ""):
            label = {"cpu": "CPU", "device": "device", "threads": "threads", "version": "version"}.get(k, k)
            parts.append(str(v) if k in ("commit", "hostname") else f"{label} {v}")
    return ", ".join(parts) or NOT_RECORDED


def provenance_table(rows: list[Row]) -> list[str]:
    """One line per distinct (code, libraries, machine) set with its number of rows; a sentence when the
    rows come from more than one commit or library set."""
    sets = Counter((_cell(r.provenance, CODE_KEYS), _cell(r.provenance, LIBRARY_KEYS),
                    _cell(r.provenance, MACHINE_KEYS)) for r in rows)
    lines = ["| rows | code | libraries | machine |", "|---:|---|---|---|"]
    lines += [f"| {n} | {c} | {lib} | {m} |" for (c, lib, m), n in sorted(sets.items(), key=lambda kv: -kv[1])]
    commits = sorted({str(r.provenance.get("commit")) for r in rows if r.provenance and r.provenance.get("commit")})
    libs = {_cell(r.provenance, LIBRARY_KEYS) for r in rows if r.provenance}
    notes = []
    if len(commits) > 1:
        notes.append(f"The rows were made by {len(commits)} different commits ({', '.join(commits)}).")
    if len(libs) > 1:
        notes.append(f"The rows were made with {len(libs)} different library sets.")
    if any(r.provenance is None for r in rows):
        notes.append(f"{sum(r.provenance is None for r in rows)} of {len(rows)} rows record no provenance "
                     "(commit, libraries, machine): not recorded.")
    return lines + ([""] + notes if notes else [])


def _threads(rows: list[Row]) -> str:
    counts = Counter(r.threads for r in rows)
    show = lambda t: "not recorded" if t == (None, None) else f"{t[0]} training / {t[1]} heads and estimators"
    return "; ".join(f"{show(t)} ({n} rows)" for t, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def header(folder: Path, kind: str, rows: list[Row], left_out: list, roots: list[Path], shown: str,
           render_args: str) -> list[str]:
    own_overrides = _overrides(folder)
    own = _json(folder / "config.json").get("provenance")
    own = own if isinstance(own, dict) else None
    lines = [f"Rendered from the files of `{shown}` by `python -m transferability.report {render_args}`; "
             "rerun that command to refresh the page, never edit its numbers by hand.", "", "| | |", "|---|---|"]
    if kind == "estimate":
        made = (f"`python run.py {' '.join(_quote(o) for o in own_overrides)}`" if own_overrides is not None
                else f"{NOT_RECORDED} (no .hydra/overrides.yaml in the folder)")
        lines += [f"| estimate | `{shown}`, ce.csv written {_when(_mtime(folder / 'ce.csv'))} |",
                  f"| command | {made} |", "", "Code, libraries and machine (the folder's config.json):", "",
                  "| code | libraries | machine |", "|---|---|---|",
                  f"| {_cell(own, CODE_KEYS)} | {_cell(own, LIBRARY_KEYS)} | {_cell(own, MACHINE_KEYS)} |"]
        return lines
    stage = "stage=analyze" if kind == "analyze" else "stage=widths"
    made = (f"`python run.py {' '.join(_quote(o) for o in own_overrides)}`" if own_overrides is not None
            else f"{NOT_RECORDED} in the folder (no .hydra/: {stage} ran at the end of the rows' sweep)")
    dates = sorted(r.written for r in rows)
    lines += [f"| analysis | `{shown}`, summary.md written {_when(_mtime(folder / 'summary.md'))} |",
              f"| analysis command | {made} |",
              f"| analysis code | {_cell(own, CODE_KEYS)} |",
              f"| rows | {len(rows)} finished rows under "
              + ", ".join(f"`{_display(r, folder, shown)}`" for r in roots)
              + (f", written {_span(dates[0], dates[-1])}" if dates else "") + " |"]
    if left_out:
        lines.append(f"| rows left out | {len(left_out)} not checked finished (done.json missing or not matching) |")
    lines += [f"| row commands | {'<br>'.join(commands(rows)) or NOT_RECORDED} |",
              f"| CPU threads | {_threads(rows) or NOT_RECORDED} |", "",
              "Code, libraries and machine of the rows (their `provenance` records):", ""]
    return lines + provenance_table(rows)


def _display(path: Path, folder: Path, shown: str) -> str:
    """`path` spelled relative to the folder as the user typed it."""
    rel = os.path.relpath(path, folder.resolve())
    return os.path.normpath(os.path.join(shown, rel))


# ---------------------------------------------------------------------------------------------- the body

def sections(markdown: str) -> tuple[str, list[str], dict[str, str]]:
    """(title, the bullet lines before the first `##`, {heading: body}) of a summary.md."""
    title, intro, out, current = "", [], {}, None
    for line in markdown.splitlines():
        if line.startswith("# ") and not title:
            title = line[2:].strip()
        elif line.startswith("## "):
            current = line[3:].strip()
            out[current] = ""
        elif current is None:
            if line.strip() or intro:   # blank lines inside the intro keep its paragraphs apart
                intro.append(line)
        else:
            out[current] += line + "\n"
    while intro and not intro[-1].strip():
        intro.pop()
    return title, intro, {k: v.strip("\n") for k, v in out.items()}


def _f(v, digits: int = 3) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "-" if not np.isfinite(v) else f"{v:.{digits}f}"


def _p(v) -> str:
    """A p- or q-value: two significant digits."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "-" if not np.isfinite(v) else f"{v:.2g}"


def _ci(lo, hi) -> str:
    return "" if not (np.isfinite(float(lo)) and np.isfinite(float(hi))) else f" [{_f(lo, 2)}, {_f(hi, 2)}]"


def _esc(text) -> str:
    return "" if pd.isna(text) else str(text).replace("|", "\\|")


def correlation_tables(corr: pd.DataFrame) -> list[str]:
    """correlations.csv: the pooled row of each view, then each view's per-source (or per-target) rows."""
    pooled = corr[corr["scope"] == "pooled"]
    lines = ["Pooled over the pairs of each view (crossed source x target bootstrap 95% intervals):", "",
             "| view | pairs | Pearson r [95% CI] | Spearman rho | partial r given H(Y) [95% CI] | r(H(Y), error) "
             "| noise ceiling | verdict |", "|---|---:|---|---:|---|---:|---:|---|"]
    for r in pooled.itertuples():
        lines.append(f"| {r.view} | {int(r.n)} | {_f(r.pearson_r)}{_ci(r.r_ci_low, r.r_ci_high)} | "
                     f"{_f(r.spearman_rho)} | {_f(r.partial_r_given_entropy)}"
                     f"{_ci(r.partial_ci_low, r.partial_ci_high)} | {_f(r.entropy_pearson_r)} | "
                     f"{_f(r.noise_ceiling)} | {_esc(r.verdict)} |")
    per = corr[corr["scope"] != "pooled"]
    for view, g in per.groupby("view", sort=False):
        what = "target" if view == "multiclass_target" else "source"
        lines += ["", f"View `{view}`, one row per {what} (BH q over the view's {what}s):", "",
                  f"| {what} | n | Pearson r | p | BH q | Spearman rho | partial r given H(Y) | verdict |",
                  "|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in g.itertuples():
            verdict = _esc(r.verdict) + (f": {_esc(r.why)}" if isinstance(r.why, str) and r.why else "")
            lines.append(f"| {r.scope} | {int(r.n)} | {_f(r.pearson_r)} | {_p(r.pearson_p)} | {_p(r.bh_q)} | "
                         f"{_f(r.spearman_rho)} | {_f(r.partial_r_given_entropy)} | {verdict} |")
    return lines


def hardness_table(hard: pd.DataFrame) -> list[str]:
    lines = ["| task | hardness H(Z\\|C), nats | dedicated test error |", "|---|---:|---:|"]
    for r in hard.sort_values(["hardness", "task"]).itertuples():
        lines.append(f"| {r.task} | {_f(r.hardness)} | {_f(r.dedicated_test_error)} |")
    return lines


def theorem1_table(cells: pd.DataFrame) -> list[str]:
    """theorem1.csv in brief: per side, cells checked, cells below the bound by more than the tolerance,
    the worst of them and the margin's median (train: `margin`/`violates`; test: `test_margin`/`test_violates`)."""
    lines = [f"| log-likelihood of the fitted head ({', '.join(sorted(set(map(str, cells['head']))))}) | cells | "
             "below the bound | worst shortfall, nats | median margin, nats |", "|---|---:|---:|---:|---:|"]
    for side, margin, violates in (("train (Theorem 1, Eq. 10)", "margin", "violates"),
                                   ("test (generalisation check)", "test_margin", "test_violates")):
        m = pd.to_numeric(cells[margin], errors="coerce")
        v = cells[violates].astype(str).str.lower().eq("true")
        worst = _f(-m[v].min(), 4) if v.any() else "-"
        lines.append(f"| {side} | {int(m.notna().sum())} | {int(v.sum())} | {worst} | {_f(m.median())} |")
    return lines


def fig5_table(curves: pd.DataFrame) -> list[str]:
    """fig5_<source>.csv: test accuracy (mean over seeds) per target and kind, one column per train fraction."""
    wide = curves.pivot_table(index=["target", "kind"], columns="train_fraction", values="accuracy", sort=True)
    lines = ["| target | model | " + " | ".join(f"{_f(c, 2)} of train" for c in wide.columns) + " |",
             "|---|---|" + "---:|" * len(wide.columns)]
    for (target, kind), vals in wide.iterrows():
        lines.append(f"| {target} | {kind} | " + " | ".join(_f(v) for v in vals) + " |")
    return lines


def _figure_order(name: str) -> tuple:
    """The paper's figures in its order (fig2, fig2_..., fig3_..., ..., fig6), then the others."""
    m = re.match(r"fig(\d+)", name)
    return (0, int(m.group(1)), name) if m else (1, 0, name)


def figure_lines(names: list[str], links: dict[str, str] | None, shown: str) -> list[str]:
    if not names:
        return []
    if links is None:
        return ["Figures in the folder (render with --figures to show them here): "
                + ", ".join(f"`{shown}/{n}`" for n in names) + "."]
    return [f"![{Path(n).stem}]({links[n]})" for n in names if n in links]


def estimate_lines(folder: Path, config: dict) -> list[str]:
    """A stage=estimate folder: the paper's values beside ours (when the experiment carries a `reference`), the
    best sources of sampled targets (sparse tables), the most and least transferable pairs, and hardness."""
    ce, hard = pd.read_csv(folder / "ce.csv"), pd.read_csv(folder / "hardness.csv")
    lines = []
    reference = config.get("reference") or {}
    if reference:
        lines += ["## Against the paper", "", "H(target | source) in nats, ours rounded as the paper prints them.", "",
                  "| source | target | paper | ours | match |", "|---|---|---:|---:|---|"]
        for source, targets in reference.items():
            for target, paper in sorted(targets.items(), key=lambda kv: (float(kv[1]), kv[0])):   # the paper's order
                ours = ce.loc[(ce["source"].astype(str) == str(source)) & (ce["target"].astype(str) == str(target)),
                              "ce"]
                v = float(ours.iloc[0]) if len(ours) else float("nan")
                match = "yes" if np.isfinite(v) and round(v, 3) == round(float(paper), 3) else "no"
                lines.append(f"| {source} | {target} | {float(paper):.3f} | {_f(v)} | {match} |")
        lines.append("")
    if (folder / "best_sources.md").is_file():
        b_title, _, _ = sections((folder / "best_sources.md").read_text())
        body = (folder / "best_sources.md").read_text().split("\n", 1)[1].strip("\n")
        lines += ["## Most transferable source of sampled targets", "", b_title, "", body, ""]
    pairs = ce[ce["source"].astype(str) != ce["target"].astype(str)].dropna(subset=["ce"]).sort_values(
        ["ce", "source", "target"])
    if not reference and len(pairs) and not (folder / "best_sources.md").is_file():   # sparse: top-k per target
        k = min(10, len(pairs))
        lines += [f"## The {k} most and {k} least transferable pairs", "",
                  f"Of {len(pairs)} (source, target) pairs in ce.csv, the target itself left out.", "",
                  "| source | target | H(target \\| source), nats |", "|---|---|---:|"]
        shown = pd.concat([pairs.head(k), pairs.tail(k)]).drop_duplicates() if len(pairs) > 2 * k else pairs
        lines += [f"| {r.source} | {r.target} | {_f(r.ce)} |" for r in shown.itertuples()] + [""]
    if len(hard):
        h = hard.sort_values(["hardness", "task"])
        cut = len(h) > 40
        lines += ["## Hardness H(Z\\|C) of each task", ""]
        if cut:
            lines += [f"The 10 easiest and 10 hardest of {len(h)} tasks (all of them in hardness.csv).", ""]
            h = pd.concat([h.head(10), h.tail(10)])
        name = "name" in h
        lines += [f"| task |{' name |' if name else ''} hardness, nats |", f"|---|{'---|' if name else ''}---:|"]
        lines += [f"| {r.task} |{f' {_esc(r.name)} |' if name else ''} {_f(r.hardness)} |" for r in h.itertuples()]
        lines.append("")
    return lines


def ground_truth_table(compared: pd.DataFrame) -> list[str]:
    """ground_truths.csv in brief: one line per pair of ground truths, how far their matrices and verdicts agree."""
    def one(g, measure, scope=None, item=None, direction=None):
        sel = g[g["measure"] == measure]
        for col, v in (("scope", scope), ("item", item), ("direction", direction)):
            if v is not None:
                sel = sel[sel[col] == v]
        return sel

    lines = ["| ground truths | cells | error matrices: Pearson r / Kendall tau | target orders per source: mean tau | "
             "same best source (targets) | estimator verdicts agree: rank targets / choose a source | "
             "estimator orders: tau, rank targets / choose a source |", "|---|---:|---|---:|---|---|---|"]
    for (a, b), g in compared.groupby(["a", "b"], sort=False):
        errors = one(g, "error matrix", scope="all pairs")
        r, tau = (_f(errors.loc[errors["item"] == k, "value"].iloc[0]) if (errors["item"] == k).any() else "-"
                  for k in ("pearson", "kendall"))
        mean_tau = one(g, "target ranking", scope="mean over sources")
        best = one(g, "best source", scope="share of targets")
        agree = []
        for direction in ("rank targets", "choose a source"):
            v = pd.to_numeric(one(g, "estimator verdict", direction=direction)["value"], errors="coerce").dropna()
            agree.append(f"{int(v.sum())} of {len(v)}" if len(v) else "-")
        orders = [_f(one(g, "estimator order", direction=d)["value"].iloc[0])
                  if len(one(g, "estimator order", direction=d)) else "-" for d in ("rank targets", "choose a source")]
        lines.append(f"| {_esc(a)} vs {_esc(b)} | {int(errors['n'].iloc[0]) if len(errors) else 0} | {r} / {tau} | "
                     f"{_f(mean_tau['value'].iloc[0]) if len(mean_tau) else '-'} | "
                     f"{_f(best['value'].iloc[0], 2) if len(best) else '-'} "
                     f"({int(best['n'].iloc[0]) if len(best) else 0}) | {' / '.join(agree)} | {' / '.join(orders)} |")
    return lines


def _title(folder: Path, kind: str) -> tuple[str, list[str], dict[str, str]]:
    if kind != "estimate":
        return sections((folder / "summary.md").read_text())
    c = _json(folder / "config.json")
    show = lambda v: (str(v) if not isinstance(v, list) else ",".join(map(str, v)) if len(v) <= 4
                      else f"{','.join(map(str, v[:3]))} and {len(v) - 3} more")
    what = ", ".join(f"{k}={show(c[k])}" for k in ("source", "target") if c.get(k) not in (None, "all"))
    return (f"{c.get('dataset', {}).get('name', folder.name)}: label-only estimates, {c.get('split', '?')} split"
            + (f" ({what})" if what else ""), [], {})


def render(folder: Path, notes: str | None = None, figure_links: dict[str, str] | None = None,
           shown: str | None = None, render_args: str | None = None) -> str:
    """The results page for `folder` (a stage=analyze, stage=widths or stage=estimate folder) as markdown.
    `figure_links`: figure file name -> link relative to the page (None: the figures are named, not shown);
    `shown`: the folder as the reader should see it written; `render_args`: the arguments that reproduce it."""
    folder = Path(folder)
    kind = folder_kind(folder)
    shown = shown or str(folder)
    roots = row_roots(folder, kind)
    rows, left_out = read_rows(roots)
    title, intro, parts = _title(folder, kind)
    lines = [f"# {title}", ""]
    lines += header(folder, kind, rows, left_out, roots, shown, render_args or shown) + [""]
    figures = sorted((p.name for p in folder.glob("*.png")), key=_figure_order)
    if kind == "widths":
        lines += ["## Summary", ""] + intro + [""]
        for heading, body in sections((folder / "widths.md").read_text())[2].items():
            lines += [f"## {heading}", "", body, ""]
    elif kind == "analyze":
        if (folder / "ground_truths.csv").is_file():
            under = next((k for k in parts if k.startswith("Under every ground truth")), None)
            lines += ["## Ground truths", "", "How far the ground truths present agree (`ground_truths.csv`; "
                      "docs/ground_truths.md); each one's own analysis is in its settings folder's `analysis/`.", ""]
            lines += ground_truth_table(pd.read_csv(folder / "ground_truths.csv")) + [""]
            if under:
                lines += [f"### {under}", "", parts[under], ""]
        lines += ["## The paper's claims, measured here", "", parts.get("The paper's claims, measured here", ""), ""]
    if notes is not None:
        lines += ["## Reading", "", notes.strip("\n"), ""]
    if kind == "estimate":
        lines += estimate_lines(folder, _json(folder / "config.json"))
    if kind == "analyze":
        lines += ["## The matrix", ""] + intro + [""]
        lines += ["## CE against transfer error", ""] + correlation_tables(pd.read_csv(folder / "correlations.csv"))
        lines += [""]
        for table in sorted(folder.glob("table1_*.md")):
            lines += [f"## Table 1 and Fig. 4: source `{table.stem[len('table1_'):]}`", "",
                      table.read_text().strip("\n"), ""]
        for curves in sorted(folder.glob("fig5_*.csv")):
            lines += [f"## Fig. 5: accuracy against training-set size, source `{curves.stem[len('fig5_'):]}`", "",
                      "Test accuracy, mean over seeds (`dedicated`: the target's own network; `transferred`: the "
                      "source's network with the transfer head).", ""] + fig5_table(pd.read_csv(curves)) + [""]
        if (folder / "hardness.csv").is_file():
            lines += ["## Hardness (Fig. 6)", ""] + hardness_table(pd.read_csv(folder / "hardness.csv")) + [""]
        if (folder / "theorem1.csv").is_file():
            lines += ["## Theorem 1", ""] + theorem1_table(pd.read_csv(folder / "theorem1.csv")) + [""]
        lines += ["## Estimators", "", parts.get("Estimators", ""), ""]
    if figures:
        lines += ["## Figures", ""] + [line + "\n" for line in figure_lines(figures, figure_links, shown)]
    if parts.get("Notes"):
        lines += ["## Notes from the analysis", "", parts["Notes"], ""]
    data = sorted(p.name for p in folder.iterdir() if p.suffix in (".csv", ".md", ".json") and p.is_file())
    lines += ["## Files", "", f"The numbers above are read from `{shown}/`: " + ", ".join(f"`{n}`" for n in data)
              + "."]
    return "\n".join(lines).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------------------------- the command

def copy_figures(folder: Path, dest: Path, page_dir: Path) -> dict[str, str]:
    """Copy the folder's figures into `dest`; {file name: its path relative to `page_dir`}."""
    dest.mkdir(parents=True, exist_ok=True)
    links = {}
    for png in sorted(Path(folder).glob("*.png"), key=lambda p: _figure_order(p.name)):
        shutil.copyfile(png, dest / png.name)
        links[png.name] = Path(os.path.relpath(dest / png.name, page_dir)).as_posix()
    return links


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m transferability.report", description=__doc__.split("\n\n")[0])
    p.add_argument("folder", help="an analysis folder: outputs/<dataset>/<backbone>/<head>/analysis or .../widths")
    p.add_argument("--notes", help="a markdown file included verbatim under 'Reading' (the prose; no numbers)")
    p.add_argument("--figures", help="copy the figures here and show them (e.g. docs/results/figures/<name>)")
    p.add_argument("--page", help="where the page will be saved (default: two levels above --figures); "
                                  "figure links are relative to its folder")
    args = p.parse_args(argv)
    try:
        folder = Path(args.folder)
        if not folder.is_dir():
            raise UserError(f"{folder}: no such folder")
        folder_kind(folder)
        notes = None
        if args.notes:
            try:
                notes = Path(args.notes).read_text()
            except OSError as e:
                raise UserError(f"{args.notes}: cannot read the notes ({e.strerror})") from None
        links = None
        if args.figures:
            dest = Path(args.figures)
            page_dir = Path(args.page).parent if args.page else dest.parent.parent
            links = copy_figures(folder, dest, page_dir)
        render_args = " ".join(_quote(a) for a in ([args.folder] + [x for k in ("notes", "figures", "page")
                                                                     if getattr(args, k)
                                                                     for x in (f"--{k}", getattr(args, k))]))
        page = render(folder, notes, links, shown=args.folder.rstrip("/"), render_args=render_args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
