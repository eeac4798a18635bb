"""Pure analysis, part 3: how well each transferability estimator ranks the targets by their actual
transfer accuracy, with bootstrap confidence intervals.

Scores are oriented by their registry sign (estimators.registry) so that higher = predicted more
transferable: NCE (= -CE, Eq. 7) and the negated Miller-Madow CE, LEEP, LogME, H-score and its regularised
variant, TransRate, GBC (minus the summed Bhattacharyya coefficients) and N-LEEP, all higher-is-better as
published, and the negated baselines (target entropy, majority-class error). Each is correlated with
the test ACCURACY of the transfer cells (dedicated cell excluded) by Pearson, Spearman, Kendall tau-b
and weighted Kendall tau (scipy.stats.weightedtau: hyperbolic weights, so agreement among the
top-scored targets counts most), per source and pooled over all (source, target) pairs.

Confidence intervals: percentile bootstrap resampling TARGETS with replacement (pooled: a resampled
target brings all of its (source, target) pairs), seeded. A third scope, `mean over sources`,
averages the per-source values; its interval resamples sources.

The scores ranked are those able to rank the targets of a source (registry.RANKS_TARGETS). A score of the source
alone (its hardness H(Z), its network's accuracy, its number of classes) is constant over a source's targets: its
rows are undefined (NaN, n = 0). The random ranking's expectation is 0 for every metric (`random_ranking` rows,
interval [0, 0]). The other direction, choosing a source for each target, is `selection`.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from ..estimators.registry import ESTIMATOR, RANDOM_RANKING, RANKS_TARGETS, SCORES, SIGNS, SOURCE
from .matrix import POOLED, transfers

METRICS = ("pearson", "spearman", "kendall", "weighted_tau")
MEAN = "mean over sources"


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair of (B, n) arrays; NaN for a constant row."""
    xc, yc = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
    den = np.sqrt((xc * xc).sum(1) * (yc * yc).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (xc * yc).sum(1) / np.where(den > 0, den, 1), np.nan)


def _kendall_rows(x: np.ndarray, y: np.ndarray, chunk: int = 64) -> np.ndarray:
    """Kendall tau-b of each row pair of (B, n) arrays. Small n: from pair sign products, O(B n^2)
    vectorised (ties in either variable, bootstrap duplicates included, count as in scipy's tau-b);
    large n: scipy's O(n log n) per row. NaN when undefined."""
    if x.shape[1] > 64:
        return np.array([stats.kendalltau(a, b).statistic if np.ptp(a) > 0 and np.ptp(b) > 0 else np.nan
                         for a, b in zip(x, y)])
    out = np.empty(len(x))
    for s in range(0, len(x), chunk):
        sx = np.sign(x[s:s + chunk, :, None] - x[s:s + chunk, None, :])
        sy = np.sign(y[s:s + chunk, :, None] - y[s:s + chunk, None, :])
        num = (sx * sy).sum((1, 2))
        den = np.sqrt(np.abs(sx).sum((1, 2)) * np.abs(sy).sum((1, 2)))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s:s + chunk] = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    return out


def _weighted_tau_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.array([stats.weightedtau(a, b).statistic if np.ptp(a) > 0 and np.ptp(b) > 0 else np.nan
                     for a, b in zip(x, y)])


def rank_agreement(score: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """(B, 4) array: METRICS for each row pair of (B, n) arrays (one row = one (re)sample).
    A row with fewer than 3 points or a constant variable gives NaN."""
    score, accuracy = np.atleast_2d(np.asarray(score, float)), np.atleast_2d(np.asarray(accuracy, float))
    out = np.full((len(score), len(METRICS)), np.nan)
    if score.shape[1] < 3:
        return out
    ranks = lambda a: stats.rankdata(a, axis=1)
    out[:, 0] = _pearson_rows(score, accuracy)
    out[:, 1] = _pearson_rows(ranks(score), ranks(accuracy))   # Spearman = Pearson on average ranks
    out[:, 2] = _kendall_rows(score, accuracy)
    out[:, 3] = _weighted_tau_rows(score, accuracy)
    return out


def _bootstrap(score: np.ndarray, accuracy: np.ndarray, groups: np.ndarray, n_boot: int,
               rng: np.random.Generator) -> np.ndarray:
    """(n_boot, 4) METRICS on resamples of the groups (targets); each resample draws as many groups
    as there are. One member per group (a source's targets): all resamples at once; otherwise (pooled:
    a target brings all its pairs, so sizes differ) one resample at a time."""
    labels, inverse = np.unique(groups, return_inverse=True)
    picks = rng.integers(0, len(labels), size=(n_boot, len(labels)))
    if len(labels) == len(groups):
        idx = np.argsort(inverse)[picks]   # group g's only member
        return rank_agreement(score[idx], accuracy[idx])
    members = [np.flatnonzero(inverse == g) for g in range(len(labels))]
    rows = (np.concatenate([members[g] for g in p]) for p in picks)
    return np.vstack([rank_agreement(score[r], accuracy[r]) for r in rows])


def _ci(boot: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.full(boot.shape[1], np.nan), np.full(boot.shape[1], np.nan)
    for j in range(boot.shape[1]):
        b = boot[:, j][np.isfinite(boot[:, j])]
        if len(b) >= max(10, 0.5 * len(boot)):   # an interval from a handful of defined resamples would mislead
            lo[j], hi[j] = np.percentile(b, [50 * (1 - level), 50 * (1 + level)])
    return lo, hi


def estimator_columns(rows: pd.DataFrame) -> list[str]:
    """The estimators present with at least one finite value."""
    return [e for e in signs() if e in rows and np.isfinite(rows[e].to_numpy(dtype=float)).any()]


def signs() -> dict[str, float]:
    """The orientation (higher = more transferable) of every score able to rank the targets of a source: the
    estimators, then the baselines."""
    return {name: SIGNS[name] for name in RANKS_TARGETS}


def estimator_comparison(rows: pd.DataFrame, n_boot: int = 1000, n_boot_source: int = 200, seed: int = 0,
                         level: float = 0.95) -> pd.DataFrame:
    """Long table: estimator, scope (a source, `pooled` or `mean over sources`), metric, value,
    ci_low, ci_high, n (targets, pairs or sources), n_boot. Rows are one per (source, target), seeds
    averaged. On very large matrices the resample counts are lowered (never below 100 pooled / 50 per
    source) so the stage stays minutes, not hours; `n_boot` says how many were drawn."""
    t = transfers(rows)
    rng = np.random.default_rng(seed)
    out = []

    def add(est, scope, vals, lo, hi, n, boot):
        out.extend(dict(estimator=est, scope=scope, metric=m, value=v, ci_low=a, ci_high=b, n=n, n_boot=boot)
                   for m, v, a, b in zip(METRICS, vals, lo, hi))

    # The pooled resamples run one by one: cap their total size (CUB has ~10^5 pairs) at ~5e6 values.
    n_boot_pooled = int(min(n_boot, max(100, 5_000_000 // max(1, len(t)))))
    n_boot_source = int(min(n_boot_source, max(50, 2_000_000 // max(1, len(t)))))
    for est in estimator_columns(t):
        sign = signs()[est]
        per_source = []
        for source, g in t.groupby("source", sort=True):
            g = g[np.isfinite(g[est].to_numpy(float)) & np.isfinite(g["test_accuracy"].to_numpy(float))]
            s, a = sign * g[est].to_numpy(float), g["test_accuracy"].to_numpy(float)
            vals = rank_agreement(s, a)[0]
            lo, hi = _ci(_bootstrap(s, a, g["target"].to_numpy(), n_boot_source, rng), level) if len(g) >= 3 \
                else (np.full(4, np.nan), np.full(4, np.nan))
            add(est, source, vals, lo, hi, len(g), n_boot_source)
            per_source.append((vals, lo, hi))
        g = t[np.isfinite(t[est].to_numpy(float)) & np.isfinite(t["test_accuracy"].to_numpy(float))]
        s, a = sign * g[est].to_numpy(float), g["test_accuracy"].to_numpy(float)
        lo, hi = _ci(_bootstrap(s, a, g["target"].to_numpy(), n_boot_pooled, rng), level) if len(g) >= 3 \
            else (np.full(4, np.nan), np.full(4, np.nan))
        add(est, POOLED, rank_agreement(s, a)[0], lo, hi, len(g), n_boot_pooled)
        per = np.array([v for v, _, _ in per_source]).reshape(-1, len(METRICS))
        if len(per_source) == 1:   # one source: its mean is its own value, with its own interval
            means, lo, hi = per_source[0]
        else:
            means, lo, hi = _mean_over_sources(per, n_boot, rng, level)
        add(est, MEAN, means, lo, hi, int(np.isfinite(per).any(1).sum()) if len(per) else 0, n_boot)
    if len(out):   # chance, exactly: E[metric] = 0 under a uniformly random order
        zero = np.zeros(len(METRICS))
        for scope, n in ((POOLED, len(t)), (MEAN, t["source"].nunique())):
            add(RANDOM_RANKING, scope, zero, zero, zero, n, 0)
    for est in [n for n in SIGNS if SCORES[n].of == SOURCE and n in t]:   # no ranking of one source's targets
        nan = np.full(len(METRICS), np.nan)
        for scope in (POOLED, MEAN):
            add(est, scope, nan, nan, nan, 0, 0)
    return pd.DataFrame(out, columns=["estimator", "scope", "metric", "value", "ci_low", "ci_high", "n", "n_boot"])


def _mean_over_sources(per: np.ndarray, n_boot: int, rng: np.random.Generator, level: float):
    """Column means of a (sources, 4) array, ignoring NaN, with a bootstrap over sources."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # an all-NaN column stays NaN, quietly
        means = np.nanmean(per, 0) if len(per) else np.full(4, np.nan)
        if len(per) < 2:
            return means, np.full(4, np.nan), np.full(4, np.nan)
        boot = np.nanmean(per[rng.integers(0, len(per), size=(n_boot, len(per)))], 1)
    lo, hi = _ci(boot, level)
    return means, lo, hi


def best_estimator(comparison: pd.DataFrame, scope: str = MEAN, metric: str = "weighted_tau",
                   kind: str = ESTIMATOR) -> str | None:
    """The score of registry kind `kind` (estimator or baseline) with the highest `metric` in `scope` (None when
    none is defined)."""
    sel = comparison[(comparison["scope"] == scope) & (comparison["metric"] == metric)].dropna(subset=["value"])
    sel = sel[sel["estimator"].map(lambda e: SCORES[e].kind == kind)]
    return None if sel.empty else str(sel.loc[sel["value"].idxmax(), "estimator"])
