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


@dataclass(frozen=True)
class LoggerConfig:
    name: str                          # none | csv | wandb
    project: str = "transferability"
    entity: str | None = None
    mode: str = "offline"


@dataclass(frozen=True)
class PathsConfig:
    outputs: str = "outputs"
    cache: str = "outputs/cache"


@dataclass(frozen=True)
class EstimatorsConfig:
    """Choices of the feature-based estimators (estimators/transrate_gbc_nleep.py); conf/config.yaml says why."""
    transrate_eps: float = 1e-4
    gbc_pca_dim: int = 64
    gbc_gaussian: str = "spherical"
    gbc_var_floor: float = 1e-4
    nleep_pca_variance: float = 0.8
    nleep_components_per_class: int = 5
    nleep_fit_rows: int = 10_000

    def __post_init__(self):
        def bad(key, expected):
            raise UserError(f"config estimators.{key}={getattr(self, key)!r}: expected {expected}")

        for key in ("transrate_eps", "gbc_var_floor"):
            if isinstance(getattr(self, key), bool) or not isinstance(getattr(self, key), (int, float)) \
                    or not getattr(self, key) > 0:
                bad(key, "a number > 0")
        for key in ("gbc_pca_dim", "nleep_components_per_class", "nleep_fit_rows"):
            if isinstance(getattr(self, key), bool) or not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                bad(key, "an integer >= 1")
        if self.gbc_gaussian not in ("spherical", "diagonal"):
            raise unknown_name("estimators.gbc_gaussian", self.gbc_gaussian, ("spherical", "diagonal"))
        if isinstance(self.nleep_pca_variance, bool) or not isinstance(self.nleep_pca_variance, (int, float)) \
                or not 0 < self.nleep_pca_variance <= 1:
            bad("nleep_pca_variance", "a fraction of the variance in (0, 1]")


@dataclass(frozen=True)
class RunConfig:
    stage: str
    dataset: DatasetConfig
    backbone: BackboneConfig
    head: HeadConfig
    trainer: TrainerConfig
    logger: LoggerConfig
    paths: PathsConfig
    estimators: EstimatorsConfig = field(default_factory=EstimatorsConfig)
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
    "logger": LoggerConfig,
    "paths": PathsConfig,
    "estimators": EstimatorsConfig,
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
    return run


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
