"""The label table: one row per image, one column per task, plus each image's split.

Every dataset module returns one of these; the estimators, the transfer stage and the analysis
all read tasks through it, so task-name checking (with close matches) lives here once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import UserError, unknown_name

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class LabelTable:
    """`labels`: index = image ids (str), columns = task names, values = class labels (ints, bools
    or strings); a missing label is NaN / pd.NA (CUB's unreliable labels).
    `split`: same index, values in SPLITS.
    `multiclass`: the tasks that are not binary attributes (identity, class, species, digit), which
    the analysis treats as the paper's Sec. 5.2 case study."""

    labels: pd.DataFrame
    split: pd.Series
    multiclass: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.labels.index.equals(self.split.index):
            raise ValueError("labels and split must share one index")
        bad = set(pd.unique(self.split)) - set(SPLITS)
        if bad:
            raise ValueError(f"split values must be in {SPLITS}, got {sorted(map(str, bad))}")
        if self.labels.columns.duplicated().any():
            raise ValueError("duplicate task names")

    @property
    def tasks(self) -> list[str]:
        return list(self.labels.columns)

    @property
    def n(self) -> int:
        return len(self.labels)

    def check_task(self, name: str) -> str:
        """Return `name` if it is a task, else raise a one-line error with close matches."""
        if name not in self.labels.columns:
            raise unknown_name("task", name, self.tasks)
        return name

    def select(self, names: str | list[str] | None) -> list[str]:
        """`None`/`"all"` -> every task; `"binary"` -> every task but the multi-class ones;
        a name or list of names -> checked names."""
        if names is None or names == "all":
            return self.tasks
        if names == "binary" and "binary" not in self.labels.columns:
            return [t for t in self.tasks if t not in self.multiclass]
        if isinstance(names, str):
            names = [names]
        return [self.check_task(n) for n in names]

    def subset(self, split: str) -> "LabelTable":
        """Rows of one split ('train', 'val', 'test') or 'all'; 'trainval' = train + val."""
        if split == "all":
            return self
        wanted = {"trainval": ("train", "val")}.get(split, (split,))
        for w in wanted:
            if w not in SPLITS:
                raise UserError(f"unknown split {split!r} (expected one of: train, val, test, trainval, all)")
        mask = self.split.isin(wanted).to_numpy()
        return LabelTable(self.labels.loc[mask], self.split.loc[mask], self.multiclass)

    def mask(self, split: str) -> np.ndarray:
        """Boolean row mask of a split, aligned with `labels`."""
        wanted = {"trainval": ("train", "val"), "all": SPLITS}.get(split, (split,))
        return self.split.isin(wanted).to_numpy()

    def n_classes(self, task: str) -> int:
        return int(self.labels[task].nunique(dropna=True))

    def resolve_source(self, source, source_index: int | None, default: str | None):
        return resolve_source(self, source, source_index, default)


def resolve_source(table, source, source_index: int | None, default: str | None):
    """The source task named by `source` (a name, a list of names, or `all`), else by a sweep's
    `source_index`, else `default`. `table`: anything with `tasks`, `select` and `check_task` (a dense
    LabelTable or a SparseLabelTable)."""
    if isinstance(source, (list, tuple)):
        return table.select(list(source))
    if source is not None:
        return source if source == "all" else table.check_task(source)
    tasks = table.tasks
    if source_index is not None:
        if not 0 <= int(source_index) < len(tasks):
            raise UserError(f"source_index={source_index}: expected 0..{len(tasks) - 1} "
                            f"(this dataset has {len(tasks)} tasks)")
        return tasks[int(source_index)]
    if default in (None, ""):
        raise UserError("no source given: set source=<task> (or source_index=<k>)")
    return default if default == "all" else table.check_task(default)
