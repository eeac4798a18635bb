"""Typed configs: the Hydra config is validated into these dataclasses once, at the edge (run.py).

Everything below run.py takes a `RunConfig` (or one of its parts), never a DictConfig.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import UserError, unknown_name

STAGES = ("estimate", "transfer", "analyze")


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    root: str | None = None           # the official layout; None for the embedded datasets
    image_size: int = 32              # images are resized once to image_size x image_size
    default_source: str = ""
    params: dict = field(default_factory=dict)  # dataset-specific options, validated by its module


@dataclass(frozen=True)
class BackboneConfig:
    name: str                          # small_cnn | resnet18 | resnet101 | features
    width: int = 64                    # small_cnn: channels of the first block
    embedding_dim: int | None = None   # small_cnn: penultimate size; resnets fix their own
    weights: str | None = None         # a local torchvision state_dict; nothing is downloaded
    features_path: str | None = None   # features: an .npz of precomputed embeddings (see backbones.py)


@dataclass(frozen=True)
class HeadConfig:
    name: str                          # linear_svm | logistic | ce_head
    C: float = 1.0                     # inverse regularisation strength (scikit-learn convention)
    max_iter: int = 200
    tol: float = 1e-4


@dataclass(frozen=True)
class TrainerConfig:
    name: str                          # cpu | gpu | debug
    accelerator: str = "cpu"
    devices: int = 1
    precision: str = "32-true"         # gpu: bf16-mixed
    channels_last: bool = False
    max_epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 5e-4
    num_workers: int = 0
    limit_train_batches: float | int | None = None  # debug: a few batches only
    deterministic: bool = True
    augment: bool = False              # random horizontal flips (faces, animals, birds)
    val_fraction: float = 0.1          # held out of train for validation (CelebA: its official val); 0: none


# Lightning callbacks a source model may train with; models/callbacks.py builds them from this list of names.
CALLBACKS = ("checkpoint", "early_stopping", "lr_monitor", "progress_bar")


@dataclass(frozen=True)
class CallbacksConfig:
    name: str = "default"              # default | cluster | none (the defaults below are `default`)
    use: tuple = CALLBACKS             # names from CALLBACKS
    monitor: str = "val_loss"          # early stopping: val_loss (lower is better) or val_acc (higher)
    patience: int = 5                  # epochs without improvement before stopping
    min_delta: float = 0.0
    refresh_rate: int = 1              # progress bar: redraw every n batches (large in cluster log files)


@dataclass(frozen=True)
class LoggerConfig:
    name: str                          # none | csv | wandb
    project: str = "transferability"
    entity: str | None = None
    mode: str = "offline"
    group: str | None = None           # wandb group; None: <experiment>/<dataset>/<backbone>/<head>


@dataclass(frozen=True)
class PathsConfig:
    outputs: str = "outputs"
    cache: str = "outputs/cache"


@dataclass(frozen=True)
class RunConfig:
    stage: str
    dataset: DatasetConfig
    backbone: BackboneConfig
    head: HeadConfig
    trainer: TrainerConfig
    callbacks: CallbacksConfig
    logger: LoggerConfig
    paths: PathsConfig
    source: str | None = None
    source_index: int | None = None
    target: str | list[str] = "all"
    split: str = "train"
    seed: int = 0
    force: bool = False
    train_fraction: float = 1.0
    bias_correction: bool = False
    reference: dict = field(default_factory=dict)  # published values to print beside ours (experiments)
    run_dir: str = "."                 # the Hydra run directory this run writes into
    experiment: str | None = None      # the +experiment= choice (set by run.py from Hydra; names wandb groups)


def build(cls, node: Any, where: str):
    """Build dataclass `cls` from a plain mapping, naming unknown keys with close matches."""
    if not isinstance(node, dict):
        raise UserError(f"config {where}: expected a mapping, got {node!r}")
    names = [f.name for f in fields(cls)]
    for key in node:
        if key not in names:
            raise unknown_name(f"key in config group {where!r}:", key, names)
    try:
        return cls(**node)
    except TypeError as e:  # a required key is missing
        raise UserError(f"config {where}: {e}") from None


_GROUPS = {
    "dataset": DatasetConfig,
    "backbone": BackboneConfig,
    "head": HeadConfig,
    "trainer": TrainerConfig,
    "callbacks": CallbacksConfig,
    "logger": LoggerConfig,
    "paths": PathsConfig,
}


def from_dict(cfg: dict, run_dir: str = ".") -> RunConfig:
    """Validate a resolved config (a plain dict, `hydra` key removed) into a RunConfig."""
    cfg = dict(cfg)
    cfg.pop("hydra", None)
    parts = {}
    for group, cls in _GROUPS.items():
        node = dict(cfg.pop(group, {}) or {})
        if group == "dataset":  # dataset yaml files hold their own options next to the common keys
            node = split_params(node)
        parts[group] = build(cls, node, group)
    run = build(RunConfig, {**cfg, **parts, "run_dir": run_dir}, "top level")
    if run.stage not in STAGES:
        raise unknown_name("stage", run.stage, STAGES)
    if not 0.0 < run.train_fraction <= 1.0:
        raise UserError(f"train_fraction={run.train_fraction}: expected a number in (0, 1]")
    _check_callbacks(run)
    return run


def _check_callbacks(run: RunConfig) -> None:
    cb = run.callbacks
    for name in cb.use:
        if name not in CALLBACKS:
            raise unknown_name("callback in callbacks.use:", name, CALLBACKS)
    if cb.monitor not in ("val_loss", "val_acc"):
        raise UserError(f"callbacks.monitor={cb.monitor!r}: expected val_loss or val_acc")
    if cb.patience < 1 or cb.refresh_rate < 1:
        raise UserError(f"callbacks.patience={cb.patience}, refresh_rate={cb.refresh_rate}: expected integers >= 1")
    if not 0.0 <= run.trainer.val_fraction < 1.0:
        raise UserError(f"trainer.val_fraction={run.trainer.val_fraction}: expected a number in [0, 1)")
    if "early_stopping" in cb.use and run.trainer.val_fraction == 0:
        raise UserError("callbacks early_stopping watches the validation loss, but trainer.val_fraction=0 "
                        "leaves no validation split: set trainer.val_fraction>0 or callbacks=none")


def to_dict(run: RunConfig) -> dict:
    return dataclasses.asdict(run)


def fingerprint(*parts: Any) -> str:
    """A short stable hash of config parts (dataclasses or plain values): cache keys."""
    plain = [dataclasses.asdict(p) if dataclasses.is_dataclass(p) else p for p in parts]
    blob = json.dumps(plain, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def split_params(node: dict) -> dict:
    """A dataset node's own options (anything not a DatasetConfig field) go into `params`."""
    common = {f.name for f in fields(DatasetConfig)}
    node = dict(node)
    params = {k: node.pop(k) for k in list(node) if k not in common}
    node["params"] = {**node.get("params", {}), **params}
    return node
