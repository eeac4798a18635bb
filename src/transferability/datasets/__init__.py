"""Datasets: one module per dataset, each a `load(cfg: DatasetConfig) -> Dataset`.

The table below is the only place a dataset name becomes code (no `_target_` strings in configs).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import DatasetConfig, fingerprint
from ..errors import unknown_name
from ..labels import LabelTable


@dataclass(frozen=True)
class Dataset:
    name: str
    labels: LabelTable
    # Row-aligned with `labels`; None when only annotation files are present (estimate still works).
    images: "object | None" = None
    # Why `images` is None, for the transfer stage's error message.
    no_images_reason: str = ""


def _loaders():
    from . import awa2, celeba, cub, digits, shapes

    return {
        "celeba": celeba.load,
        "awa2": awa2.load,
        "cub": cub.load,
        "digits": digits.load,
        "shapes": shapes.load,
    }


def names() -> list[str]:
    return ["celeba", "awa2", "cub", "digits", "shapes"]


def load_dataset(cfg: DatasetConfig) -> Dataset:
    """Load (once per process: a sweep job resolves its run directory and then runs from the same table)."""
    key = fingerprint(cfg)
    if key not in _LOADED:
        loaders = _loaders()
        if cfg.name not in loaders:
            raise unknown_name("dataset", cfg.name, loaders)
        _LOADED.clear()  # keep one dataset in memory
        _LOADED[key] = loaders[cfg.name](cfg)
    return _LOADED[key]


_LOADED: dict = {}


def task_names(cfg: DatasetConfig) -> list[str]:
    return load_dataset(cfg).labels.tasks
