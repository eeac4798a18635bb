"""Experiment tracking as a view of what the files already hold: none, csv (Lightning's CSVLogger) or
wandb (offline by default: no account, no network; `wandb sync <run_dir>/wandb/offline-run-*` later).

`Tracker.finish()` always runs (use it as a context manager), so a failed run still closes its wandb run.

wandb on a cluster: one wandb run per row of the matrix, with an id derived from the row (its name and every
setting that changes its numbers), opened with resume="allow": a rerun, or a Slurm job requeued after a
timeout, continues the same wandb run instead of starting a second one. Rows of one sweep share a group
(`logger.group`, default <experiment>/<dataset>/<backbone>/<head>) and carry tags (dataset, backbone, head,
experiment). Lightning logs training and validation curves and, with the lr_monitor callback, the learning
rate. An offline run's directory and its `wandb sync` command are printed when it finishes."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .config import RunConfig, fingerprint, to_dict
from .errors import UserError, unknown_name

LOGGERS = ("none", "csv", "wandb")
# Config keys that neither change a row's numbers nor name it beyond its run name (which holds the resolved
# source): a rerun differing only in these is the same wandb run.
_NOT_IDENTITY = ("force", "run_dir", "logger", "paths", "source", "source_index", "experiment", "widths")


def run_id(run: RunConfig, name: str, job_type: str) -> str:
    """A stable wandb run id for one row: the same on every rerun and requeue of the same setting."""
    settings = {k: v for k, v in to_dict(run).items() if k not in _NOT_IDENTITY}
    # a row made in a multi-source job is the same row as its single run
    settings["trainer"] = {k: v for k, v in settings["trainer"].items()
                           if k not in ("num_workers", "sources_per_job", "stack_engine")}
    settings["callbacks"] = {k: v for k, v in settings["callbacks"].items() if k not in ("name", "refresh_rate")}
    return f"{job_type}-{fingerprint(run.logger.project, name, settings)}"


def row_name(run: RunConfig, source: str) -> str:
    """The wandb run name of a transfer row: source, head and seed (and fraction), unique within its group."""
    name = f"{source}/{run.head.name}/seed{run.seed}"
    return name if run.train_fraction == 1.0 else f"{name}/fraction{run.train_fraction}"


def offline_runs_hint(run: RunConfig) -> str:
    """Where a sweep's offline wandb runs are, as one `wandb sync` command (printed after a sweep)."""
    rows = Path(run.paths.outputs) / run.dataset.name / run.backbone.name / run.head.name
    return f"wandb offline runs of this sweep: wandb sync {rows}/source=*/seed=*/wandb/offline-run-*"


def group_name(run: RunConfig) -> str:
    """One group per sweep: rows of the same experiment, dataset, backbone and head."""
    return run.logger.group or f"{run.experiment or 'runs'}/{run.dataset.name}/{run.backbone.name}/{run.head.name}"


def tags(run: RunConfig) -> list[str]:
    found = [run.dataset.name, run.backbone.name, run.head.name, run.experiment]
    return [t for t in dict.fromkeys(found) if t]


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
            dir=str(self.run_dir), name=name, group=group_name(run), tags=tags(run),
            id=run_id(run, name, job_type), resume="allow",
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

    def log_history(self, history: list[dict]) -> None:
        """Per-epoch training records (training.TrainedSource.history) of a model trained outside this tracker's
        Lightning loggers (a stack of several sources): one step per epoch."""
        for row in history:
            metrics = {k: v for k, v in row.items() if isinstance(v, (int, float))}
            if self._wandb is not None:
                self._wandb.log(metrics)
            for lg in self.lightning_loggers:
                if self._wandb is None:
                    lg.log_metrics(metrics, step=int(row["epoch"]))
        for lg in self.lightning_loggers:
            if self._wandb is None:
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
            offline = self._wandb.settings.mode == "offline"
            where = Path(self._wandb.dir).parent      # <run_dir>/wandb/offline-run-<time>-<id>
            self._wandb.finish()
            self._wandb = None
            if offline:
                print(f"wandb offline run: {where}  (upload: wandb sync {where})")

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc) -> None:
        self.finish()
