"""Stand-ins for a preemption in training tests: Lightning callbacks that raise `Killed` part-way through a fit."""
from __future__ import annotations

import lightning.pytorch as pl


class Killed(RuntimeError):
    """What a stand-in raises; the test expects it where the real job would have died."""


class KillDuring(pl.Callback):
    """Dies in the middle of epoch `epoch` (0-based), after `batch` steps of it."""

    def __init__(self, epoch: int, batch: int):
        self.epoch, self.batch = epoch, batch

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            raise Killed(f"killed in epoch {self.epoch} after batch {batch_idx}")


class KillAtEpochStart(pl.Callback):
    """Dies as epoch `epoch` (0-based) starts: the epochs before it are done (and checkpointed, if checkpointing)."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == self.epoch:
            raise Killed(f"killed as epoch {self.epoch} started")
