"""The source-model cache: `<paths.cache>/models/<key>/` holds model.pt, embeddings.npz, meta.json and,
written last, manifest.json with each file's sha256.

The key hashes everything that determines the model: dataset settings, backbone, trainer (less loader
workers), seed, train fraction, the source labels, the training rows, and the inputs themselves (the
images' fingerprint: every file's path, size and mtime, or a hash of in-memory pixels; for backbone.weights
and backbone.path the file's path, size and mtime). An entry is used only when every file matches
its recorded checksum and reads back; otherwise it is recomputed with a one-line notice.

`<key>.lock` beside the entry is held while the entry is filled (source_model.py), so two jobs never train into
the same `training/` folder; the lock file stays (an empty file: waiters share its inode).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from .. import io
from ..config import RunConfig, fingerprint

FILES = ("model.pt", "embeddings.npz", "meta.json")
MANIFEST = "manifest.json"

log = logging.getLogger(__name__)


def lock_file(cache: Path) -> Path:
    """The lock held while the entry `cache` is filled: beside it, so removing the entry never drops a lock."""
    return cache.with_name(cache.name + ".lock")


def key(run: RunConfig, ds, y_source: np.ndarray, train_rows: np.ndarray, *extra) -> str:
    """`extra`: anything else the stage knows changes the model (e.g. when early stopping may end training)."""
    # Where the data sit and how many loader workers read them do not change the model; what they hold does.
    # The thread count changes it in the last digits only, and is recorded (train_threads) rather than keyed.
    # How many sources a job trains together, and how they share a batch, change a model no more than the thread
    # count does (a stacked network starts and trains as its single run: on the CPU bit for bit, in grouped
    # kernels to rounding): a stacked run and a single run share their entries.
    trainer = {k: v for k, v in asdict(replace(run.trainer, num_workers=0, threads=None)).items()
               if k not in ("sources_per_job", "stack_engine")}
    return fingerprint(replace(run.dataset, root=None, default_source=""), run.backbone, trainer, run.seed,
                       run.train_fraction,
                       fingerprint(y_source.tolist()), fingerprint(train_rows.tolist()), inputs_fingerprint(run, ds),
                       *extra)


def inputs_fingerprint(run: RunConfig, ds) -> list:
    if run.backbone.name == "features":
        return [file_stamp(run.backbone.path)]
    images = ds.images.fingerprint() if ds.images is not None else None
    return [images, file_stamp(run.backbone.weights)]


def file_stamp(path: str | None) -> list | None:
    """(resolved path, size, mtime): a replaced or edited file changes it. A missing one is reported later
    by the code that reads it."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return [str(path), "missing"]
    return [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]


def load(cache: Path) -> dict | None:
    """The cached embeddings, softmax outputs and meta, or None (with a notice when an entry exists but
    cannot be trusted: it is then recomputed). Call it holding the entry's lock (`lock_file`)."""
    if not any((cache / f).exists() for f in (*FILES, MANIFEST)):
        return None
    why = io.manifest_problem(cache / MANIFEST, [cache / f for f in FILES])
    if why is None:
        try:
            with np.load(cache / "embeddings.npz", allow_pickle=False) as f:
                arrays = {k: f[k] for k in ("z_train", "z_test", "p_train", "p_test")}
            meta = json.loads((cache / "meta.json").read_text())
            if not isinstance(meta, dict):
                raise ValueError("meta.json is not a mapping")
            return dict(arrays, meta=meta, checkpoint=cache / "model.pt")
        except (OSError, ValueError, KeyError, EOFError) as e:
            why = f"unreadable ({type(e).__name__})"
    log.info(f"recomputing the source model: cache {cache} not usable ({why})")
    (cache / MANIFEST).unlink(missing_ok=True)
    return None


def seal(cache: Path) -> None:
    """Record the entry's checksums; call after all of FILES are written."""
    io.write_manifest(cache / MANIFEST, [cache / f for f in FILES])


def copy_checkpoint(src: Path, dst: Path) -> None:
    """The run folder gets its own copy of the checkpoint: editing it cannot alter the cache."""
    with io.atomic_path(dst, nbytes=Path(src).stat().st_size) as tmp:
        shutil.copyfile(src, tmp)
