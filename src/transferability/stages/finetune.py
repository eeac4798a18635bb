"""transfer=finetune: a row's ground truth by full fine-tuning (conf/transfer/finetune.yaml, docs/ground_truths.md).

Every target of the row starts from the row's source network (the cached one: source_model.py trains it when it
is missing, exactly as for the linear ground truth) under a fresh classifier, and the whole network trains on the
target's training labels; the validation split is the one the source model and `head.C=auto` use
(`TargetPlan.val`). All targets train at once as one stack (models/stacked.train_stacked with `init`): T copies of
the source network, the same images, different labels, early stopping per network.

The learning rate is chosen per target from `transfer.lr_factors` x `trainer.lr`: one stack per learning rate,
and per target the network with the best validation accuracy (ties: lower validation loss, then the larger rate)
is tested. Targets whose labelled rows differ (missing labels) train in separate stacks (a stack shares every
batch); a stack too large for the device's memory is cut (models/stacked.stack_sizes).

Resume: each (learning rate, stack) writes its numbers to `finetune/<key>.json` in the row folder once trained
(key: the source model's checksum, the row's settings, the rate and the stack's targets); the stack in flight
keeps its epoch checkpoints in `finetune/<key>.training/`. A killed row, rerun, reads the finished stacks and
resumes the one in flight. The folder goes when the row is written (done.json); its numbers stay in source.json
(`finetune`). Fine-tuned weights are dropped unless `transfer.keep_models` (then `finetuned/<target>.pt`).
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from .. import identity, io
from ..config import RunConfig, fingerprint
from ..data.images import select_rows
from ..data.registry import Dataset
from ..errors import doing
from ..threads import allotted_memory
from . import source_model
from .source_model import SourceOutputs
from .targets import TargetPlan

log = logging.getLogger(__name__)

PROGRESS = "finetune"     # in the row's folder: one record per finished (learning rate, stack)
KEPT = "finetuned"        # transfer.keep_models: the chosen network of each target
COLUMNS = ("test_error", "test_accuracy", "finetune_lr", "finetune_epochs", "finetune_val_accuracy",
           "finetune_val_loss")


def is_finetune(run: RunConfig) -> bool:
    return run.transfer.name == "finetune"


def finetune_targets(run: RunConfig, ds: Dataset, plan: TargetPlan, source: SourceOutputs,
                     timings: dict) -> tuple[pd.DataFrame, dict]:
    """Every target of `plan` fine-tuned from the row's source network: a frame indexed by target with COLUMNS,
    and the per-rate record for source.json ({target: {lr: {val_accuracy, val_loss, test_error, epochs}}})."""
    from ..models import training

    out = Path(run.run_dir)
    t = time.perf_counter()
    shutil.rmtree(out / KEPT, ignore_errors=True)   # an earlier making's networks
    with doing("decoding the images into the cache", rerun="decodes them again"):
        x = source_model.inputs(run, ds)
    in_channels, image_size = training.input_shape(select_rows(x, plan.train_rows[:2]), run.backbone)
    init = training.load_checkpoint(source.checkpoint, run.backbone, in_channels, image_size, plan.k_source)
    fit_rows, val_rows = plan.train_rows[~plan.val], plan.train_rows[plan.val]
    stacks = _stacks(run, x, init, plan, fit_rows, val_rows)
    base = fingerprint(io.file_sha256(source.checkpoint), identity.fingerprint(identity.settings(run)),
                       plan.targets)
    per_lr: dict[float, dict] = {}
    for factor in run.transfer.lr_factors:
        lr = factor * run.trainer.lr
        per_lr[lr] = {}
        for cols in stacks:
            per_lr[lr].update(_stack(run, x, init, plan, cols, fit_rows, val_rows, lr, base, out))
    rows, record = _choose(plan, per_lr, run.transfer.keep_models, out)
    timings["finetune_s"] = time.perf_counter() - t
    return rows, record


def _stacks(run: RunConfig, x, init, plan: TargetPlan, fit_rows, val_rows) -> list[list[int]]:
    """The row's targets (column numbers) grouped by their labelled rows, each group cut to fit the memory."""
    from ..models import stacked

    groups: dict[bytes, list[int]] = {}
    for j in range(len(plan.targets)):
        key = (plan.codes[fit_rows, j] >= 0).tobytes() + b"|" + (plan.codes[val_rows, j] >= 0).tobytes()
        groups.setdefault(key, []).append(j)
    per_network = stacked.network_bytes(init, select_rows(x, fit_rows[:2]), run.trainer.batch_size)
    budget, _ = stacked.memory_budget(run.trainer.accelerator, allotted_memory)
    out = [piece for cols in groups.values()
           for piece in stacked.split(cols, stacked.stack_sizes(len(cols), per_network, budget))]
    log.info(f"fine-tuning {len(plan.targets)} targets x {len(run.transfer.lr_factors)} learning rate(s) in "
             f"{len(out)} stack(s) of {', '.join(str(len(c)) for c in out)} ({len(groups)} set(s) of labelled rows, "
             f"about {per_network / 1e6:.0f} MB per network, budget {budget / 1e9:.1f} GB)")
    return out


def _stack(run: RunConfig, x, init, plan: TargetPlan, cols: list[int], fit_rows, val_rows, lr: float, base: str,
           out: Path) -> dict[str, dict]:
    """One stack at one learning rate: its record read back when finished earlier, else trained (resuming from
    its epoch checkpoints), evaluated on the validation and test rows, and recorded. {target: numbers}."""
    from ..models import training
    from ..models.stacked import train_stacked

    targets = [plan.targets[j] for j in cols]
    key = fingerprint(base, lr, targets)
    path = out / PROGRESS / f"{key}.json"
    done = _read(path, key)
    if done is not None:
        log.info(f"fine-tuning lr={lr:g} of {len(targets)} target(s): finished earlier ({path.name})")
        return done
    y = plan.codes[:, cols]
    fit = fit_rows[(y[fit_rows] >= 0).all(1)]
    val = val_rows[(y[val_rows] >= 0).all(1)]
    trainer = replace(source_model.source_trainer(run), lr=lr, max_epochs=run.transfer.max_epochs)
    ckpt = out / PROGRESS / f"{key}.training"
    log.info(f"fine-tuning {len(targets)} target(s) at lr={lr:g} ({len(fit)} training, {len(val)} validation rows)")
    resumes = (f"resumes from the stack's last epoch checkpoint in {ckpt}" if "checkpoint" in run.callbacks.use
               else "fine-tunes them again (callbacks without checkpoint)")
    with doing("fine-tuning the targets", rerun=resumes):
        nets = train_stacked(select_rows(x, fit), y[fit], [plan.n_classes[j] for j in cols], run.backbone, trainer,
                             seed=run.seed, out_dir=out, init=init,
                             x_val=select_rows(x, val) if len(val) else None, y_val=y[val] if len(val) else None,
                             callbacks=run.callbacks, ckpt_dir=ckpt)
    numbers = {}
    batch = max(256, run.trainer.batch_size)
    for i, (target, trained) in enumerate(zip(targets, nets)):
        test = plan.test_rows[y[plan.test_rows, i] >= 0]
        _, p_val = training.extract(trained.model, select_rows(x, val), batch_size=batch,
                                    accelerator=run.trainer.accelerator) if len(val) else (None, None)
        _, p_test = training.extract(trained.model, select_rows(x, test), batch_size=batch,
                                     accelerator=run.trainer.accelerator)
        numbers[target] = {
            "val_accuracy": source_model.accuracy(p_val, y[val, i]) if len(val) else float("nan"),
            "val_loss": -source_model.log_likelihood(p_val, y[val, i]) if len(val) else float("nan"),
            "test_error": 1.0 - source_model.accuracy(p_test, y[test, i]), "epochs": int(trained.epochs)}
        if run.transfer.keep_models:
            training.save_checkpoint(trained.model, out / PROGRESS / f"{key}.models" / f"{io.component(target)}.pt")
    io.write_json(path, {"key": key, "lr": lr, "targets": numbers})
    shutil.rmtree(ckpt, ignore_errors=True)
    return numbers


def _read(path: Path, key: str) -> dict | None:
    """A finished stack's numbers, or None when absent, unreadable or made for something else."""
    try:
        blob = json.loads(path.read_text())
        return blob["targets"] if blob.get("key") == key else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def choose(numbers: dict[float, dict]) -> float:
    """The learning rate whose network validates best: highest accuracy, then lowest loss, then the first tried
    (NaN, no validation rows, counts as worst). `numbers`: {lr: {val_accuracy, val_loss, ...}}, in the order tried."""
    def rank(item):
        i, (_, v) = item
        acc, loss = v["val_accuracy"], v["val_loss"]
        return (-acc if np.isfinite(acc) else np.inf, loss if np.isfinite(loss) else np.inf, i)

    return min(enumerate(numbers.items()), key=rank)[1][0]


def _choose(plan: TargetPlan, per_lr: dict[float, dict], keep: bool, out: Path) -> tuple[pd.DataFrame, dict]:
    record, rows = {}, []
    for target in plan.targets:
        numbers = {lr: per_lr[lr][target] for lr in per_lr}
        lr = choose(numbers)
        best = numbers[lr]
        record[target] = {f"{k:g}": v for k, v in numbers.items()}
        rows.append({"target": target, "test_error": best["test_error"], "test_accuracy": 1 - best["test_error"],
                     "finetune_lr": lr, "finetune_epochs": best["epochs"],
                     "finetune_val_accuracy": best["val_accuracy"], "finetune_val_loss": best["val_loss"]})
        if keep:
            _keep(out, target, lr, per_lr)
    return pd.DataFrame(rows).set_index("target"), record


def _keep(out: Path, target: str, lr: float, per_lr: dict) -> None:
    """The chosen network of `target` to finetuned/<target>.pt (the stack files name their rate in the record)."""
    name = f"{io.component(target)}.pt"
    for path in (out / PROGRESS).glob(f"*.models/{name}"):
        blob = _read_lr(path.parent.with_suffix(".json"))
        if blob == lr:
            (out / KEPT).mkdir(exist_ok=True)
            shutil.copyfile(path, out / KEPT / name)


def _read_lr(path: Path) -> float | None:
    try:
        return float(json.loads(path.read_text())["lr"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def finished(out: Path) -> None:
    """The row is written: its progress records go (their numbers are in source.json)."""
    shutil.rmtree(Path(out) / PROGRESS, ignore_errors=True)
