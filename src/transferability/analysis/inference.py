"""Pure analysis: statistics that respect the design of a transfer matrix, on plain arrays.

- `partial_corr`: Pearson r of x and y given z (the entropy baseline H(Y)), its p and Fisher interval;
- `bh_q`: Benjamini-Hochberg q-values of the per-source tests (scipy.stats.false_discovery_control);
- `loo_influence`: leave-one-out change of Pearson r, closed form in O(n), and whether one point flips the verdict;
- `crossed_bootstrap`: intervals for pooled r / partial r that resample sources AND targets (pairs share both);
- `split_half_ceiling`: the noise ceiling of a correlation with the error matrix, from its seeds;
- `judge`: the verdict of "x predicts y" (held, did not hold, or untestable and why).
Every function's test checks it against scipy or a brute-force computation (tests/analysis/test_inference.py).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05
# "One point holds the predictor's spread": without its most extreme value the predictor spans less than this
# fraction of its range (digits: 20 binary targets at H = 0.61-0.69 nats beside one 10-class target at 2.3).
DOMINANT_SPREAD = 0.25


def _finite(*arrays) -> list[np.ndarray]:
    arrays = [np.asarray(a, float) for a in arrays]
    ok = np.logical_and.reduce([np.isfinite(a) for a in arrays])
    return [a[ok] for a in arrays]


def _r_to_p(r: float, n: int, k: int = 0) -> float:
    """Two-sided p of a (partial) Pearson r over n points controlling k variables: t with n - 2 - k df."""
    df = n - 2 - k
    if df < 1 or not np.isfinite(r):
        return np.nan
    if abs(r) >= 1:
        return 0.0
    t = r * np.sqrt(df / (1 - r * r))
    return float(2 * stats.t.sf(abs(t), df))


def pearson(x, y) -> float:
    x, y = _finite(x, y)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan
    return float(np.corrcoef(x, y)[0, 1])


def partial_corr(x, y, z, level: float = 0.95) -> dict:
    """Partial Pearson r of x and y given z: the correlation of the residuals of x and of y after a
    least-squares line on z. p from t = r sqrt((n-3) / (1-r^2)) with n - 3 df (the t-test of x's
    coefficient in y ~ 1 + x + z); interval from Fisher's z with standard error 1 / sqrt(n - 4).
    NaN where undefined (fewer than 5 points, or x or y constant given z)."""
    x, y, z = _finite(x, y, z)
    n = len(x)
    out = dict(n=n, r=np.nan, p=np.nan, ci_low=np.nan, ci_high=np.nan)
    if n < 5 or np.ptp(z) == 0:
        return out
    rx, ry = _residuals(x, z), _residuals(y, z)
    scale = lambda v, ref: np.sqrt(v @ v) <= 1e-12 * max(1.0, np.sqrt(ref @ ref))
    if scale(rx, x - x.mean()) or scale(ry, y - y.mean()):
        return out
    r = float(np.clip(rx @ ry / np.sqrt((rx @ rx) * (ry @ ry)), -1, 1))
    half = stats.norm.ppf(0.5 + level / 2) / np.sqrt(n - 4)
    fz = np.arctanh(np.clip(r, -1 + 1e-15, 1 - 1e-15))
    return dict(n=n, r=r, p=_r_to_p(r, n, 1), ci_low=float(np.tanh(fz - half)), ci_high=float(np.tanh(fz + half)))


def _residuals(v: np.ndarray, z: np.ndarray) -> np.ndarray:
    zc = z - z.mean()
    return (v - v.mean()) - zc * ((zc @ (v - v.mean())) / (zc @ zc))


def bh_q(p) -> np.ndarray:
    """Benjamini-Hochberg q-values (scipy.stats.false_discovery_control) over the finite p-values; NaN stays NaN."""
    p = np.asarray(p, float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(p[ok], method="bh")
    return q


@dataclass(frozen=True)
class Influence:
    r: float             # Pearson r over all points
    index: int           # the point whose removal changes r most (-1 when undefined)
    r_without: float     # r without it
    change: float        # |r - r_without|
    p_without: float
    flips: int           # `index` when removing it flips "r > 0 and p < alpha", else -1


def loo_influence(x, y, alpha: float = ALPHA) -> Influence:
    """Leave-one-out Pearson r for every point at once, from the sums less each point's share (O(n)),
    its most influential point, and whether removing that point changes the verdict. Points with a
    non-finite value must be removed by the caller (the index refers to the arrays as given)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    r = pearson(x, y)
    if n < 4 or not np.isfinite(r):
        return Influence(r, -1, np.nan, np.nan, np.nan, -1)
    m = n - 1
    sx, sy = x.sum() - x, y.sum() - y
    sxx, syy, sxy = (x * x).sum() - x * x, (y * y).sum() - y * y, (x * y).sum() - x * y
    cov, vx, vy = sxy - sx * sy / m, sxx - sx * sx / m, syy - sy * sy / m
    with np.errstate(invalid="ignore", divide="ignore"):
        loo = np.where((vx > 1e-15 * max(1, (x * x).sum())) & (vy > 1e-15 * max(1, (y * y).sum())),
                       cov / np.sqrt(np.abs(vx * vy)), np.nan)
    loo = np.clip(loo, -1, 1)
    change = np.abs(loo - r)
    i = int(np.nanargmax(change)) if np.isfinite(change).any() else -1
    p_i = _r_to_p(loo[i], m) if i >= 0 else np.nan
    verdict = r > 0 and _r_to_p(r, n) < alpha
    # "one point decides": removing the most influential point flips "r > 0 and p < alpha". Only that point is
    # asked: with 20 points near the threshold some point can always be found, which would make every
    # borderline result untestable.
    flip = i if i >= 0 and np.isfinite(loo[i]) and ((loo[i] > 0) and (p_i < alpha)) != verdict else -1
    return Influence(r, i, float(loo[i]) if i >= 0 else np.nan, float(change[i]) if i >= 0 else np.nan,
                     float(p_i), flip)


def dominant_spread(x) -> float:
    """The predictor's range without its single most extreme value (farthest from the median), as a fraction
    of its full range: near 0 when one point makes the spread, 1 when it hardly matters. NaN for < 3 points."""
    x = _finite(x)[0]
    if len(x) < 3 or np.ptp(x) == 0:
        return np.nan
    rest = np.delete(x, np.argmax(np.abs(x - np.median(x))))
    return float(np.ptp(rest) / np.ptp(x))


def _weighted_corr(w: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise weighted Pearson r of a and b (1-D) under each row of weights w (B, n)."""
    sw = w.sum(1, keepdims=True)
    ma, mb = (w @ a)[:, None] / sw, (w @ b)[:, None] / sw
    da, db = a[None] - ma, b[None] - mb
    cov, va, vb = (w * da * db).sum(1), (w * da * da).sum(1), (w * db * db).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((va > 1e-15) & (vb > 1e-15), cov / np.sqrt(va * vb), np.nan)


def crossed_weights(sources, targets, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_pairs) multiplicities of a crossed bootstrap: sources and targets are each drawn with
    replacement (as many as there are), and a pair (s, t) enters once per drawn copy of s times per drawn
    copy of t. Pairs share their source and their target, so resampling pairs alone would treat them as
    independent and give far too narrow intervals."""
    s_lab, s_idx = np.unique(np.asarray(sources), return_inverse=True)
    t_lab, t_idx = np.unique(np.asarray(targets), return_inverse=True)
    cs, ct = crossed_counts(len(s_lab), len(t_lab), n_boot, rng)
    return (cs[:, s_idx] * ct[:, t_idx]).astype(float)


def crossed_counts(n_sources: int, n_targets: int, n_boot: int, rng: np.random.Generator):
    """(n_boot, n_sources), (n_boot, n_targets): how often each source and each target is drawn in each resample
    of a crossed bootstrap (as many draws as there are of each, with replacement)."""
    cs = np.stack([np.bincount(rng.integers(0, n_sources, n_sources), minlength=n_sources) for _ in range(n_boot)])
    ct = np.stack([np.bincount(rng.integers(0, n_targets, n_targets), minlength=n_targets) for _ in range(n_boot)])
    return cs, ct


def crossed_bootstrap(x, y, z, sources, targets, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile intervals of Pearson r(x, y) and partial r(x, y | z) over a crossed bootstrap of sources and
    targets (crossed_weights). z may be None (no partial). Seeded: the same seed gives the same interval."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    zz = np.zeros_like(x) if z is None else np.asarray(z, float)
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(zz)
    x, y, zz = x[ok], y[ok], zz[ok]
    out = dict(r_ci_low=np.nan, r_ci_high=np.nan, partial_ci_low=np.nan, partial_ci_high=np.nan, n_boot=n_boot)
    if len(x) < 5:
        return out
    w = crossed_weights(np.asarray(sources)[ok], np.asarray(targets)[ok], n_boot, np.random.default_rng(seed))
    w = w[w.sum(1) > 0]
    rxy = _weighted_corr(w, x, y)
    out["r_ci_low"], out["r_ci_high"] = _percentile(rxy, level, n_boot)
    if z is not None:
        rxz, ryz = _weighted_corr(w, x, zz), _weighted_corr(w, y, zz)
        with np.errstate(invalid="ignore", divide="ignore"):
            den = np.sqrt((1 - rxz ** 2) * (1 - ryz ** 2))
            part = np.where(den > 1e-12, (rxy - rxz * ryz) / den, np.nan)
        out["partial_ci_low"], out["partial_ci_high"] = _percentile(part, level, n_boot)
    return out


def _percentile(values: np.ndarray, level: float, n_boot: int) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if len(v) < max(10, 0.5 * n_boot):   # an interval from a handful of defined resamples would mislead
        return np.nan, np.nan
    lo, hi = np.percentile(v, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def split_half_ceiling(errors: np.ndarray) -> dict:
    """Noise ceiling of any predictor's Pearson r with the seed-averaged error, from a (cells, seeds) array.
    Each split of the seeds into two halves (sizes floor(k/2), ceil(k/2)) gives r between the halves' cell
    means; their mean r_half is stepped up to the full set by Spearman-Brown, rel = 2 r_half / (1 + r_half),
    and the ceiling is sqrt(rel): a predictor correlates with a measurement at most as well as the
    measurement correlates with its own noise-free value. NaN for fewer than 2 seeds or 3 cells."""
    e = np.asarray(errors, float)
    out = dict(split_half_r=np.nan, reliability=np.nan, ceiling=np.nan, n_cells=0, n_seeds=0)
    if e.ndim != 2:
        return out
    e = e[np.isfinite(e).all(1)]
    out.update(n_cells=e.shape[0], n_seeds=e.shape[1])
    k = e.shape[1]
    if k < 2 or e.shape[0] < 3:
        return out
    rs = []
    for half in itertools.combinations(range(k), k // 2):
        other = [j for j in range(k) if j not in half]
        if k % 2 == 0 and half > tuple(other):   # the same split seen from its other side
            continue
        rs.append(pearson(e[:, list(half)].mean(1), e[:, other].mean(1)))
    r_half = float(np.nanmean(rs)) if np.isfinite(rs).any() else np.nan
    if not np.isfinite(r_half):   # no variation across cells: nothing to correlate with
        return out
    rel = 2 * r_half / (1 + r_half) if r_half > -1 else np.nan
    out.update(split_half_r=r_half, reliability=rel, ceiling=float(np.sqrt(max(rel, 0.0))))
    return out


HELD, NOT_HELD, UNTESTABLE = "held", "did not hold", "untestable"


def judge(x, y, labels=None, alpha: float = ALPHA, p=None) -> tuple[str, str]:
    """(verdict, reason) for "x predicts y: r > 0 and p < alpha". Untestable, with the reason, when there are
    fewer than 3 points or a constant variable, when one point holds the predictor's spread
    (dominant_spread < DOMINANT_SPREAD), or when removing the most influential point flips the verdict (loo_influence).
    `p` replaces Pearson's p (a q-value after BH, say); `labels` name the points in the reason."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    names = (np.asarray(labels, dtype=object)[ok] if labels is not None else np.arange(len(x)))
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return UNTESTABLE, "fewer than 3 points or a constant variable"
    spread = dominant_spread(x)
    if spread < DOMINANT_SPREAD:
        far = names[np.argmax(np.abs(x - np.median(x)))]
        return UNTESTABLE, (f"one point ({far}) holds the predictor's spread: the others span "
                            f"{spread:.0%} of its range")
    r = pearson(x, y)
    p = _r_to_p(r, len(x)) if p is None else p
    inf = loo_influence(x, y, alpha)
    if inf.flips >= 0:
        j = inf.flips
        keep = np.arange(len(x)) != j
        r_j = pearson(x[keep], y[keep])
        return UNTESTABLE, (f"one point decides: without {names[j]} r = {r_j:.3f}, "
                            f"p = {_r_to_p(r_j, len(x) - 1):.2g}")
    return (HELD if r > 0 and p < alpha else NOT_HELD), ""
