"""Pure analysis, part 2: Table 1 and Fig. 4 (a multi-class source), Fig. 5 (training-set size) and
the Theorem 1 check on every cell."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .matrix import dedicated, transfers

AVERAGE = "Average (all)"
# Row 10 of the paper is the dedicated network's own accuracy (its softmax); the SVM refitted on that network's
# embedding is the like-for-like comparison with the transfer row (same head). Both are shown.
DEDICATED_NET, DEDICATED_SVM = "dedicated network accuracy (softmax)", "dedicated accuracy (SVM on its embedding)"
TABLE1_ROWS = ("CE (nats)", DEDICATED_NET, DEDICATED_SVM, "transfer accuracy")
# Theorem 1 is an inequality between train log-likelihoods that holds exactly for the counting head
# k-bar (Eq. 9). What can separate the measured numbers from it is float32 softmax round-off and the
# 1e-12 probability clip inside l_Z: both are orders of magnitude below 1e-4 nats, so a cell whose
# best head falls more than this below the bound is a genuine violation, not noise.
THEOREM1_TOL = 1e-4


def table1(rows: pd.DataFrame, source: str) -> pd.DataFrame:
    """Every target of a (multi-class) source, sorted by CE ascending (decreasing transferability,
    as Table 1 row 9): ce, transfer accuracy (the source's run), dedicated accuracy (the head on each target's
    own dedicated network's embedding; NaN where missing), dedicated_network_accuracy (that network's own
    softmax, source.json's source_test_accuracy: the paper's row 10) and transferred minus dedicated accuracy
    (Fig. 4, same head on both sides)."""
    t = transfers(rows)
    t = t[t["source"] == source][["target", "ce", "test_accuracy"]]
    ded = dedicated(rows)
    net = ded["source_test_accuracy"] if "source_test_accuracy" in ded else pd.Series(np.nan, index=ded.index)
    out = pd.DataFrame({
        "target": t["target"].to_numpy(),
        "ce": t["ce"].to_numpy(dtype=float),
        "dedicated_accuracy": t["target"].map(ded["test_accuracy"]).to_numpy(dtype=float),
        "dedicated_network_accuracy": t["target"].map(net).to_numpy(dtype=float),
        "transfer_accuracy": t["test_accuracy"].to_numpy(dtype=float),
    })
    out["transfer_minus_dedicated"] = out["transfer_accuracy"] - out["dedicated_accuracy"]
    return out.sort_values(["ce", "target"], kind="stable").reset_index(drop=True)


def table1_layout(long: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """The paper's layout: columns = the k most and k least transferable targets (all of them when
    there are at most 2k) in CE order, then the average over ALL targets; rows = TABLE1_ROWS.
    The CE average is left NaN, as the paper prints '-' there."""
    shown = long if len(long) <= 2 * k else pd.concat([long.head(k), long.tail(k)])
    cols = {r.target: [r.ce, r.dedicated_network_accuracy, r.dedicated_accuracy, r.transfer_accuracy]
            for r in shown.itertuples()}
    cols[AVERAGE] = [np.nan, long["dedicated_network_accuracy"].mean(), long["dedicated_accuracy"].mean(),
                     long["transfer_accuracy"].mean()]
    return pd.DataFrame(cols, index=list(TABLE1_ROWS)).rename_axis("row")


def table1_markdown(wide: pd.DataFrame, title: str) -> str:
    """A GitHub markdown table with three decimals, '-' for a missing value."""
    fmt = lambda v: "-" if not np.isfinite(v) else f"{v:.3f}"
    lines = [f"**{title}**", "", "| | " + " | ".join(map(str, wide.columns)) + " |",
             "|---" * (len(wide.columns) + 1) + "|"]
    for name, vals in wide.iterrows():
        lines.append(f"| {name} | " + " | ".join(fmt(float(v)) for v in vals) + " |")
    return "\n".join(lines) + "\n"


def table1_pattern(long: pd.DataFrame, k: int = 5) -> dict:
    """The two quantitative readings of Table 1 / Fig. 4: the k most transferable targets (smallest CE)
    are transferred more accurately than the k least transferable, and transfer loses less against
    the dedicated models on the former (mean transferred - dedicated gap is larger there)."""
    k = min(k, len(long) // 2)
    if k < 1:
        return dict(k=0, top_transfer=np.nan, bottom_transfer=np.nan, top_gap=np.nan, bottom_gap=np.nan)
    top, bottom = long.head(k), long.tail(k)
    return dict(k=k, top_transfer=top["transfer_accuracy"].mean(), bottom_transfer=bottom["transfer_accuracy"].mean(),
                top_gap=top["transfer_minus_dedicated"].mean(), bottom_gap=bottom["transfer_minus_dedicated"].mean())


def fraction_curves(runs: pd.DataFrame, source: str, targets: list[str]) -> pd.DataFrame:
    """Fig. 5 data from seed-level rows at every train_fraction: for each target, accuracy against
    train_fraction of its dedicated runs (source == target) and of `source`'s transfer runs.
    Columns: target, kind (dedicated | transferred), train_fraction, n_train, accuracy (mean over
    seeds), accuracy_std, n_seeds."""
    parts = []
    for target in targets:
        for kind, src in (("dedicated", target), ("transferred", source)):
            sel = runs[(runs["source"] == src) & (runs["target"] == target)]
            if sel.empty:
                continue
            g = sel.groupby("train_fraction", sort=True)
            parts.append(pd.DataFrame({
                "target": target, "kind": kind, "train_fraction": g.size().index.to_numpy(dtype=float),
                "n_train": g["n_train"].mean().to_numpy(), "accuracy": g["test_accuracy"].mean().to_numpy(),
                "accuracy_std": g["test_accuracy"].std().to_numpy(), "n_seeds": g.size().to_numpy(),
            }))
    cols = ["target", "kind", "train_fraction", "n_train", "accuracy", "accuracy_std", "n_seeds"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


PROBABILISTIC_HEADS = ("linear_svm", "logistic")   # heads whose probabilities the bound speaks about


def theorem1_check(runs: pd.DataFrame, head: str, tol: float = THEOREM1_TOL) -> tuple[pd.DataFrame, dict]:
    """Theorem 1 (Eq. 10) where it can fail: the fitted transfer head's own train log-likelihood
    (-train_nll: the calibrated SVM or the logistic head) against the bound l_Z - H(Y|Z), per cell of every
    run; and its test log-likelihood (-test_nll) against the same bound as a generalisation check (the
    theorem promises nothing there). k-bar (Eq. 9, `ce_head_train_ll`) is the construction that attains the
    bound (Eqs. 11-12), so it is reported beside the check (kbar_margin, >= 0 up to round-off), never
    taken as the check: max(head, k-bar) would pass for any source softmax.

    margin = train log-likelihood - bound, violates = margin < -tol (test_margin, test_violates on test). Returns
    the per-cell table and a summary dict with, for "train" and "test": checked, violations, and the margin's
    min / 5% / median / max."""
    keep = [c for c in ("source", "target", "seed", "train_fraction") if c in runs]
    cells = runs[keep].copy().reset_index(drop=True)
    cells["head"] = head
    bound = runs["theorem1_bound"].to_numpy(dtype=float)
    cells["bound"] = bound
    test_nll = runs["test_nll"].to_numpy(dtype=float) if "test_nll" in runs else np.full(len(runs), np.nan)
    probabilistic = head in PROBABILISTIC_HEADS
    for side, nll in (("train", runs["train_nll"].to_numpy(dtype=float)), ("test", test_nll)):
        ll = -nll
        margin = ll - bound
        checked = np.isfinite(margin) & (probabilistic or side == "test")
        prefix = "" if side == "train" else "test_"   # the theorem's own columns: margin, violates
        cells[f"{side}_ll"] = ll
        cells[f"{prefix}margin"] = margin
        cells[f"{prefix}violates"] = checked & (margin < -tol)
    cells["kbar_train_ll"] = runs["ce_head_train_ll"].to_numpy(dtype=float)
    cells["kbar_margin"] = cells["kbar_train_ll"] - bound
    summary = dict(tol=tol, head=head, probabilistic=probabilistic, n_cells=len(cells))
    for side in ("train", "test"):
        prefix = "" if side == "train" else "test_"
        m = cells[f"{prefix}margin"].to_numpy()
        ok = np.isfinite(m) & (probabilistic or side == "test")
        v = cells[f"{prefix}violates"].to_numpy()
        summary[side] = dict(n_checked=int(ok.sum()), n_violations=int(v.sum()),
                             max_violation=float(-m[v].min()) if v.any() else 0.0,
                             **_quantiles(m[ok]))
    k = cells["kbar_margin"].to_numpy()
    summary["kbar"] = dict(n_checked=int(np.isfinite(k).sum()), n_below=int((k < -tol).sum()),
                           **_quantiles(k[np.isfinite(k)]))
    return cells, summary


def _quantiles(m: np.ndarray) -> dict:
    if not len(m):
        return dict(min=np.nan, q05=np.nan, median=np.nan, max=np.nan)
    q = np.percentile(m, [0, 5, 50, 100])
    return dict(min=float(q[0]), q05=float(q[1]), median=float(q[2]), max=float(q[3]))
