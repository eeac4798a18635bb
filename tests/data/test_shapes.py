"""The generated shapes dataset: determinism, label noise, lazy rendering at scale, image sizes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from transferability.config import group_config
from transferability.data import shapes
from transferability.errors import UserError


def _load(**params):
    return shapes.load(group_config("dataset", "shapes", **params))


@pytest.fixture(scope="module")
def ds():
    return _load()


def test_tasks_and_balance(ds):
    t = ds.labels
    assert t.n == 6000 and t.multiclass == ("shape", "colour") and t.tasks[:2] == ["shape", "colour"]
    assert len(t.tasks) >= 22
    assert t.n_classes("shape") == len(shapes.SHAPES) and t.n_classes("colour") == len(shapes.COLOURS)
    assert (t.split == "test").sum() == 1800
    for split in ("train", "test"):
        rows = t.subset(split).labels
        for task in t.tasks[2:]:
            assert rows[task].dtype == np.int8 and set(rows[task].unique()) == {0, 1}, (split, task)


def test_task_relations_hold_by_construction(ds):
    y = ds.labels.labels.astype(bool)
    circle = ds.labels.labels["shape"] == shapes.SHAPES.index("circle")
    assert (y["is_circle"] == circle).all()
    assert (~y["is_circle"] | y["round_shape"]).all()
    assert (y["warm_on_dark"] == (y["warm_colour"] & y["dark_background"])).all()
    assert (y["top_left"] == (y["top_half"] & y["left_half"])).all()
    assert not (y["tiny"] & y["large"]).any()
    # Independent latents give (near) independent tasks.
    assert abs(np.corrcoef(y["striped"], y["left_half"])[0, 1]) < 0.05


def test_deterministic_by_seed():
    a, b, c = _load(n=500), _load(n=500), _load(n=500, seed=1)
    pd.testing.assert_frame_equal(a.labels.labels, b.labels.labels)
    pd.testing.assert_series_equal(a.labels.split, b.labels.split)
    np.testing.assert_array_equal(a.images.array(16), b.images.array(16))
    assert not a.labels.labels.equals(c.labels.labels)
    assert not a.labels.split.equals(c.labels.split)
    assert not np.array_equal(a.images.array(16), c.images.array(16))


def test_noise_flips_about_the_requested_fraction():
    clean, noisy = _load(), _load(noise=0.2)
    binary = clean.labels.tasks[2:]
    flipped = (clean.labels.labels[binary] != noisy.labels.labels[binary]).mean()
    assert flipped.between(0.17, 0.23).all(), flipped.to_dict()
    assert flipped.mean() == pytest.approx(0.2, abs=0.01)
    # Flips are independent across tasks: two tasks' flip indicators are uncorrelated.
    f = (clean.labels.labels[binary] != noisy.labels.labels[binary]).to_numpy()
    assert abs(np.corrcoef(f[:, 0], f[:, 1])[0, 1]) < 0.05
    # Noise touches labels only: class tasks, split and pixels are those of the clean set.
    pd.testing.assert_frame_equal(clean.labels.labels[["shape", "colour"]], noisy.labels.labels[["shape", "colour"]])
    pd.testing.assert_series_equal(clean.labels.split, noisy.labels.split)


def test_million_row_label_table_builds_without_rendering(monkeypatch):
    def no_render(*args, **kwargs):
        raise AssertionError("rendered images while building the label table")

    monkeypatch.setattr(shapes, "render", no_render)
    monkeypatch.setattr(shapes, "_render_chunk", no_render)
    big = _load(n=1_000_000, noise=0.1)
    assert big.labels.n == 1_000_000 and len(big.images.ids) == 1_000_000
    assert big.labels.labels.index[-1] == "shapes_999999"
    assert (big.labels.split == "test").sum() == 300_000
    assert big.labels.labels.memory_usage(index=False).sum() < 40e6  # int8 columns


def test_images_render_at_the_requested_size():
    small = _load(n=60)
    x = small.images.array(32)
    assert x.shape == (60, 32, 32, 3) and x.dtype == np.uint8 and small.images.channels == 3
    assert small.images.array(32) is x  # kept in memory, not rendered twice
    assert small.images.array(8).shape == (60, 8, 8, 3)
    assert small.images.array(64).shape == (60, 64, 64, 3)
    with pytest.raises(UserError, match="image_size"):
        small.images.array(0)
    # Each image depends on its own latents only, not on which chunk rendered it.
    lat = small.images.latents
    np.testing.assert_array_equal(shapes.render({k: v[7:11] for k, v in lat.items()}, 32), x[7:11])


def test_pixels_agree_with_labels(ds):
    x = ds.images.array(32).astype(np.float32)
    y = ds.labels.labels
    border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1).mean(axis=2)
    dark = np.median(border, axis=1) < 128
    assert (dark == (y["dark_background"] == 1)).mean() > 0.97
    # Colour: a filled red shape's pixels are the reddest in its image.
    red = (y["is_red"] == 1) & (y["filled"] == 1)
    redness = (x[..., 0] - x[..., 1:].mean(-1)).reshape(len(x), -1).max(axis=1)
    assert np.median(redness[red]) > np.median(redness[~red]) + 50


def test_bad_params_are_one_line_errors():
    with pytest.raises(UserError, match=r"unknown shapes parameter 'nosie'; did you mean: noise"):
        _load(nosie=0.1)
    with pytest.raises(UserError, match=r"noise=0.9"):
        _load(noise=0.9)
    with pytest.raises(UserError, match=r"n=2\.5: expected int"):
        _load(n=2.5)
    with pytest.raises(UserError, match=r"n=3: expected at least 10"):
        _load(n=3)


def test_hydra_config_round_trip(run_config):
    cfg = run_config(["dataset=shapes", "dataset.n=200", "dataset.noise=0.1"]).dataset
    assert cfg.name == "shapes" and cfg.image_size == 32 and cfg.default_source == "shape"
    assert cfg.params == {"n": 200, "seed": 0, "noise": 0.1, "test_fraction": 0.3, "quantiles": None}
    ds = shapes.load(cfg)
    assert ds.labels.n == 200 and ds.images.array(cfg.image_size).shape == (200, 32, 32, 3)


def test_quantile_cuts_replace_the_measured_tasks_in_place():
    q = shapes.build_table(shapes.ShapesParams(n=2000, quantiles=[0.1, 0.5, 0.9]))[0]
    default = shapes.build_table(shapes.ShapesParams(n=2000))[0]
    expand = lambda t: [f"{t}@q{p}" for p in (10, 50, 90)] if t in shapes.measures(shapes.sample_latents(1, 0)) \
        else [t]  # noqa: E731
    assert q.tasks == [name for t in default.tasks for name in expand(t)]
    assert q.labels["large@q90"].mean() == pytest.approx(0.1, abs=0.005)
    assert q.labels["left_half@q10"].mean() == pytest.approx(0.9, abs=0.005)
    # A median cut of a symmetric latent is the default task up to the sample median vs the range's middle.
    assert (q.labels["left_half@q50"] == default.labels["left_half"]).mean() > 0.97
    for t in ("shape", "tiny", "top_left", "has_dot"):
        pd.testing.assert_series_equal(q.labels[t], default.labels[t])


def test_quantile_labels_follow_their_latent():
    params = shapes.ShapesParams(n=1000, quantiles=[0.25])
    table, lat = shapes.build_table(params)
    big = table.labels["large@q25"].to_numpy().astype(bool)
    assert lat["size"][big].min() > lat["size"][~big].max()
    with pytest.raises(UserError, match=r"shapes quantiles=\[0.25, 0.25\]"):
        _load(quantiles=[0.25, 0.25])
