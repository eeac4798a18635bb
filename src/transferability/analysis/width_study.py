"""Pure analysis for the width x prevalence study: when does an estimator predict transfer,
and does it say more than the target's entropy H(Y)?

Input per embedding size D: the seed-averaged transfer cells of one matrix whose targets have controlled
prevalence (`dataset.quantiles`). Only binary targets count: they are the prevalence-controlled ones, and a
multi-class target's CE (up to log K) would decide any per-source r alone. For each source and estimator:
Pearson r of the oriented score (higher = more transferable, ranking.signs) with transfer accuracy over the
targets, which for CE is r(CE, test error); and the partial r given H(Y) (inference.partial_corr). Per D the
median over sources, with a percentile bootstrap interval that resamples SOURCES: the targets of one
measure are nested cuts (`ink_heavy@q25` implies `@q10`'s complement...), so they are not independent, and
an interval over targets would overstate the evidence.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .design import ENTROPY, RANDOM, n_classes_of
from .inference import bh_q, partial_corr
from .matrix import correlate, transfers

R, PARTIAL = "r", "partial_r_given_entropy"


def binary_cells(rows: pd.DataFrame) -> pd.DataFrame:
    """The transfer cells with a binary target (dedicated cells and the untrained-backbone row left out)."""
    t = transfers(rows)
    t = t[t["source"] != RANDOM]
    k = n_classes_of(rows)
    return t[t["target"].map(k) == 2]


def per_source(cells: pd.DataFrame, signs: dict[str, float]) -> pd.DataFrame:
    """One row per (source, estimator): n targets, r, its p, and the partial r given H(Y) with its p.
    Estimators absent or all-NaN in `cells` are skipped; H(Y) itself gets no partial r."""
    out = []
    present = [e for e in signs if e in cells and np.isfinite(cells[e].to_numpy(float)).any()]
    for source, g in cells.groupby("source", sort=True):
        acc, h = g["test_accuracy"].to_numpy(float), g[ENTROPY].to_numpy(float)
        for est in present:
            score = signs[est] * g[est].to_numpy(float)
            part = partial_corr(score, acc, h) if est != ENTROPY else dict(r=np.nan, p=np.nan)
            c = correlate(score, acc)
            out.append(dict(source=source, estimator=est, n=c["n"], r=c["pearson_r"], p=c["pearson_p"],
                            partial_r_given_entropy=part["r"], partial_p=part["p"]))
    df = pd.DataFrame(out, columns=["source", "estimator", "n", "r", "p", PARTIAL, "partial_p"])
    for col, p in (("bh_q", "p"), ("partial_bh_q", "partial_p")):   # BH over the sources, per estimator
        df[col] = np.nan
        for est, g in df.groupby("estimator"):
            ok = g[p].notna()
            if ok.any():
                df.loc[g.index[ok], col] = bh_q(g.loc[ok, p].to_numpy(float))
    return df


def summarise(per_source_rows: pd.DataFrame, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Per (D, estimator, metric in r / partial r): the median over sources, its bootstrap interval over
    sources, the number of sources, and how many are positive with BH q < 0.05. Needs a `D` column."""
    rng = np.random.default_rng(seed)
    out = []
    for (d, est), g in per_source_rows.groupby(["D", "estimator"], sort=True):
        for metric, q in ((R, "bh_q"), (PARTIAL, "partial_bh_q")):
            v = g[metric].to_numpy(float)
            ok = np.isfinite(v)
            v, qv = v[ok], g[q].to_numpy(float)[ok]
            lo = hi = med = np.nan
            if len(v):
                med = float(np.median(v))
            if len(v) >= 3:
                boot = np.median(v[rng.integers(0, len(v), size=(n_boot, len(v)))], axis=1)
                lo, hi = (float(x) for x in np.percentile(boot, [50 * (1 - level), 50 * (1 + level)]))
            out.append(dict(D=d, estimator=est, metric=metric, median=med, ci_low=lo, ci_high=hi,
                            n_sources=int(len(v)), n_significant=int(((v > 0) & (qv < 0.05)).sum())))
    return pd.DataFrame(out, columns=["D", "estimator", "metric", "median", "ci_low", "ci_high", "n_sources",
                                      "n_significant"])


def table_markdown(summary: pd.DataFrame, metric: str, order: list[str]) -> str:
    """Rows = estimators, columns = D: `median [low, high] (k/n)`, k = sources positive with BH q < 0.05."""
    s = summary[summary["metric"] == metric]
    dims = sorted(s["D"].unique())
    lines = ["| estimator | " + " | ".join(f"D = {d}" for d in dims) + " |", "|---" * (len(dims) + 1) + "|"]
    for est in [e for e in order if e in set(s["estimator"])]:
        cells = []
        for d in dims:
            row = s[(s["estimator"] == est) & (s["D"] == d)]
            if row.empty or not np.isfinite(row["median"].iloc[0]):
                cells.append("-")
                continue
            r = row.iloc[0]
            ci = f" [{r['ci_low']:.2f}, {r['ci_high']:.2f}]" if np.isfinite(r["ci_low"]) else ""
            cells.append(f"{r['median']:.2f}{ci} ({r['n_significant']}/{r['n_sources']})")
        lines.append(f"| {est} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def quantile_groups(targets) -> dict[str, list[str]]:
    """{measure: its cuts} for targets named `<measure>@q<k>` with more than one cut: nested targets
    (q < q' means @q' implies @q) that are not independent samples of a target population."""
    groups: dict[str, list[str]] = {}
    for t in targets:
        m = re.fullmatch(r"(.+)@q[0-9.]+", str(t))
        if m:
            groups.setdefault(m.group(1), []).append(str(t))
    return {k: sorted(v) for k, v in groups.items() if len(v) > 1}


def reading(summary: pd.DataFrame, ce: str = "nce") -> list[str]:
    """Plain sentences from the numbers: per D, CE's median r and partial r (with whether the interval
    excludes 0), and the estimator with the highest median partial r."""
    lines = []
    part = summary[summary["metric"] == PARTIAL]
    for d in sorted(summary["D"].unique()):
        here = summary[summary["D"] == d]
        r = here[(here["estimator"] == ce) & (here["metric"] == R)]
        p = here[(here["estimator"] == ce) & (here["metric"] == PARTIAL)]
        best = part[(part["D"] == d) & part["median"].notna()].sort_values("median", ascending=False)
        if r.empty or p.empty:
            continue
        r, p = r.iloc[0], p.iloc[0]
        beyond = ("its interval excludes 0: CE adds to H(Y)" if p["ci_low"] > 0 else
                  "its interval includes 0: no evidence CE adds to H(Y)" if np.isfinite(p["ci_low"]) else "no interval")
        top = (f"; highest median partial r: {best.iloc[0]['estimator']} {best.iloc[0]['median']:.2f}" if len(best)
               else "")
        lines.append(f"D = {d}: CE median per-source r(CE, error) {r['median']:.2f} "
                     f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]; partial r given H(Y) {p['median']:.2f} "
                     f"[{p['ci_low']:.2f}, {p['ci_high']:.2f}], {beyond}{top}.")
    return lines
