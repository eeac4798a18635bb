"""The Slurm path for real: a 4-source digits matrix through `launcher=slurm_local` (hydra-submitit-launcher
on the one-node cluster of scripts/slurm_cluster.sh). While they train, one array task gets the signal Slurm
sends before a timeout or preemption (submitit requeues it; it resumes from its epoch checkpoint) and another
is cancelled with `scancel`; the sweep is rerun, and the matrix compared with the same sweep run without Slurm
(launcher=basic).

Skipped with the reason when no cluster answers `sinfo`; under CI=true that is a failure (.ci/run starts one)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from helpers.config import validated
from helpers.paths import REPO

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SOURCES = ["digit", "even", "ge5", "wide"]
TARGETS = "[digit,even,ge5,wide,prime,ink_heavy]"
# 6 short epochs: the cancelled task must still be training a few seconds after its first epoch checkpoint.
ARGS = ["-m", "dataset=digits", f"source={','.join(SOURCES)}", f"target={TARGETS}", "trainer=debug",
        "trainer.limit_train_batches=null", "trainer.max_epochs=6", "backbone.width=16"]
# Same threads everywhere (the Slurm jobs inherit the environment): thread counts change the numbers.
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def cluster():
    reason = None
    if shutil.which("sinfo") is None:
        reason = "no Slurm client (sinfo) on PATH"
    else:
        try:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
            if out.returncode != 0 or not re.search(r"idle|mix|alloc", out.stdout):
                reason = f"no Slurm cluster answers sinfo ({(out.stderr or out.stdout).strip()[:200]})"
        except subprocess.TimeoutExpired:
            reason = "sinfo did not answer within 30 s"
    if reason:
        hint = f"{reason}; start one with: sudo scripts/slurm_cluster.sh start"
        if os.environ.get("CI") == "true":
            pytest.fail(f"Slurm tests must run in CI: {hint}")
        pytest.skip(hint)
    # submitit reads job states from sacct: a cluster whose accounting is down would leave the sweep waiting
    # forever on a cancelled job, so say so now instead of timing out minutes later.
    acct = subprocess.run(["sacct", "-n", "-X", "--starttime", "now-1minutes"], capture_output=True, text=True,
                          timeout=30)
    if acct.returncode != 0:
        pytest.fail(f"Slurm answers sinfo but not sacct ({acct.stderr.strip()[:200]}); restart it with: "
                    "sudo scripts/slurm_cluster.sh stop && sudo scripts/slurm_cluster.sh start")


def run_py(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "run.py"), *args], cwd=REPO, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def rows(outputs, *extra) -> Path:
    """Where ARGS's rows are: digits/small_cnn-w16/linear_svm/<the settings folder of ARGS's trainer>."""
    single = [a for a in ARGS if a != "-m" and not a.startswith("source=")] + ["source=digit", *extra]
    return Path(validated(single, outputs=outputs).run_dir).parents[1]


def matrix(outputs) -> pd.DataFrame:
    base = rows(outputs)
    return pd.concat([pd.read_csv(base / f"source={s}" / "seed=0" / "results.csv") for s in SOURCES],
                     ignore_index=True)


def training_task(folder, skip) -> str | None:
    """An array task (<job>_<index>) in its second epoch: its log shows the progress bar of epoch 1, so the
    checkpoint of epoch 0 is on disk and training goes on."""
    for log in sorted(folder.glob("*_*/*_log.out")) if folder.is_dir() else []:
        if log.parent.name not in skip and "Epoch 1:" in log.read_text(errors="replace"):  # the bar is on stdout
            return log.parent.name
    return None


def release(task: str, signaller: subprocess.Popen, folder) -> None:
    """Once the task has caught the signal, stop `scancel --signal` (it retries until the job can be signalled
    again, and would preempt the requeued job a second time); Slurm holds a requeued job back for a while
    (Reason=BeginTime), which a test need not wait for."""
    if signaller.poll() is None and any("Caught signal SIGUSR2" in log.read_text(errors="replace")
                                        for log in folder.glob(f"{task}/*_log.out")):
        signaller.kill()
    reason = subprocess.run(["squeue", "-h", "-j", task, "-o", "%r"], capture_output=True, text=True).stdout
    if "BeginTime" in reason:
        subprocess.run(["scontrol", "update", f"JobId={task}", "StartTime=now"], capture_output=True)


def test_slurm_sweep_survives_requeue_and_cancel_and_equals_a_local_sweep(cluster, tmp_path):
    slurm, local = tmp_path / "slurm", tmp_path / "local"
    sweep = [*ARGS, "launcher=slurm_local", f"paths.outputs={slurm}"]
    t0 = time.time()
    proc = run_py(*sweep)
    preempted = cancelled = signaller = None
    deadline = time.time() + 300
    while cancelled is None and time.time() < deadline and proc.poll() is None:
        task = training_task(slurm / "slurm", skip={preempted})
        if task is not None and preempted is None:
            # What Slurm sends before a timeout or preemption: submitit requeues the job, which resumes.
            # In the background: `scancel --signal` returns only once the requeued job is back (minutes).
            signaller = subprocess.Popen(["scancel", "--signal=USR2", task], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            preempted = task
        elif task is not None:
            subprocess.run(["scancel", task], check=True)
            cancelled = task
        if preempted is not None:
            release(preempted, signaller, slurm / "slurm")
        time.sleep(0.2)
    while preempted is not None and proc.poll() is None:   # the launcher waits for the requeued task too
        release(preempted, signaller, slurm / "slurm")
        time.sleep(1)
    code, out = finish(proc)
    assert cancelled is not None, f"no second array task seen training:\n{out[-3000:]}"
    source, requeued = (SOURCES[int(t.split("_")[1])] for t in (cancelled, preempted))
    assert code != 0, f"the sweep should report the cancelled task {cancelled}:\n{out[-3000:]}"
    # The launcher gives up at the first failed task; the array's other tasks go on in Slurm until done.
    array_job = cancelled.split("_")[0]
    while subprocess.run(["squeue", "-h", "-j", array_job], capture_output=True, text=True).stdout.strip():
        assert time.time() < deadline + 300, "the array's other tasks did not finish"
        release(preempted, signaller, slurm / "slurm")
        time.sleep(1)
    if signaller.poll() is None:
        signaller.kill()
    signaller.wait()
    base = rows(slurm)
    row = base / f"source={source}" / "seed=0"
    assert not (row / "results.csv").exists(), "a cancelled row must not look finished"
    done = [s for s in SOURCES if s != source]
    for s in done:
        assert (base / f"source={s}" / "seed=0" / "results.csv").exists(), s
    meta = pd.read_json(base / f"source={requeued}" / "seed=0" / "source.json", typ="series")
    assert meta["resumed_from_epoch"] >= 1, "the requeued task resumed from its checkpoint"

    stamps = {s: (base / f"source={s}" / "seed=0" / "results.csv").stat().st_mtime_ns for s in done}
    print(f"first sweep, requeued {preempted} ({requeued}), cancelled {cancelled} ({source}): {time.time() - t0:.0f} s")
    # The rerun: finished rows are skipped, the cancelled one resumes from its epoch checkpoint.
    code, out = finish(run_py(*sweep))
    assert code == 0, out[-3000:]
    print(f"rerun: {time.time() - t0:.0f} s")
    for s in done:
        assert (base / f"source={s}" / "seed=0" / "results.csv").stat().st_mtime_ns == stamps[s], s
    meta = pd.read_json(row / "source.json", typ="series")
    assert meta["resumed_from_epoch"] >= 1 and meta["epochs"] == 6, "the cancelled task resumed its training"

    code, out = finish(run_py(*ARGS, "launcher=basic", f"paths.outputs={local}"))
    assert code == 0, out[-3000:]
    print(f"local sweep: {time.time() - t0:.0f} s")
    pd.testing.assert_frame_equal(matrix(slurm), matrix(local), check_exact=True)


def test_slurm_sweep_over_a_setting_makes_one_row_per_setting(cluster, tmp_path):
    """`-m head.C=0.01,0.1,1,10` through Slurm array tasks: four rows, one per setting, each with its own C."""
    sweep = ["-m", "dataset=digits", "source=even", "head.C=0.01,0.1,1,10", "target=[even,wide,prime]",
             "trainer=debug", "trainer.limit_train_batches=null", "launcher=slurm_local", f"paths.outputs={tmp_path}"]
    code, out = finish(run_py(*sweep))
    assert code == 0, out[-3000:]
    single = [a for a in sweep if a not in ("-m",) and not a.startswith(("head.C=", "launcher="))]
    for c in ("0.01", "0.1", "1", "10"):
        row = Path(validated([*single[:-1], f"head.C={c}"], outputs=tmp_path).run_dir)
        assert pd.read_json(row / "config.json", typ="series")["head"]["C"] == float(c)
        assert (row / "done.json").exists() and (row / "run.log").exists(), c
