"""Pure analysis: the scores read as model-selection benchmarks read them -- for one target, which source to
transfer from (the other direction from `ranking`, which ranks the targets of one source).

For every target the candidates are the matrix's trained sources (seeds averaged; the dedicated cell source ==
target excluded; the untrained `random` row is never one) with a transfer accuracy. Each score, oriented by its
registry sign (higher = predicted better), ranks them and is measured against their transfer accuracy by
- `weighted_tau`: scipy.stats.weightedtau (hyperbolic weights from both rankings, so agreement among the top
  sources counts most), as SFDA's and stable_transfer's evaluations and `ranking` compute it; `pearson`, `spearman`;
- `top1_relative_accuracy`: the accuracy of the chosen (top-scored) source over the best candidate's
  (stable_transfer's relative_top_accuracy, SFDA's rel@1);
- `recall_at_k` (k = 1, 3, 5): whether a best source is among the k top-scored ones (stable_transfer's
  best_in_top_n); sources tied for the best accuracy are all best;
- `regret`: the best accuracy minus the chosen source's (lower is better).
Ties in a score are broken uniformly at random and the choice measures are their expected values over the tie
orders: the chosen accuracy is the mean over the sources tied at the top, recall@k the probability that the random
completion of the top k holds a best source. A source whose score is undefined (NaN) ranks below every scored one;
the correlations use the scored ones (at least 3, neither side constant). The random ranking is every candidate
tied: top-1 relative accuracy mean(acc) / best, recall@k = k / n (one best source), regret best - mean, and
correlations 0, their expectation over orders.

A score of the target alone (registry `of` target: H(Y), majority error) is constant over the sources of a
target: it cannot choose one, and is reported undefined (NaN, n = 0), not as its tie expectation.

Pooled: the mean over targets, with a percentile interval from a crossed bootstrap (`inference.crossed_counts`:
targets and sources drawn with replacement together; a drawn target's candidates are the drawn sources, with their
multiplicities). Each estimator's margin over the best baseline (the baseline with the best pooled value of the
measure) is computed on the same resamples for both (paired); positive = better than that baseline, for regret too.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..estimators.registry import (
    BASELINE,
    CHOOSES_SOURCES,
    ESTIMATOR,
    MULTILABEL,
    PAIR,
    RANDOM_RANKING,
    SCORES,
    SIGNS,
    SOURCE,
    TARGET,
)
from .design import RANDOM
from .inference import crossed_counts
from .matrix import transfers
from .ranking import MEAN, METRICS, POOLED

RECALL_K = (1, 3, 5)
MEASURES = ("weighted_tau", "pearson", "spearman", "top1_relative_accuracy",
            *(f"recall_at_{k}" for k in RECALL_K), "regret")
LOWER_IS_BETTER = frozenset({"regret"})
HEADLINE = "weighted_tau"
SELECT, RANK = "choose a source", "rank targets"          # the two directions: per target, per source
MEAN_OVER_TARGETS, MARGIN = "mean over targets", "margin over best baseline"
COLUMNS = ["direction", "estimator", "scope", "metric", "value", "ci_low", "ci_high", "n", "n_boot",
           "best_baseline", "chosen", "best_source"]


def recall_at_k(score, acc, k: int) -> float:
    """P(a best source is among the k top-scored), ties in `score` broken uniformly at random (NaN scores last)."""
    return float(choice_rows(np.atleast_2d(np.asarray(score, float)), acc, (k,))[0, 1])


def chosen_accuracy(score, acc) -> float:
    """Expected accuracy of the top-scored source, ties at the top broken uniformly at random."""
    return float(choice_rows(np.atleast_2d(np.asarray(score, float)), acc, ())[0, 0])


def choice_rows(scores: np.ndarray, acc: np.ndarray, ks=RECALL_K) -> np.ndarray:
    """(P, 1 + len(ks)): for each row of `scores` (P, n) (NaN ranks last), the expected accuracy of the top-scored
    candidate and the probability that a best candidate is among the k top-scored, over uniformly random tie
    breaks. Of the g candidates tied at the k-th highest score, the r places left in the top k go to a uniform
    draw, which misses the m best among them with probability C(g - m, r) / C(g, r) = prod_i<r (g-m-i) / (g-i)."""
    s = np.where(np.isnan(scores), -np.inf, scores)
    acc = np.asarray(acc, float)
    best = acc == acc.max()
    top = s == s.max(1, keepdims=True)
    out = np.empty((len(s), 1 + len(ks)))
    out[:, 0] = (top * acc).sum(1) / top.sum(1)
    desc = -np.sort(-s, axis=1)
    for j, k in enumerate(ks):
        v = desc[:, min(k, s.shape[1]) - 1][:, None]        # the k-th highest score
        above, tied = s > v, s == v
        g, m = tied.sum(1), (tied & best).sum(1)
        r = min(k, s.shape[1]) - above.sum(1)
        miss = np.ones(len(s))
        for i in range(max(ks, default=0)):
            step = i < r
            miss = np.where(step, miss * np.clip(g - m - i, 0, None) / np.maximum(g - i, 1), miss)
        out[:, 1 + j] = np.where((above & best).any(1), 1.0, 1.0 - miss)
    return out


def selection_measures(scores: np.ndarray, acc: np.ndarray, chance: np.ndarray | None = None) -> np.ndarray:
    """(P, len(MEASURES)): each row of `scores` (P, n) (oriented, NaN = unscored) against the candidates'
    accuracies `acc` (n,); a row flagged in `chance` is the random ranking (its scores are ignored: all tied).
    All NaN with fewer than 2 candidates or, for a row, no scored candidate."""
    scores, acc = np.atleast_2d(np.asarray(scores, float)), np.asarray(acc, float)
    chance = np.zeros(len(scores), bool) if chance is None else np.asarray(chance, bool)
    out = np.full((len(scores), len(MEASURES)), np.nan)
    if len(acc) < 2:
        return out
    scores = np.where(chance[:, None], 0.0, scores)
    scored = ~np.isnan(scores).all(1)
    choice = choice_rows(scores[scored], acc)
    best = acc.max()
    out[scored, 3] = choice[:, 0] / best if best > 0 else np.nan
    out[scored, 4:4 + len(RECALL_K)] = choice[:, 1:]
    out[scored, -1] = best - choice[:, 0]
    out[:, :3] = correlation_rows(scores, acc)
    out[chance, :3] = 0.0
    return out


def correlation_rows(scores: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """(P, 3) weighted tau, Pearson r and Spearman rho of each row of `scores` (P, n) with `acc` (n,), over the
    row's finite scores; NaN with fewer than 3 or either side constant. Rows without NaN go together."""
    out = np.full((len(scores), 3), np.nan)
    whole = np.isfinite(scores).all(1)
    groups = [(np.flatnonzero(whole), np.ones(len(acc), bool))] + [
        (np.array([p]), np.isfinite(scores[p])) for p in np.flatnonzero(~whole)]
    for rows, ok in groups:
        s, a = scores[np.ix_(rows, np.flatnonzero(ok))], acc[ok]
        if len(rows) == 0 or len(a) < 3 or np.ptp(a) == 0:
            continue
        out[rows, 0] = weighted_tau_rows(s, a)
        out[rows, 1] = _pearson_rows(s, a)
        out[rows, 2] = _pearson_rows(stats.rankdata(s, axis=1), stats.rankdata(a))
    return out


def _pearson_rows(s: np.ndarray, a: np.ndarray) -> np.ndarray:
    sc, ac = s - s.mean(1, keepdims=True), a - a.mean()
    den = np.sqrt((sc * sc).sum(1) * (ac @ ac))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, sc @ ac / np.where(den > 0, den, 1), np.nan)


def weighted_tau_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """scipy.stats.weightedtau(x[p], y) (its defaults: additive hyperbolic weights 1 / (r + 1) from both
    rankings, averaged) of each row of x (P, n) with y (n,), by its definition over the n^2 pairs at once:
    with r the rank in decreasing lexicographic order of (x, y) (of (y, x) for the other half; fully tied
    elements as scipy orders them) and pair weight w_ij = 1/(r_i+1) + 1/(r_j+1), tau = sum_ij w_ij sgn(x_i -
    x_j) sgn(y_i - y_j) / sqrt(sum_ij w_ij [x_i != x_j] sum_ij w_ij [y_i != y_j]). NaN for a constant row."""
    x = np.atleast_2d(np.asarray(x, float))
    y = np.broadcast_to(np.asarray(y, float), x.shape)
    sx, sy = np.sign(x[:, :, None] - x[:, None, :]), np.sign(y[:, :, None] - y[:, None, :])
    taus = []
    for major, minor in ((x, y), (y, x)):
        perm = np.lexsort((minor, major), axis=1)[:, ::-1]       # descending; full ties: higher index first
        rank = np.empty_like(perm)
        np.put_along_axis(rank, perm, np.arange(x.shape[1])[None].repeat(len(x), 0), 1)
        w = 1.0 / (rank + 1.0)
        pair = w[:, :, None] + w[:, None, :]
        den = np.sqrt((pair * np.abs(sx)).sum((1, 2)) * (pair * np.abs(sy)).sum((1, 2)))
        with np.errstate(invalid="ignore", divide="ignore"):
            taus.append(np.where(den > 0, (pair * sx * sy).sum((1, 2)) / np.where(den > 0, den, 1), np.nan))
    return np.clip((taus[0] + taus[1]) / 2, -1.0, 1.0)


@dataclass(frozen=True)
class Candidates:
    """The selection problem of a matrix: `acc` (T, S) transfer accuracy of source s to target t (NaN: not a
    candidate: the dedicated cell, a missing cell), `scores` (P, T, S) each score oriented (higher = better),
    `names` (P,) and `chance` (P,) (the random ranking's row)."""
    targets: list[str]
    sources: list[str]
    acc: np.ndarray
    scores: np.ndarray
    names: list[str]
    chance: np.ndarray


def candidates(rows: pd.DataFrame, names: list[str]) -> Candidates:
    """The transfer cells of `rows` (one per (source, target), seeds averaged) as a Candidates; `names` are
    score columns of `rows` (RANDOM_RANKING needs none). The untrained backbone (source `random`) is no candidate."""
    t = transfers(rows[rows["source"] != RANDOM])
    targets, sources = sorted(t["target"].unique()), sorted(t["source"].unique())
    ti = t["target"].map({x: i for i, x in enumerate(targets)}).to_numpy()
    si = t["source"].map({x: i for i, x in enumerate(sources)}).to_numpy()
    acc = np.full((len(targets), len(sources)), np.nan)
    acc[ti, si] = t["test_accuracy"].to_numpy(float)
    scores = np.full((len(names), len(targets), len(sources)), np.nan)
    for p, name in enumerate(names):
        if name != RANDOM_RANKING:
            scores[p, ti, si] = SCORES[name].sign * t[name].to_numpy(float)
    return Candidates(targets, sources, acc, scores, list(names), np.array([n == RANDOM_RANKING for n in names]))


def choosers(rows: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(the scores that can choose a source and have a value in `rows`, with the random ranking; the scores of
    the target alone present in `rows`, undefined in this direction)."""
    present = lambda n: n in rows and np.isfinite(rows[n].to_numpy(float)).any()
    can = [n for n in CHOOSES_SOURCES if n == RANDOM_RANKING or present(n)]
    return can, [n for n in SIGNS if SCORES[n].of == TARGET and present(n)]


def per_target(c: Candidates, source_counts: np.ndarray | None = None,
               target_index: np.ndarray | None = None) -> np.ndarray:
    """(len(target_index), P, M) measures per target; `source_counts` (S,): each source's multiplicity (a
    bootstrap draw; default once each); `target_index`: the targets to measure (default all)."""
    counts = np.ones(len(c.sources), int) if source_counts is None else source_counts
    target_index = np.arange(len(c.targets)) if target_index is None else target_index
    out = np.full((len(target_index), len(c.names), len(MEASURES)), np.nan)
    for i, t in enumerate(target_index):
        ok = np.flatnonzero(np.isfinite(c.acc[t]) & (counts > 0))
        idx = np.repeat(ok, counts[ok])
        out[i] = selection_measures(c.scores[:, t, idx], c.acc[t, idx], c.chance)
    return out


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean over axis 0 of (n, ...) values with weights (n,), each cell over its finite values; NaN when none."""
    w = weights.reshape(-1, *([1] * (values.ndim - 1))) * np.isfinite(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(w.sum(0) > 0, np.nansum(np.nan_to_num(values) * w, 0) / w.sum(0), np.nan)


def crossed_means(c: Candidates, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, P, M) means over targets of the measures on crossed resamples of targets and sources."""
    cs, ct = crossed_counts(len(c.sources), len(c.targets), n_boot, rng)
    out = np.full((n_boot, len(c.names), len(MEASURES)), np.nan)
    for b in range(n_boot):
        drawn = np.flatnonzero(ct[b] > 0)
        out[b] = weighted_mean(per_target(c, cs[b], drawn), ct[b, drawn].astype(float))
    return out


def interval(boot: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0 of (n_boot, ...) values, per cell; NaN where fewer than half the resamples
    (or 10) are defined: an interval from a handful would mislead."""
    flat = boot.reshape(len(boot), -1)
    lo, hi = np.full(flat.shape[1], np.nan), np.full(flat.shape[1], np.nan)
    for j in range(flat.shape[1]):
        b = flat[:, j][np.isfinite(flat[:, j])]
        if len(b) >= max(10, 0.5 * len(flat)):
            lo[j], hi[j] = np.percentile(b, [50 * (1 - level), 50 * (1 + level)])
    return lo.reshape(boot.shape[1:]), hi.reshape(boot.shape[1:])


def best_baselines(values: pd.DataFrame, baselines: list[str]) -> dict[str, str | None]:
    """Per metric (a column of `values`, indexed by score), the baseline with the best value (lowest for a
    LOWER_IS_BETTER metric); None when no baseline has one."""
    out = {}
    for m in values.columns:
        v = values.loc[[b for b in baselines if b in values.index], m].dropna()
        out[m] = None if v.empty else str(v.idxmin() if m in LOWER_IS_BETTER else v.idxmax())
    return out


def _names(names) -> str:
    shown = [str(n) for n in names]
    return "|".join(shown[:3]) + (f"|+{len(shown) - 3}" if len(shown) > 3 else "")


def selection_table(rows: pd.DataFrame, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                    scope: str | None = None, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """selection.csv's rows of one matrix (COLUMNS): per target and score, the measures (with the chosen and the
    best sources on the top-1 row); the mean over targets with its crossed-bootstrap interval; each estimator's
    margin over the best baseline per measure (paired); the target's own scores as undefined rows. `scope`
    names the mean rows instead of MEAN_OVER_TARGETS (a multi-label target) and drops the per-target rows;
    `extra`: more score columns of `rows` to measure (the multi-label scores)."""
    names, undefined = choosers(rows)
    names += [n for n in extra if n in rows and np.isfinite(rows[n].to_numpy(float)).any()]
    out = []
    if not names or transfers(rows).empty:
        return pd.DataFrame(out, columns=COLUMNS)
    c = candidates(rows, names)
    point = per_target(c)
    n_cand = np.isfinite(c.acc).sum(1)
    if scope is None:
        sources = np.array(c.sources)
        for i, t in enumerate(c.targets):
            ok = np.isfinite(c.acc[i])
            acc = c.acc[i, ok]
            for p, name in enumerate(names):
                s = np.zeros(ok.sum()) if c.chance[p] else c.scores[p, i, ok]
                s = np.where(np.isnan(s), -np.inf, s)
                for j, m in enumerate(MEASURES):
                    extra = {}
                    if m == "top1_relative_accuracy" and np.isfinite(point[i, p, j]):   # who was chosen and best
                        extra = dict(chosen=_names(sources[ok][s == s.max()]),
                                     best_source=_names(sources[ok][acc == acc.max()]))
                    out.append(dict(direction=SELECT, estimator=name, scope=t, metric=m, value=point[i, p, j],
                                    n=int(n_cand[i]), n_boot=0, **extra))
    # A resample costs ~ targets x scores x sources^2 (the weighted tau over all pairs): on a very large matrix
    # (CUB's 313 tasks) fewer resamples keep the stage minutes, not hours; `n_boot` says how many were drawn.
    work = len(c.targets) * len(names) * len(c.sources) ** 2
    n_boot = int(min(n_boot, max(50, 4_000_000_000 // max(1, work)))) if n_boot else 0
    means = weighted_mean(point, np.ones(len(c.targets)))
    boot = crossed_means(c, n_boot, np.random.default_rng(seed)) if n_boot else np.full((0, *means.shape), np.nan)
    lo, hi = interval(boot, level) if n_boot else (np.full(means.shape, np.nan), np.full(means.shape, np.nan))
    n_targets = np.isfinite(point).sum(0)
    mean_scope = scope or MEAN_OVER_TARGETS
    for p, name in enumerate(names):
        for j, m in enumerate(MEASURES):
            out.append(dict(direction=SELECT, estimator=name, scope=mean_scope, metric=m, value=means[p, j],
                            ci_low=lo[p, j], ci_high=hi[p, j], n=int(n_targets[p, j]), n_boot=n_boot))
    for name in undefined:   # constant over the sources of a target: no choice, no number
        out += [dict(direction=SELECT, estimator=name, scope=mean_scope, metric=m, n=0, n_boot=0) for m in MEASURES]
    table = pd.DataFrame(means, index=names, columns=list(MEASURES))
    best = best_baselines(table, [n for n in names if SCORES[n].kind == BASELINE])
    for p, name in enumerate(names):
        if SCORES[name].kind != ESTIMATOR:
            continue
        for j, m in enumerate(MEASURES):
            if best[m] is None:
                continue
            b = names.index(best[m])
            sign = -1.0 if m in LOWER_IS_BETTER else 1.0
            diff = sign * (boot[:, p, j] - boot[:, b, j])
            dlo, dhi = interval(diff[:, None], level) if n_boot else ([np.nan], [np.nan])
            out.append(dict(direction=SELECT, estimator=name, scope=f"{mean_scope}: {MARGIN}", metric=m,
                            value=sign * (means[p, j] - means[b, j]), ci_low=dlo[0], ci_high=dhi[0],
                            n=int(n_targets[p, j]), n_boot=n_boot, best_baseline=best[m]))
    return pd.DataFrame(out, columns=COLUMNS)


def rank_margins(comparison: pd.DataFrame, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """The other direction's margins (COLUMNS, direction RANK): from estimators.csv's per-source rows
    (`ranking.estimator_comparison`), each estimator's mean over sources of each metric minus the best
    baseline's (the random ranking's expectation, 0, included), with an interval from resampling the sources,
    the same resamples for both (as the `mean over sources` interval resamples them)."""
    per = comparison[~comparison["scope"].isin([MEAN, POOLED]) & comparison["metric"].isin(METRICS)]
    out = []
    if per.empty:
        return pd.DataFrame(out, columns=COLUMNS)
    rng = np.random.default_rng(seed)
    sources = sorted(per["scope"].unique())
    idx = rng.integers(0, len(sources), size=(n_boot, len(sources)))
    for m in METRICS:
        wide = per[per["metric"] == m].pivot_table(index="scope", columns="estimator", values="value",
                                                   aggfunc="first", dropna=False).reindex(sources)
        wide = wide.loc[:, wide.notna().any()]
        if wide.empty:
            continue
        wide[RANDOM_RANKING] = np.where(wide.notna().any(axis=1), 0.0, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # an all-NaN resample stays NaN
            means = wide.mean()
            boot = np.stack([np.nanmean(wide.to_numpy(float)[i], 0) for i in idx])
        best = best_baselines(means.to_frame(m), [e for e in wide.columns if SCORES[e].kind == BASELINE])[m]
        if best is None:
            continue
        b = list(wide.columns).index(best)
        for j, est in enumerate(wide.columns):
            if SCORES[est].kind != ESTIMATOR:
                continue
            lo, hi = interval((boot[:, j] - boot[:, b])[:, None], level)
            out.append(dict(direction=RANK, estimator=est, scope=f"{MEAN}: {MARGIN}", metric=m,
                            value=means[est] - means[best], ci_low=lo[0], ci_high=hi[0],
                            n=int(wide[est].notna().sum()), n_boot=n_boot, best_baseline=best))
    return pd.DataFrame(out, columns=COLUMNS)


MULTILABEL_TARGET = "multi-label"


def multilabel_rows(rows: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The matrix's binary targets as one multi-label target: one line per source (target MULTILABEL_TARGET)
    with its mean transfer accuracy over the attributes, each score of the pair (or of the target) as its mean
    over them, its own scores (of the source, and the row's joint multi-label scores, `registry.MULTILABEL`).
    The attributes are the binary targets every source has a cell for, less the source itself (its dedicated
    cell); a source whose joint scores were computed on another number of attributes (`multilabel_n_targets`)
    gets NaN for them.
    Returns (the lines, the attributes)."""
    t = transfers(rows[rows["source"] != RANDOM])
    binary = t[t["n_classes"] == 2] if "n_classes" in t else t.iloc[:0]
    if binary.empty:
        return binary.iloc[:0], []
    have = binary.groupby("source")["target"].apply(set)
    attributes = set.intersection(*[h | {s} for s, h in have.items()])
    attributes = sorted(a for a in attributes if a in set(binary["target"]))
    if len(attributes) < 2:
        return binary.iloc[:0], attributes
    cells = binary[binary["target"].isin(attributes)]
    pair = [n for n in SIGNS if SCORES[n].of in (PAIR, TARGET) and n in cells]   # of the target: undefined
    own = [n for n in SIGNS if SCORES[n].of == SOURCE and n in cells] + [n for n in MULTILABEL if n in cells]
    g = cells.groupby("source")
    out = g[["test_accuracy", *pair]].mean().join(g[own].first()).join(g.size().rename("n_attributes"))
    if "multilabel_n_targets" in cells:
        wrong = g["multilabel_n_targets"].first() != out["n_attributes"]
        out.loc[wrong, [n for n in MULTILABEL if n in out]] = np.nan
    out = out.reset_index().assign(target=MULTILABEL_TARGET, n_classes=2)
    return out, attributes


def best_chooser(selection: pd.DataFrame, metric: str = HEADLINE) -> str | None:
    """The estimator with the highest mean over targets of `metric` in choosing a source (None when none)."""
    sel = selection[(selection["direction"] == SELECT) & (selection["scope"] == MEAN_OVER_TARGETS)
                    & (selection["metric"] == metric)].dropna(subset=["value"])
    sel = sel[sel["estimator"].map(lambda e: SCORES[e].kind == ESTIMATOR)]
    return None if sel.empty else str(sel.loc[sel["value"].idxmax(), "estimator"])
