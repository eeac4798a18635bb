"""The registry of scores: its orders are the output files' (results.csv columns, estimators.csv rows, the
width study's tables), its signs orient every score so that higher = more transferable, each entry's declared
inputs are what its computation uses, and a new per-row score is one entry."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.estimators import settings
from transferability.analysis.design import target_baselines
from transferability.estimators import model_based
from transferability.estimators.label_only import CECounter
from transferability.estimators.registry import (
    BASELINE,
    CHOOSES_SOURCES,
    COMPUTED,
    DISPLAY,
    ESTIMATOR,
    FIGURE_ORDER,
    MULTILABEL,
    MULTILABEL_PAIR,
    NONE,
    PAIR,
    RANKS_TARGETS,
    SCORES,
    SIGNS,
    SOURCE,
    TARGET,
    Score,
)


def test_orders_are_those_of_the_output_files():
    # results.csv: the transfer stage's fixed columns, then these; estimators.csv, selection.csv and summary.md:
    # SIGNS' order; widths.md / widths.png: FIGURE_ORDER; source.json: MULTILABEL.
    assert COMPUTED == ("leep", "logme", "hscore", "hscore_reg", "transrate", "gbc", "nleep", "knn1", "knn5")
    estimators = ("nce", "ce_mm", "leep", "logme", "hscore", "hscore_reg", "transrate", "gbc", "nleep")
    baselines = ("target_entropy", "majority_error", "knn1", "knn5", "source_hardness", "source_test_accuracy",
                 "source_n_classes", "random_ranking")
    assert tuple(SIGNS) == estimators + baselines
    assert [SCORES[n].kind for n in SIGNS] == [ESTIMATOR] * 9 + [BASELINE] * 8
    assert FIGURE_ORDER == ("nce", "leep", "nleep", "logme", "hscore", "hscore_reg", "transrate", "gbc", "ce_mm",
                            "target_entropy", "majority_error", "knn1", "knn5", "random_ranking")
    assert MULTILABEL == ("logme_multilabel", "hscore_multilabel")
    assert len(set(DISPLAY.values())) == len(DISPLAY) and all(DISPLAY.values())


def test_each_direction_ranks_with_the_scores_that_vary_in_it():
    """A score of the target alone cannot choose a source; one of the source alone cannot rank its targets; pair
    scores and the random ranking do both."""
    assert RANKS_TARGETS == tuple(n for n in SIGNS if not n.startswith("source_"))
    assert CHOOSES_SOURCES == tuple(n for n in SIGNS if n not in ("target_entropy", "majority_error"))
    assert {SCORES[n].of for n in SIGNS} == {PAIR, TARGET, SOURCE, NONE}
    assert all(SCORES[n].of == MULTILABEL_PAIR and n not in SIGNS for n in MULTILABEL)


def row(n=400, seed=0):
    """A row with a target the source's features and softmax predict, and one they know nothing about."""
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 4, n)                                    # the source's labels
    f = rng.normal(size=(n, 6)) + 2.0 * np.eye(4, 6)[z]
    theta = np.full((n, 4), 0.1 / 3)
    theta[np.arange(n), z] = 0.9
    Y = np.stack([z % 2, rng.integers(0, 2, n)], axis=1)         # predictable, random
    return f, theta, z, Y


def test_signs_orient_every_score_so_the_predictable_target_scores_higher():
    f, theta, z, Y = row()
    scores = model_based.model_based_scores(f, theta, Y, **settings())
    oriented = {name: SIGNS[name] * scores[name].to_numpy() for name in COMPUTED}
    counts = CECounter(["good", "random", "source"]).update(pd.DataFrame({"good": Y[:, 0], "random": Y[:, 1],
                                                                         "source": z}))
    ce = counts.result()["source"]
    oriented["nce"] = SIGNS["nce"] * -ce[["good", "random"]].to_numpy()
    oriented["ce_mm"] = SIGNS["ce_mm"] * counts.result(bias_correction=True)["source"][["good", "random"]].to_numpy()
    # Baselines (the analysis' own): a target with a rare class is easier than a balanced one, whatever the source.
    base = target_baselines(pd.DataFrame({"skewed": np.r_[np.zeros(90), np.ones(10)], "balanced": np.arange(100) % 2}))
    for name in ("target_entropy", "majority_error"):
        oriented[name] = SIGNS[name] * base[name].to_numpy()
    # Of the source: the 4-class source z against a coarser one (z // 2), whose network is less accurate.
    coarse = target_baselines(pd.DataFrame({"z": z, "coarse": z // 2}))
    oriented["source_hardness"] = SIGNS["source_hardness"] * coarse["target_entropy"].to_numpy()
    oriented["source_n_classes"] = SIGNS["source_n_classes"] * np.array([4, 2])
    oriented["source_test_accuracy"] = SIGNS["source_test_accuracy"] * np.array([0.9, 0.7])
    # Multi-label: attributes the features predict (the bits of z) against attributes they know nothing about.
    rng = np.random.default_rng(1)
    for name in MULTILABEL:
        good = model_based.multilabel_scores(f, np.stack([z % 2, z // 2], 1), which=(name,))[name]
        bad = model_based.multilabel_scores(f, rng.integers(0, 2, (len(z), 2)), which=(name,))[name]
        oriented[name] = SCORES[name].sign * np.array([good, bad])
    assert set(oriented) == set(SCORES) - {"random_ranking"}   # chance has no value to orient
    for name, (easy, hard) in oriented.items():
        assert easy > hard, name


def test_each_score_uses_the_inputs_it_declares():
    """A score is NaN exactly when an input it needs is not given, and unchanged by the inputs it does not need."""
    f, theta, z, Y = row(n=200)
    full = model_based.model_based_scores(f, theta, Y, source_labels=z, **settings())
    without = {"features": model_based.model_based_scores(None, theta, Y, source_labels=z, **settings()),
               "softmax": model_based.model_based_scores(f, None, Y, source_labels=z, **settings()),
               "source labels": model_based.model_based_scores(f, theta, Y, **settings())}
    assert np.isfinite(full.to_numpy()).all()
    for name in COMPUTED:
        for missing, got in without.items():
            needed = missing.split()[0] in SCORES[name].needs
            if needed:
                assert got[name].isna().all(), (name, missing)
            else:
                np.testing.assert_array_equal(got[name], full[name], err_msg=f"{name} without {missing}")


def source_entropy(t):
    """H(Z) of the row's source labels: the same for every target."""
    p = np.bincount(t.source[t.source >= 0]) / (t.source >= 0).sum()
    return np.full(len(t.k), -(p[p > 0] * np.log(p[p > 0])).sum())


def nearest_class_mean(t, *, probe_shrink):
    """Accuracy of the nearest (shrunk) class mean on the centred features, per target of a group."""
    z = t.centred.Z
    out = []
    for j in range(len(t.k)):
        means = np.stack([z[t.codes[:, j] == c].mean(0) for c in range(t.k[j])]) * probe_shrink
        out.append((((z[:, None] - means[None]) ** 2).sum(-1).argmin(1) == t.codes[:, j]).mean())
    return np.array(out)


def test_a_new_per_row_score_is_one_registry_entry(monkeypatch):
    """Baselines from the source's labels (its own hardness) and from the features (a probe, with a setting)
    reach a row's scores through their entries alone, with missing labels left out per target."""
    new = (Score("source_entropy", -1, ("labels",), "source entropy H(Z)", BASELINE, 11, source_entropy),
           Score("probe", +1, ("labels", "features"), "class-mean probe", BASELINE, 12, nearest_class_mean))
    monkeypatch.setattr(model_based, "SCORES", {**SCORES, **{s.name: s for s in new}})
    monkeypatch.setattr(model_based, "COMPUTED", COMPUTED + tuple(s.name for s in new))
    assert new[1].settings == new[1].required_settings == ("probe_shrink",)
    f, theta, z, Y = row(n=300)
    Y[::7, 1] = -1
    got = model_based.model_based_scores(f, theta, Y, which=("leep", "source_entropy", "probe"), source_labels=z,
                                         probe_shrink=1.0)
    h = -np.log(np.bincount(z) / len(z)) @ (np.bincount(z) / len(z))
    np.testing.assert_allclose(got["source_entropy"], [h, h], rtol=1e-12)
    ok = Y[:, 1] >= 0
    alone = model_based.model_based_scores(f[ok], None, Y[ok][:, 1:], which=("probe",), probe_shrink=1.0)
    assert got.at[1, "probe"] == alone.at[0, "probe"] < got.at[0, "probe"]
    with pytest.raises(ValueError, match=r"\['probe_shrink'\] not given \(needed by probe\)"):
        model_based.model_based_scores(f, None, Y, which=("probe",))


@pytest.mark.parametrize("change, message", [(dict(sign=0), "sign 0"), (dict(kind="oracle"), "kind 'oracle'"),
                                             (dict(needs=("features",)), "needs"), (dict(needs=("labels", "logits")),
                                                                                     "needs")])
def test_a_malformed_entry_is_refused(change, message):
    entry = dict(name="x", sign=1, needs=("labels",), display="x", kind=ESTIMATOR, figure_order=0)
    with pytest.raises(ValueError, match=message):
        Score(**{**entry, **change})
