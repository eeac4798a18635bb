"""stage=transfer: one source task -> every target task; one row of the source x target matrix.

1. train the backbone on the source task (Eq. 1), or reuse the cached model for this exact setting;
2. freeze it; embeddings and source softmax of train and test images, computed once and cached;
3. fit the transfer head of every target together on the embeddings (Eq. 3), test on the test split;
4. write results.csv (one row per target), source.json and config.json atomically, then done.json last
   (row_record.py): only a row whose record matches its results.csv counts as finished.
"""
from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..config import RunConfig, to_dict
from ..data.images import select_rows
from ..data.registry import Dataset, load_dataset
from ..errors import UserError
from ..estimators.label_only import CECounter
from ..threads import loader_workers, use_threads
from ..tracking import Tracker, row_name
from . import model_cache, row_record

TRAIN, TEST = "trainval", "test"   # heads and CE see train (+ val where a dataset has one)
# source=random: the same backbone, untrained (seeded initialisation), as one more row of the matrix, so that
# "training on the source matters" is measured. It knows no source labels: its source task is one constant class,
# so CE = H(Y), l_Z = 0 and k-bar is the target prior (Theorem 1 still applies, with bound -H(Y)).
RANDOM = "random"


def _as_written(run: RunConfig) -> RunConfig:
    """The config a row is made and recorded with: the untrained `random` row never trains (max_epochs=0), so
    a rerun compares against what that row wrote."""
    return replace(run, trainer=replace(run.trainer, max_epochs=0)) if run.source == RANDOM else run


def run_transfer(run: RunConfig) -> Path:
    out = Path(run.run_dir)
    if (out / "results.csv").exists() and not run.force:
        why = (row_record.problem(out) or _check_same_setting(_as_written(run), out)
               or row_record.problem(out, run.target))
        if why is None:
            print(f"already done: {out / 'results.csv'} (force=true reruns)")
            return out
        print(f"redoing {out}: {why}")
    row_record.clear(out)
    # Torch, BLAS and loader workers within the CPUs this job was given; the count changes the last digits.
    threads, threads_from = use_threads(run.trainer.threads)
    print(f"threads: {threads} ({threads_from})")
    run = replace(run, trainer=replace(run.trainer, threads=threads))
    ds = load_dataset(run.dataset)
    table = ds.labels
    random = run.source == RANDOM and RANDOM not in table.tasks
    source = RANDOM if random else table.resolve_source(run.source, run.source_index, run.dataset.default_source)
    if not isinstance(source, str) or source == "all":
        raise UserError(f"source={run.source}: the transfer stage trains one source per run; "
                        "for several use a multirun, e.g. python run.py -m source=a,b,c")
    targets = table.select(run.target)
    if source not in targets and not random:
        targets = [source] + targets   # the dedicated cell: source == target
    codes, n_classes = encode_labels(table.labels[targets])
    train_rows, test_rows = split_rows(table, run.train_fraction, run.seed)
    # A task with one class has nothing to transfer to (and a source with one class nothing to learn).
    constant = [t for t, k in zip(targets, n_classes) if k < 2]
    if source in constant:
        raise UserError(f"source task {source!r} has a single class in this dataset: nothing to learn")
    # A target none of whose test images has a class seen in training (CelebA's identity: the official split is
    # identity-disjoint) has test error 1 by construction; its head would be the row's costliest (9,177 classes).
    unseen = [t for j, t in enumerate(targets) if t != source and n_classes[j] >= 2
              and not shares_a_class(codes[train_rows, j], codes[test_rows, j])]
    if constant or unseen:
        keep = [j for j, (t, k) in enumerate(zip(targets, n_classes)) if k >= 2 and t not in unseen]
        targets, codes, n_classes = [targets[j] for j in keep], codes[:, keep], [n_classes[j] for j in keep]
    if constant:
        print(f"skipping {len(constant)} single-class target(s): {', '.join(constant)}")
    if unseen:
        print(f"skipping {len(unseen)} target(s) whose test classes never occur in training (no head can "
              f"predict them): {', '.join(unseen)}")
    skipped = constant + unseen   # recorded in source.json and done.json
    if random:
        y_source, k_source = np.zeros(len(codes), np.int64), 1
        run = _as_written(run)   # never trained
    else:
        y_source, k_source = codes[:, targets.index(source)], n_classes[targets.index(source)]

    timings: dict = {}
    with Tracker(run, name=row_name(run, source), job_type="transfer") as tracker:
        model = source_model(run, ds, y_source, k_source, train_rows, test_rows, tracker, timings)
        z_tr, z_te, p_tr, p_te = model["z_train"], model["z_test"], model["p_train"], model["p_test"]
        y_tr, y_te = codes[train_rows], codes[test_rows]

        results = heads_and_scores(run, source, targets, n_classes, y_source[train_rows], y_tr, y_te, z_tr, z_te,
                                   p_tr, p_te, timings)
        meta = dict(model["meta"], dataset=run.dataset.name, backbone=run.backbone.name, head=run.head.name,
                    source=source, seed=run.seed, train_fraction=run.train_fraction,
                    n_train=int(len(train_rows)), n_test=int(len(test_rows)), skipped_targets=skipped,
                    threads=threads, threads_from=threads_from, timings=timings)
        io.write_json(out / "source.json", meta)
        io.write_json(out / "config.json", to_dict(run))
        model_cache.copy_checkpoint(Path(model["checkpoint"]), out / "model.pt")
        io.write_csv(out / "results.csv", results)
        row_record.write(out, run.target, targets, skipped)   # last: the record marks the row finished
        tracker.log_metrics({k: v for k, v in meta.items() if isinstance(v, (int, float))})
        tracker.log_table("results", results)
    _summary(out, source, meta, results)
    return out


def heads_and_scores(run: RunConfig, source, targets, n_classes, y_source_train, y_tr, y_te, z_tr, z_te, p_tr, p_te,
                     timings: dict) -> pd.DataFrame:
    """Steps 3-4 on the frozen model's outputs: every target's head, then the row's scores (timed).
    `y_source_train`: the source labels of the train rows (all zeros for the untrained `random` source)."""
    from ..models.heads import fit_heads
    from ..models.training import _device as training_device

    t = time.perf_counter()
    fit = fit_heads(run.head, z_tr, y_tr, z_te, n_classes, seed=run.seed, source_probs_train=p_tr,
                    source_probs_test=p_te, source_train=y_source_train,
                    device=str(training_device(run.trainer.accelerator)),
                    y_test=y_te)
    timings["heads_s"] = time.perf_counter() - t
    t = time.perf_counter()
    results = score_rows(run, source, targets, n_classes, fit, y_tr, y_te, z_tr, p_tr, p_te, y_source_train)
    timings["estimators_s"] = time.perf_counter() - t
    return results


# Settings that do not change a row's numbers: a rerun differing only in these still counts as done.
_NOT_RESULTS = ("force", "run_dir", "logger", "paths", "stage", "source_index", "trainer.num_workers",
                "trainer.threads", "estimate", "dataset.default_source", "dataset.root", "callbacks.name",
                "callbacks.refresh_rate", "experiment", "widths")


def _check_same_setting(run: RunConfig, out: Path) -> str | None:
    """The row directory is named by dataset/backbone/head/source/seed only; a finished row made with other
    settings (say backbone.width) must not pass for this one. The targets are the record's business
    (row_record.problem). Returns why the row must be redone when its config.json is unreadable."""
    import json

    path = out / "config.json"
    if not path.exists():
        return None
    try:
        old = json.loads(path.read_text())
        assert isinstance(old, dict)
    except (OSError, ValueError, AssertionError):
        return "config.json unreadable"
    new = json.loads(json.dumps(to_dict(run), default=str))
    diff = [f"{k}: {_flat(old).get(k)!r} -> {v!r}" for k, v in _flat(new).items()
            if k.split(".")[0] not in _NOT_RESULTS and k not in _NOT_RESULTS and _flat(old).get(k) != v
            and k not in ("source", "target")]
    if diff:
        raise UserError(f"{out / 'results.csv'} was made with other settings ({'; '.join(diff[:3])}): "
                        "rerun with force=true to replace it, or write elsewhere with paths.outputs=<dir>")
    return None


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def encode_labels(labels: pd.DataFrame) -> tuple[np.ndarray, list[int]]:
    """Integer codes (n, T), -1 = missing, with classes numbered in sorted label order."""
    codes = np.empty(labels.shape, dtype=np.int64)
    n_classes = []
    for j, col in enumerate(labels.columns):
        c, uniques = pd.factorize(labels[col], sort=True)
        codes[:, j] = c
        n_classes.append(len(uniques))
    return codes, n_classes


def shares_a_class(train: np.ndarray, test: np.ndarray) -> bool:
    """Whether some labelled test row has a class that labelled training rows have (codes, -1 = missing)."""
    seen = np.unique(train[train >= 0])
    return bool(np.isin(test[test >= 0], seen).any())


def split_rows(table, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the training rows (a seeded random fraction of train+val) and the test rows."""
    train = np.flatnonzero(table.mask(TRAIN))
    test = np.flatnonzero(table.mask(TEST))
    if not len(train) or not len(test):
        raise UserError(f"the dataset has {len(train)} train and {len(test)} test images: transfer needs both")
    if train_fraction < 1.0:
        rng = np.random.default_rng(seed)
        keep = max(2, int(round(train_fraction * len(train))))
        train = np.sort(rng.choice(train, size=keep, replace=False))
    return train, test




def source_model(run: RunConfig, ds: Dataset, y_source: np.ndarray, k_source: int,
                 train_rows: np.ndarray, test_rows: np.ndarray, tracker: Tracker, timings: dict) -> dict:
    """Train (or reuse) the source model and return its cached embeddings and softmax outputs.

    The cache key is everything that determines the model, inputs included (model_cache.py); heads and
    estimators never retrain it."""
    from ..models import training

    cache = Path(run.paths.cache) / "models" / model_cache.key(run, ds, y_source, train_rows, _stopping(run))
    ckpt, emb, meta_path = cache / "model.pt", cache / "embeddings.npz", cache / "meta.json"
    cached = model_cache.load(cache)
    if cached is not None:
        print(f"reusing source model {cache}")
        timings.update(train_s=0.0, extract_s=0.0)
        return cached

    x = _inputs(run, ds)
    labelled = train_rows[y_source[train_rows] >= 0]
    fit_rows, val_rows = validation_split(ds.labels, labelled, run.trainer.val_fraction, run.seed)
    trainer = replace(run.trainer, num_workers=loader_workers(run.trainer.num_workers, run.trainer.threads))
    t = time.perf_counter()
    # Rows of the (memory-mapped) images, read a batch at a time: the selection is never copied into RAM.
    # Epoch checkpoints next to the model cache: a rerun or a requeued job resumes from the last one.
    trained = training.train_source(select_rows(x, fit_rows), y_source[fit_rows], k_source, run.backbone, trainer,
                                    seed=run.seed, out_dir=Path(run.run_dir), loggers=tracker.lightning_loggers,
                                    x_val=select_rows(x, val_rows) if len(val_rows) else None,
                                    y_val=y_source[val_rows] if len(val_rows) else None,
                                    callbacks=run.callbacks, ckpt_dir=cache / "training")
    timings["train_s"] = time.perf_counter() - t
    t = time.perf_counter()
    rows = np.concatenate([train_rows, test_rows])
    z, p = training.extract(trained.model, select_rows(x, rows), batch_size=max(256, run.trainer.batch_size),
                            accelerator=run.trainer.accelerator)
    timings["extract_s"] = time.perf_counter() - t
    n_tr = len(train_rows)
    arrays = dict(z_train=z[:n_tr], z_test=z[n_tr:], p_train=p[:n_tr], p_test=p[n_tr:])
    meta = dict(source_n_classes=int(k_source), epochs=int(trained.epochs),
                resumed_from_epoch=int(trained.resumed_from_epoch), n_fit=int(len(fit_rows)),
                n_val=int(len(val_rows)),
                source_test_accuracy=_accuracy(p[n_tr:], y_source[test_rows]),
                source_train_accuracy=_accuracy(p[:n_tr], y_source[train_rows]),
                source_train_nll=-log_likelihood(p[:n_tr], y_source[train_rows]),
                train_threads=run.trainer.threads, history=trained.history)
    training.save_checkpoint(trained.model, ckpt)
    io.save_npz(emb, **arrays)
    io.write_json(meta_path, meta)
    import shutil

    shutil.rmtree(cache / "training", ignore_errors=True)   # the finished model replaces the epoch checkpoints
    model_cache.seal(cache)
    return dict(arrays, meta=meta, checkpoint=ckpt)


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


def _inputs(run: RunConfig, ds: Dataset) -> np.ndarray:
    """What the backbone reads: precomputed features, or images decoded once into the cache."""
    if run.backbone.name == "features":
        from ..models.backbones import load_features

        if not run.backbone.path:
            raise UserError("backbone=features needs backbone.path=<file.npz> (ids, embeddings)")
        return load_features(run.backbone.path, list(ds.labels.labels.index), ds.locate)
    if ds.images is None:
        raise UserError(f"dataset {ds.name}: {ds.no_images_reason or 'no images'}")
    return ds.images.array(run.dataset.image_size, cache_dir=Path(run.paths.cache), workers=run.trainer.threads)


def _accuracy(p: np.ndarray, y: np.ndarray) -> float:
    ok = y >= 0
    return float((p[ok].argmax(1) == y[ok]).mean()) if ok.any() else float("nan")


def log_likelihood(p: np.ndarray, y: np.ndarray) -> float:
    """l_Z of Eq. 2: mean log P(z_i | x_i) over labelled rows (probabilities clipped at 1e-12)."""
    ok = y >= 0
    return float(np.log(np.clip(p[ok, y[ok]].astype(np.float64), 1e-12, None)).mean())


def score_rows(run, source, targets, n_classes, fit, y_tr, y_te, z_tr, p_tr, p_te, ys_tr) -> pd.DataFrame:
    """One row per target: actual transfer (test error, Eq. 4), the head's train NLL (Eq. 5), the label-only
    estimates (Eq. 7), the Theorem-1 bound (Eq. 10) and the model-based estimators. ys_tr: the source's train
    labels (codes, -1 missing)."""
    from ..estimators.model_based import ESTIMATORS, model_based_scores
    from ..models.heads import fit_heads

    lab = pd.DataFrame(np.where(y_tr >= 0, y_tr, np.nan), columns=targets)
    tasks = targets if source in targets else targets + [source]
    lab[source] = np.where(ys_tr >= 0, ys_tr, np.nan)
    counts = CECounter(tasks).update(lab[tasks])     # count once, read the plug-in and Miller-Madow estimates
    ce = counts.result()[source].reindex(targets)
    ce_mm = counts.result(bias_correction=True)[source].reindex(targets)
    # Eq. 10-12 sum over the same rows on both sides: l_Z per target over rows labelled in both tasks
    # (equal to the source's l_Z wherever no label is missing).
    l_z = np.array([log_likelihood(p_tr, np.where(y_tr[:, j] >= 0, ys_tr, -1)) for j in range(len(targets))])
    if run.head.name == "ce_head":
        kbar_nll = fit.train_nll
    else:  # the Theorem-1 head k-bar (Eq. 9) is only counting: fit it for the bound check too
        kbar_nll = fit_heads(replace(run.head, name="ce_head"), z_tr, y_tr, z_tr[:1], n_classes,
                             source_probs_train=p_tr, source_probs_test=p_tr[:1], source_train=ys_tr).train_nll
    model = model_based_scores(z_tr, p_tr, y_tr, **asdict(run.estimators), seed=run.seed)
    test_ok, train_ok = y_te >= 0, y_tr >= 0
    test_err = np.array([(fit.test_pred[test_ok[:, j], j] != y_te[test_ok[:, j], j]).mean()
                         for j in range(len(targets))])
    train_err = np.array([(fit.train_pred[train_ok[:, j], j] != y_tr[train_ok[:, j], j]).mean()
                          for j in range(len(targets))])
    rows = pd.DataFrame({
        "source": source, "target": targets, "dedicated": [t == source for t in targets],
        "n_classes": n_classes, "n_train": train_ok.sum(0), "n_test": test_ok.sum(0),
        "ce": ce.to_numpy(), "ce_mm": ce_mm.to_numpy(), "nce": -ce.to_numpy(),
        "test_error": test_err, "test_accuracy": 1 - test_err, "train_error": train_err,
        "train_nll": fit.train_nll, "test_nll": fit.test_nll,
        "l_z": l_z, "theorem1_bound": l_z - ce.to_numpy(), "ce_head_train_ll": -np.asarray(kbar_nll),
    })
    for col in ESTIMATORS:
        rows[col] = model[col].to_numpy() if col in model else np.nan
    return rows


def _summary(out: Path, source: str, meta: dict, rows: pd.DataFrame) -> None:
    others = rows[~rows.dedicated]
    print(f"source {source}: test accuracy {meta['source_test_accuracy']:.3f}; "
          f"{len(others)} targets, mean transfer accuracy {others.test_accuracy.mean():.3f}")
    if len(others) >= 3:
        from scipy.stats import pearsonr

        ok = others[["ce", "test_error"]].dropna()
        if ok.ce.nunique() > 1 and ok.test_error.nunique() > 1:
            r, p = pearsonr(ok.ce, ok.test_error)
            print(f"CE vs target test error over {len(ok)} targets: Pearson r = {r:.3f} (p = {p:.2g})")
    print(f"results: {out / 'results.csv'}")
