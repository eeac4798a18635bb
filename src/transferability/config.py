"""Typed configs: the Hydra config is validated into these dataclasses once, at the edge (run.py).

Everything below run.py takes a `RunConfig` (or one of its parts), never a DictConfig.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Union

from .errors import UserError, unknown_name

STAGES = ("estimate", "transfer", "analyze", "widths")


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    root: str | None                  # the official layout; None for the embedded datasets
    image_size: int                   # images are resized once to image_size x image_size
    default_source: str
    params: dict = field(default_factory=dict)  # dataset-specific options, validated by its module


@dataclass(frozen=True)
class BackboneConfig:
    name: str                          # small_cnn | resnet18 | resnet101 | features
    width: int                         # small_cnn: channels of the first block
    embedding_dim: int | None          # small_cnn: penultimate size; resnets fix their own (null)
    weights: str | None                # a local torchvision state_dict; nothing is downloaded
    path: str | None                   # features: an .npz of precomputed embeddings (see backbones.py)


@dataclass(frozen=True)
class HeadConfig:
    name: str                          # linear_svm | logistic | ce_head
    C: float | str                     # inverse regularisation strength (scikit-learn convention), or `auto`
    C_grid: list[float]                # head.C=auto: the values tried per target on the validation split
    max_iter: int
    tol: float


@dataclass(frozen=True)
class TrainerConfig:
    name: str                          # cpu | gpu | debug
    accelerator: str
    devices: int
    precision: str | int               # gpu: bf16-mixed; Lightning also takes 32, 16, 64
    channels_last: bool
    max_epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    num_workers: int
    limit_train_batches: float | int | None  # debug: a few batches only
    deterministic: bool
    augment: bool                      # random horizontal flips (faces, animals, birds)
    threads: int | None                # CPU threads (torch, BLAS); null: what the job was given (threads.py)
    val_fraction: float                # held out of train for validation (CelebA: its official val); 0: none
    sources_per_job: int               # matrix sweeps: sources one job trains together (stages/stacked.py)
    stack_engine: str                  # how a job's sources share a batch: loop | grouped (models/stack_nets.py)


TRANSFERS = ("linear", "finetune")   # the ground truths a row can be made with (stages/finetune.py)


@dataclass(frozen=True)
class TransferConfig:
    """How a row's transfer (its `test_error`, the ground truth) is measured: `linear` (the paper's frozen source
    and fitted head) or `finetune` (the whole source network trained on each target; conf/transfer/finetune.yaml).
    The fine-tuning keys are absent from `linear`."""
    name: str                          # linear | finetune
    lr_factors: list[float] | None = None   # finetune: learning rates tried, as multiples of trainer.lr
    max_epochs: int | None = None      # finetune: epochs at most
    keep_models: bool | None = None    # finetune: keep each target's fine-tuned weights


# Lightning callbacks a source model may train with; models/callbacks.py builds them from this list of names.
CALLBACKS = ("checkpoint", "early_stopping", "lr_monitor", "progress_bar")


@dataclass(frozen=True)
class CallbacksConfig:
    name: str                          # default | cluster | none
    use: list[str] | tuple             # names from CALLBACKS (a list from YAML)
    monitor: str                       # early stopping: val_loss (lower is better) or val_acc (higher)
    patience: int                      # epochs without improvement before stopping
    min_delta: float
    refresh_rate: int                  # progress bar: redraw every n batches (large in cluster log files)
    progress_interval: float | None    # seconds between redraws of the extraction and decoding bars; null: none


@dataclass(frozen=True)
class LoggerConfig:
    name: str                          # none | csv | wandb
    project: str | None = None         # wandb only (conf/logger/wandb.yaml); absent from the other loggers
    entity: str | None = None
    mode: str | None = None
    group: str | None = None           # wandb group; None: <experiment>/<dataset>/<backbone>/<head>


@dataclass(frozen=True)
class PathsConfig:
    outputs: str
    cache: str


@dataclass(frozen=True)
class EstimateConfig:
    """stage=estimate on a sparse label table (openimages): what ce.csv keeps of the full matrix."""
    top_k: int                         # best sources per target in ce.csv
    min_pair_rows: int                 # a source ranks for a target only on >= this many images labelled for both


GBC_GAUSSIANS = ("spherical", "diagonal")   # estimators.gbc.GAUSSIANS (a test keeps them equal)


@dataclass(frozen=True)
class EstimatorsConfig:
    """Settings of the model-based estimators, each passed by name to the estimator that takes it
    (estimators/registry.py); their values and why live in conf/config.yaml's `estimators:` block."""
    transrate_eps: float
    gbc_pca_dim: int
    gbc_gaussian: str
    gbc_var_floor: float
    nleep_pca_variance: float
    nleep_components_per_class: int
    nleep_fit_rows: int
    knn_rows: int

    def __post_init__(self):
        # Types and ranges are checked with every other key (RANGES); a name gets close matches.
        if self.gbc_gaussian not in GBC_GAUSSIANS:
            raise unknown_name("estimators.gbc_gaussian", self.gbc_gaussian, GBC_GAUSSIANS)


@dataclass(frozen=True)
class RunConfig:
    stage: str
    dataset: DatasetConfig
    backbone: BackboneConfig
    head: HeadConfig
    transfer: TransferConfig
    trainer: TrainerConfig
    callbacks: CallbacksConfig
    logger: LoggerConfig
    paths: PathsConfig
    estimate: EstimateConfig
    estimators: EstimatorsConfig
    source: str | list[str] | None
    source_index: int | list[int] | None   # a list: one job over several sources (stages/stacked.py)
    target: str | list[str]
    split: str
    seed: int
    force: bool
    train_fraction: float
    bias_correction: bool
    widths: list[int]                  # stage=widths: the embedding sizes D compared
    # Set by experiments and by run.py, not values a user chooses: no default to keep in step with the YAML.
    reference: dict = field(default_factory=dict)  # published values to print beside ours (experiments)
    run_dir: str = "."                 # the Hydra run directory this run writes into
    experiment: str | None = None      # the experiment= choice (set by run.py from Hydra; names wandb groups)


def build(cls, node: Any, where: str):
    """Build dataclass `cls` from a plain mapping, naming unknown keys with close matches."""
    if not isinstance(node, dict):
        raise UserError(f"config {where}: expected a mapping, got {node!r}")
    names = [f.name for f in fields(cls)]
    for key in node:
        if key not in names:
            raise unknown_name(f"key in config group {where!r}:", key, names)
    prefix = "" if where == "top level" else f"{where}."
    hints = typing.get_type_hints(cls)
    for key, value in node.items():
        if not dataclasses.is_dataclass(hints[key]):
            check_value(f"{prefix}{key}", value, hints[key], RANGES.get(f"{prefix}{key}"))
    try:
        return cls(**node)
    except TypeError as e:  # a required key is missing
        raise UserError(f"config {where}: {e}") from None


# Ranges checked at compose time, before any data loads: (test, what the message says is expected).
RANGES = {
    "trainer.max_epochs": (lambda v: v >= 1, ">= 1 (an untrained model gives no transfer row)"),
    "trainer.batch_size": (lambda v: v >= 1, ">= 1"),
    "trainer.num_workers": (lambda v: v >= 0, ">= 0"),
    "trainer.threads": (lambda v: v is None or v >= 1, "a positive integer, or null for what the job was given"),
    "trainer.lr": (lambda v: v > 0, "> 0"),
    "trainer.weight_decay": (lambda v: v >= 0, ">= 0"),
    "trainer.limit_train_batches": (lambda v: v is None or v > 0, "> 0 or null"),
    "dataset.image_size": (lambda v: v >= 1, ">= 1"),
    "backbone.width": (lambda v: v >= 1, ">= 1"),
    "backbone.embedding_dim": (lambda v: v is None or v >= 1, ">= 1 or null"),
    "head.C": (lambda v: v == "auto" if isinstance(v, str) else v > 0,
               "a number > 0, or `auto` (chosen per target on the validation split)"),
    "head.C_grid": (lambda v: len(v) >= 1 and all(c > 0 for c in v), "a non-empty list of numbers > 0"),
    "transfer.lr_factors": (lambda v: v is None or (len(v) >= 1 and all(f > 0 for f in v)),
                            "a non-empty list of numbers > 0 (multiples of trainer.lr)"),
    "transfer.max_epochs": (lambda v: v is None or v >= 1, ">= 1"),
    "head.max_iter": (lambda v: v >= 1, ">= 1"),
    "head.tol": (lambda v: v > 0, "> 0"),
    "seed": (lambda v: 0 <= v < 2**32, "in [0, 2**32)"),
    "source_index": (lambda v: v is None or (len(v) > 0 and min(v) >= 0 if isinstance(v, list) else v >= 0),
                     "a task number >= 0, a non-empty list of them, or null"),
    "trainer.sources_per_job": (lambda v: v >= 1, ">= 1"),
    "train_fraction": (lambda v: 0.0 < v <= 1.0, "a number in (0, 1]"),
    "estimate.top_k": (lambda v: v >= 1, "a positive integer"),
    "estimate.min_pair_rows": (lambda v: v >= 1, "a positive integer"),
    "estimators.transrate_eps": (lambda v: v > 0, "> 0"),
    "estimators.gbc_var_floor": (lambda v: v > 0, "> 0"),
    "estimators.gbc_pca_dim": (lambda v: v >= 1, ">= 1"),
    "estimators.nleep_components_per_class": (lambda v: v >= 1, ">= 1"),
    "estimators.nleep_fit_rows": (lambda v: v >= 1, ">= 1"),
    "estimators.knn_rows": (lambda v: v >= 2, ">= 2 (leave-one-out needs another row)"),
    "estimators.nleep_pca_variance": (lambda v: 0 < v <= 1, "a fraction of the variance in (0, 1]"),
    "target": (lambda v: not isinstance(v, list) or len(v) > 0, "`all` or a non-empty list of task names"),
    "widths": (lambda v: len(v) >= 2 and all(d >= 1 for d in v) and len(set(v)) == len(v),
               "a list of at least two distinct embedding sizes >= 1"),
    "source": (lambda v: not isinstance(v, list) or len(v) > 0, "a task name, `all` or a non-empty list"),
}


def check_value(key: str, value: Any, tp: Any, rule=None) -> None:
    """One line naming the key, the value and what is expected when `value` does not fit `tp` or its range."""
    if not _fits(value, tp):
        raise UserError(f"{key}={value!r}: expected {_describe(tp)}")
    if rule is not None:
        test, expected = rule
        if not test(value):
            raise UserError(f"{key}={value!r}: expected {_describe(tp)} {expected}"
                            if not expected.startswith(("a ", "`")) else f"{key}={value!r}: expected {expected}")


def _fits(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_fits(value, a) for a in typing.get_args(tp))
    if origin is list:
        return isinstance(value, list) and all(_fits(v, typing.get_args(tp)[0]) for v in value)
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:   # an integer is a fine float (lr=1)
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, tp)


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is list:
        return "a list of " + _describe(typing.get_args(tp)[0]).split(" ", 1)[-1] + "s"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false", dict: "a mapping",
            type(None): "null"}.get(tp, getattr(tp, "__name__", str(tp)))


GROUPS = {
    "dataset": DatasetConfig,
    "backbone": BackboneConfig,
    "head": HeadConfig,
    "transfer": TransferConfig,
    "trainer": TrainerConfig,
    "callbacks": CallbacksConfig,
    "logger": LoggerConfig,
    "paths": PathsConfig,
    "estimate": EstimateConfig,
    "estimators": EstimatorsConfig,
}


def from_dict(cfg: dict, run_dir: str = ".") -> RunConfig:
    """Validate a resolved config (a plain dict, `hydra` key removed) into a RunConfig."""
    cfg = dict(cfg)
    cfg.pop("hydra", None)
    parts = {}
    for group, cls in GROUPS.items():
        node = dict(cfg.pop(group, {}) or {})
        if group == "dataset":  # dataset yaml files hold their own options next to the common keys
            node = split_params(node)
        parts[group] = build(cls, node, group)
    run = build(RunConfig, {**cfg, **parts, "run_dir": run_dir}, "top level")
    if run.stage not in STAGES:
        raise unknown_name("stage", run.stage, STAGES)
    check_trainer(run.trainer)
    _check_callbacks(run)
    _check_transfer(run)
    return run


def _check_transfer(run: RunConfig) -> None:
    t = run.transfer
    if t.name not in TRANSFERS:
        raise unknown_name("transfer", t.name, TRANSFERS)
    extra = [k for k in ("lr_factors", "max_epochs", "keep_models") if getattr(t, k) is not None]
    if t.name == "linear" and extra:
        raise UserError(f"transfer.{extra[0]} is a fine-tuning setting: add transfer=finetune, or drop it")
    if t.name == "finetune":
        missing = [k for k in ("lr_factors", "max_epochs", "keep_models") if getattr(t, k) is None]
        if missing:
            raise UserError(f"transfer=finetune needs transfer.{missing[0]} (conf/transfer/finetune.yaml)")
        if run.trainer.val_fraction == 0:
            raise UserError("transfer=finetune picks each target's learning rate on the validation split, but "
                            "trainer.val_fraction=0 leaves none: set trainer.val_fraction>0")
        if run.backbone.name == "features":
            raise UserError("transfer=finetune trains the network, but backbone=features has fixed embeddings "
                            "(no network to fine-tune): use transfer=linear")


STACK_ENGINES = ("loop", "grouped")   # models/stack_nets.ENGINES (a test keeps them equal)


def check_trainer(t: TrainerConfig) -> None:
    if t.stack_engine not in STACK_ENGINES:
        raise unknown_name("trainer.stack_engine", t.stack_engine, STACK_ENGINES)
    threads = t.threads
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise UserError(f"trainer.threads={threads!r}: expected a positive integer, or null for what the job was given")
    if t.devices != 1:
        # Lightning would start DDP without a distributed sampler: every rank trains on all the data and
        # writes the same row. One source per device is also the faster way through a matrix.
        raise UserError(f"trainer.devices={t.devices!r}: a source model trains on one device; parallelise over "
                        "sources instead, one device per job (a multirun, e.g. python run.py -m "
                        "experiment=matrix_celeba trainer=gpu launcher=submitit_slurm)")


def _check_callbacks(run: RunConfig) -> None:
    cb = run.callbacks
    for name in cb.use:
        if name not in CALLBACKS:
            raise unknown_name("callback in callbacks.use:", name, CALLBACKS)
    if cb.monitor not in ("val_loss", "val_acc"):
        raise UserError(f"callbacks.monitor={cb.monitor!r}: expected val_loss or val_acc")
    if cb.patience < 1 or cb.refresh_rate < 1:
        raise UserError(f"callbacks.patience={cb.patience}, refresh_rate={cb.refresh_rate}: expected integers >= 1")
    if cb.progress_interval is not None and cb.progress_interval < 0:
        raise UserError(f"callbacks.progress_interval={cb.progress_interval}: expected seconds >= 0, or null for "
                        "no progress bars")
    if not 0.0 <= run.trainer.val_fraction < 1.0:
        raise UserError(f"trainer.val_fraction={run.trainer.val_fraction}: expected a number in [0, 1)")
    if run.head.C == "auto" and run.trainer.val_fraction == 0:
        raise UserError("head.C=auto chooses C on the validation split, but trainer.val_fraction=0 leaves none: "
                        "set trainer.val_fraction>0 or a number for head.C")
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


CONF = Path(__file__).resolve().parents[2] / "conf"   # the checkout's Hydra configs: every default lives there


def group_config(group: str, option: str, **changes):
    """conf/<group>/<option>.yaml (interpolations resolved) as its validated dataclass, with `changes` applied:
    the way code outside a Hydra run (benches, tests) gets a group's values from their one home."""
    from omegaconf import OmegaConf

    path = CONF / group / f"{option}.yaml"
    if group not in GROUPS or not path.is_file():
        raise UserError(f"no config {path}")
    node = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    node = {**node, **changes}
    return build(GROUPS[group], split_params(node) if group == "dataset" else node, group)


def split_params(node: dict) -> dict:
    """A dataset node's own options (anything not a DatasetConfig field) go into `params`."""
    common = {f.name for f in fields(DatasetConfig)}
    node = dict(node)
    params = {k: node.pop(k) for k in list(node) if k not in common}
    node["params"] = {**node.get("params", {}), **params}
    return node
