"""stage=transfer: one source task -> every target task; one row of the source x target matrix.

1. plan the row: its source, targets, labels and train/test rows (targets.py);
2. the frozen source model: trained on the source task (Eq. 1) or reused from the cache, with its embeddings
   and softmax on the row's images, computed once (source_model.py);
3. fit the transfer head of every target together on the embeddings (Eq. 3), test on the test split; with
   transfer=finetune, also fine-tune the whole source network on every target (finetune.py): its test error is
   then the row's `test_error` (the frozen head's is `frozen_test_error`);
4. score every target: transfer error, CE, the Theorem-1 terms, the model-based estimators (scores.py);
5. write results.csv (one line per target), source.json and config.json atomically, then done.json last
   (row_record.py): only a row whose record matches its results.csv counts as finished.

The row's folder is named by every setting that changes its numbers (identity.py, run_dirs.py); a finished row
there made with other settings is never taken for this one. A lock on the row (`.lock` in its folder) makes a
second job for the same row wait, then find it finished.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from .. import identity, io
from ..config import RunConfig, to_dict
from ..data.registry import load_dataset
from ..errors import UserError, doing
from ..provenance import provenance
from ..threads import use_threads
from ..tracking import Tracker, row_name
from . import finetune, model_cache, row_record
from .run_dirs import write_settings_record
from .scores import score_targets
from .source_model import SourceOutputs, source_model
from .targets import RANDOM, TargetPlan, plan_targets

log = logging.getLogger(__name__)
LOCK = ".lock"   # in the row's folder: held while the row is checked and made


def _as_written(run: RunConfig) -> RunConfig:
    """The config a row is made and recorded with: the untrained `random` row never trains (max_epochs=0), so
    a rerun compares against what that row wrote."""
    return replace(run, trainer=replace(run.trainer, max_epochs=0)) if run.source == RANDOM else run


def run_transfer(run: RunConfig) -> Path:
    out = Path(run.run_dir)
    with io.locked(out / LOCK, f"row {out}"):
        return _make_row(run, out)


def _make_row(run: RunConfig, out: Path) -> Path:
    if finished(run, out):
        return out
    settings = start_row(run, out)
    # Torch, BLAS and loader workers within the CPUs this job was given; the count changes the last digits.
    threads, threads_from = use_threads(run.trainer.threads)
    log.info(f"threads: {threads} ({threads_from})")
    run = replace(run, trainer=replace(run.trainer, threads=threads))
    with doing("loading the dataset"):
        ds = load_dataset(run.dataset)
        plan = plan_targets(run, ds.labels)
    if plan.random:
        run = _as_written(run)   # never trained
    timings: dict = {}
    with Tracker(run, name=row_name(run, plan.source), job_type="transfer") as tracker:
        source = source_model(run, ds, plan, tracker, timings)
        meta, results = write_row(run, plan, source, timings, threads_from, tracker, settings, ds=ds)
    summary(out, plan.source, meta, results)
    return out


def start_row(run: RunConfig, out: Path) -> list:
    """Clear a row's folder of any earlier record and write what it is asked to be; returns its settings entries
    (identity.entries, as asked: the untrained row's max_epochs=0 is how it is made, not what it was asked)."""
    row_record.clear(out)
    if run.force:   # redone from the start: no fine-tuning progress of an earlier attempt is read back
        finetune.finished(out)
    write_settings_record(run, out)
    return identity.entries(run)


def write_row(run: RunConfig, plan: TargetPlan, source: SourceOutputs, timings: dict, threads_from: str,
              tracker: Tracker, settings: list, ds=None) -> tuple[dict, pd.DataFrame]:
    """Steps 3-5 for a row whose source model is ready: heads, scores (and with transfer=finetune the fine-tuning,
    which reads the images of `ds`), the row's files, the tracker's view of them. Returns source.json's record
    and results.csv's frame."""
    out = Path(run.run_dir)
    with doing("fitting the transfer heads and estimators", rerun="reuses the cached source model"):
        results = fit_and_score(run, plan, source, timings)
    if finetune.is_finetune(run):
        results = _finetuned(run, ds, plan, source, results, timings)
    with doing("writing the row", rerun="reuses the cached source model and writes the row again"):
        meta = _write_row(out, run, plan, source, results, timings, threads_from,
                          settings=settings, artifact=tracker.artifact_name)
    finetune.finished(out)   # after done.json: a kill before it leaves the fine-tuning records to resume from
    tracker.log_metrics({k: v for k, v in meta.items() if isinstance(v, (int, float))})
    tracker.log_table("results", results)
    tracker.log_results(out / "results.csv", meta={"source": plan.source, "seed": run.seed,
                                                    "train_fraction": run.train_fraction, "settings": settings})
    return meta, results


def _finetuned(run: RunConfig, ds, plan: TargetPlan, source: SourceOutputs, results: pd.DataFrame,
               timings: dict) -> pd.DataFrame:
    """results.csv of a transfer=finetune row: the fine-tuned networks' test error in `test_error`/`test_accuracy`,
    the frozen head's in `frozen_test_error`, the chosen learning rate and its validation numbers; the per-rate
    numbers go to source.json (`finetune`)."""
    if ds is None:
        raise ValueError("transfer=finetune: write_row needs the dataset (ds=) to fine-tune on its images")
    tuned, record = finetune.finetune_targets(run, ds, plan, source, timings)
    attrs = dict(results.attrs)
    results = results.copy()
    results.insert(results.columns.get_loc("test_accuracy") + 1, "frozen_test_error", results.test_error)
    tuned = tuned.reindex(results.target)
    for col in finetune.COLUMNS:
        results[col] = tuned[col].to_numpy()
    attrs["row_scores"] = {**attrs.get("row_scores", {}), "finetune": record}
    results.attrs = attrs
    return results


def finished(run: RunConfig, out: Path) -> bool:
    """A checked finished row made with these settings for these targets: nothing to do (force=true redoes it)."""
    if not (out / "results.csv").exists() or run.force:
        return False
    why = (row_record.problem(out) or _check_same_setting(_as_written(run), out)
           or row_record.problem(out, run.target))
    if why is None:
        log.info(f"already done: {out / 'results.csv'} (force=true reruns)")
        return True
    log.info(f"redoing {out}: {why}")
    return False


def fit_and_score(run: RunConfig, plan: TargetPlan, source: SourceOutputs, timings: dict) -> pd.DataFrame:
    """Steps 3-4 on the frozen model's outputs: every target's head, then the row's scores (each timed)."""
    from ..models.heads import fit_heads
    from ..models.training import torch_device

    t = time.perf_counter()
    fit = fit_heads(run.head, source.z_train, plan.y_train, source.z_test, plan.n_classes, seed=run.seed,
                    source_probs_train=source.p_train, source_probs_test=source.p_test,
                    source_train=plan.y_source_train, device=str(torch_device(run.trainer.accelerator)),
                    y_test=plan.y_test, val=plan.val)
    timings["heads_s"] = time.perf_counter() - t
    t = time.perf_counter()
    results = score_targets(run, plan, source, fit)
    timings["estimators_s"] = time.perf_counter() - t
    return results


def _write_row(out: Path, run: RunConfig, plan: TargetPlan, source: SourceOutputs, results: pd.DataFrame,
               timings: dict, threads_from: str, settings: list | None = None, artifact: str | None = None) -> dict:
    """The row's files, each atomically, done.json last; returns source.json's record. `settings`: the row's
    differences from the defaults (identity.entries); `artifact`: the wandb artifact its results.csv is logged as
    (logger=wandb), which the analysis run declares as its input."""
    from ..models.training import device_name

    threads = run.trainer.threads
    meta = dict(source.meta, dataset=run.dataset.name, backbone=run.backbone.name, head=run.head.name,
                source=plan.source, seed=run.seed, train_fraction=run.train_fraction,
                settings=identity.entries(run) if settings is None else settings,
                n_train=int(len(plan.train_rows)), n_test=int(len(plan.test_rows)), skipped_targets=plan.skipped,
                threads=threads, threads_from=threads_from, timings=timings,
                provenance=provenance(device_name(run.trainer.accelerator), threads),
                **results.attrs.get("row_scores", {}))
    if artifact:
        meta["wandb_artifact"] = artifact
    io.write_json(out / "source.json", meta)
    io.write_json(out / "config.json", {**to_dict(run), "provenance": meta["provenance"]})
    model_cache.copy_checkpoint(Path(source.checkpoint), out / "model.pt")
    io.write_csv(out / "results.csv", results)
    row_record.write(out, run.target, plan.targets, plan.skipped, meta["provenance"])   # last: marks it finished
    return meta


def _check_same_setting(run: RunConfig, out: Path) -> str | None:
    """A finished row in this folder made with other settings (identity.differences: every setting that changes
    the numbers; the folder names most of them, an older row may predate that) must not pass for this one. The
    targets are the record's business (row_record.problem). Returns why the row must be redone when its
    config.json is unreadable."""
    import json

    path = out / "config.json"
    if not path.exists():
        return None
    try:
        old = json.loads(path.read_text())
        assert isinstance(old, dict)
    except (OSError, ValueError, AssertionError):
        return "config.json unreadable"
    diff = identity.differences(old, json.loads(json.dumps(to_dict(run), default=str)))
    if diff:
        raise UserError(f"{out / 'results.csv'} was made with other settings ({'; '.join(diff[:3])}): "
                        "rerun with force=true to replace it, or write elsewhere with paths.outputs=<dir>")
    return None


def summary(out: Path, source: str, meta: dict, rows: pd.DataFrame) -> None:
    others = rows[~rows.dedicated]
    log.info(f"source {source}: test accuracy {meta['source_test_accuracy']:.3f}; "
             f"{len(others)} targets, mean transfer accuracy {others.test_accuracy.mean():.3f}")
    if len(others) >= 3:
        from scipy.stats import pearsonr

        ok = others[["ce", "test_error"]].dropna()
        if ok.ce.nunique() > 1 and ok.test_error.nunique() > 1:
            r, p = pearsonr(ok.ce, ok.test_error)
            log.info(f"CE vs target test error over {len(ok)} targets: Pearson r = {r:.3f} (p = {p:.2g})")
    log.info(f"results: {out / 'results.csv'}")
