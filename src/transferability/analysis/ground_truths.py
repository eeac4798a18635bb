"""Pure analysis: the same matrix measured with several ground truths (the linear head at C = 1, the tuned C,
full fine-tuning: docs/ground_truths.md), compared pair by pair, and which verdicts hold under all of them.

Input per ground truth: its matrix as the analysis reads one (one line per (source, target), seeds averaged,
train fraction 1, trained sources; `test_error`/`test_accuracy` are that ground truth's). The dedicated cell is
not a transfer and is left out (matrix.transfers). ground_truths.csv (COLUMNS), per pair (a, b):
- `error matrix`: Pearson r and Kendall tau-b of the two test-error matrices over the cells both have;
- `target ranking`, per source: Kendall tau-b between the two orders of its targets by test error, and their mean;
- `best source`, per target: 1 when both pick the same best source (lowest test error; `value_a`/`value_b` name
  them), and the share of targets;
- `estimator verdict` per direction (rank targets / choose a source) and estimator: 1 when both agree on whether
  it beats the best baseline (point estimates, as the stability analysis judges it: stability.verdicts);
  `estimator rank`: 1 when its rank among the estimators is the same (`value_a`/`value_b`: the ranks), and
  `estimator order`: Kendall tau-b between the two orders of the estimators.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, pearsonr

from .matrix import transfers
from .selection import RANK, SELECT
from .stability import HEADLINES, verdicts

COLUMNS = ["a", "b", "measure", "direction", "scope", "item", "value", "value_a", "value_b", "n"]
ERRORS, TARGET_RANKING, BEST_SOURCE = "error matrix", "target ranking", "best source"
VERDICT, RANK_OF, ORDER = "estimator verdict", "estimator rank", "estimator order"


def _tau(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan
    return float(kendalltau(x, y).statistic)


def _row(a, b, measure, value, n, direction="", scope="", item="", value_a=None, value_b=None) -> dict:
    return dict(a=a, b=b, measure=measure, direction=direction, scope=scope, item=item, value=value,
                value_a=value_a, value_b=value_b, n=n)


def estimator_standing(rows: pd.DataFrame) -> dict[str, dict[str, tuple[float, int]]]:
    """Per direction, per estimator: (1.0 if it beats the best baseline, 0.0 if not, NaN if undefined; its rank
    among the estimators by the headline, 1 = best)."""
    out = {}
    for direction, headline_of in HEADLINES.items():
        headline = headline_of(rows)
        verdict, _ = verdicts(headline)
        est = sorted(verdict, key=lambda e: -headline[e])
        out[direction] = {e: (verdict[e], est.index(e) + 1) for e in est}
    return out


def compare(truths: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """ground_truths.csv for every pair of the named matrices (in the given order)."""
    out = []
    cells = {name: transfers(rows).set_index(["source", "target"])["test_error"] for name, rows in truths.items()}
    standing = {name: estimator_standing(rows) for name, rows in truths.items()}
    for a, b in combinations(truths, 2):
        both = pd.concat([cells[a].rename("a"), cells[b].rename("b")], axis=1, join="inner").dropna()
        n = len(both)
        r = float(pearsonr(both.a, both.b)[0]) if n >= 3 and both.a.nunique() > 1 and both.b.nunique() > 1 \
            else np.nan
        out += [_row(a, b, ERRORS, r, n, scope="all pairs", item="pearson"),
                _row(a, b, ERRORS, _tau(both.a, both.b), n, scope="all pairs", item="kendall")]
        taus = []
        for source, g in both.groupby(level="source", sort=True):
            t = _tau(g.a, g.b)
            taus.append(t)
            out.append(_row(a, b, TARGET_RANKING, t, len(g), scope="source", item=source))
        ok = [t for t in taus if np.isfinite(t)]
        out.append(_row(a, b, TARGET_RANKING, float(np.mean(ok)) if ok else np.nan, len(ok),
                        scope="mean over sources", item="kendall"))
        same = []
        for target, g in both.groupby(level="target", sort=True):
            if len(g) < 2:
                continue
            best_a, best_b = g.a.idxmin()[0], g.b.idxmin()[0]
            same.append(best_a == best_b)
            out.append(_row(a, b, BEST_SOURCE, float(best_a == best_b), len(g), scope="target", item=target,
                            value_a=best_a, value_b=best_b))
        out.append(_row(a, b, BEST_SOURCE, float(np.mean(same)) if same else np.nan, len(same),
                        scope="share of targets", item="same best source"))
        for direction in (RANK, SELECT):
            sa, sb = standing[a].get(direction, {}), standing[b].get(direction, {})
            common = [e for e in sa if e in sb]
            for e in common:
                va, vb = sa[e][0], sb[e][0]
                agree = float(va == vb) if np.isfinite(va) and np.isfinite(vb) else np.nan
                out.append(_row(a, b, VERDICT, agree, 1, direction=direction, scope="estimator", item=e,
                                value_a=va, value_b=vb))
                out.append(_row(a, b, RANK_OF, float(sa[e][1] == sb[e][1]), 1, direction=direction,
                                scope="estimator", item=e, value_a=sa[e][1], value_b=sb[e][1]))
            out.append(_row(a, b, ORDER, _tau([sa[e][1] for e in common], [sb[e][1] for e in common]),
                            len(common), direction=direction, scope="estimators", item="kendall"))
    return pd.DataFrame(out, columns=COLUMNS)


def estimator_claims(truths: dict[str, pd.DataFrame]) -> dict[str, dict[str, bool | None]]:
    """{"<estimator> beats the best baseline in <direction>": {ground truth: True/False/None (undefined)}}."""
    out: dict[str, dict] = {}
    for name, rows in truths.items():
        for direction, per in estimator_standing(rows).items():
            for e, (verdict, _) in per.items():
                claim = f"{e} beats the best baseline ({direction}; weighted tau, point estimate)"
                out.setdefault(claim, {})[name] = bool(verdict) if np.isfinite(verdict) else None
    return out


def holds_lines(verdicts_by_claim: dict[str, dict[str, bool | None]], names: list[str]) -> list[str]:
    """summary.md's opening: the claims that hold under every ground truth present, then those that hold under
    some (naming where they do not hold and where they could not be tested), then those that hold under none.
    `verdicts_by_claim`: {claim: {ground truth: True (held), False (did not hold), None (not tested)}}."""
    every, some, none = [], [], []
    for claim, by in verdicts_by_claim.items():
        held = [n for n in names if by.get(n) is True]
        tested = [n for n in names if by.get(n) is not None]
        if not tested:
            continue
        if len(held) == len(names):
            every.append(f"- {claim}")
        elif held:
            failed = [n for n in tested if n not in held]
            untested = [n for n in names if n not in tested]
            some.append(f"- {claim}: holds under {', '.join(held)}"
                        + (f"; does not hold under {', '.join(failed)}" if failed else "")
                        + (f"; untested under {', '.join(untested)}" if untested else ""))
        else:
            none.append(f"- {claim}")
    lines = [f"## Under every ground truth ({', '.join(names)})", "",
             "Claims that hold under every ground truth present (ground_truths.csv compares them pair by pair; "
             "each ground truth's own analysis is in its settings folder's analysis/):", ""]
    lines += every or ["- none"]
    lines += ["", "Claims that hold under some ground truths only:", ""] + (some or ["- none"])
    lines += ["", "Claims that hold under none:", ""] + (none or ["- none"]) + [""]
    return lines
