"""The paper's figures from analysis results (matplotlib, Agg; no pyplot state, so figures never leak).

Every figure has a `*_figure(...) -> Figure` builder (tests inspect it: points plotted, titles) and
a writer `fig*(..., path) -> Path` that builds it and saves it atomically. Titles state the numbers
they are computed from: `r=<Pearson r, 3 decimals> p=<p, 2 significant digits>`. Errors are in [0, 1], so
the fitted line and its band are clipped there; the extreme points of a scatter carry their task's name.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .. import io
from ..estimators.registry import BASELINES
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


def scatter_fit(ax, x, y, name: str, xlabel: str, ylabel: str, labels=None, clip=None) -> dict:
    """Points, least-squares line and its 95% band for the mean (as in Figs. 2, 3, 6); the title is
    `name` and the Pearson r / p of exactly the plotted points. `labels`: each point's name (the extreme
    points are annotated); `clip`: (low, high) the line and band are clipped to (an error lies in [0, 1]).
    Returns correlate()'s dict."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    c = correlate(x[ok], y[ok])
    ax.scatter(x[ok], y[ok], s=12, color=POINT, zorder=3)
    line = fit_line(x[ok], y[ok])
    if line is not None:
        lo, hi = clip if clip is not None else (-np.inf, np.inf)
        ax.plot(line.x, np.clip(line.y, lo, hi), color=LINE, lw=1)
        ax.fill_between(line.x, np.clip(line.lower, lo, hi), np.clip(line.upper, lo, hi), color=BAND, alpha=0.2, lw=0)
    if labels is not None:
        label_extremes(ax, x[ok], y[ok], np.asarray(labels, dtype=object)[ok])
    ax.set_title(f"{name}\n{stats_label(c['pearson_r'], c['pearson_p'])}", fontsize=8)
    ax.set_xlabel(xlabel, fontsize=7)
    ax.set_ylabel(ylabel, fontsize=7)
    ax.tick_params(labelsize=6)
    return c


def label_extremes(ax, x: np.ndarray, y: np.ndarray, names: np.ndarray, per_end: int = 2) -> list[int]:
    """Name the points with the highest and lowest y and x (`per_end` of each), so the tasks that make a
    correlation can be identified. Returns the indices labelled."""
    if not len(x):
        return []
    pick = []
    for v in (y, x):
        order = np.argsort(v, kind="stable")
        pick += list(order[:per_end]) + list(order[-per_end:])
    pick = list(dict.fromkeys(int(i) for i in pick))
    for i in pick:
        ax.annotate(str(names[i]), (x[i], y[i]), xytext=(3, 2), textcoords="offset points", fontsize=5,
                    color="0.25", zorder=4)
    return pick


def select_sources(corr: pd.DataFrame, max_panels: int | None = None, per_side: int = 4) -> list[str]:
    """Fig. 2 panels: every source, highest Pearson r (CE predicts its targets' errors best) first. With
    `max_panels`, more sources than that give the `per_side` highest and the `per_side` lowest only."""
    per = corr[corr["scope"] != POOLED].sort_values(["pearson_r", "scope"], ascending=[False, True],
                                                     na_position="last")
    names = list(per["scope"])
    if max_panels is None or len(names) <= max_panels:
        return names
    defined = per.dropna(subset=["pearson_r"])
    return list(dict.fromkeys(list(defined["scope"].head(per_side)) + list(defined["scope"].tail(per_side))))


def fig2_figure(rows: pd.DataFrame, sources: list[str], dataset: str = "") -> Figure:
    """Fig. 2: one panel per source, its targets' CE H(Y|Z) (x) against transfer test error (y); the title
    says which sources are shown (all, or how many of how many) and in what order."""
    t = transfers(rows)
    ncol = min(4 if len(sources) <= 12 else 7, max(1, len(sources)))
    nrow = max(1, -(-len(sources) // ncol))
    fig = Figure(figsize=(3.0 * ncol, 2.6 * nrow + 0.4))
    axes = np.atleast_1d(fig.subplots(nrow, ncol)).ravel()
    for ax, source in zip(axes, sources):
        g = t[t["source"] == source]
        scatter_fit(ax, g["ce"], g["test_error"], source, "CE H(Y|Z), nats", "target test error",
                    labels=g["target"], clip=(0, 1))
    for ax in axes[len(sources):]:
        ax.set_axis_off()
    total = t["source"].nunique()
    shown = (f"all {total} sources" if len(sources) >= total else
             f"{len(sources)} of {total} sources (highest and lowest Pearson r)")
    fig.suptitle(f"{dataset}: CE vs transfer test error (one point per target); {shown}, sorted by Pearson r",
                 fontsize=9)
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
                "CE H(Y|Z), nats", "target test error", labels=g["target"], clip=(0, 1))
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
                f"{dataset}: hardness vs dedicated error", "hardness H(Z|C), nats", "dedicated test error",
                labels=hard["task"], clip=(0, 1))
    fig.tight_layout()
    return fig


def fig6(hard: pd.DataFrame, path, dataset: str = "") -> Path:
    return save(fig6_figure(hard, dataset), path)


def ce_heatmap_figure(m: pd.DataFrame, title: str) -> Figure:
    """The CE matrix (rows: targets Y, columns: sources Z, nats). Rows far above the rest (a many-class
    target such as CelebA's identity, about 8.9 nats against at most 0.69 for an attribute) get their own
    panel and colour scale, so the rest of the matrix is not one dark block. The title is wrapped to fit."""
    values = m.to_numpy(dtype=float)
    h, w = values.shape
    big = dominant_rows(values)
    parts = [(np.flatnonzero(big), "far above the rest: own panel and colour scale"), (np.flatnonzero(~big), "")] \
        if big.any() else [(np.arange(h), "")]
    width = min(max(5.5, 2.5 + 0.25 * w), 30)
    heights = [max(0.6, 0.25 * len(rows)) for rows, _ in parts]
    fig = Figure(figsize=(width, min(max(3.5, 1.8 + sum(heights)), 30)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(parts), 1, height_ratios=heights, sharex=True))
    for ax, (rows, note) in zip(axes, parts):
        block = values[rows]
        im = ax.imshow(block, cmap="viridis", aspect="auto", interpolation="nearest",
                       vmin=0, vmax=np.nanmax(block) if np.isfinite(block).any() else 1)
        fig.colorbar(im, ax=ax, label="H(Y|Z), nats" if not note else "nats", aspect=max(2, 3 * len(rows)))
        if max(h, w) <= 90:
            ax.set_yticks(range(len(rows)), m.index[rows], fontsize=6)
        if h * w <= 144:   # few cells: the numbers themselves
            for (i, j), v in np.ndenumerate(block):
                ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=6,
                        color="w" if v < 0.5 * np.nanmax(block) else "k")
        if note:
            ax.set_title(note, fontsize=7, loc="left")
    if max(h, w) <= 90:
        axes[-1].set_xticks(range(w), m.columns, rotation=90, fontsize=6)
    axes[-1].set_xlabel("source task Z")
    axes[-1].set_ylabel("target task Y")
    fig.suptitle(textwrap.fill(title, width=max(30, int(11 * width))), fontsize=9)
    return fig


def dominant_rows(values: np.ndarray, factor: float = 3.0) -> np.ndarray:
    """Rows whose median is more than `factor` times the median row median (and above 1 nat): they
    would set the colour scale of the whole matrix."""
    if len(values) < 2 or not np.isfinite(values).any():
        return np.zeros(len(values), bool)
    import warnings

    with warnings.catch_warnings():   # an all-NaN row has no median; it is simply not dominant
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(np.where(np.isfinite(values), values, np.nan), axis=1)
        typical = np.nanmedian(med)
    big = np.nan_to_num(med, nan=-np.inf) > max(1.0, factor * typical)
    return big if not big.all() else np.zeros(len(values), bool)


def ce_heatmap(m: pd.DataFrame, path, title: str) -> Path:
    return save(ce_heatmap_figure(m, title), path)


def estimators_figure(comparison: pd.DataFrame) -> Figure:
    """Grouped bars: for each estimator, its agreement with transfer accuracy by each metric, with
    bootstrap 95% whiskers; left pooled over all pairs, right the mean over sources. Scores undefined in this
    direction (of the source alone) are left out, not drawn as 0."""
    defined = comparison.groupby("estimator", sort=False)["value"].apply(lambda v: v.notna().any())
    estimators = [e for e in dict.fromkeys(comparison["estimator"]) if defined[e]]
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


SELECTION_PANELS = (("weighted_tau", "weighted tau with transfer accuracy"),
                    ("top1_relative_accuracy", "top-1 relative accuracy"), ("recall_at_1", "recall@1"),
                    ("recall_at_3", "recall@3"), ("recall_at_5", "recall@5"), ("regret", "regret (lower is better)"))


def selection_figure(mean: pd.DataFrame, title: str = "") -> Figure:
    """Choosing a source per target: for each score (rows), its mean over targets of each measure (panels) with
    the crossed-bootstrap 95% whiskers; estimators in blue, baselines in grey, the random ranking's expectation
    as a dashed line. `mean`: selection.csv's `mean over targets` rows; undefined scores are left out."""
    defined = mean.groupby("estimator", sort=False)["value"].apply(lambda v: v.notna().any())
    names = [e for e in dict.fromkeys(mean["estimator"]) if defined[e]]
    fig = Figure(figsize=(13.0, 1.2 + 0.28 * max(4, len(names)) * 2))
    axes = np.atleast_1d(fig.subplots(2, 3, sharey=True)).ravel()
    y = np.arange(len(names))[::-1]
    for ax, (metric, label) in zip(axes, SELECTION_PANELS):
        sel = mean[mean["metric"] == metric].set_index("estimator").reindex(names)
        v, lo, hi = (sel[c].to_numpy(float) for c in ("value", "ci_low", "ci_high"))
        err = np.clip(np.nan_to_num(np.vstack([v - lo, hi - v])), 0, None)
        colors = ["0.6" if e in BASELINES else "tab:blue" for e in names]
        ax.barh(y, np.nan_to_num(v), color=colors, xerr=err, capsize=2, error_kw=dict(lw=0.8))
        if "random_ranking" in sel.index and np.isfinite(sel.at["random_ranking", "value"]):
            ax.axvline(sel.at["random_ranking", "value"], color="k", ls="--", lw=0.8)
        ax.set_title(label, fontsize=8)
        ax.tick_params(labelsize=6)
    axes[0].set_yticks(y, names, fontsize=7)
    axes[3].set_yticks(y, names, fontsize=7)
    fig.suptitle(title or "choosing a source per target: mean over targets (95% crossed bootstrap CI); "
                 "grey: baselines, dashed: random ranking", fontsize=9)
    fig.tight_layout()
    return fig


def fig_selection(mean: pd.DataFrame, path, title: str = "") -> Path:
    return save(selection_figure(mean, title), path)


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


def widths_figure(summary: pd.DataFrame, order: list[str], title: str = "") -> Figure:
    """The width x prevalence study: per estimator, the median over sources of the per-source r with
    transfer (left) and of the partial r given H(Y) (right) against the embedding size D, with the
    bootstrap-over-sources 95% interval as error bars."""
    fig = Figure(figsize=(12.5, 4.2))
    axes = fig.subplots(1, 2, sharey=True)
    names = [e for e in order if e in set(summary["estimator"])]
    for ax, (metric, label) in zip(axes, (("r", "median per-source r with transfer\n(CE: r(CE, error))"),
                                           ("partial_r_given_entropy", "median per-source partial r given H(Y)"))):
        s = summary[summary["metric"] == metric]
        for i, est in enumerate(names):
            g = s[s["estimator"] == est].sort_values("D")
            if g["median"].notna().sum() == 0:
                continue
            shift = 1 + 0.03 * (i - len(names) / 2)   # spread the error bars of one D apart; colour fixed per name
            ax.errorbar(g["D"] * shift, g["median"], yerr=[g["median"] - g["ci_low"], g["ci_high"] - g["median"]],
                        marker="o", ms=3, capsize=2, lw=1.6 if est == "nce" else 1, label=est,
                        color="black" if est == "nce" else f"C{i % 10}", ls="--" if est in BASELINES else "-")
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("embedding size D")
        ax.set_title(label, fontsize=9)
    axes[0].set_ylabel("correlation")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="center right")   # outside both panels: no point is hidden
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.87, 1))
    return fig


def fig_widths(summary: pd.DataFrame, path, order: list[str], title: str = "") -> Path:
    return save(widths_figure(summary, order, title), path)
