"""The frozen source model of one row: trained on the source task (Eq. 1) or reused from the model cache, and its
outputs on the row's train and test images, computed once: embeddings r = w_Z(x) and the source softmax P(z|x).

The cache key is everything that determines the model, inputs included (model_cache.py); heads and estimators
never retrain it. Epoch checkpoints sit next to the cache entry, so a rerun or a requeued job resumes. Jobs that
need the same entry at once (another head, two Slurm array tasks) take turns on its lock: one trains, the others
wait and then read what it cached.
"""
from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import io
from ..config import RunConfig
from ..data.images import select_rows
from ..data.registry import Dataset
from ..errors import UserError, doing
from ..provenance import provenance
from ..threads import loader_workers
from ..tracking import Tracker
from . import model_cache
from .targets import TargetPlan, validation_split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceOutputs:
    """What the frozen source model gives a row: float32 embeddings (n, D) and softmax (n, K_z) of the train and
    test rows, the model's record (`meta`: accuracy, epochs, history, ...) and its checkpoint file."""
    z_train: np.ndarray
    z_test: np.ndarray
    p_train: np.ndarray
    p_test: np.ndarray
    meta: dict
    checkpoint: Path


def source_model(run: RunConfig, ds: Dataset, plan: TargetPlan, tracker: Tracker, timings: dict) -> SourceOutputs:
    """Train (or reuse) the source model of `plan` and return its outputs on the row's rows."""
    with doing("fingerprinting the inputs for the model cache"):
        cache = cache_dir(run, ds, plan)
    # Checked under the lock: a job filling the entry holds it until the entry is sealed, so a waiting job reads
    # the finished entry, never a half-written one.
    with io.locked(model_cache.lock_file(cache), f"source model {cache.name}"):
        cached = model_cache.load(cache)
        if cached is None:
            return _train(run, ds, plan, tracker, timings, cache)
    log.info(f"reusing source model {cache}")
    timings.update(train_s=0.0, extract_s=0.0)
    return SourceOutputs(**cached)


def _train(run: RunConfig, ds: Dataset, plan: TargetPlan, tracker: Tracker, timings: dict,
           cache: Path) -> SourceOutputs:
    """Train the source model into the cache entry `cache` (its lock held) and extract its outputs."""
    from ..models import training

    with doing("decoding the images into the cache", rerun="decodes them again"):
        x = inputs(run, ds)
    y_source = plan.y_source
    fit_rows, val_rows = fit_split(run, ds, plan)
    t = time.perf_counter()
    resumes = ("resumes from its last epoch checkpoint in " + str(cache / "training")
               if "checkpoint" in run.callbacks.use else "trains it again (callbacks without checkpoint)")
    with doing("training the source model", rerun=resumes):
        # Rows of the (memory-mapped) images, read a batch at a time: the selection is never copied into RAM.
        trained = training.train_source(select_rows(x, fit_rows), y_source[fit_rows], plan.k_source, run.backbone,
                                        source_trainer(run), seed=run.seed, out_dir=Path(run.run_dir),
                                        loggers=tracker.lightning_loggers,
                                        x_val=select_rows(x, val_rows) if len(val_rows) else None,
                                        y_val=y_source[val_rows] if len(val_rows) else None,
                                        callbacks=run.callbacks, ckpt_dir=cache / "training")
    timings["train_s"] = time.perf_counter() - t
    return cache_trained(run, plan, trained, x, cache, timings, n_fit=int(len(fit_rows)),
                         n_val=int(len(val_rows)))


def cache_dir(run: RunConfig, ds: Dataset, plan: TargetPlan) -> Path:
    """The model-cache entry of the row's source model (model_cache.key: everything that determines it)."""
    return Path(run.paths.cache) / "models" / model_cache.key(run, ds, plan.y_source, plan.train_rows, _stopping(run))


def fit_split(run: RunConfig, ds: Dataset, plan: TargetPlan) -> tuple[np.ndarray, np.ndarray]:
    """(rows the source model fits, rows it validates on): the labelled training rows of the source, split."""
    labelled = plan.train_rows[plan.y_source[plan.train_rows] >= 0]
    return validation_split(ds.labels, labelled, run.trainer.val_fraction, run.seed)


def source_trainer(run: RunConfig):
    """The trainer settings a source model trains with: loader workers within the job's threads."""
    return replace(run.trainer, num_workers=loader_workers(run.trainer.num_workers, run.trainer.threads))


def cache_trained(run: RunConfig, plan: TargetPlan, trained, x: np.ndarray, cache: Path, timings: dict,
                  **extra_meta) -> SourceOutputs:
    """A trained source model's outputs on the row's train and test rows, and its cache entry (weights,
    embeddings, meta with `extra_meta`, then the manifest that seals it); the epoch checkpoints it resumed from go."""
    from ..models import training

    y_source, train_rows, test_rows = plan.y_source, plan.train_rows, plan.test_rows
    t = time.perf_counter()
    rows = np.concatenate([train_rows, test_rows])
    after = "resumes from the trained model's last epoch checkpoint"
    with doing("extracting the embeddings", rerun=after if "checkpoint" in run.callbacks.use else "trains again"):
        z, p = training.extract(trained.model, select_rows(x, rows), batch_size=max(256, run.trainer.batch_size),
                                accelerator=run.trainer.accelerator)
    timings["extract_s"] = time.perf_counter() - t
    n_tr = len(train_rows)
    arrays = dict(z_train=z[:n_tr], z_test=z[n_tr:], p_train=p[:n_tr], p_test=p[n_tr:])
    meta = dict(source_n_classes=int(plan.k_source), epochs=int(trained.epochs),
                resumed_from_epoch=int(trained.resumed_from_epoch),
                **extra_meta,
                source_test_accuracy=accuracy(p[n_tr:], y_source[test_rows]),
                source_train_accuracy=accuracy(p[:n_tr], y_source[train_rows]),
                source_train_nll=-log_likelihood(p[:n_tr], y_source[train_rows]),
                train_threads=run.trainer.threads, history=trained.history,
                model_provenance=provenance(training.device_name(run.trainer.accelerator), run.trainer.threads))
    with doing("writing the source model into the cache", rerun="resumes from its last epoch checkpoint"):
        training.save_checkpoint(trained.model, cache / "model.pt")
        io.save_npz(cache / "embeddings.npz", **arrays)
        io.write_json(cache / "meta.json", meta)
        model_cache.seal(cache)
    shutil.rmtree(cache / "training", ignore_errors=True)   # the finished model replaces the epoch checkpoints
    return SourceOutputs(**arrays, meta=meta, checkpoint=cache / "model.pt")


def _stopping(run: RunConfig):
    """The callbacks setting that changes the model (early stopping); the others only watch or save it."""
    cb = run.callbacks
    return [cb.monitor, cb.patience, cb.min_delta] if "early_stopping" in cb.use else None


def inputs(run: RunConfig, ds: Dataset) -> np.ndarray:
    """What the backbone reads: precomputed features, or images decoded once into the cache."""
    if run.backbone.name == "features":
        from ..models.backbones import load_features

        if not run.backbone.path:
            raise UserError("backbone=features needs backbone.path=<file.npz> (ids, embeddings)")
        return load_features(run.backbone.path, list(ds.labels.labels.index), ds.locate)
    if ds.images is None:
        raise UserError(f"dataset {ds.name}: {ds.no_images_reason or 'no images'}")
    return ds.images.array(run.dataset.image_size, cache_dir=Path(run.paths.cache), workers=run.trainer.threads)


def accuracy(p: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of softmax rows `p` on the labelled codes `y` (-1 = missing); NaN without labels."""
    ok = y >= 0
    return float((p[ok].argmax(1) == y[ok]).mean()) if ok.any() else float("nan")


def log_likelihood(p: np.ndarray, y: np.ndarray) -> float:
    """l_Z of Eq. 2: mean log P(z_i | x_i) over labelled rows (probabilities clipped at 1e-12)."""
    ok = y >= 0
    return float(np.log(np.clip(p[ok, y[ok]].astype(np.float64), 1e-12, None)).mean())
