"""Pure analysis, part 4: the paper's claims, the numbers measured here, and a plain verdict for each.

A verdict is one of "held", "did not hold", "untestable: <why>" (one point holds the predictor's spread or
decides the result: inference.judge) or "not tested: <why>" (no data). The thresholds are the paper's claim
shapes, applied strictly and corrected for the design: Fig. 2 says "in all cases, the correlation is
statistically significant", so the per-source claim holds only when EVERY testable source has r > 0 with a
Benjamini-Hochberg q < alpha; a pooled claim holds when its crossed source x target bootstrap interval lies
above 0 (the pairs share sources and targets, so their naive p-value would overstate the evidence).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .inference import bh_q
from .matrix import POOLED, correlate
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


def _f(v, fmt=".3f") -> str:
    return "nan" if not np.isfinite(v) else format(v, fmt)


def _pooled_text(r: pd.Series) -> str:
    return (f"Pearson r = {_f(r['pearson_r'])} (crossed source x target bootstrap 95% CI {_f(r['r_ci_low'], '.2f')} to "
            f"{_f(r['r_ci_high'], '.2f')}), Spearman rho = {_f(r['spearman_rho'])}, n = {int(r['n'])} pairs; most "
            f"influential pair {r['loo_point'] or '-'} (r without it {_f(r['loo_r_without'])}); noise ceiling "
            f"{_f(r['noise_ceiling'], '.3f')}")


def _verdict(r: pd.Series) -> str:
    return r["verdict"] if r["verdict"] != "untestable" else f"untestable: {r['why']}"


def design_claims(corr: pd.DataFrame) -> list[Claim]:
    """Fig. 2 as the paper draws it (binary source -> binary target: per source after Benjamini-Hochberg, and
    pooled with a crossed bootstrap interval), whether CE adds anything over the target entropy H(Y) (partial r),
    each multi-class target on its own, and every pair pooled. `corr` is design.ce_correlations()."""
    from .design import ALL, BINARY, MULTI_TARGET

    out = []
    b = corr[corr["view"] == BINARY] if len(corr) else corr
    what = (f"Fig. 2: CE predicts transfer test error for every source (binary source -> binary target): "
            f"r > 0, BH q < {ALPHA}")
    per = b[b["scope"] != POOLED] if len(b) else b
    if per.empty:
        out.append(Claim(what, "", "not tested: no binary source with binary targets"))
    else:
        testable = per[per["verdict"].isin([HELD, NOT_HELD])]
        bad = testable[testable["verdict"] != HELD]
        unt = per[~per["verdict"].isin([HELD, NOT_HELD])]
        sp = (int(((testable["spearman_rho"] > 0) & (bh_q(testable["spearman_p"]) < ALPHA)).sum()) if len(testable)
              else 0)
        m = (f"{len(testable) - len(bad)} of {len(testable)} testable sources significant after BH (Spearman: {sp}); "
             f"median r = {_f(testable['pearson_r'].median())}; median noise ceiling "
             f"{_f(per['noise_ceiling'].median(), '.3f')}")
        if len(unt):
            m += f"; {len(unt)} untestable (" \
                 + "; ".join(f"{s}: {w}" for s, w in zip(unt["scope"][:3], unt["why"][:3])) \
                 + (" ..." if len(unt) > 3 else "") + ")"
        if len(bad):
            m += "; not significant: " + ", ".join(bad["scope"][:8]) + (" ..." if len(bad) > 8 else "")
        verdict = "not tested: no testable source" if testable.empty else (HELD if bad.empty else NOT_HELD)
        out.append(Claim(what, m, verdict))
    for view, name in ((BINARY, "binary source -> binary target"), (ALL, "all (source, target) pairs")):
        pooled = corr[(corr["view"] == view) & (corr["scope"] == POOLED)] if len(corr) else corr
        what = f"CE predicts transfer test error pooled over {name}: bootstrap CI of r above 0"
        if pooled.empty:
            out.append(Claim(what, "", "not tested: no such pairs"))
            continue
        r = pooled.iloc[0]
        out.append(Claim(what, _pooled_text(r), _verdict(r)))
        what = (f"Beyond the paper: CE predicts transfer error beyond the target entropy H(Y), {name} "
                "(partial r given H(Y), CI above 0)")
        if not np.isfinite(r["partial_r_given_entropy"]):
            out.append(Claim(what, f"r(CE, H(Y)) = {_f(r['r_ce_entropy'])}",
                             "not tested: no target entropy (labels not loaded) or CE fully explained by H(Y)"))
            continue
        per = corr[(corr["view"] == view) & (corr["scope"] != POOLED)]
        n_sig = int(((per["partial_r_given_entropy"] > 0) & (per["partial_bh_q"] < ALPHA)).sum())
        m = (f"partial r = {_f(r['partial_r_given_entropy'])} (bootstrap CI {_f(r['partial_ci_low'], '.2f')} to "
             f"{_f(r['partial_ci_high'], '.2f')}); r(CE, H(Y)) = {_f(r['r_ce_entropy'])}, r(H(Y), error) = "
             f"{_f(r['entropy_pearson_r'])} vs r(CE, error) = {_f(r['pearson_r'])}; per source: {n_sig} of "
             f"{per['partial_r_given_entropy'].notna().sum()} partial r significant after BH")
        out.append(Claim(what, m, HELD if r["partial_ci_low"] > 0 else NOT_HELD))
    multi = corr[(corr["view"] == MULTI_TARGET) & (corr["scope"] != POOLED)] if len(corr) else corr
    for _, r in multi.iterrows():
        out.append(Claim(f"CE predicts transfer test error to the multi-class target {r['scope']}, across sources",
                         f"r = {_f(r['pearson_r'])} (BH q = {_f(r['bh_q'], '.2g')}), Spearman rho = "
                         f"{_f(r['spearman_rho'])}, n = {int(r['n'])} sources; most influential "
                         f"{r['loo_point'] or '-'} "
                         f"(r without it {_f(r['loo_r_without'])})", _verdict(r)))
    return out


def random_claim(r: dict | None) -> Claim:
    what = "Beyond the paper: a trained source transfers better than the untrained backbone (source=random, same head)"
    if r is None:
        return Claim(what, "", "not tested: no source=random row (python run.py stage=transfer source=random seed=<k>)")
    if not np.isfinite(r["p"]):
        return Claim(what, f"{r['n_targets']} targets", "not tested: fewer than 5 targets with both")
    m = (f"per target, random error - median trained-source error: median {r['median_diff']:+.3f} over "
         f"{r['n_targets']} targets (Wilcoxon p = {r['p']:.2g}); {r['share_pairs_beating_random']:.0%} of pairs beat "
         f"random; mean error random {r['random_mean_error']:.3f} vs trained {r['trained_mean_error']:.3f}")
    return Claim(what, m, HELD if r["median_diff"] > 0 and r["p"] < ALPHA else NOT_HELD)


def judged(x, y, what: str, labels=None) -> Claim:
    """A claim "x predicts y" with Pearson and Spearman, the most influential point and judge()'s verdict."""
    from .inference import judge, loo_influence

    c = correlate(x, y)
    if not np.isfinite(c["pearson_r"]):
        return Claim(what, f"n = {c['n']}", "not tested: fewer than 3 points or a constant variable")
    xa, ya = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(xa) & np.isfinite(ya)
    names = np.asarray(labels if labels is not None else np.arange(len(xa)), dtype=object)[ok]
    inf = loo_influence(xa[ok], ya[ok])
    verdict, why = judge(xa, ya, labels=labels)
    m = (f"{_rp(c)}; Spearman rho = {c['spearman_rho']:.3f} (p = {c['spearman_p']:.2g}); most influential point "
         f"{names[inf.index] if inf.index >= 0 else '-'} (r without it {_f(inf.r_without)})")
    return Claim(what, m, verdict if verdict != "untestable" else f"untestable: {why}")


def hardness_claim(hard: pd.DataFrame | None, reason: str = "") -> Claim:
    what = f"Hardness H(Z|C) (Eq. 14) tracks the dedicated model's test error (Fig. 6): r > 0, p < {ALPHA}"
    if hard is None:
        return Claim(what, "", f"not tested: {reason or 'no labels'}")
    return judged(hard["hardness"], hard["dedicated_test_error"], what, labels=hard["task"])


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


def table1_claims(source: str, fig3: pd.DataFrame, pattern: dict) -> list[Claim]:
    """Sec. 5.2 for one multi-class source: Fig. 3 correlation (fig3: its transfer rows), Table 1 rows 9/11, Fig. 4."""
    out = [judged(fig3["ce"], fig3["test_error"], f"Fig. 3 ({source}): CE predicts transfer test error from the "
                  "multi-class source", labels=fig3["target"])]
    k = pattern["k"]
    what = (f"Table 1 ({source}): the {k or 5} most transferable targets (lowest CE) are transferred more accurately "
            f"than the {k or 5} least")
    if k == 0 or not np.isfinite(pattern["top_transfer"]):
        out.append(Claim(what, "", "not tested: fewer than 2 targets"))
    else:
        out.append(Claim(what, f"mean transfer accuracy {pattern['top_transfer']:.3f} vs "
                               f"{pattern['bottom_transfer']:.3f}",
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
    """Which estimator ranked targets by transfer accuracy best, and a table of all of them (the scores of the
    source alone shown as undefined)."""
    if comparison.empty or best is None:
        return ["No estimator columns with values: estimator comparison not tested."]
    sel = comparison[(comparison["scope"] == MEAN) & (comparison["metric"] == metric)].set_index("estimator")
    b = sel.loc[best]
    lines = [f"Best estimator of transfer accuracy (mean over sources of the per-source {metric}): "
             f"**{best}** = {b['value']:.3f} (95% CI {b['ci_low']:.3f} to {b['ci_high']:.3f}, "
             f"{int(b['n'])} sources).", "",
             "| estimator | scope | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
    for est in dict.fromkeys(comparison["estimator"]):
        for scope in (MEAN, POOLED):
            s = comparison[(comparison["estimator"] == est) & (comparison["scope"] == scope)].set_index("metric")
            if s["value"].isna().all() and (s["n"] == 0).all():
                lines.append(f"| {est} | {scope} | " + " | ".join([UNDEFINED_SOURCE] * len(METRICS)) + " |")
                continue
            cells = [f"{s.at[m, 'value']:.3f} [{s.at[m, 'ci_low']:.2f}, {s.at[m, 'ci_high']:.2f}]" for m in METRICS]
            lines.append(f"| {est} | {scope} | " + " | ".join(cells) + " |")
    return lines


UNDEFINED_SOURCE, UNDEFINED_TARGET = "undefined (of the source)", "undefined (of the target)"
SHOWN = ("weighted_tau", "top1_relative_accuracy", "recall_at_1", "recall_at_3", "recall_at_5", "regret")


def _ci_cell(r) -> str:
    if not np.isfinite(r["value"]):
        return "-"
    ci = (f" [{_f(r['ci_low'], '.2f')}, {_f(r['ci_high'], '.2f')}]" if np.isfinite(r["ci_low"]) else "")
    return f"{_f(r['value'])}{ci}"


def margin_lines(selection: pd.DataFrame, direction: str, scope: str, metric: str = "weighted_tau") -> list[str]:
    """Each estimator's margin over the best baseline of `direction` in `metric` (the rows of `scope`, the
    margins of one pooled scope), with its paired interval."""
    from .selection import MARGIN

    m = selection[(selection["direction"] == direction) & (selection["scope"] == f"{scope}: {MARGIN}")
                  & (selection["metric"] == metric)]
    if m.empty:
        return []
    base = m["best_baseline"].iloc[0]
    lines = ["", f"Margin of each estimator over the best baseline of this direction in {metric} (**{base}**; "
             "positive = better; paired bootstrap, the same resamples for both):", "",
             "| estimator | margin [95% CI] | verdict |", "|---|---|---|"]
    for r in m.sort_values("value", ascending=False).to_dict("records"):
        verdict = ("beats it" if r["ci_low"] > 0 else "below it" if r["ci_high"] < 0 else "not distinguishable") \
            if np.isfinite(r["ci_low"]) else "no interval"
        lines.append(f"| {r['estimator']} | {_ci_cell(r)} | {verdict} |")
    return lines


def selection_lines(selection: pd.DataFrame, best_rank: str | None, multilabel_scope: str | None = None) -> list[str]:
    """The model-selection reading of selection.csv: the best estimator for choosing a source beside the best
    for ranking the targets of a source, every score's measures with intervals, the margins over the best
    baseline, the stability over setups and the multi-label target."""
    from .selection import MEAN_OVER_TARGETS, SELECT, best_chooser
    from .stability import BEST, EVERY

    mean = selection[(selection["direction"] == SELECT) & (selection["scope"] == MEAN_OVER_TARGETS)]
    if mean.empty or not mean["value"].notna().any():
        return ["Choosing a source per target: not tested (no target with two or more candidate sources)."]
    head = mean[mean["metric"] == "weighted_tau"].set_index("estimator")
    best = best_chooser(selection)
    b = head.loc[best] if best else None
    lines = [f"Best estimator for choosing a source (mean over targets of the per-target weighted tau over the "
             f"candidate sources): **{best}** = {_ci_cell(b)} ({int(b['n'])} targets); best for ranking the targets "
             f"of a source (above): **{best_rank}**." if best else "No estimator can choose a source here.", "",
             "| score | " + " | ".join(SHOWN) + " |", "|---|" + "---|" * len(SHOWN)]
    for e in dict.fromkeys(mean["estimator"]):
        g = mean[mean["estimator"] == e].set_index("metric")
        if (g["n"] == 0).all():
            lines.append(f"| {e} | " + " | ".join([UNDEFINED_TARGET] * len(SHOWN)) + " |")
        else:
            lines.append(f"| {e} | " + " | ".join(_ci_cell(g.loc[m]) for m in SHOWN) + " |")
    lines += margin_lines(selection, SELECT, MEAN_OVER_TARGETS)
    lines += stability_lines(selection, BEST, EVERY)
    if multilabel_scope is not None:
        ml = selection[(selection["direction"] == SELECT) & (selection["scope"] == multilabel_scope)]
        if len(ml):
            lines += ["", f"The matrix's binary targets as one multi-label target ({multilabel_scope}): sources ranked "
                      "by each score against their mean transfer accuracy over the attributes (a pair score: its "
                      "mean over the attributes; intervals resample sources):", "",
                      "| score | " + " | ".join(SHOWN) + " |", "|---|" + "---|" * len(SHOWN)]
            for e in dict.fromkeys(ml["estimator"]):
                g = ml[ml["estimator"] == e].set_index("metric")
                cells = [UNDEFINED_TARGET] * len(SHOWN) if (g["n"] == 0).all() else [_ci_cell(g.loc[m]) for m in SHOWN]
                lines.append(f"| {e} | " + " | ".join(cells) + " |")
            lines += margin_lines(selection, SELECT, multilabel_scope)
    return lines


def stability_lines(selection: pd.DataFrame, best_name: str, every_name: str) -> list[str]:
    """Per direction: how often each estimator's verdict (beats the best baseline) and the best estimator stay
    those of the full matrix across setups, and the setup stability score per axis."""
    st = selection[selection["scope"].str.startswith("stability over")]
    if st.empty:
        return ["", "Stability over setups: no setups (one seed, one head, fewer than 2 sources or targets)."]
    lines = ["", "Stability over setups (seeds, heads, random halves of the sources and targets; point estimates of "
             "the weighted tau): the share of setups in which an estimator's verdict (beats the best baseline) is "
             "the full matrix's, the share in which it is the best estimator, and per axis the share whose best "
             "estimator is the full matrix's and the setup stability score (mean Kendall tau between setups' "
             "orders of the scores):", ""]
    for direction, g in st.groupby("direction", sort=False):
        scopes = list(dict.fromkeys(g["scope"]))
        lines += [f"*{direction}*:", "", "| estimator | " + " | ".join(
            f"{s[len('stability over '):]}: verdict agreement / win share" for s in scopes) + " |",
            "|---|" + "---|" * len(scopes)]
        for e in [e for e in dict.fromkeys(g["estimator"]) if e not in (best_name, every_name)]:
            cells = []
            for s in scopes:
                r = g[(g["estimator"] == e) & (g["scope"] == s)].set_index("metric")["value"]
                share = lambda metric: _f(r.get(metric, np.nan), ".2f")
                cells.append(f"{share('verdict_agreement')} / {share('win_share')}")
            lines.append(f"| {e} | " + " | ".join(cells) + " |")
        for name, metric in ((best_name, "agreement"), (every_name, "setup_stability_score")):
            cells = [g[(g["estimator"] == name) & (g["scope"] == s)] for s in scopes]
            lines.append(f"| *{name}: {metric}* | " + " | ".join(
                f"{_f(c['value'].iloc[0], '.2f')} (n = {int(c['n'].iloc[0])})" if len(c) else "-" for c in cells)
                + " |")
        lines.append("")
    return lines


def thread_counts_line(runs: pd.DataFrame) -> str | None:
    """One line naming a matrix whose rows were made with different CPU thread counts (source.json's
    `threads` for heads and estimators, `train_threads` for the source model): the count changes the
    last digits of the numbers, so such a matrix is not one reproducible setting. None when uniform."""
    per_run = runs.drop_duplicates("run_dir") if "run_dir" in runs else runs
    parts = []
    for col, what in (("train_threads", "source models trained"), ("threads", "heads and estimators run")):
        if col not in per_run:
            continue
        counts = per_run[col].dropna().astype(int).value_counts().sort_index()
        if len(counts) > 1:
            parts.append(f"{what} with " + ", ".join(f"{k} threads ({v} runs)" for k, v in counts.items()))
    if not parts:
        return None
    return ("this matrix mixes rows made with different CPU thread counts: " + "; ".join(parts)
            + ". Numbers differ in their last digits between counts; rerun with trainer.threads=<n> force=true "
              "for a uniform matrix.")


def provenance_lines(rows: dict[str, dict], analysis: dict) -> list[str]:
    """Which code and libraries made the rows (`rows`: run folder -> its source.json `provenance`, {} when the
    row predates the record) and this analysis: one line when uniform; a matrix whose rows came from several
    commits or library versions is named, key by key, with how many rows each value has."""
    from ..provenance import CODE_KEYS

    def code(rec: dict) -> str:
        if not rec:
            return "not recorded"
        commit = (rec.get("commit") or "no git checkout")[:12] + (" (uncommitted changes)" if rec.get("dirty") else "")
        libs = ", ".join(f"{k} {rec.get(k)}" for k in CODE_KEYS if k not in ("version", "commit", "dirty"))
        return f"transferability {rec.get('version')} at commit {commit}; {libs}"

    lines = [f"this analysis: {code(analysis)}"]
    kinds: dict[str, int] = {}
    for rec in rows.values():
        kinds[code(rec)] = kinds.get(code(rec), 0) + 1
    if len(kinds) == 1:
        lines.append(f"rows ({len(rows)}): {next(iter(kinds))}")
    else:
        lines.append(f"this matrix mixes rows made by {len(kinds)} different code or library versions: "
                     + "; ".join(f"{k} ({n} rows)" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
                     + ". Rerun the older rows with force=true for a matrix of one version.")
    return lines


def partial_lines(partials: pd.DataFrame) -> list[str]:
    """Does each estimator add anything over the target entropy H(Y)? Partial r with transfer accuracy given
    H(Y), pooled (crossed bootstrap CI) and mean over sources, beside the noise ceiling."""
    if partials.empty:
        return ["Partial correlations given H(Y): not computed (no target entropy: labels not loaded)."]
    lines = ["", "Partial Pearson r of each score with transfer accuracy given the target entropy H(Y) (what a score "
             "adds over \"rarer targets are easier\"); pooled CI from a crossed source x target bootstrap; the noise "
             "ceiling is the most any score could reach given the seed-to-seed noise of the errors:", "",
             "| estimator | pooled partial r [95% CI] | mean over sources [95% CI] | sources with BH q < 0.05 "
             "| pooled noise ceiling |",
             "|---|---|---|---|---|"]
    for est, g in partials.groupby("estimator", sort=False):
        g = g.set_index("scope")
        cell = lambda s: (f"{_f(g.at[s, 'value'])} [{_f(g.at[s, 'ci_low'], '.2f')}, {_f(g.at[s, 'ci_high'], '.2f')}]"
                          if s in g.index else "-")
        per = g.drop(index=[s for s in (POOLED, MEAN) if s in g.index])
        sig = int(((per["value"] > 0) & (per["bh_q"] < ALPHA)).sum())
        ceiling = g.at[POOLED, "noise_ceiling"] if POOLED in g.index else np.nan
        lines.append(f"| {est} | {cell(POOLED)} | {cell(MEAN)} | {sig} of {per['value'].notna().sum()} | "
                     f"{_f(ceiling, '.3f')} |")
    return lines


def summary_markdown(title: str, facts: list[str], claims: list[Claim], estimator_text: list[str],
                     notes: list[str]) -> str:
    lines = [f"# {title}", ""] + [f"- {f}" for f in facts] + ["", "## The paper's claims, measured here", "",
                                                              "| claim | measured here | verdict |", "|---|---|---|"]
    cell = lambda text: text.replace("|", "\\|")   # H(Y|Z) inside a table cell
    lines += [f"| {cell(c.claim)} | {cell(c.measured)} | **{cell(c.verdict)}** |" for c in claims]
    lines += ["", "## Estimators", ""] + estimator_text + ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
