"""A label table too large to hold dense: binary tasks given as (image, task, present) lines; no line = unknown.

Open Images has about 9 million images and 20,000 classes, of which each image has a few labelled lines; a
dense images x classes table would take 180 GB even as int8. This table keeps the lines only (9 bytes each)
and offers the same questions as `LabelTable` (task names with close matches, splits, source selection), plus
the sparse indicator matrices the all-pairs estimate multiplies (estimators/sparse_pairs.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import UserError, unknown_name
from .labels import SPLITS, resolve_source

# `.labels` (a dense DataFrame, for code written for LabelTable) only below this many cells.
MAX_DENSE_CELLS = 20_000_000


@dataclass(frozen=True, eq=False)
class SparseLabelTable:
    """`image_ids` (N,) and `split_codes` (N,) index into SPLITS; `task_ids` (T,) unique task names and
    `display` (T,) their readable names; `image`, `task`, `present`: one entry per labelled pair, each pair
    at most once. `unverified_negative`: a pair without a line counts as absent instead of unknown."""

    image_ids: np.ndarray
    split_codes: np.ndarray
    task_ids: pd.Index
    display: np.ndarray
    image: np.ndarray
    task: np.ndarray
    present: np.ndarray
    unverified_negative: bool = False
    multiclass: tuple[str, ...] = field(default=())

    @property
    def tasks(self) -> list[str]:
        return list(self.task_ids)

    @property
    def n(self) -> int:
        return len(self.image_ids)

    @property
    def split(self) -> pd.Series:
        return pd.Series(np.asarray(SPLITS, dtype=object)[self.split_codes], index=self.image_ids, name="split")

    @property
    def labels(self) -> pd.DataFrame:
        """The dense table (1 present, 0 absent, NaN unknown) for small tables only."""
        if self.n * len(self.task_ids) > MAX_DENSE_CELLS:
            raise UserError(f"this label table has {self.n:,} images x {len(self.task_ids):,} tasks: too large to "
                            f"hold dense; only stage=estimate (sparse, all pairs) works at this size")
        fill = 0.0 if self.unverified_negative else np.nan
        dense = np.full((self.n, len(self.task_ids)), fill)
        dense[self.image, self.task] = self.present
        return pd.DataFrame(dense, index=pd.Index(self.image_ids, name="image_id"), columns=self.tasks)

    # -- task names: ids (e.g. /m/0bt9lr) or unique display names (e.g. Dog) --
    def check_task(self, name: str) -> str:
        if name in self.task_ids:
            return name
        hits = np.flatnonzero(self.display == name)
        if len(hits) == 1:
            return self.task_ids[hits[0]]
        if len(hits) > 1:
            raise UserError(f"task name {name!r} is the display name of {len(hits)} tasks "
                            f"({', '.join(self.task_ids[hits[:5]])}); name one by its id")
        raise unknown_name("task", name, list(self.task_ids) + list(dict.fromkeys(self.display)))

    def select(self, names) -> list[str]:
        if names is None or names in ("all", "binary"):
            return self.tasks
        if isinstance(names, str):
            names = [names]
        return [self.check_task(n) for n in names]

    def resolve_source(self, source, source_index: int | None, default: str | None):
        return resolve_source(self, source, source_index, default)

    def positions(self, names: list[str]) -> np.ndarray:
        return self.task_ids.get_indexer(names)

    # -- rows --
    def mask(self, split: str) -> np.ndarray:
        wanted = {"trainval": ("train", "val"), "all": SPLITS}.get(split, (split,))
        for w in wanted:
            if w not in SPLITS:
                raise UserError(f"unknown split {split!r} (expected one of: train, val, test, trainval, all)")
        return np.isin(self.split_codes, [SPLITS.index(w) for w in wanted])

    def subset(self, split: str) -> "SparseLabelTable":
        if split == "all":
            return self
        keep = self.mask(split)
        if keep.all():
            return self
        new_index = np.cumsum(keep) - 1
        lines = keep[self.image]
        return SparseLabelTable(self.image_ids[keep], self.split_codes[keep], self.task_ids, self.display,
                                new_index[self.image[lines]].astype(self.image.dtype), self.task[lines],
                                self.present[lines], self.unverified_negative, self.multiclass)

    def indicators(self, tasks: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix | None]:
        """Present P and verified-absent A (images x len(tasks), int32 0/1, CSR) of the given task positions;
        A is None when unverified pairs count as absent (every pair known)."""
        col = np.full(len(self.task_ids), -1, dtype=np.int64)
        col[tasks] = np.arange(len(tasks))
        c = col[self.task]
        sel = c >= 0

        def matrix(which: np.ndarray) -> sp.csr_matrix:
            rows, cols = self.image[which], c[which]
            return sp.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(self.n, len(tasks)))

        present = matrix(sel & self.present)
        absent = None if self.unverified_negative else matrix(sel & ~self.present)
        return present, absent
