"""Pure comparison of ground truths (analysis/ground_truths.py) on constructed matrices with known answers."""
import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau

from transferability.analysis import ground_truths as gt
from transferability.analysis.selection import RANK, SELECT

SOURCES, TARGETS = ["s1", "s2", "s3", "s4"], ["t1", "t2", "t3", "t4", "t5"]


def matrix(error, seed=0) -> pd.DataFrame:
    """One line per (source, target); `error(i, j)` the test error; a `leep` that tracks it and a `logme` that
    does not; the CE baseline and its negation as the analysis adds them."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, s in enumerate(SOURCES):
        for j, t in enumerate(TARGETS):
            e = error(i, j)
            rows.append(dict(source=s, target=t, dedicated=False, test_error=e, test_accuracy=1 - e,
                             leep=-e + rng.normal(0, 1e-3), logme=rng.normal(), nce=-(e + rng.normal(0, 0.2)),
                             ce=e + rng.normal(0, 0.2), n_classes=2, train_fraction=1.0))
    return pd.DataFrame(rows)


def pick(table, measure, scope=None, item=None, direction=None):
    sel = table[table.measure == measure]
    for col, v in (("scope", scope), ("item", item), ("direction", direction)):
        if v is not None:
            sel = sel[sel[col] == v]
    return sel


def test_identical_ground_truths_agree_everywhere():
    a = matrix(lambda i, j: 0.1 * i + 0.02 * j + 0.01 * ((i * j) % 3))
    out = gt.compare({"head.C=1": a, "transfer=finetune": a})
    assert set(out.a) == {"head.C=1"} and set(out.b) == {"transfer=finetune"}
    assert pick(out, gt.ERRORS, item="pearson").value.item() == pytest.approx(1)
    assert pick(out, gt.ERRORS, item="kendall").value.item() == pytest.approx(1)
    np.testing.assert_allclose(pick(out, gt.TARGET_RANKING, scope="source").value, 1)
    assert pick(out, gt.BEST_SOURCE, scope="share of targets").value.item() == 1
    assert (pick(out, gt.VERDICT).value == 1).all() and (pick(out, gt.RANK_OF).value == 1).all()
    assert set(pick(out, gt.VERDICT).direction) == {RANK, SELECT}


def test_reversed_ground_truth_disagrees_by_the_definitions():
    """b reverses the order of the sources for every target and of the targets for every source: every per-source
    tau is -1, no target keeps its best source, and the error matrices correlate as their cells do."""
    a = matrix(lambda i, j: 0.1 * i + 0.02 * j)
    b = matrix(lambda i, j: 0.5 - 0.1 * i - 0.02 * j, seed=1)
    out = gt.compare({"A": a, "B": b})
    np.testing.assert_allclose(pick(out, gt.TARGET_RANKING, scope="source").value, -1)
    best = pick(out, gt.BEST_SOURCE, scope="target")
    assert (best.value == 0).all() and set(best.value_a) == {"s1"} and set(best.value_b) == {"s4"}
    ea, eb = a.test_error.to_numpy(), b.test_error.to_numpy()
    assert pick(out, gt.ERRORS, item="pearson").value.item() == pytest.approx(np.corrcoef(ea, eb)[0, 1])
    assert pick(out, gt.ERRORS, item="kendall").value.item() == pytest.approx(kendalltau(ea, eb).statistic)
    # leep tracks each ground truth's own errors: it beats the baselines under both; the noisy CE does not
    leep = pick(out, gt.VERDICT, item="leep")
    assert (leep.value_a == 1).all() and (leep.value_b == 1).all() and (leep.value == 1).all()


def test_three_ground_truths_give_every_pair():
    a = matrix(lambda i, j: 0.1 * i + 0.02 * j)
    out = gt.compare({"x": a, "y": a, "z": a})
    assert sorted(set(zip(out.a, out.b))) == [("x", "y"), ("x", "z"), ("y", "z")]


def test_holds_lines_split_every_some_none():
    lines = "\n".join(gt.holds_lines({"c1": {"A": True, "B": True}, "c2": {"A": True, "B": False},
                                      "c3": {"A": False, "B": False}, "c4": {"A": None, "B": None},
                                      "c5": {"A": True, "B": None}}, ["A", "B"]))
    every, rest = lines.split("under some ground truths only")
    some, none = rest.split("hold under none")
    assert "- c1" in every and "c2" not in every
    assert "- c2: holds under A; does not hold under B\n" in some
    assert "- c5: holds under A; untested under B\n" in some   # not tested is not "does not hold"
    assert "- c3" in none and "c4" not in lines
