"""Every computed score of a transfer row at once (`model_based_scores`), the row's multi-label target
(`multilabel_scores`), and one call per target for a reader who has one (`leep`, `logme`, `hscore`,
`hscore_regularized`, `transrate`, `gbc`, `nleep`, `knn`).

The scores and what computes each are the registry's (`registry.SCORES`); this module only feeds them. Pure
numpy, float64 throughout (float32 features are centred into float64), deterministic given `seed` and the
thread count. What the targets of a row share is computed once: the class sums every estimator needs are one
product of the inputs with a stacked one-hot matrix; the centred features, their Gram matrix and principal
axes (`common.Centred`), and the class counts and centred class sums (`common.Targets`) once per *set of
labelled rows*: targets without missing labels (-1) share one, and a target with missing labels shares them
only with the targets missing exactly the same rows (recomputed from those rows; nothing is imputed).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .common import Centred, Targets, encode, single_target
from .logme import LOGME_MAX_ITER, LOGME_TOL
from .registry import COMPUTED, MULTILABEL, SCORES


def model_based_scores(features: np.ndarray | None, source_probs: np.ndarray | None, Y: np.ndarray,
                       which=COMPUTED, *, source_labels: np.ndarray | None = None, **settings) -> pd.DataFrame:
    """One row per target column of Y (n, T) (integer codes, -1 = missing, left out per target), one column
    per score in `which` (names from `registry.COMPUTED`). `features` (n, D), `source_probs` (n, K_z) and
    `source_labels` (n,) (integer codes, -1 = missing) are the row's inputs; a score whose input is None is NaN.
    A target without labelled rows scores NaN everywhere.

    `settings`: the scores' settings by name (`registry.Score.settings`; the `estimators:` block of
    conf/config.yaml and `seed`). Every setting a score in `which` requires must be given; a name no score
    takes is an error."""
    which = tuple(which)
    for w in which:
        if w not in COMPUTED:
            raise ValueError(f"unknown estimator {w!r} (valid: {', '.join(COMPUTED)})")
    entries = [SCORES[w] for w in which]
    known = {s for name in COMPUTED for s in SCORES[name].settings}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"unknown estimator setting(s) {unknown} (valid: {', '.join(sorted(known))})")
    missing = sorted({s for e in entries for s in e.required_settings} - set(settings))
    if missing:
        raise ValueError(f"estimator setting(s) {missing} not given (needed by "
                         f"{', '.join(e.name for e in entries if set(e.required_settings) & set(missing))})")
    codes, k = encode(np.asarray(Y))
    n, T = codes.shape
    out = pd.DataFrame(np.nan, index=pd.RangeIndex(T), columns=list(which))
    theta = _softmax(source_probs, n) if source_probs is not None and any("softmax" in e.needs for e in entries) \
        else None
    F = _features(features, n) if features is not None and any("features" in e.needs for e in entries) else None
    source = _source(source_labels, n) if source_labels is not None else None
    given = {"labels": True, "softmax": theta is not None, "features": F is not None}
    runnable = [e for e in entries if all(given[i] for i in e.needs)]

    def run(e, targets):
        return e.compute(targets, **{s: settings[s] for s in e.settings if s in settings})

    whole = Targets(codes, k, source=source, softmax=theta)
    for e in runnable:
        if "features" not in e.needs:
            out[e.name] = run(e, whole)
    grouped = [e for e in runnable if "features" in e.needs]
    if grouped:
        labelled = codes >= 0
        # Targets grouped by their labelled rows, keyed by the packed mask: a dictionary lookup per target
        # instead of a sort of the n x T mask.
        packed = np.packbits(labelled, axis=0)
        groups: dict[bytes, list[int]] = {}
        for t in range(T):
            groups.setdefault(packed[:, t].tobytes(), []).append(t)
        for cols in map(np.array, groups.values()):
            mask = labelled[:, cols[0]]
            if not mask.any():
                continue
            rows = slice(None) if mask.all() else mask
            group = Targets(codes[rows][:, cols], k[cols], source=None if source is None else source[rows],
                            softmax=None if theta is None else theta[rows], centred=Centred(F[rows]))
            for e in grouped:
                out.loc[cols, e.name] = run(e, group)
            del group   # its float64 copy of the features and Gram before the next group's
    return out


def multilabel_scores(features: np.ndarray, Y: np.ndarray, which=MULTILABEL) -> dict[str, float]:
    """The scores of the multi-label target whose attributes are the columns of Y (n, A) (two classes each,
    integer codes, -1 = missing), on the rows labelled for every attribute: {name: value} for the names in
    `which` (from `registry.MULTILABEL`). An attribute with one class on those rows says nothing and is left out;
    NaN when fewer than two rows or no attribute remain."""
    which = tuple(which)
    for w in which:
        if w not in MULTILABEL:
            raise ValueError(f"unknown multi-label score {w!r} (valid: {', '.join(MULTILABEL)})")
    codes, k = encode(np.asarray(Y))
    if (k > 2).any():
        raise ValueError(f"a multi-label target's attributes have two classes each, got {sorted(set(k.tolist()))}")
    F = _features(features, len(codes))
    rows = (codes >= 0).all(1)
    codes, k = encode(codes[rows])
    if rows.sum() < 2 or not (k == 2).any():
        return {w: float("nan") for w in which}
    codes, k = codes[:, k == 2], k[k == 2]
    group = Targets(codes, k, centred=Centred(F[rows]))
    return {w: float(SCORES[w].compute(group)) for w in which}


def _softmax(source_probs: np.ndarray, n: int) -> np.ndarray:
    theta = np.asarray(source_probs, dtype=np.float64)
    if theta.ndim != 2 or len(theta) != n:
        raise ValueError(f"source_probs must be (n={n}, K_z), got {theta.shape}")
    if not np.isfinite(theta).all() or (theta < 0).any() or not np.allclose(theta.sum(1), 1, atol=1e-3):
        raise ValueError("source_probs must be probability rows: finite, non-negative, summing to 1")
    return theta


def _features(features: np.ndarray, n: int) -> np.ndarray:
    F = np.asarray(features)
    if not np.issubdtype(F.dtype, np.floating):
        F = F.astype(np.float64)
    if F.ndim != 2 or len(F) != n:
        raise ValueError(f"features must be (n={n}, D), got {F.shape}")
    return F


def _source(source_labels: np.ndarray, n: int) -> np.ndarray:
    s = np.asarray(source_labels)
    if s.shape != (n,) or not np.issubdtype(s.dtype, np.integer):
        raise ValueError(f"source_labels must be (n={n},) integer codes with -1 = missing, got {s.dtype} {s.shape}")
    return s


# ---------- one target ----------

def _one(name: str, features, source_probs, y, **settings) -> float:
    return float(model_based_scores(features, source_probs, single_target(y), which=(name,), **settings)[name].iloc[0])


def leep(source_probs: np.ndarray, y: np.ndarray) -> float:
    """LEEP of one target (see `leep`, the module); y: class codes >= 0."""
    return _one("leep", None, source_probs, y)


def logme(features: np.ndarray, y: np.ndarray, *, tol: float = LOGME_TOL, max_iter: int = LOGME_MAX_ITER) -> float:
    """LogME of one target (see `logme`, the module): the fixed point to a relative change of `tol`, in at most
    `max_iter` steps."""
    return _one("logme", features, None, y, logme_tol=tol, logme_max_iter=max_iter)


def hscore(features: np.ndarray, y: np.ndarray) -> float:
    """H-score of one target (see `hscore`, the module)."""
    return _one("hscore", features, None, y)


def hscore_regularized(features: np.ndarray, y: np.ndarray) -> float:
    """Shrinkage H-score of one target (see `hscore`, the module)."""
    return _one("hscore_reg", features, None, y)


def transrate(features: np.ndarray, y: np.ndarray, *, transrate_eps: float) -> float:
    """TransRate of one target (see `transrate`, the module)."""
    return _one("transrate", features, None, y, transrate_eps=transrate_eps)


def gbc(features: np.ndarray, y: np.ndarray, *, gbc_pca_dim: int, gbc_gaussian: str, gbc_var_floor: float) -> float:
    """GBC of one target (see `gbc`, the module)."""
    return _one("gbc", features, None, y, gbc_pca_dim=gbc_pca_dim, gbc_gaussian=gbc_gaussian,
                gbc_var_floor=gbc_var_floor)


def nleep(features: np.ndarray, y: np.ndarray, *, nleep_pca_variance: float, nleep_components_per_class: int,
          nleep_fit_rows: int, seed: int) -> float:
    """N-LEEP of one target (see `nleep`, the module)."""
    return _one("nleep", features, None, y, nleep_pca_variance=nleep_pca_variance,
                nleep_components_per_class=nleep_components_per_class, nleep_fit_rows=nleep_fit_rows, seed=seed)


def knn(features: np.ndarray, y: np.ndarray, k: int, *, knn_rows: int, seed: int) -> float:
    """Leave-one-out k-NN accuracy (k = 1 or 5) of one target (see `knn`, the module)."""
    if k not in (1, 5):
        raise ValueError(f"k = {k}: the registry's k-NN probes are k = 1 and 5")
    return _one(f"knn{k}", features, None, y, knn_rows=knn_rows, seed=seed)
