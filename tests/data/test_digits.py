"""The embedded digits dataset: sizes, tasks, balance, determinism, pixel tasks not fixed by the digit."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from transferability.config import group_config
from transferability.data import digits
from transferability.errors import UserError


def _load(**params):
    return digits.load(group_config("dataset", "digits", **params))


@pytest.fixture(scope="module")
def ds():
    return _load()


def _conditional_entropy(y: pd.Series, given: pd.Series) -> float:
    """H(y | given) in nats from the empirical joint."""
    joint = pd.crosstab(given, y).to_numpy().astype(float)
    p_joint = joint / joint.sum()
    p_given = p_joint.sum(axis=1, keepdims=True)
    nz = p_joint > 0
    return float(-(p_joint[nz] * np.log((p_joint / p_given)[nz])).sum())


def test_sizes_and_tasks(ds):
    t = ds.labels
    assert t.n == 1797 and t.multiclass == ("digit",)
    assert t.tasks[0] == "digit" and 18 <= len(t.tasks) <= 24
    assert {"even", "prime", "has_loop", "ge5", "ink_heavy", "top_heavy", "left_heavy", "wide", "tall",
            "symmetric_lr", "thick", "centred"} <= set(t.tasks)
    assert t.labels.index[0] == "digits_0000" and t.labels.index.is_unique
    assert t.n_classes("digit") == 10
    for task in t.tasks[1:]:
        assert t.labels[task].dtype == np.int8 and set(t.labels[task].unique()) == {0, 1}, task
    assert set(t.split.unique()) == {"train", "test"}
    assert (t.split == "test").sum() == pytest.approx(0.3 * 1797, abs=10)


def test_images_align_with_labels(ds):
    x = ds.images.array(8)
    assert x.shape == (1797, 8, 8, 1) and x.dtype == np.uint8 and x.max() == 255
    assert ds.images.ids == list(ds.labels.labels.index) and ds.images.channels == 1
    assert ds.images.array(16).shape == (1797, 16, 16, 1)
    # `ink_heavy` is the thresholded ink mass of the very images handed out.
    ink = x.reshape(len(x), -1).sum(axis=1)
    heavy = ds.labels.labels["ink_heavy"].to_numpy() == 1
    assert ink[heavy].min() >= ink[~heavy].max() - 64  # rounding to uint8: at most 0.5 per pixel


def test_every_binary_task_has_both_classes_in_train_and_test(ds):
    t = ds.labels
    for split in ("train", "test"):
        rows = t.subset(split).labels
        for task in t.tasks:
            assert rows[task].nunique() >= 2, (split, task)
        assert rows["digit"].nunique() == 10


def test_digit_functions_are_exact(ds):
    y = ds.labels.labels
    np.testing.assert_array_equal(y["even"], (y["digit"] % 2 == 0).astype(np.int8))
    np.testing.assert_array_equal(y["has_loop"], y["digit"].isin([0, 6, 8, 9]).astype(np.int8))
    np.testing.assert_array_equal(y["prime"], y["digit"].isin([2, 3, 5, 7]).astype(np.int8))
    assert _conditional_entropy(y["even"], y["digit"]) == 0.0


def test_pixel_tasks_are_not_determined_by_the_digit(ds):
    y = ds.labels.labels
    h = {task: _conditional_entropy(y[task], y["digit"]) for task in
         ("ink_heavy", "top_heavy", "left_heavy", "wide", "symmetric_lr", "thick", "centred")}
    assert all(v > 0.1 for v in h.values()), h


def test_split_is_deterministic_by_seed():
    a, b, c = _load(), _load(), _load(split_seed=1)
    pd.testing.assert_series_equal(a.labels.split, b.labels.split)
    pd.testing.assert_frame_equal(a.labels.labels, c.labels.labels)
    assert not a.labels.split.equals(c.labels.split)
    # Stratified: each digit's test share is the requested fraction.
    frac = (c.labels.split == "test").groupby(c.labels.labels["digit"]).mean()
    assert np.allclose(frac, 0.3, atol=0.02)
    d = _load(test_fraction=0.5)
    assert (d.labels.split == "test").mean() == pytest.approx(0.5, abs=0.01)


def test_bad_params_are_one_line_errors():
    with pytest.raises(UserError, match=r"unknown digits parameter 'split_sed'; did you mean: split_seed"):
        _load(split_sed=3)
    with pytest.raises(UserError, match=r"test_fraction=1.5"):
        _load(test_fraction=1.5)
    with pytest.raises(UserError, match=r"split_seed='a': expected int"):
        _load(split_seed="a")


def test_hydra_config_round_trip(run_config):
    cfg = run_config(["dataset=digits", "dataset.test_fraction=0.25"]).dataset
    assert cfg.name == "digits" and cfg.image_size == 8 and cfg.default_source == "digit"
    assert cfg.params == {"split_seed": 0, "test_fraction": 0.25, "quantiles": None}
    ds = digits.load(cfg)
    assert (ds.labels.split == "test").mean() == pytest.approx(0.25, abs=0.01)
    assert ds.labels.resolve_source(None, None, cfg.default_source) == "digit"


def test_quantile_cuts_replace_the_median_cuts_in_place():
    q = _load(quantiles=[0.1, 0.25, 0.5, 0.75, 0.9]).labels
    default = _load().labels
    pixel = list(digits.pixel_features(np.zeros((1, 8, 8)) + 1))
    want = default.tasks[:default.tasks.index(pixel[0])] + [f"{m}@q{p}" for m in pixel for p in (10, 25, 50, 75, 90)]
    assert q.tasks == want
    ink = q.labels[[f"ink_heavy@q{p}" for p in (10, 25, 50, 75, 90)]].mean().to_numpy()
    assert ink == pytest.approx([0.9, 0.75, 0.5, 0.25, 0.1], abs=0.01)
    pd.testing.assert_series_equal(q.labels["ink_heavy@q50"], default.labels["ink_heavy"], check_names=False)
    pd.testing.assert_series_equal(q.split, default.split)


def test_bad_quantiles_name_the_dataset():
    with pytest.raises(UserError, match="digits quantiles=\\[0.5, 1.5\\]"):
        _load(quantiles=[0.5, 1.5])
