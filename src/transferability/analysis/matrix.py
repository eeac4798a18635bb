"""Pure analysis of the transfer rows: matrices, CE-vs-error correlations, fitted lines, hardness.

A "row" is one line of a transfer run's results.csv (one source -> one target), with the run's
`seed` and `train_fraction` added by the analyze stage. Everything here takes and returns plain
DataFrames / arrays and never touches the disk.

Conventions kept throughout:
- the dedicated cell (target == source) is a model trained for the target itself, not a transfer,
  and its CE is H(Y|Y) = 0; it is excluded from every transfer correlation (it would add a point
  at CE = 0 with the smallest error and inflate r);
- several seeds of the same (source, target, train_fraction) are averaged before correlating, so
  each target is one point, as in the paper's plots;
- a statistic that is undefined (fewer than 3 points, or a constant vector) is NaN, silently.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

KEYS = ["source", "target", "train_fraction"]
CORR_COLUMNS = ["n", "pearson_r", "pearson_p", "spearman_rho", "spearman_p", "kendall_tau", "kendall_p"]
POOLED = "pooled"


def _finite_pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def defined(x: np.ndarray, y: np.ndarray) -> bool:
    """A correlation needs 3+ points and variation in both variables."""
    return len(x) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0


def correlate(x, y) -> dict:
    """Pearson r (the paper's Fig. 2 test), Spearman rho and Kendall tau-b, each with its two-sided
    p-value, over the pairs where both values are finite. NaN where undefined."""
    x, y = _finite_pairs(x, y)
    out = {c: np.nan for c in CORR_COLUMNS}
    out["n"] = len(x)
    if not defined(x, y):
        return out
    with warnings.catch_warnings():  # near-constant inputs warn; the value is still what we report
        warnings.simplefilter("ignore", stats.NearConstantInputWarning)
        r = stats.pearsonr(x, y)
        rho = stats.spearmanr(x, y)
        tau = stats.kendalltau(x, y)
    out.update(pearson_r=float(r.statistic), pearson_p=float(r.pvalue),
               spearman_rho=float(rho.statistic), spearman_p=float(rho.pvalue),
               kendall_tau=float(tau.statistic), kendall_p=float(tau.pvalue))
    return out


def transfers(rows: pd.DataFrame) -> pd.DataFrame:
    """The transfer cells only: the dedicated cell (target == source) removed."""
    return rows[rows["source"] != rows["target"]]


def dedicated(rows: pd.DataFrame) -> pd.DataFrame:
    """The dedicated cells (target == source), indexed by task."""
    return rows[rows["source"] == rows["target"]].set_index("target")


def mean_over_seeds(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (source, target, train_fraction): the mean of every numeric column over seeds,
    plus `n_seeds` and the seeds' standard deviation of test accuracy (NaN for one seed)."""
    if "train_fraction" not in rows:
        rows = rows.assign(train_fraction=1.0)
    numeric = [c for c in rows.columns if c not in KEYS and c != "seed"
               and pd.api.types.is_numeric_dtype(rows[c]) and not pd.api.types.is_bool_dtype(rows[c])]
    g = rows.groupby(KEYS, sort=True)
    out = g[numeric].mean()
    out["n_seeds"] = g.size()
    out["test_accuracy_std"] = g["test_accuracy"].std() if "test_accuracy" in rows else np.nan
    out = out.reset_index()
    out["dedicated"] = out["source"] == out["target"]
    return out


def matrix(rows: pd.DataFrame, value: str = "test_error") -> pd.DataFrame:
    """Source x target matrix of `value` (rows of one train fraction, one row per cell)."""
    m = rows.pivot_table(index="source", columns="target", values=value, aggfunc="mean", dropna=False)
    return m.rename_axis(index="source", columns="target")


def correlations(rows: pd.DataFrame, x: str = "ce", y: str = "test_error") -> pd.DataFrame:
    """Correlation of `x` with `y` over the targets of each source (dedicated cell excluded), plus
    one `pooled` row over every (source, target) transfer pair. Columns: scope + CORR_COLUMNS."""
    t = transfers(rows)
    out = [{"scope": s, **correlate(g[x], g[y])} for s, g in t.groupby("source", sort=True)]
    out.append({"scope": POOLED, **correlate(t[x], t[y])})
    return pd.DataFrame(out, columns=["scope", *CORR_COLUMNS])


@dataclass(frozen=True)
class LineFit:
    """Least-squares line y = intercept + slope * x and its pointwise confidence band for the mean
    response, evaluated on the grid `x`."""

    slope: float
    intercept: float
    n: int
    x: np.ndarray
    y: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def fit_line(x, y, level: float = 0.95, n_grid: int = 50) -> LineFit | None:
    """Ordinary least squares with the (1 - alpha) band for E[y | x0], as drawn in the paper's plots:
    yhat(x0) +- t_{n-2, 1-alpha/2} * s * sqrt(1/n + (x0 - xbar)^2 / Sxx), s^2 = RSS / (n - 2).
    None when fewer than 3 finite points or x is constant."""
    x, y = _finite_pairs(x, y)
    n = len(x)
    if n < 3 or np.ptp(x) == 0:
        return None
    fit = stats.linregress(x, y)
    resid = y - (fit.intercept + fit.slope * x)
    s = np.sqrt(resid @ resid / (n - 2))
    xbar, sxx = x.mean(), ((x - x.mean()) ** 2).sum()
    grid = np.linspace(x.min(), x.max(), n_grid)
    mean = fit.intercept + fit.slope * grid
    half = stats.t.ppf(0.5 + level / 2, n - 2) * s * np.sqrt(1.0 / n + (grid - xbar) ** 2 / sxx)
    return LineFit(float(fit.slope), float(fit.intercept), n, grid, mean, mean - half, mean + half)


def hardness_table(rows: pd.DataFrame, hardness: dict[str, float]) -> pd.DataFrame:
    """Fig. 6 data: each task's H(Z|C) (Eq. 14, given) beside its dedicated model's test error (the
    target == source cell of the run whose source is that task); NaN where that run is missing."""
    ded = dedicated(rows)
    tasks = list(hardness)
    return pd.DataFrame({
        "task": tasks,
        "hardness": [float(hardness[t]) for t in tasks],
        "dedicated_test_error": [float(ded.at[t, "test_error"]) if t in ded.index else np.nan for t in tasks],
    })


def significant_positive(stat: float, p: float, alpha: float = 0.05) -> bool:
    """The paper's claim shape: a positive correlation with p below alpha."""
    return bool(np.isfinite(stat) and np.isfinite(p) and stat > 0 and p < alpha)
