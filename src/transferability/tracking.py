"""Experiment tracking as a view of what the files already hold: none, csv (Lightning's CSVLogger) or
wandb (offline by default: no account, no network; `wandb sync <run_dir>/wandb/offline-run-*` later).

`Tracker.finish()` always runs (use it as a context manager), so a failed run still closes its wandb run."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .config import RunConfig, to_dict
from .errors import UserError, unknown_name

LOGGERS = ("none", "csv", "wandb")


class Tracker:
    def __init__(self, run: RunConfig, name: str, job_type: str):
        self.kind = run.logger.name
        if self.kind not in LOGGERS:
            raise unknown_name("logger", self.kind, LOGGERS)
        self.run_dir = Path(run.run_dir)
        self.lightning_loggers: list = []
        self._wandb = None
        if self.kind == "csv":
            from lightning.pytorch.loggers import CSVLogger

            self.lightning_loggers.append(CSVLogger(save_dir=str(self.run_dir), name="", version="csv"))
        elif self.kind == "wandb":
            self._start_wandb(run, name, job_type)

    def _start_wandb(self, run: RunConfig, name: str, job_type: str) -> None:
        if run.logger.mode not in ("offline", "online", "disabled"):
            raise UserError(f"logger.mode={run.logger.mode!r}: expected offline, online or disabled")
        import wandb
        from lightning.pytorch.loggers import WandbLogger

        os.environ.setdefault("WANDB_SILENT", "true")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._wandb = wandb.init(
            project=run.logger.project, entity=run.logger.entity, mode=run.logger.mode,
            dir=str(self.run_dir), name=name, group=f"{run.dataset.name}/{run.backbone.name}",
            job_type=job_type, config=to_dict(run), reinit="finish_previous",
            settings=wandb.Settings(console="off"),
        )
        self.lightning_loggers.append(WandbLogger(experiment=self._wandb))

    def log_metrics(self, metrics: dict) -> None:
        if self._wandb is not None:
            self._wandb.summary.update(metrics)
        for lg in self.lightning_loggers:
            if self._wandb is None:
                lg.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
                lg.save()

    def log_table(self, key: str, df: pd.DataFrame) -> None:
        if self._wandb is not None:
            import wandb

            self._wandb.log({key: wandb.Table(dataframe=df.reset_index(drop=True))})

    def log_image(self, key: str, path: Path) -> None:
        if self._wandb is not None:
            import wandb

            self._wandb.log({key: wandb.Image(str(path))})

    def finish(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc) -> None:
        self.finish()
