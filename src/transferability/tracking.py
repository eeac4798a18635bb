"""Experiment tracking as a view of what the files already hold: none, csv (Lightning's CSVLogger) or
wandb (offline by default: no account, no network; `wandb sync <run_dir>/wandb/offline-run-*` later).

`Tracker.finish()` always runs (use it as a context manager), so a failed run still closes its wandb run.

wandb on a cluster: one wandb run per row of the matrix, with an id derived from the row (its name and every
setting that changes its numbers), opened with resume="allow": a rerun, or a Slurm job requeued after a
timeout, continues the same wandb run instead of starting a second one. Rows of one sweep share a group
(`logger.group`, default <experiment>/<dataset>/<backbone>/<head>) and carry tags (dataset, backbone, head,
experiment). Lightning logs training and validation curves and, with the lr_monitor callback, the learning
rate. An offline run's directory and its `wandb sync` command are printed when it finishes.

Lineage: each row logs its results.csv as an artifact (`results-<run id>`, type `results`); the analysis run
declares every row artifact it read as an input, so a dashboard links the matrix back to each row's run."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from . import identity
from .config import RunConfig, to_dict
from .errors import UserError, unknown_name

log = logging.getLogger(__name__)

LOGGERS = ("none", "csv", "wandb")
ARTIFACT_TYPE = "results"


def run_id(run: RunConfig, name: str, job_type: str) -> str:
    """A stable wandb run id for one row: the same on every rerun and requeue of the same setting. Derived from
    the row's identity (identity.settings: every setting that changes its numbers; the source through `name`,
    which holds the resolved one)."""
    settings = {k: v for k, v in identity.settings(run).items() if k != "source"}
    return f"{job_type}-{identity.fingerprint({'project': run.logger.project, 'name': name, **settings})}"


def row_name(run: RunConfig, source: str) -> str:
    """The wandb run name of a transfer row: source, head and seed (and fraction), then its non-default settings
    (identity.entries), unique within its group."""
    name = f"{source}/{run.head.name}/seed{run.seed}"
    name = name if run.train_fraction == 1.0 else f"{name}/fraction{run.train_fraction}"
    found = identity.entries(run)
    return f"{name}/{','.join(found)}" if found else name


def offline_runs_hint(rows: Path) -> str:
    """Where a sweep's offline wandb runs are (`rows`: the folder of its rows), as one `wandb sync` command."""
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

    @property
    def artifact_name(self) -> str | None:
        """The name this run's results artifact gets (None without wandb): `results-<run id>`."""
        return f"results-{self._wandb.id}" if self._wandb is not None else None

    def log_results(self, path: Path, meta: dict | None = None) -> None:
        """A row's results.csv as this run's output artifact (`artifact_name`)."""
        if self._wandb is None:
            return
        import wandb

        art = wandb.Artifact(self.artifact_name, type=ARTIFACT_TYPE, metadata=meta or {})
        art.add_file(str(path), name=Path(path).name)
        self._wandb.log_artifact(art)

    def use_results(self, rows: list[tuple[str, Path]]) -> None:
        """Declare each row's results artifact (name, its results.csv) an input of this run: the analysis' lineage.

        The artifact is built from the row's file, so its digest is the one the row logged and, once synced, it is
        that version. Offline, wandb 0.31's `use_artifact` refuses (it asks the server); what it does online with
        an artifact built locally is log it with `use_after_commit`, which is recorded in the offline run and
        carried out by `wandb sync`, so that is what is done here."""
        if self._wandb is None:
            return
        import wandb

        for name, path in rows:
            art = wandb.Artifact(name, type=ARTIFACT_TYPE)
            art.add_file(str(path), name=Path(path).name)
            if self._wandb.settings.mode == "offline":
                self._wandb._log_artifact(art, aliases=[], is_user_created=True, use_after_commit=True)
            else:
                self._wandb.use_artifact(art)

    def finish(self) -> None:
        if self._wandb is not None:
            offline = self._wandb.settings.mode == "offline"
            where = Path(self._wandb.dir).parent      # <run_dir>/wandb/offline-run-<time>-<id>
            self._wandb.finish()
            self._wandb = None
            if offline:
                log.info(f"wandb offline run: {where}  (upload: wandb sync {where})")

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc) -> None:
        self.finish()
