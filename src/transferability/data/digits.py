"""scikit-learn's bundled handwritten digits (1,797 8x8 grey images; no download) as a task set.

Tasks, all on the same images (the paper's setting: one input set X, many label sets Y):
- `digit`, the 10-class task (the multi-class case study);
- binary functions of the digit (even, prime, has_loop, ...): fully determined by `digit`, so
  H(task | digit) = 0 and the CE between them is exact;
- binary attributes measured on each image's pixels (ink mass, top/left heaviness, width, slant,
  symmetry, ...), thresholded at their median: they vary *within* a digit, so H(task | digit) > 0 and
  transfer from `digit` to them is genuinely hard, as with CelebA's attributes. With
  `dataset.quantiles=[0.1,0.25,0.5,0.75,0.9]` each is cut at those quantiles instead (`ink_heavy@q25`, ...):
  targets from common to rare, as CelebA's are (see quantiles.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config import DatasetConfig
from ..errors import UserError
from .images import ArrayImages
from .labels import LabelTable
from .parsing import parse_params
from .quantiles import check_quantiles, quantile_tasks
from .registry import Dataset

# Binary functions of the digit class: name -> the digits labelled 1.
DIGIT_SETS = {
    "even": (0, 2, 4, 6, 8),
    "prime": (2, 3, 5, 7),
    "has_loop": (0, 6, 8, 9),
    "ge5": (5, 6, 7, 8, 9),
    "straight": (1, 4, 7),          # drawn with straight strokes only
    "multiple_of_3": (0, 3, 6, 9),
    "square_number": (0, 1, 4, 9),
    "fibonacci": (1, 2, 3, 5, 8),
    "closed_top": (0, 2, 3, 7, 8, 9),  # a stroke across the top
}


@dataclass(frozen=True)
class DigitsParams:
    split_seed: int = 0          # seed of the stratified train/test split
    test_fraction: float = 0.3   # fraction of each digit's images in the test split
    quantiles: list | None = None  # cut the pixel measures at these quantiles instead of the median

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise UserError(f"digits test_fraction={self.test_fraction}: expected a number in (0, 1)")
        object.__setattr__(self, "quantiles", check_quantiles(self.quantiles, "digits"))


def pixel_features(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image measurements on (N, 8, 8) ink images (0..16), each a float array of length N."""
    x = images.astype(np.float64)
    n, h, w = x.shape
    ink = x.sum(axis=(1, 2))
    rows = np.arange(h) + 0.5
    cols = np.arange(w) + 0.5
    py = x.sum(axis=2) / ink[:, None]            # row profile, a distribution over rows
    px = x.sum(axis=1) / ink[:, None]
    cy, cx = py @ rows, px @ cols                # ink centroid
    sy = np.sqrt(py @ rows**2 - cy**2)           # ink spread
    sx = np.sqrt(px @ cols**2 - cx**2)
    dy = rows[None, :, None] - cy[:, None, None]
    dx = cols[None, None, :] - cx[:, None, None]
    cov = (x * dy * dx).sum(axis=(1, 2)) / ink
    mirrored = np.abs(x - x[:, :, ::-1]).sum(axis=(1, 2)) / ink
    centre = x[:, 2:6, 2:6].sum(axis=(1, 2)) / ink
    inked = x > 0
    return {
        "ink_heavy": ink,
        "top_heavy": x[:, : h // 2].sum(axis=(1, 2)) / ink,
        "left_heavy": x[:, :, : w // 2].sum(axis=(1, 2)) / ink,
        "wide": sx,
        "tall": sy,
        # Positive covariance of (row, column) = ink runs top-left to bottom-right: a back-slant.
        "slanted_right": -cov / (sx * sy),
        "symmetric_lr": -mirrored,
        "thick": (x >= 12).sum(axis=(1, 2)) / np.maximum(inked.sum(axis=(1, 2)), 1),
        "centred": -np.hypot(cy - h / 2, cx - w / 2),
        "dense_centre": centre,
        "faint": -x.sum(axis=(1, 2)) / np.maximum(inked.sum(axis=(1, 2)), 1),
    }


def build_table(images: np.ndarray, digit: np.ndarray, params: DigitsParams) -> LabelTable:
    """The label table of (N, 8, 8) `images` with classes `digit`, split stratified by digit."""
    from sklearn.model_selection import train_test_split

    n = len(digit)
    ids = [f"digits_{i:04d}" for i in range(n)]
    cols: dict[str, np.ndarray] = {"digit": digit.astype(np.int64)}
    for name, members in DIGIT_SETS.items():
        cols[name] = np.isin(digit, members).astype(np.int8)
    if params.quantiles is None:
        for name, value in pixel_features(images).items():
            # Above the median: both classes near-balanced, whatever the feature's scale.
            cols[name] = (value > np.median(value)).astype(np.int8)
    else:
        cols.update(quantile_tasks(pixel_features(images), params.quantiles))
    _, test = train_test_split(np.arange(n), test_size=params.test_fraction,
                               random_state=params.split_seed, stratify=digit)
    split = np.full(n, "train", dtype=object)
    split[test] = "test"
    index = pd.Index(ids, name="image_id")
    return LabelTable(pd.DataFrame(cols, index=index), pd.Series(split, index=index, name="split"),
                      multiclass=("digit",))


def load(cfg: DatasetConfig) -> Dataset:
    from sklearn.datasets import load_digits

    params = parse_params(DigitsParams, cfg.params, "digits")
    bunch = load_digits()
    images, digit = bunch.images, np.asarray(bunch.target)
    table = build_table(images, digit, params)
    # 0..16 ink -> 0..255 grey, the uint8 convention every image source follows.
    pixels = np.rint(images * (255.0 / 16.0)).astype(np.uint8)
    return Dataset(name="digits", labels=table, images=ArrayImages(pixels, list(table.labels.index)))
