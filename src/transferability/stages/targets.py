"""What one transfer row is made of, decided before anything trains: its source task, the targets its heads are
fitted for (the dedicated cell first), their labels as integer codes, and the train and test rows.

Targets no head can learn are skipped with a line and recorded: a task with one class, and one whose test
images have no class seen in training (CelebA's identity: its official split is identity-disjoint, so its test
error is 1 by construction and its head would be the row's costliest).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config import RunConfig
from ..errors import UserError

log = logging.getLogger(__name__)

TRAIN, TEST = "trainval", "test"   # heads and CE see train (+ val where a dataset has one)
# source=random: the same backbone, untrained (seeded initialisation), as one more row of the matrix, so that
# "training on the source matters" is measured. It knows no source labels: its source task is one constant class,
# so CE = H(Y), l_Z = 0 and k-bar is the target prior (Theorem 1 still applies, with bound -H(Y)).
RANDOM = "random"


@dataclass(frozen=True)
class TargetPlan:
    """One row's tasks and rows. `codes` (n, T): every image's class code per target, -1 = missing, classes
    numbered in sorted label order; `y_source` (n,): the source's codes (all 0 for the untrained `random`
    source). `train_rows` / `test_rows`: row indices into the dataset's label table."""
    source: str
    targets: list[str]
    codes: np.ndarray
    n_classes: list[int]
    y_source: np.ndarray
    k_source: int
    train_rows: np.ndarray
    test_rows: np.ndarray
    skipped: list[str]        # targets asked for but not fitted (recorded in source.json and done.json)
    random: bool              # the untrained backbone's row (source=random)
    val: np.ndarray           # (len(train_rows),) bool: the validation rows among them (head.C=auto picks C there)

    @property
    def y_train(self) -> np.ndarray:
        return self.codes[self.train_rows]

    @property
    def y_test(self) -> np.ndarray:
        return self.codes[self.test_rows]

    @property
    def y_source_train(self) -> np.ndarray:
        return self.y_source[self.train_rows]


def plan_targets(run: RunConfig, table) -> TargetPlan:
    """The row's source (by name, sweep index or the dataset's default), targets and rows."""
    random = run.source == RANDOM and RANDOM not in table.tasks
    source = RANDOM if random else table.resolve_source(run.source, run.source_index, run.dataset.default_source)
    if not isinstance(source, str) or source == "all":
        raise UserError(f"source={run.source}: a transfer row has one source; for several, name them in one job "
                        "(source=[a,b,c], trained together) or sweep them (python run.py -m source=a,b,c)")
    targets = table.select(run.target)
    if source not in targets and not random:
        targets = [source] + targets   # the dedicated cell: source == target
    codes, n_classes = encode_labels(table.labels[targets])
    train_rows, test_rows = split_rows(table, run.train_fraction, run.seed)
    constant = [t for t, k in zip(targets, n_classes) if k < 2]
    if source in constant:
        raise UserError(f"source task {source!r} has a single class in this dataset: nothing to learn")
    unseen = [t for j, t in enumerate(targets) if t != source and n_classes[j] >= 2
              and not shares_a_class(codes[train_rows, j], codes[test_rows, j])]
    if constant or unseen:
        keep = [j for j, (t, k) in enumerate(zip(targets, n_classes)) if k >= 2 and t not in unseen]
        targets, codes, n_classes = [targets[j] for j in keep], codes[:, keep], [n_classes[j] for j in keep]
    if constant:
        log.info(f"skipping {len(constant)} single-class target(s): {', '.join(constant)}")
    if unseen:
        log.info(f"skipping {len(unseen)} target(s) whose test classes never occur in training (no head can "
                 f"predict them): {', '.join(unseen)}")
    if random:
        y_source, k_source = np.zeros(len(codes), np.int64), 1
    else:
        y_source, k_source = codes[:, targets.index(source)], n_classes[targets.index(source)]
    val = np.isin(train_rows, validation_split(table, train_rows, run.trainer.val_fraction, run.seed)[1])
    return TargetPlan(source, targets, codes, n_classes, y_source, k_source, train_rows, test_rows,
                      constant + unseen, random, val)


def validation_split(table, rows: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows the source model fits, rows it is validated on each epoch): the dataset's official val split
    where it has one (CelebA), else a seeded `val_fraction` of the rows; none when val_fraction is 0.
    Heads and CE still see all `rows` (train + val)."""
    if val_fraction <= 0 or len(rows) < 2:
        return rows, rows[:0]
    official = table.mask("val")[rows]
    if official.any() and not official.all():
        return rows[~official], rows[official]
    rng = np.random.default_rng([seed, 1])   # not the stream split_rows draws train_fraction from
    n_val = min(len(rows) - 1, max(1, int(round(val_fraction * len(rows)))))
    val = np.zeros(len(rows), bool)
    val[rng.choice(len(rows), size=n_val, replace=False)] = True
    return rows[~val], rows[val]


def encode_labels(labels: pd.DataFrame) -> tuple[np.ndarray, list[int]]:
    """Integer codes (n, T), -1 = missing, with classes numbered in sorted label order."""
    codes = np.empty(labels.shape, dtype=np.int64)
    n_classes = []
    for j, col in enumerate(labels.columns):
        c, uniques = pd.factorize(labels[col], sort=True)
        codes[:, j] = c
        n_classes.append(len(uniques))
    return codes, n_classes


def shares_a_class(train: np.ndarray, test: np.ndarray) -> bool:
    """Whether some labelled test row has a class that labelled training rows have (codes, -1 = missing)."""
    seen = np.unique(train[train >= 0])
    return bool(np.isin(test[test >= 0], seen).any())


def split_rows(table, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the training rows (a seeded random fraction of train+val) and the test rows."""
    train = np.flatnonzero(table.mask(TRAIN))
    test = np.flatnonzero(table.mask(TEST))
    if not len(train) or not len(test):
        raise UserError(f"the dataset has {len(train)} train and {len(test)} test images: transfer needs both")
    if train_fraction < 1.0:
        rng = np.random.default_rng(seed)
        keep = max(2, int(round(train_fraction * len(train))))
        train = np.sort(rng.choice(train, size=keep, replace=False))
    return train, test
