"""The paper's figures from analysis results (matplotlib, Agg; no pyplot state, so figures never leak).

Every figure has a `*_figure(...) -> Figure` builder (tests inspect it: points plotted, titles) and
a writer `fig*(..., path) -> Path` that builds it and saves it atomically. Titles state the numbers
they are computed from: `r=<Pearson r, 3 decimals> p=<p, 2 significant digits>`.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .. import io
from .matrix import correlate, fit_line, transfers
from .ranking import MEAN, METRICS, POOLED

POINT, LINE, BAND = "tab:blue", "tab:red", "tab:red"


def stats_label(r: float, p: float) -> str:
    return f"r={r:.3f} p={p:.2g}"


def save(fig: Figure, path) -> Path:
    path = Path(path)
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=110)
    return path


def scatter_fit(ax, x, y, name: str, xlabel: str, ylabel: str) -> dict:
    """Points, least-squares line and its 95% band for the mean (as in Figs. 2, 3, 6); the title is
    `name` and the Pearson r / p of exactly the plotted points. Returns correlate()'s dict."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    c = correlate(x[ok], y[ok])
    ax.scatter(x[ok], y[ok], s=12, color=POINT, zorder=3)
    line = fit_line(x[ok], y[ok])
    if line is not None:
        ax.plot(line.x, line.y, color=LINE, lw=1)
        ax.fill_between(line.x, line.lower, line.upper, color=BAND, alpha=0.2, lw=0)
    ax.set_title(f"{name}\n{stats_label(c['pearson_r'], c['pearson_p'])}", fontsize=8)
    ax.set_xlabel(xlabel, fontsize=7)
    ax.set_ylabel(ylabel, fontsize=7)
    ax.tick_params(labelsize=6)
    return c


def select_sources(corr: pd.DataFrame, max_panels: int = 12, per_side: int = 4) -> list[str]:
    """Fig. 2 panels: every source when at most `max_panels`, else the `per_side` sources with the
    highest Pearson r (CE predicts their targets' errors best) and the `per_side` with the lowest."""
    per = corr[corr["scope"] != POOLED].sort_values(["pearson_r", "scope"], ascending=[False, True],
                                                     na_position="last")
    names = list(per["scope"])
    if len(names) <= max_panels:
        return names
    defined = per.dropna(subset=["pearson_r"])
    return list(dict.fromkeys(list(defined["scope"].head(per_side)) + list(defined["scope"].tail(per_side))))


def fig2_figure(rows: pd.DataFrame, sources: list[str], dataset: str = "") -> Figure:
    """Fig. 2: one panel per source, its targets' CE H(Y|Z) (x) against transfer test error (y)."""
    t = transfers(rows)
    ncol = min(4, max(1, len(sources)))
    nrow = max(1, -(-len(sources) // ncol))
    fig = Figure(figsize=(3.0 * ncol, 2.6 * nrow))
    axes = np.atleast_1d(fig.subplots(nrow, ncol)).ravel()
    for ax, source in zip(axes, sources):
        g = t[t["source"] == source]
        scatter_fit(ax, g["ce"], g["test_error"], source, "CE H(Y|Z), nats", "target test error")
    for ax in axes[len(sources):]:
        ax.set_axis_off()
    fig.suptitle(f"{dataset}: CE vs transfer test error (one point per target)", fontsize=9)
    fig.tight_layout()
    return fig


def fig2(rows: pd.DataFrame, sources: list[str], path, dataset: str = "") -> Path:
    return save(fig2_figure(rows, sources, dataset), path)


def fig3_figure(rows: pd.DataFrame, source: str) -> Figure:
    """Fig. 3: a multi-class source (e.g. identity) to every target: CE vs test error."""
    g = transfers(rows)
    g = g[g["source"] == source]
    fig = Figure(figsize=(4.5, 3.6))
    scatter_fit(fig.subplots(), g["ce"], g["test_error"], f"{source} -> {len(g)} targets",
                "CE H(Y|Z), nats", "target test error")
    fig.tight_layout()
    return fig


def fig3(rows: pd.DataFrame, source: str, path) -> Path:
    return save(fig3_figure(rows, source), path)


def fig4_figure(long: pd.DataFrame, source: str) -> Figure:
    """Fig. 4: transferred minus dedicated accuracy per target, targets in CE order (table1())."""
    fig = Figure(figsize=(max(4.0, 0.18 * len(long) + 1.5), 3.4))
    ax = fig.subplots()
    diff = long["transfer_minus_dedicated"].to_numpy(float)
    ax.bar(np.arange(len(long)), np.nan_to_num(diff), color=np.where(diff >= 0, "tab:green", "tab:red"))
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(np.arange(len(long)), long["target"], rotation=90, fontsize=6)
    ax.set_ylabel("transferred - dedicated accuracy", fontsize=7)
    ax.set_title(f"{source} -> targets, sorted by CE ascending (decreasing transferability)", fontsize=8)
    fig.tight_layout()
    return fig


def fig4(long: pd.DataFrame, source: str, path) -> Path:
    return save(fig4_figure(long, source), path)


def fig5_figure(curves: pd.DataFrame, source: str) -> Figure:
    """Fig. 5: accuracy against training-set size per target: dedicated (blue) vs transferred from
    `source` (red); one panel per target."""
    targets = list(dict.fromkeys(curves["target"]))
    fig = Figure(figsize=(4.5, 2.6 * max(1, len(targets))))
    axes = np.atleast_1d(fig.subplots(max(1, len(targets)), 1)).ravel()
    for ax, target in zip(axes, targets):
        for kind, color in (("dedicated", "tab:blue"), ("transferred", "tab:red")):
            c = curves[(curves["target"] == target) & (curves["kind"] == kind)].sort_values("train_fraction")
            if len(c):
                label = "dedicated" if kind == "dedicated" else f"transferred from {source}"
                ax.errorbar(c["n_train"], c["accuracy"], yerr=np.nan_to_num(c["accuracy_std"].to_numpy(float)),
                            color=color, marker="o", ms=3, lw=1, capsize=2, label=label)
        ax.set_xscale("log")
        ax.set_title(target, fontsize=8)
        ax.set_xlabel("training images", fontsize=7)
        ax.set_ylabel("test accuracy", fontsize=7)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def fig5(curves: pd.DataFrame, source: str, path) -> Path:
    return save(fig5_figure(curves, source), path)


def fig6_figure(hard: pd.DataFrame, dataset: str = "") -> Figure:
    """Fig. 6: estimated hardness H(Z|C) (Eq. 14) against the dedicated model's test error."""
    fig = Figure(figsize=(4.5, 3.6))
    scatter_fit(fig.subplots(), hard["hardness"], hard["dedicated_test_error"],
                f"{dataset}: hardness vs dedicated error", "hardness H(Z|C), nats", "dedicated test error")
    fig.tight_layout()
    return fig


def fig6(hard: pd.DataFrame, path, dataset: str = "") -> Path:
    return save(fig6_figure(hard, dataset), path)


def estimators_figure(comparison: pd.DataFrame) -> Figure:
    """Grouped bars: for each estimator, its agreement with transfer accuracy by each metric, with
    bootstrap 95% whiskers; left pooled over all pairs, right the mean over sources."""
    estimators = list(dict.fromkeys(comparison["estimator"]))
    fig = Figure(figsize=(max(5.0, 1.3 * len(estimators)) * 2, 3.4))
    axes = fig.subplots(1, 2, sharey=True)
    width = 0.8 / len(METRICS)
    for ax, scope in zip(axes, (POOLED, MEAN)):
        sel = comparison[comparison["scope"] == scope].set_index(["estimator", "metric"])
        for j, metric in enumerate(METRICS):
            v = np.array([sel["value"].get((e, metric), np.nan) for e in estimators], float)
            lo = np.array([sel["ci_low"].get((e, metric), np.nan) for e in estimators], float)
            hi = np.array([sel["ci_high"].get((e, metric), np.nan) for e in estimators], float)
            err = np.nan_to_num(np.vstack([v - lo, hi - v]))
            ax.bar(np.arange(len(estimators)) + (j - 1.5) * width, np.nan_to_num(v), width, yerr=err,
                   capsize=2, label=metric, error_kw=dict(lw=0.8))
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(np.arange(len(estimators)), estimators, fontsize=7)
        ax.set_title(f"{scope}: estimator vs transfer accuracy", fontsize=8)
    axes[0].set_ylabel("correlation (95% bootstrap CI)", fontsize=7)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def fig_estimators(comparison: pd.DataFrame, path) -> Path:
    return save(estimators_figure(comparison), path)


def fig2_multiclass_targets_figure(pairs: pd.DataFrame, dataset: str = "") -> Figure:
    """Fig. 2's companion: each multi-class target in its own panel, one point per source (its CE, up to
    log K nats, is on another scale than a binary target's, so it is kept out of the binary panels)."""
    targets = sorted(pairs["target"].unique())
    ncol = min(4, max(1, len(targets)))
    nrow = max(1, -(-len(targets) // ncol))
    fig = Figure(figsize=(max(4.5, 3.0 * ncol), 2.8 * nrow))
    axes = np.atleast_1d(fig.subplots(nrow, ncol)).ravel()
    for ax, target in zip(axes, targets):
        g = pairs[pairs["target"] == target]
        scatter_fit(ax, g["ce"], g["test_error"], f"-> {target} ({len(g)} sources)", "CE H(Y|Z), nats",
                    "transfer test error")
    for ax in axes[len(targets):]:
        ax.set_axis_off()
    fig.suptitle(f"{dataset}: multi-class targets, one point per source", fontsize=9)
    fig.tight_layout()
    return fig


def fig2_multiclass_targets(pairs: pd.DataFrame, path, dataset: str = "") -> Path:
    return save(fig2_multiclass_targets_figure(pairs, dataset), path)
