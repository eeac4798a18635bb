"""The frozen source model of one row: trained on the source task (Eq. 1) or reused from the model cache, and its
outputs on the row's train and test images, computed once: embeddings r = w_Z(x) and the source softmax P(z|x).

The cache key is everything that determines the model, inputs included (model_cache.py); heads and estimators
never retrain it. Epoch checkpoints sit next to the cache entry, so a rerun or a requeued job resumes.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import io
from ..config import RunConfig
from ..data.images import select_rows
from ..data.registry import Dataset
from ..errors import UserError
from ..provenance import provenance
from ..threads import loader_workers
from ..tracking import Tracker
from . import model_cache
from .targets import TargetPlan


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
    from ..models import training

    cache = cache_dir(run, ds, plan)
    cached = model_cache.load(cache)
    if cached is not None:
        print(f"reusing source model {cache}")
        timings.update(train_s=0.0, extract_s=0.0)
        return SourceOutputs(**cached)

    x = inputs(run, ds)
    y_source = plan.y_source
    fit_rows, val_rows = fit_split(run, ds, plan)
    t = time.perf_counter()
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
    training.save_checkpoint(trained.model, cache / "model.pt")
    io.save_npz(cache / "embeddings.npz", **arrays)
    io.write_json(cache / "meta.json", meta)
    shutil.rmtree(cache / "training", ignore_errors=True)   # the finished model replaces the epoch checkpoints
    model_cache.seal(cache)
    return SourceOutputs(**arrays, meta=meta, checkpoint=cache / "model.pt")


def _stopping(run: RunConfig):
    """The callbacks setting that changes the model (early stopping); the others only watch or save it."""
    cb = run.callbacks
    return [cb.monitor, cb.patience, cb.min_delta] if "early_stopping" in cb.use else None


def validation_split(table, rows: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows the source model fits, rows it is validated on each epoch): the dataset's official val split
    where it has one (CelebA), else a seeded `val_fraction` of the rows; none when val_fraction is 0.
    Heads and CE still see all `rows` (train + val)."""
    if val_fraction <= 0 or len(rows) < 2:
        return rows, rows[:0]
    official = table.mask("val")[rows]
    if official.any() and not official.all():
        return rows[~official], rows[official]
    rng = np.random.default_rng([seed, 1])   # not the stream split_rows draws train_fraction from
    n_val = min(len(rows) - 1, max(1, int(round(val_fraction * len(rows)))))
    val = np.zeros(len(rows), bool)
    val[rng.choice(len(rows), size=n_val, replace=False)] = True
    return rows[~val], rows[val]


def inputs(run: RunConfig, ds: Dataset) -> np.ndarray:
    """What the backbone reads: precomputed features, or images decoded once into the cache."""
    if run.backbone.name == "features":
        from ..models.backbones import load_features

        if not run.backbone.features_path:
            raise UserError("backbone=features needs backbone.features_path=<file.npz> (ids, embeddings)")
        return load_features(run.backbone.features_path, list(ds.labels.labels.index))
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
