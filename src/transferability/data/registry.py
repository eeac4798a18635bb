"""The dataset table: one module per dataset in this package, each a `load(cfg: DatasetConfig) -> Dataset`.

The table below is the only place a dataset name becomes code (no `_target_` strings in configs).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import DatasetConfig, fingerprint
from ..errors import unknown_name
from .labels import LabelTable


@dataclass(frozen=True)
class Dataset:
    name: str
    labels: LabelTable
    # Row-aligned with `labels`; None when only annotation files are present (estimate still works).
    images: "object | None" = None
    # Why `images` is None, for the transfer stage's error message.
    no_images_reason: str = ""
    # locate(row) -> where that row was listed ('labels.csv, line 7, column id'), for messages about it; or None.
    locate: "object | None" = None


# name -> module in this package with `load(cfg) -> Dataset`; imported on use, so one dataset's
# dependencies never slow down or break another's.
DATASETS = {"celeba": "celeba", "awa2": "awa2", "cub": "cub", "digits": "digits", "shapes": "shapes",
            "openimages": "openimages", "folder": "folder", "table": "table"}

# The datasets that are whatever files the user points at: name -> the option naming those files. Their outputs
# are kept apart by that path (run_dirs.dataset_folder), since one dataset name serves many data sets.
USER_DATA = {"folder": "root", "table": "labels"}


def _loader(name: str):
    import importlib

    if name not in DATASETS:
        raise unknown_name("dataset", name, DATASETS)
    return importlib.import_module(f".{DATASETS[name]}", __package__).load


def load_dataset(cfg: DatasetConfig) -> Dataset:
    """Load (once per process: a sweep job resolves its run directory and then runs from the same table)."""
    key = fingerprint(cfg)
    if key not in _LOADED:
        load = _loader(cfg.name)
        _LOADED.clear()  # keep one dataset in memory
        _LOADED[key] = load(cfg)
    return _LOADED[key]


_LOADED: dict = {}


def task_names(cfg: DatasetConfig) -> list[str]:
    return load_dataset(cfg).labels.tasks
