"""Pure analysis, part 4: the paper's claims, the numbers measured here, and a plain verdict for each.

A verdict is one of "held", "did not hold" or "not tested: <why>". The thresholds are the paper's
claim shapes, applied strictly: Fig. 2 says "in all cases, the correlation is statistically
significant", so the per-source claim holds only when EVERY testable source has r > 0 with p < alpha.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .matrix import POOLED, correlate, significant_positive
from .ranking import MEAN, METRICS

HELD, NOT_HELD = "held", "did not hold"
ALPHA = 0.05


@dataclass(frozen=True)
class Claim:
    claim: str
    measured: str
    verdict: str


def _rp(c: dict) -> str:
    return f"r = {c['pearson_r']:.3f}, p = {c['pearson_p']:.2g}, n = {c['n']}"


def _sig(c: dict, what: str) -> Claim:
    if not np.isfinite(c["pearson_r"]):
        return Claim(what, f"n = {c['n']}", "not tested: fewer than 3 points or a constant variable")
    ok = significant_positive(c["pearson_r"], c["pearson_p"], ALPHA)
    return Claim(what, _rp(c), HELD if ok else NOT_HELD)


def ce_claims(corr: pd.DataFrame) -> list[Claim]:
    """Fig. 2: per source and pooled, CE H(Y|Z) is positively and significantly correlated with the
    transfer test error (dedicated cells excluded)."""
    what = f"CE predicts transfer test error for every source (Fig. 2): Pearson r > 0, p < {ALPHA}"
    per = corr[corr["scope"] != POOLED]
    testable = per.dropna(subset=["pearson_r", "pearson_p"])
    if corr.empty or testable.empty:
        return [Claim(what, f"{len(per)} sources", "not tested: no source with 3+ non-constant targets"),
                Claim("CE predicts transfer test error pooled over all pairs", "", "not tested: no rows")]
    good = testable[(testable["pearson_r"] > 0) & (testable["pearson_p"] < ALPHA)]
    bad = [s for s in testable["scope"] if s not in set(good["scope"])]
    measured = (f"{len(good)} of {len(testable)} testable sources significant; median r = "
                f"{testable['pearson_r'].median():.3f}")
    if len(per) > len(testable):
        measured += f"; {len(per) - len(testable)} untestable (< 3 targets or constant)"
    if bad:
        measured += "; not significant: " + ", ".join(bad[:10]) + (" ..." if len(bad) > 10 else "")
    pooled = corr[corr["scope"] == POOLED].iloc[0].to_dict()
    return [Claim(what, measured, HELD if not bad else NOT_HELD),
            _sig(pooled, f"CE predicts transfer test error pooled over all (source, target) pairs: r > 0, p < {ALPHA}")]


def hardness_claim(hard: pd.DataFrame | None, reason: str = "") -> Claim:
    what = f"Hardness H(Z|C) (Eq. 14) tracks the dedicated model's test error (Fig. 6): r > 0, p < {ALPHA}"
    if hard is None:
        return Claim(what, "", f"not tested: {reason or 'no labels'}")
    return _sig(correlate(hard["hardness"], hard["dedicated_test_error"]), what)


def theorem1_claims(summary: dict) -> list[Claim]:
    """Eq. 10 on the fitted head's train log-likelihood (the theorem) and on its test log-likelihood (a
    generalisation check beyond the paper), with the margin distribution; k-bar named as the construction."""
    head, tol = summary["head"], summary["tol"]
    out = []
    for side, what in (("train", f"Theorem 1 (Eq. 10): the fitted head's ({head}) train log-likelihood >= "
                                  "l_Z - H(Y|Z) on every cell"),
                       ("test", f"Beyond the paper: the fitted head's ({head}) TEST log-likelihood >= "
                                "the train bound l_Z - H(Y|Z) (generalisation check)")):
        s = summary[side]
        if side == "train" and not summary["probabilistic"]:
            out.append(Claim(what, "", f"not tested: the head {head} is k-bar itself, which attains the bound "
                                       "by construction (Eqs. 11-12)"))
            continue
        if s["n_checked"] == 0:
            out.append(Claim(what, f"{summary['n_cells']} cells", f"not tested: no cell with {side}_nll and the bound"))
            continue
        m = (f"{s['n_violations']} of {s['n_checked']} cells below the bound by more than {tol:g} nats"
             + (f" (worst {s['max_violation']:.3g})" if s["n_violations"] else "")
             + f"; margin (log-likelihood - bound) min {s['min']:.3g}, 5% {s['q05']:.3g}, "
               f"median {s['median']:.3g}, max {s['max']:.3g} nats")
        out.append(Claim(what, m, HELD if s["n_violations"] == 0 else NOT_HELD))
    return out


def kbar_note(summary: dict) -> str:
    k = summary["kbar"]
    if not k["n_checked"]:
        return "k-bar (Eq. 9): no ce_head_train_ll values."
    return (f"k-bar (Eq. 9), the classifier built from the source softmax that attains the bound by construction: "
            f"margin min {k['min']:.3g}, median {k['median']:.3g} nats over {k['n_checked']} cells "
            f"({k['n_below']} below -{summary['tol']:g}; any would be a bug, not evidence). It is not the check.")


def table1_claims(source: str, fig3_corr: dict, pattern: dict) -> list[Claim]:
    """Sec. 5.2 for one multi-class source: Fig. 3 correlation, Table 1 rows 9/11, Fig. 4."""
    out = [_sig(fig3_corr, f"Fig. 3 ({source}): CE predicts transfer test error from the multi-class source")]
    k = pattern["k"]
    what = f"Table 1 ({source}): the {k or 5} most transferable targets (lowest CE) are transferred more accurately than the {k or 5} least"
    if k == 0 or not np.isfinite(pattern["top_transfer"]):
        out.append(Claim(what, "", "not tested: fewer than 2 targets"))
    else:
        out.append(Claim(what, f"mean transfer accuracy {pattern['top_transfer']:.3f} vs {pattern['bottom_transfer']:.3f}",
                         HELD if pattern["top_transfer"] > pattern["bottom_transfer"] else NOT_HELD))
    what = f"Fig. 4 ({source}): transfer loses less to dedicated models on the most transferable targets"
    if k == 0 or not (np.isfinite(pattern["top_gap"]) and np.isfinite(pattern["bottom_gap"])):
        out.append(Claim(what, "", "not tested: dedicated runs of those targets missing"))
    else:
        out.append(Claim(what, f"mean transferred - dedicated accuracy {pattern['top_gap']:+.3f} (most) vs "
                               f"{pattern['bottom_gap']:+.3f} (least)",
                         HELD if pattern["top_gap"] > pattern["bottom_gap"] else NOT_HELD))
    return out


def estimator_lines(comparison: pd.DataFrame, best: str | None, metric: str = "weighted_tau") -> list[str]:
    """Which estimator ranked targets by transfer accuracy best, and a table of all of them."""
    if comparison.empty or best is None:
        return ["No estimator columns with values: estimator comparison not tested."]
    sel = comparison[(comparison["scope"] == MEAN) & (comparison["metric"] == metric)].set_index("estimator")
    b = sel.loc[best]
    lines = [f"Best estimator of transfer accuracy (mean over sources of the per-source {metric}): "
             f"**{best}** = {b['value']:.3f} (95% CI {b['ci_low']:.3f} to {b['ci_high']:.3f}, {int(b['n'])} sources).", "",
             "| estimator | scope | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
    for est in dict.fromkeys(comparison["estimator"]):
        for scope in (MEAN, POOLED):
            s = comparison[(comparison["estimator"] == est) & (comparison["scope"] == scope)].set_index("metric")
            cells = [f"{s.at[m, 'value']:.3f} [{s.at[m, 'ci_low']:.2f}, {s.at[m, 'ci_high']:.2f}]" for m in METRICS]
            lines.append(f"| {est} | {scope} | " + " | ".join(cells) + " |")
    return lines


def summary_markdown(title: str, facts: list[str], claims: list[Claim], estimator_text: list[str],
                     notes: list[str]) -> str:
    lines = [f"# {title}", ""] + [f"- {f}" for f in facts] + ["", "## The paper's claims, measured here", "",
                                                              "| claim | measured here | verdict |", "|---|---|---|"]
    cell = lambda text: text.replace("|", "\\|")   # H(Y|Z) inside a table cell
    lines += [f"| {cell(c.claim)} | {cell(c.measured)} | **{cell(c.verdict)}** |" for c in claims]
    lines += ["", "## Estimators", ""] + estimator_text + ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
