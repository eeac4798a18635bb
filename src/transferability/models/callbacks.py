"""Lightning callbacks for source training, built from the names in `callbacks.use` (conf/callbacks/).

One constructor per name in BUILD; config.CALLBACKS lists the names (validated at compose time).
A callback that cannot apply to this training run (no checkpoint directory, no validation split, no
logger) is left out rather than failing: the same config serves unit tests, single runs and sweeps.
"""
from __future__ import annotations

from pathlib import Path

from lightning.pytorch import callbacks as cb
from lightning.pytorch.plugins.io import TorchCheckpointIO

from .. import io
from ..config import CALLBACKS, CallbacksConfig

LAST = "last"    # the one checkpoint file kept: <ckpt_dir>/last.ckpt, overwritten every epoch


class AtomicCheckpointIO(TorchCheckpointIO):
    """How Lightning writes a checkpoint: into a temporary file beside it, renamed once complete (io.atomic_path).
    Lightning's own atomic save stages the file in the system's temporary folder and copies it across when that is
    another file system, so a full disk left a truncated last.ckpt; here a failed write leaves the previous epoch's
    and is one line naming the file (io.write_failed)."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("storage_options are not supported by AtomicCheckpointIO")
        io.torch_save(checkpoint, path)


def _checkpoint(cfg: CallbacksConfig, *, ckpt_dir, has_val, has_logger):
    if ckpt_dir is None:
        return None
    # Only the latest epoch is kept (top-1 of no metric, one file name overwritten): it is for resuming,
    # not for model selection. Saved at the epoch's end, after its validation and early-stopping check.
    return cb.ModelCheckpoint(dirpath=str(ckpt_dir), filename=LAST, monitor=None, save_top_k=1,
                              every_n_epochs=1, save_on_train_epoch_end=True, enable_version_counter=False)


def _early_stopping(cfg: CallbacksConfig, *, ckpt_dir, has_val, has_logger):
    if not has_val:
        return None
    return cb.EarlyStopping(monitor=cfg.monitor, mode="max" if cfg.monitor.endswith("acc") else "min",
                            patience=cfg.patience, min_delta=cfg.min_delta, check_on_train_epoch_end=False)


def _lr_monitor(cfg: CallbacksConfig, *, ckpt_dir, has_val, has_logger):
    return cb.LearningRateMonitor(logging_interval="step") if has_logger else None


def _progress_bar(cfg: CallbacksConfig, *, ckpt_dir, has_val, has_logger):
    return cb.TQDMProgressBar(refresh_rate=cfg.refresh_rate)


BUILD = {"checkpoint": _checkpoint, "early_stopping": _early_stopping, "lr_monitor": _lr_monitor,
         "progress_bar": _progress_bar}
assert tuple(BUILD) == CALLBACKS


def build_callbacks(cfg: CallbacksConfig, *, ckpt_dir: Path | None, has_val: bool, has_logger: bool) -> list:
    made = (BUILD[name](cfg, ckpt_dir=ckpt_dir, has_val=has_val, has_logger=has_logger) for name in cfg.use)
    return [c for c in made if c is not None]
