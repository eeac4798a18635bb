"""Pure analysis: how stable the verdicts on the scores are across experimental setups (Agostinelli et al.,
ECCV 2022, "How stable are transferability metrics evaluations?"; stable_transfer's setup stability score).

A setup is one version of the matrix, `Setup(axis, name, rows)`, its rows as the analysis reads them (one line
per (source, target), seeds averaged, baselines added). The analysis builds four axes: `seed` (each seed's matrix
alone), `head` (every transfer head present under the same dataset and backbone, the analysed one included),
`ground truth` (every ground truth present: the linear head at C = 1, tuned C, full fine-tuning;
docs/ground_truths.md) and `subset` (random halves of the sources and of the targets, `half_subsets`).

In each setup and direction (`selection.SELECT`: choose a source per target; `selection.RANK`: rank the targets
of a source) every score's headline is computed on point estimates (no bootstrap): the weighted tau with transfer
accuracy, averaged over targets (SELECT) or over sources (RANK); the random ranking's is 0. Then
- an estimator's verdict: it beats the best baseline of the direction (a strictly higher headline);
- the best estimator: the estimator with the highest headline (registry order on a tie).
Rows of selection.csv (`stability`), per direction and axis (and `all setups`):
- per estimator, `verdict_agreement`: the share of the setups whose verdict is the full matrix's, and
  `win_share`: the share of the setups in which it is the best estimator;
- `best estimator`, `agreement`: the share of the setups whose best estimator is the full matrix's;
- `all scores`, `setup_stability_score`: the mean over pairs of setups of Kendall's tau between the scores'
  headlines (stable_transfer's; 1: every setup orders the scores alike).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..estimators.registry import BASELINE, ESTIMATOR, RANDOM_RANKING, RANKS_TARGETS, SCORES
from .matrix import transfers
from .selection import (
    COLUMNS,
    HEADLINE,
    MEASURES,
    RANK,
    SELECT,
    candidates,
    choosers,
    correlation_rows,
    per_target,
    weighted_mean,
)

ALL = "all setups"
BEST, EVERY = "best estimator", "all scores"


@dataclass(frozen=True)
class Setup:
    axis: str            # what varies: seed, head, ground truth, subset
    name: str            # which one: seed=1, head=linear_svm, subset 17
    rows: pd.DataFrame   # its matrix, as the analysis reads one


def selection_headline(rows: pd.DataFrame) -> dict[str, float]:
    """Each score able to choose a source: its mean over targets of the weighted tau (random ranking: 0)."""
    names, _ = choosers(rows)
    if not names or transfers(rows).empty:
        return {}
    point = per_target(candidates(rows, names))
    means = weighted_mean(point, np.ones(len(point)))
    return dict(zip(names, means[:, MEASURES.index(HEADLINE)]))


def ranking_headline(rows: pd.DataFrame) -> dict[str, float]:
    """Each score able to rank targets: its mean over sources of the per-source weighted tau (random: 0)."""
    t = transfers(rows)
    names = [n for n in RANKS_TARGETS if n in t and np.isfinite(t[n].to_numpy(float)).any()]
    if not names:
        return {}
    signs = np.array([SCORES[n].sign for n in names], float)[:, None]
    per = []
    for _, g in t.groupby("source", sort=True):
        g = g[np.isfinite(g["test_accuracy"].to_numpy(float))]
        per.append(correlation_rows(signs * g[names].to_numpy(float).T, g["test_accuracy"].to_numpy(float))[:, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # a score no source can be ranked by stays NaN
        means = np.nanmean(np.array(per), 0)
    return {**dict(zip(names, means.tolist())), RANDOM_RANKING: 0.0}


HEADLINES = {SELECT: selection_headline, RANK: ranking_headline}


def verdicts(headline: dict[str, float]) -> tuple[dict[str, float], str | None]:
    """({estimator: 1.0 if it beats every baseline, 0.0 if not, NaN if undefined}, the best estimator)."""
    base = [v for n, v in headline.items() if SCORES[n].kind == BASELINE and np.isfinite(v)]
    est = {n: v for n, v in headline.items() if SCORES[n].kind == ESTIMATOR and np.isfinite(v)}
    out = {n: (float(v > max(base)) if base else np.nan) for n, v in est.items()}
    return out, (max(est, key=est.get) if est else None)


def half_subsets(rows: pd.DataFrame, n_draws: int = 200, seed: int = 0) -> list[Setup]:
    """`n_draws` setups, each half the sources and half the targets (at least 2 of each), drawn without
    replacement with `seed`."""
    sources, targets = sorted(rows["source"].unique()), sorted(rows["target"].unique())
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_draws):
        s = rng.choice(sources, max(2, len(sources) // 2), replace=False) if len(sources) > 2 else sources
        t = rng.choice(targets, max(2, len(targets) // 2), replace=False) if len(targets) > 2 else targets
        out.append(Setup("subset", f"subset {i}", rows[rows["source"].isin(s) & rows["target"].isin(t)]))
    return out


def stability(reference: pd.DataFrame, setups: list[Setup]) -> pd.DataFrame:
    """selection.csv's stability rows (COLUMNS) of the full matrix `reference` over `setups`."""
    out = []
    for direction, headline_of in HEADLINES.items():
        ref_verdict, ref_best = verdicts(headline_of(reference))
        seen = [(s.axis, headline_of(s.rows)) for s in setups]
        axes = list(dict.fromkeys(a for a, _ in seen))
        for axis in axes + ([ALL] if len(axes) > 1 else []):
            heads = [h for a, h in seen if axis in (a, ALL)]
            out += _axis_rows(direction, f"stability over {axis}", heads, ref_verdict, ref_best)
    return pd.DataFrame(out, columns=COLUMNS)


def _axis_rows(direction: str, scope: str, heads: list[dict], ref_verdict: dict, ref_best: str | None) -> list:
    rows, judged = [], [verdicts(h) for h in heads]
    row = lambda estimator, metric, value, n: dict(direction=direction, estimator=estimator, scope=scope,
                                                   metric=metric, value=value, n=n, n_boot=0)
    for est in ref_verdict:
        agree = [v[est] == ref_verdict[est] for v, _ in judged
                 if est in v and np.isfinite(v[est]) and np.isfinite(ref_verdict[est])]
        rows.append(row(est, "verdict_agreement", float(np.mean(agree)) if agree else np.nan, len(agree)))
        wins = [best == est for _, best in judged if best is not None]
        rows.append(row(est, "win_share", float(np.mean(wins)) if wins else np.nan, len(wins)))
    bests = [best for _, best in judged if best is not None]
    rows.append(row(BEST, "agreement", float(np.mean([b == ref_best for b in bests])) if bests and ref_best
                    else np.nan, len(bests)))
    rows.append(row(EVERY, "setup_stability_score", *setup_stability_score(heads)))
    return rows


def setup_stability_score(heads: list[dict[str, float]]) -> tuple[float, int]:
    """(mean over pairs of setups of Kendall's tau-b between the headlines of the scores both define, the number
    of pairs of setups with a defined tau). All pairs at once: with U the signs of every pair of scores' headline
    differences per setup (0 where either is undefined) and M where both are defined, the concordant minus
    discordant count of setups i, j is U_i . U_j, and tau-b's untied counts are |U_i| . M_j and M_i . |U_j|."""
    names = list(dict.fromkeys(n for h in heads for n in h))
    if len(heads) < 2 or len(names) < 2:
        return np.nan, 0
    H = np.array([[h.get(n, np.nan) for n in names] for h in heads], float)
    a, b = np.triu_indices(len(names), 1)
    d = H[:, a] - H[:, b]
    M = np.isfinite(d).astype(float)
    U = np.sign(np.nan_to_num(d)) * M
    num, den = U @ U.T, np.sqrt((np.abs(U) @ M.T) * (M @ np.abs(U).T))
    i, j = np.triu_indices(len(heads), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(den[i, j] > 0, num[i, j] / np.where(den[i, j] > 0, den[i, j], 1), np.nan)
    ok = np.isfinite(tau)
    return (float(tau[ok].mean()) if ok.any() else np.nan), int(ok.sum())
