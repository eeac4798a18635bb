"""stage=transfer over several sources in one job (`source=[a,b,c]`, `source_index=[0,1,2]`, or a matrix sweep
with `trainer.sources_per_job=K`): K ordinary rows whose source models train together (models/stacked.py).

1. every source's row is named, checked and planned as its single run would be: a finished row is skipped, a
   source whose model is in the cache reuses it (transfer.run_transfer, row by row);
2. the sources left are grouped by the rows their models fit and validate on: a stack shares every batch, so
   sources whose labelled rows differ (missing labels, as CUB has) go to separate stacks; the untrained `random`
   row and a group of one run as single runs;
3. each group is cut into stacks that fit the device's memory (GPU: free memory; CPU: the job's allotment and
   free RAM, threads.allotted_memory), and the cut is printed;
4. a stack trains at once; each of its networks is then extracted and cached under its single run's key
   (source_model.cache_trained), so a later single run reuses it and a stacked job reuses a single run's;
5. each row gets its heads, scores, files, done.json (last) and tracker run as its single run does
   (transfer.write_row); its training curves go to its tracker from the network's history.
"""
from __future__ import annotations

import logging
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import io
from ..config import RunConfig, fingerprint
from ..data.images import select_rows
from ..data.registry import Dataset, load_dataset
from ..errors import UserError, doing
from ..threads import allotted_memory, use_threads
from ..tracking import Tracker, row_name
from . import model_cache, source_model, transfer
from .run_dirs import row_dir
from .targets import RANDOM, plan_targets

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Member:
    """One source of a stack: its row's config, its labels, the rows it fits and validates on, its cache entry."""
    run: RunConfig
    source: str
    y_source: np.ndarray
    k_source: int
    fit_rows: np.ndarray
    val_rows: np.ndarray
    cache: Path


def several(run: RunConfig) -> bool:
    """Whether `run` names several sources (a list in `source` or `source_index`): a job for run_stacked."""
    return isinstance(run.source, list) or isinstance(run.source_index, list)


def source_names(run: RunConfig, table) -> list[str]:
    """The sources a multi-source job names, checked against the task list, each once, in the given order."""
    if isinstance(run.source, list):
        names = [s if s == RANDOM and s not in table.tasks else table.check_task(s) for s in run.source]
    else:
        tasks = table.tasks
        bad = [i for i in run.source_index if not 0 <= int(i) < len(tasks)]
        if bad:
            raise UserError(f"source_index={bad[0]}: expected 0..{len(tasks) - 1} (this dataset has {len(tasks)} "
                            "tasks)")
        names = [tasks[int(i)] for i in run.source_index]
    return list(dict.fromkeys(names))


def run_stacked(run: RunConfig) -> list[Path]:
    """Every source's row of `run` (see the module's docstring); returns their folders."""
    threads, threads_from = use_threads(run.trainer.threads)
    log.info(f"threads: {threads} ({threads_from})")
    run = replace(run, trainer=replace(run.trainer, threads=threads))
    with doing("loading the dataset"):
        ds = load_dataset(run.dataset)
    rows = [replace(run, source=name, source_index=None, run_dir=row_dir(run, name))
            for name in source_names(run, ds.labels)]
    todo = [r for r in rows if not transfer.finished(r, Path(r.run_dir))]
    singles, members = [], []
    for r in todo:
        plan = plan_targets(r, ds.labels)            # every row's targets are checked before anything trains
        cache = source_model.cache_dir(r, ds, plan)
        if plan.random or model_cache.load(cache) is not None:
            singles.append(r)                        # nothing to train (random), or the model is cached
            continue
        fit_rows, val_rows = source_model.fit_split(r, ds, plan)
        members.append(Member(r, plan.source, plan.y_source, plan.k_source, fit_rows, val_rows, cache))
    stacks, x = [], None
    for group in _by_rows(members):
        if len(group) == 1:
            singles.append(group[0].run)
        else:
            x = source_model.inputs(run, ds) if x is None else x
            stacks += _fit_memory(run, x, group)
    log.info(f"{len(rows)} sources: {len(rows) - len(todo)} finished, {len(singles)} single, "
             f"{sum(map(len, stacks))} in {len(stacks)} stack(s) of {', '.join(str(len(s)) for s in stacks) or '-'}")
    for r in singles:
        transfer.run_transfer(r)
    for stack in stacks:
        _train_stack(run, ds, x, stack, threads_from)
    _record_command(Path(run.run_dir), [Path(r.run_dir) for r in todo])
    return [Path(r.run_dir) for r in rows]


def _by_rows(members: list[Member]) -> list[list[Member]]:
    """Members grouped by the rows they fit and validate on (a stack shares every batch), in the given order."""
    groups: dict[bytes, list[Member]] = {}
    for m in members:
        key = m.fit_rows.tobytes() + b"|" + m.val_rows.tobytes()
        groups.setdefault(key, []).append(m)
    if len(groups) > 1:
        log.info(f"sources fit on {len(groups)} different sets of labelled rows (missing labels): "
                 f"{len(groups)} groups, stacked apart")
    return list(groups.values())


def _fit_memory(run: RunConfig, x: np.ndarray, group: list[Member]) -> list[list[Member]]:
    """The group cut into stacks that fit the training device's memory; the cut is printed."""
    from ..models import stacked, training

    in_channels, image_size = training.input_shape(select_rows(x, group[0].fit_rows[:2]), run.backbone)
    probe = training.seeded_net(run.backbone, in_channels, image_size, max(m.k_source for m in group), seed=run.seed)
    per_network = stacked.network_bytes(probe, select_rows(x, group[0].fit_rows[:2]), run.trainer.batch_size)
    budget, where = stacked.memory_budget(run.trainer.accelerator, allotted_memory)
    sizes = stacked.stack_sizes(len(group), per_network, budget)
    log.info(f"stacking {len(group)} sources ({len(group[0].fit_rows)} training, {len(group[0].val_rows)} validation "
          f"rows): about {per_network / 1e6:.0f} MB per network, budget {budget / 1e9:.1f} GB ({where}): "
          f"{len(sizes)} stack(s) of {', '.join(map(str, sizes))}")
    out, start = [], 0
    for n in sizes:
        out.append(group[start:start + n])
        start += n
    return out


def _train_stack(run: RunConfig, ds: Dataset, x: np.ndarray, stack: list[Member], threads_from: str) -> None:
    """Train the stack's networks together on the inputs `x`, then cache each and write its row. The rows' and
    cache entries' locks are held throughout (rows first, each kind in sorted order, as a single run takes them),
    so a single run or another job wanting one of them waits, then finds it finished."""
    with ExitStack() as held:
        for m in sorted(stack, key=lambda m: m.run.run_dir):
            held.enter_context(io.locked(Path(m.run.run_dir) / transfer.LOCK, f"row {m.run.run_dir}"))
        for m in sorted(stack, key=lambda m: m.cache.name):
            held.enter_context(io.locked(model_cache.lock_file(m.cache), f"source model {m.cache.name}"))
        # Another job may have made a row or its model while this one waited.
        stack = [m for m in stack if not transfer.finished(m.run, Path(m.run.run_dir))]
        entries = {m.source: model_cache.load(m.cache) for m in stack}
        to_train = [m for m in stack if entries[m.source] is None]
        trained, train_s = _train_together(run, x, to_train) if to_train else ([], 0.0)
        for m in stack:
            if entries[m.source] is not None:
                outputs = source_model.SourceOutputs(**entries[m.source])
                _write(m, ds, outputs, {"train_s": 0.0, "extract_s": 0.0}, threads_from, history=None)
        for m, net in zip(to_train, trained):
            plan = plan_targets(m.run, ds.labels)
            timings = {"train_s": train_s / len(to_train)}   # this network's share of the stack's training
            outputs = source_model.cache_trained(m.run, plan, net, x, m.cache, timings,
                                                 n_fit=int(len(m.fit_rows)), n_val=int(len(m.val_rows)),
                                                 stack_size=len(to_train), stack_engine=run.trainer.stack_engine)
            _write(m, ds, outputs, timings, threads_from, history=net.history)


def _train_together(run: RunConfig, x: np.ndarray, stack: list[Member]) -> tuple[list, float]:
    """The stack's trained networks (models/stacked.train_stacked) and the seconds they took together."""
    from ..models.stacked import train_stacked

    for m in stack:
        transfer.start_row(m.run, Path(m.run.run_dir))
    fit_rows, val_rows = stack[0].fit_rows, stack[0].val_rows
    y = np.stack([m.y_source for m in stack], axis=1)
    # Epoch checkpoints of the whole stack, named by its members' cache entries: a rerun of the same chunk resumes.
    ckpt = Path(run.paths.cache) / "models" / f"stack-{fingerprint([m.cache.name for m in stack])}"
    log.info(f"training {len(stack)} source models together: {', '.join(m.source for m in stack)}")
    t = time.perf_counter()
    resumes = ("resumes from the stack's last epoch checkpoint in " + str(ckpt / "training")
               if "checkpoint" in run.callbacks.use else "trains them again (callbacks without checkpoint)")
    with doing("training the stacked source models", rerun=resumes):
        trained = train_stacked(select_rows(x, fit_rows), y[fit_rows], [m.k_source for m in stack], run.backbone,
                                source_model.source_trainer(run), seed=run.seed, out_dir=Path(run.run_dir),
                                x_val=select_rows(x, val_rows) if len(val_rows) else None,
                                y_val=y[val_rows] if len(val_rows) else None, callbacks=run.callbacks,
                                ckpt_dir=ckpt / "training")
    train_s = time.perf_counter() - t
    shutil.rmtree(ckpt, ignore_errors=True)
    return trained, train_s


def _write(m: Member, ds: Dataset, outputs, timings: dict, threads_from: str, history: list | None) -> None:
    """A member's row from its source model's outputs, as its single run writes it."""
    plan = plan_targets(m.run, ds.labels)
    settings = transfer.start_row(m.run, Path(m.run.run_dir))
    with Tracker(m.run, name=row_name(m.run, plan.source), job_type="transfer") as tracker:
        if history:
            tracker.log_history(history)
        meta, results = transfer.write_row(m.run, plan, outputs, timings, threads_from, tracker, settings,
                                                   ds=ds)
    transfer.summary(Path(m.run.run_dir), plan.source, meta, results)


def _record_command(job_dir: Path, rows: list[Path]) -> None:
    """Hydra records a job's command line in the job's own folder (`.hydra/overrides.yaml`); each row this job
    made gets a copy, so that its folder names the command that made it, as a single run's does (report.py)."""
    record = job_dir / ".hydra" / "overrides.yaml"
    if not record.is_file():
        return
    text = record.read_text()
    for row in rows:
        if (row / "done.json").is_file() and not (row / ".hydra" / "overrides.yaml").exists():
            io.write_text(row / ".hydra" / "overrides.yaml", text)
