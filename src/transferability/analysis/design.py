"""Pure analysis: the CE correlations as the matrix's design allows them to be read.

Views (column `view` of correlations.csv):
- `binary`: the paper's Fig. 2, binary source -> binary target; one row per binary source and a pooled row;
- `multiclass_target`: each multi-class target on its own, one point per source (its CE is on another scale:
  up to log K nats, against <= log 2 for a binary target, so mixing it into a binary panel lets it decide r);
- `all`: every transfer pair, per source and pooled (Fig. 3 reads a multi-class source's row here).

Each row carries, beside Pearson / Spearman / Kendall: the Benjamini-Hochberg q over the view's per-source
tests (`bh_q`), the target-entropy baseline (r of H(Y) with the error, r of CE with H(Y), and the partial r of
CE with the error given H(Y): does CE add anything over "rarer targets are easier"?), pooled intervals from a
crossed bootstrap of sources and targets, the most influential point (leave-one-out), the noise ceiling from
the seeds, and the verdict of inference.judge with its reason.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .inference import bh_q, crossed_bootstrap, judge, loo_influence, partial_corr, split_half_ceiling
from .matrix import POOLED, correlate, transfers
from .ranking import MEAN

BINARY, MULTI_TARGET, ALL = "binary", "multiclass_target", "all"
ENTROPY, MAJORITY = "target_entropy", "majority_error"


def target_baselines(labels: pd.DataFrame) -> pd.DataFrame:
    """Per task (column of the label table, missing labels left out): the plug-in entropy H(Y) in nats
    (what CE = H(Y|Z) <= H(Y) is bounded by) and the majority-class error 1 - max_y P(y), the error of a
    head that ignores the image."""
    out = []
    for task in labels.columns:
        p = labels[task].dropna().value_counts(normalize=True).to_numpy(float)
        out.append(dict(task=task, target_entropy=float(-(p * np.log(p)).sum()) if len(p) else np.nan,
                        majority_error=float(1 - p.max()) if len(p) else np.nan))
    return pd.DataFrame(out, columns=["task", ENTROPY, MAJORITY])


def add_baselines(rows: pd.DataFrame, base: pd.DataFrame | None) -> pd.DataFrame:
    """rows with the target's H(Y) and majority error (NaN when the labels are not available)."""
    rows = rows.drop(columns=[c for c in (ENTROPY, MAJORITY) if c in rows])
    if base is None or base.empty:
        return rows.assign(**{ENTROPY: np.nan, MAJORITY: np.nan})
    return rows.merge(base.rename(columns={"task": "target"}), on="target", how="left")


SOURCE_HARDNESS = "source_hardness"


def add_source_baselines(rows: pd.DataFrame, base: pd.DataFrame | None) -> pd.DataFrame:
    """rows with the source's hardness H(Z) (Eq. 14: the entropy of its labels, the `target_entropy` of the
    same task in `base`, target_baselines()'s table); NaN when the labels are not available or the source is
    no task of the table (the untrained `random`)."""
    rows = rows.drop(columns=[SOURCE_HARDNESS], errors="ignore")
    if base is None or base.empty:
        return rows.assign(**{SOURCE_HARDNESS: np.nan})
    return rows.assign(**{SOURCE_HARDNESS: rows["source"].map(base.set_index("task")[ENTROPY]).astype(float)})


def n_classes_of(rows: pd.DataFrame) -> pd.Series:
    """Number of classes per task, from the rows where it is a target."""
    return rows.groupby("target")["n_classes"].max()


def views(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The transfer pairs of each view (dedicated cells excluded)."""
    t = transfers(rows)
    k = n_classes_of(rows)
    src_k, tgt_k = t["source"].map(k), t["target"].map(k)
    if "source_n_classes" in t:   # a source that is nobody's target: its model's class count (source.json)
        src_k = src_k.fillna(t["source_n_classes"])
    return {BINARY: t[(src_k == 2) & (tgt_k == 2)], MULTI_TARGET: t[tgt_k > 2], ALL: t}


def seed_errors(runs: pd.DataFrame, pairs: pd.DataFrame) -> np.ndarray:
    """(cells, seeds) test errors of the given (source, target) pairs at train fraction 1."""
    full = runs[runs["train_fraction"] == 1.0] if "train_fraction" in runs else runs
    wide = full.pivot_table(index=["source", "target"], columns="seed", values="test_error", aggfunc="mean")
    keys = pd.MultiIndex.from_frame(pairs[["source", "target"]])
    return wide.reindex(keys).to_numpy(float)


def _row(view: str, scope: str, g: pd.DataFrame, runs: pd.DataFrame, names: pd.Series, pooled: bool,
         n_boot: int, seed: int) -> dict:
    x, y = g["ce"].to_numpy(float), g["test_error"].to_numpy(float)
    h = g[ENTROPY].to_numpy(float) if ENTROPY in g else np.full(len(g), np.nan)
    ok = np.isfinite(x) & np.isfinite(y)
    out = dict(view=view, scope=scope, **correlate(x, y))
    e = correlate(h, y)
    out.update(entropy_pearson_r=e["pearson_r"], entropy_pearson_p=e["pearson_p"],
               r_ce_entropy=correlate(x, h)["pearson_r"])
    part = partial_corr(x, y, h)
    out.update(partial_r_given_entropy=part["r"], partial_p=part["p"], partial_ci_low=part["ci_low"],
               partial_ci_high=part["ci_high"])
    out.update(r_ci_low=np.nan, r_ci_high=np.nan, ci_method="fisher" if not pooled else "crossed bootstrap")
    if pooled:   # pairs share sources and targets: resample both, never the pairs as if independent
        b = crossed_bootstrap(x, y, h if np.isfinite(h).sum() >= 5 else None, g["source"], g["target"],
                              n_boot=n_boot, seed=seed)
        out.update(r_ci_low=b["r_ci_low"], r_ci_high=b["r_ci_high"])
        if np.isfinite(h).sum() >= 5:
            out.update(partial_ci_low=b["partial_ci_low"], partial_ci_high=b["partial_ci_high"])
    elif np.isfinite(out["pearson_r"]) and out["n"] > 3:
        half = 1.959963984540054 / np.sqrt(out["n"] - 3)
        z = np.arctanh(np.clip(out["pearson_r"], -1 + 1e-15, 1 - 1e-15))
        out.update(r_ci_low=float(np.tanh(z - half)), r_ci_high=float(np.tanh(z + half)))
    inf = loo_influence(x[ok], y[ok])
    out.update(loo_point=str(names.to_numpy()[ok][inf.index]) if inf.index >= 0 else "",
               loo_r_without=inf.r_without, loo_change=inf.change)
    out["noise_ceiling"] = split_half_ceiling(seed_errors(runs, g))["ceiling"] if len(g) else np.nan
    out["verdict"], out["why"] = judge(x, y, labels=names.to_numpy())
    return out


def ce_correlations(rows: pd.DataFrame, runs: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """correlations.csv: one row per (view, scope); see the module docstring. `rows` are seed-averaged
    (with the baselines added), `runs` the seed-level rows the noise ceiling is computed from. Per-source
    verdicts are taken on the BH q-value of their view; a pooled verdict needs its bootstrap interval above 0."""
    out = []
    for view, t in views(rows).items():
        if t.empty:
            continue
        by, label = ("target", "source") if view == MULTI_TARGET else ("source", "target")
        part = [_row(view, s, g, runs, g[label], False, n_boot, seed) for s, g in t.groupby(by, sort=True)]
        q, pq = bh_q([r["pearson_p"] for r in part]), bh_q([r["partial_p"] for r in part])
        for r, a, b in zip(part, q, pq):
            r.update(bh_q=a, partial_bh_q=b)
            if r["verdict"] in ("held", "did not hold"):   # significance after the correction
                r["verdict"] = "held" if r["pearson_r"] > 0 and a < 0.05 else "did not hold"
        out += part
        names = t["source"] + "->" + t["target"]
        pooled = _row(view, POOLED, t, runs, names, True, n_boot, seed)
        if pooled["verdict"] in ("held", "did not hold"):
            pooled["verdict"] = "held" if pooled["r_ci_low"] > 0 else "did not hold"
        out.append(dict(pooled, bh_q=np.nan, partial_bh_q=np.nan))
    if not out:   # no transfer pairs at all: the columns readers select on, no rows
        return pd.DataFrame(columns=["view", "scope", "n", "pearson_r", "pearson_p", "spearman_rho", "spearman_p",
                                     "bh_q", "partial_r_given_entropy", "noise_ceiling", "verdict", "why"])
    return pd.DataFrame(out)


PARTIAL = "partial_r_given_entropy"


def estimator_partials(rows: pd.DataFrame, signs: dict[str, float], runs: pd.DataFrame | None = None,
                       n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Rows for estimators.csv, metric `partial_r_given_entropy`: each estimator's partial Pearson r with the
    transfer ACCURACY given the target's H(Y), its score oriented by `signs` (higher = more transferable),
    per source (Fisher interval, p and BH q over sources), pooled (crossed bootstrap interval) and the mean
    over sources (interval from resampling sources). `noise_ceiling` is the scope's split-half ceiling."""
    t = transfers(rows)
    cols = ["estimator", "scope", "metric", "value", "ci_low", "ci_high", "n", "n_boot", "p", "bh_q", "noise_ceiling"]
    if ENTROPY not in t or not np.isfinite(t[ENTROPY].to_numpy(float)).any():
        return pd.DataFrame(columns=cols)
    rng = np.random.default_rng(seed)
    ceilings = {s: split_half_ceiling(seed_errors(runs, g))["ceiling"] if runs is not None else np.nan
                for s, g in t.groupby("source", sort=True)}
    ceilings[POOLED] = split_half_ceiling(seed_errors(runs, t))["ceiling"] if runs is not None else np.nan
    out = []
    for est, sign in signs.items():
        if est not in t or not np.isfinite(t[est].to_numpy(float)).any():
            continue
        score = lambda g: sign * g[est].to_numpy(float)
        per = []
        for s, g in t.groupby("source", sort=True):
            p = partial_corr(score(g), g["test_accuracy"], g[ENTROPY], level)
            per.append(dict(estimator=est, scope=s, metric=PARTIAL, value=p["r"], ci_low=p["ci_low"],
                            ci_high=p["ci_high"], n=p["n"], n_boot=0, p=p["p"], noise_ceiling=ceilings[s]))
        for r, q in zip(per, bh_q([r["p"] for r in per])):
            r["bh_q"] = q
        out += per
        p = partial_corr(score(t), t["test_accuracy"], t[ENTROPY], level)
        b = crossed_bootstrap(score(t), t["test_accuracy"], t[ENTROPY], t["source"], t["target"], n_boot=n_boot,
                              seed=seed, level=level)
        out.append(dict(estimator=est, scope=POOLED, metric=PARTIAL, value=p["r"], ci_low=b["partial_ci_low"],
                        ci_high=b["partial_ci_high"], n=p["n"], n_boot=n_boot, p=p["p"], bh_q=np.nan,
                        noise_ceiling=ceilings[POOLED]))
        v = np.array([r["value"] for r in per], float)
        v = v[np.isfinite(v)]
        lo = hi = np.nan
        if len(v) >= 2:
            boot = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(1)
            lo, hi = np.percentile(boot, [50 * (1 - level), 50 * (1 + level)])
        out.append(dict(estimator=est, scope=MEAN, metric=PARTIAL,
                        value=float(v.mean()) if len(v) else np.nan, ci_low=lo, ci_high=hi, n=len(v), n_boot=n_boot,
                        p=np.nan, bh_q=np.nan, noise_ceiling=np.nan))
    return pd.DataFrame(out, columns=cols)


RANDOM = "random"   # the transfer stage's untrained-backbone row (source=random)


def random_baseline(rows: pd.DataFrame) -> dict | None:
    """Does training on a source matter? Per target: the untrained backbone's error (source=random, same head)
    minus the median error of the trained sources transferred to it; a Wilcoxon signed-rank test over targets
    (scipy), and the share of (source, target) pairs where the trained source beats random. None without a
    random row."""
    from scipy import stats

    rnd = rows[rows["source"] == RANDOM].set_index("target")["test_error"]
    if rnd.empty:
        return None
    t = transfers(rows[rows["source"] != RANDOM])
    t = t[t["target"].isin(rnd.index)]
    med = t.groupby("target")["test_error"].median()
    diff = (rnd.reindex(med.index) - med).dropna()
    beats = float((t["test_error"].to_numpy() < t["target"].map(rnd).to_numpy()).mean()) if len(t) else np.nan
    p = float(stats.wilcoxon(diff).pvalue) if len(diff) >= 5 and np.any(diff != 0) else np.nan
    return dict(n_targets=len(diff), median_diff=float(diff.median()) if len(diff) else np.nan, p=p,
                share_pairs_beating_random=beats, random_mean_error=float(rnd.mean()),
                trained_mean_error=float(t["test_error"].mean()) if len(t) else np.nan)
