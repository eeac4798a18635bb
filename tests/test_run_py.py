"""End to end: `python run.py ...` as a user types it, on the embedded data (marked slow)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.paths import REPO
from transferability import io

QUICK = ["trainer=debug", "trainer.limit_train_batches=null"]
QUICK_SETTINGS = "trainer=debug,trainer.limit_train_batches=null"   # the settings folder QUICK's rows are in


def quick_and(key_value: str) -> str:
    """QUICK's settings folder with one more setting (after the chosen trainer, settings in key order)."""
    return f"trainer=debug,{key_value},trainer.limit_train_batches=null"


def run_py(*args, cwd=REPO, check=True):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    out = subprocess.run([sys.executable, str(REPO / "run.py"), *args], cwd=cwd, capture_output=True,
                         text=True, env=env, timeout=900)
    if check and out.returncode != 0:
        raise AssertionError(f"run.py {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def test_estimate_stage_writes_its_files(tmp_path):
    out = run_py("stage=estimate", "dataset=digits", f"paths.outputs={tmp_path}")
    d = tmp_path / "digits" / "estimate" / "split=train"
    ce = pd.read_csv(d / "ce.csv")
    assert list(ce.columns) == ["source", "target", "ce"] and len(ce) == 21 * 21
    assert list(pd.read_csv(d / "hardness.csv").columns) == ["task", "hardness"]
    assert (d / "ce_heatmap.png").stat().st_size > 1000
    assert "wrote" in out.stdout


@pytest.mark.parametrize("args,expect", [
    (["stage=estimate", "dataset=digits", "source=evn"], "unknown task 'evn'; did you mean: even"),
    (["stage=estimate", "dataset=celeba", "dataset.root=/nonexistent"], "/nonexistent"),
    (["stage=estimat"], "unknown stage 'estimat'"),
    (["openimages"], "oidv6-train-annotations-human-imagelabels.csv, line "),
    # refused at validation, before the (missing) images are looked for: no silent DDP duplicate
    (["dataset=celeba", "dataset.root=/nonexistent", "trainer.devices=2"], "parallelise over sources"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, tmp_path_factory, args, expect):
    if args == ["openimages"]:   # a generated table with one bad line appended
        from transferability.data import openimages_synth as synth

        root = tmp_path_factory.mktemp("oi")
        synth.generate(root, synth.SynthSpec(n_images=500, n_classes=30), progress=False)
        with open(root / synth.LABELS_FILE, "a") as f:
            f.write("0123456789abcdef,verification,/m/000003,yes\n")
        args = ["stage=estimate", "dataset=openimages", f"dataset.root={root}"]
    out = run_py(*args, f"paths.outputs={tmp_path}", check=False)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], out.stderr
    assert not any(p.is_file() for p in tmp_path.rglob("*.csv"))


def _files(folder):
    return {p for p in folder.rglob("*") if p.is_file()}


def test_names_from_data_never_leave_paths_outputs(tmp_path):
    """A CelebA-format label file whose header names an attribute `../../../..` (as far as the root, then into
    /tmp): its rows, its files and its heatmap stay inside paths.outputs, in one folder named by the encoded name;
    the files hold the real names. A name with non-ASCII letters stays as it is."""
    import uuid

    from helpers.data import write

    stray = Path("/tmp") / f"stray-{uuid.uuid4().hex}"
    evil = "../" * 40 + str(stray).lstrip("/") + "/x"
    data, out = tmp_path / "celeba", tmp_path / "out"
    rng = np.random.default_rng(0)
    rows = [f"{i:06d}.jpg" + "".join(f" {v:2d}" for v in rng.choice([-1, 1], 3)) for i in range(1, 9)]
    write(data / "list_attr_celeba.txt", ["8", f"Male {evil} Größe ", *rows], "\r\n")
    write(data / "identity_CelebA.txt", [f"{i:06d}.jpg {1 + i % 3}" for i in range(1, 9)], "\r\n")
    write(data / "list_eval_partition.txt", [f"{i:06d}.jpg {0 if i < 7 else 2}" for i in range(1, 9)], "\r\n")
    around = tmp_path.parent
    before = _files(around)
    run_py("stage=estimate", "dataset=celeba", f"dataset.root={data}", f"source={evil}", "target=[Male,'Größe']",
           f"paths.outputs={out}")
    run_py("stage=estimate", "dataset=celeba", f"dataset.root={data}", "source=Male", f"target=[{evil}]",
           f"paths.outputs={out}")
    assert not stray.exists()
    new = _files(around) - before
    assert new and all(p.is_relative_to(out) for p in new), sorted(map(str, new - _files(out)))
    split = out / "celeba" / "estimate" / "split=train"
    (row,) = [d for d in split.iterdir() if d.name.startswith("source=%2E")]
    assert row.parent == split and (row / "target=Male,Größe" / "ce_heatmap.png").is_file()
    assert set(pd.read_csv(row / "target=Male,Größe" / "ce.csv")["source"]) == {evil}
    (view,) = (split / "source=Male").iterdir()   # a long name: a hash of it
    assert view.name.startswith("target=+1-") and (view / "ce.csv").is_file()


def test_open_images_class_ids_are_one_folder_each(tmp_path):
    """Open Images names its classes `/m/0abc`: as a source and as targets, one folder each, real names inside."""
    from transferability.data import openimages_synth as synth

    root = tmp_path / "oi"
    synth.generate(root, synth.SynthSpec(n_images=400, n_classes=12), progress=False)
    mids = pd.read_csv(root / synth.CLASSES_FILE)["LabelName"].tolist()
    out = tmp_path / "out"
    run_py("stage=estimate", "dataset=openimages", f"dataset.root={root}", f"source={mids[0]}",
           f"target=[{mids[1]},{mids[2]}]", "estimate.min_pair_rows=1", f"paths.outputs={out}")
    split = out / "openimages" / "estimate" / "estimate.min_pair_rows=1" / "split=train"
    folder = split / f"source={io.component(mids[0])}" / f"target={io.component(mids[1])},{io.component(mids[2])}"
    assert folder.is_dir() and (folder / "ce_matrix.npy").is_file()
    assert set(pd.read_csv(folder / "ce.csv")["target"]) <= {mids[1], mids[2]}
    assert all(p.is_relative_to(out) for p in _files(tmp_path) - _files(root))


@pytest.mark.slow
def test_transfer_then_rerun_is_skipped(tmp_path):
    run_py("dataset=digits", "source=even", *QUICK, f"paths.outputs={tmp_path}")
    row = tmp_path / "digits" / "small_cnn" / "linear_svm" / QUICK_SETTINGS / "source=even" / "seed=0"
    assert len(pd.read_csv(row / "results.csv")) == 21
    again = run_py("dataset=digits", "source=even", *QUICK, f"paths.outputs={tmp_path}")
    assert "already done" in again.stdout


@pytest.mark.slow
def test_transfer_on_generated_shapes(tmp_path):
    """The generated set end to end (its images are rendered, not read from files or an array)."""
    run_py("dataset=shapes", "dataset.n=300", "source=shape", *QUICK, f"paths.outputs={tmp_path}")
    row = tmp_path / "shapes" / "small_cnn" / "linear_svm" / quick_and("dataset.n=300") / "source=shape" / "seed=0"
    assert len(pd.read_csv(row / "results.csv")) == 27 and (row / "done.json").exists()


@pytest.mark.slow
def test_sweep_then_analysis_from_one_command(tmp_path):
    """A small multirun with the analysis callback: rows land where single runs put them."""
    run_py("-m", "dataset=digits", "source=digit,even,ge5", "target=[digit,even,ge5,prime,ink_heavy,wide]",
           *QUICK, f"paths.outputs={tmp_path}",
           "+hydra.callbacks.analyze._target_=transferability.stages.sweep_callback.AnalyzeOnEnd")
    base = tmp_path / "digits" / "small_cnn" / "linear_svm" / QUICK_SETTINGS
    for s in ("digit", "even", "ge5"):
        assert (base / f"source={s}" / "seed=0" / "results.csv").exists()
    analysis = base / "analysis" / "target=digit,even,ge5,prime,ink_heavy,wide"   # the view's own folder
    assert (analysis / "summary.md").exists() and (analysis / "correlations.csv").exists()
    assert (tmp_path / "multirun.yaml").exists(), "the sweep's record lands under paths.outputs, not the cwd"


@pytest.mark.slow
def test_width_study_from_one_command(tmp_path):
    """The width x prevalence experiment, shrunk: rows land in one folder per D, then stage=widths compares them."""
    targets = "target=[even,ge5,prime,ink_heavy@q10,ink_heavy@q50,ink_heavy@q90,wide@q25,wide@q75]"
    run_py("-m", "+experiment=width_prevalence_digits", "backbone.embedding_dim=2,8", "widths=[2,8]", "seed=0",
           "source=even,ge5", targets, *QUICK, f"paths.outputs={tmp_path}")
    base = tmp_path / "digits_q10-25-50-75-90"
    for folder in ("small_cnn-D2", "small_cnn-D8"):
        for s in ("even", "ge5"):
            assert (base / folder / "linear_svm" / QUICK_SETTINGS / f"source={s}" / "seed=0" / "done.json").exists()
    study = base / "small_cnn" / "linear_svm" / QUICK_SETTINGS / "widths"
    summary = pd.read_csv(study / "widths.csv")
    assert sorted(summary["D"].unique()) == [2, 8] and set(summary[summary["estimator"] == "nce"]["n_sources"]) == {2}
    assert "D = 8: CE median per-source r(CE, error)" in (study / "summary.md").read_text()


@pytest.mark.slow
def test_joblib_launcher_runs_jobs_in_parallel_processes(tmp_path):
    run_py("-m", "launcher=joblib", "dataset=digits", "source=even,prime", "target=[even,prime,wide]",
           *QUICK, f"paths.outputs={tmp_path}")
    base = tmp_path / "digits" / "small_cnn" / "linear_svm" / QUICK_SETTINGS
    assert (base / "source=even" / "seed=0" / "results.csv").exists()
    assert (base / "source=prime" / "seed=0" / "results.csv").exists()
    # A row of a parallel sweep equals the same row run alone in a fresh process: the README's width-study tables
    # rest on this (same seed, same thread count, same numbers, whatever else the worker ran before).
    alone = tmp_path / "alone"
    run_py("dataset=digits", "source=prime", "target=[even,prime,wide]", *QUICK, f"paths.outputs={alone}")
    pd.testing.assert_frame_equal(
        pd.read_csv(alone / "digits" / "small_cnn" / "linear_svm" / QUICK_SETTINGS / "source=prime" / "seed=0"
                    / "results.csv"),
        pd.read_csv(base / "source=prime" / "seed=0" / "results.csv"), check_exact=True)


@pytest.mark.slow
def test_submitit_local_launcher(tmp_path):
    """The Slurm path's launcher, run locally: same rows, same places."""
    run_py("-m", "launcher=submitit_local", "dataset=digits", "source=even", "target=[even,wide]",
           *QUICK, f"paths.outputs={tmp_path}")
    assert (tmp_path / "digits" / "small_cnn" / "linear_svm" / QUICK_SETTINGS / "source=even" / "seed=0"
            / "results.csv").exists()


@pytest.mark.slow
def test_wandb_offline_logger(tmp_path):
    run_py("dataset=digits", "source=even", "target=[even,wide]", "logger=wandb", *QUICK,
           f"paths.outputs={tmp_path}")
    row = tmp_path / "digits" / "small_cnn" / "linear_svm" / QUICK_SETTINGS / "source=even" / "seed=0"
    assert list((row / "wandb").glob("offline-run-*")), "an offline run to `wandb sync` later"


@pytest.mark.parametrize("override,expect", [
    ("trainer.max_epochs=abc", "trainer.max_epochs='abc': expected an integer"),
    ("trainer.max_epochs=-1", "trainer.max_epochs=-1: expected an integer >= 1"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0: expected an integer >= 1"),
    ("trainer.batch_size=0", "trainer.batch_size=0: expected an integer >= 1"),
    ("seed=abc", "seed='abc': expected an integer"),
    ("seed=1.5", "seed=1.5: expected an integer"),
    ("target=[]", "target=[]: expected `all` or a non-empty list"),
])
def test_bad_value_stops_before_data_and_leaves_no_folder(tmp_path, override, expect):
    """Checked at compose time: the dataset root does not exist, so loading data would give another error."""
    out_dir = tmp_path / "out"
    out = run_py("dataset=celeba", "dataset.root=/nonexistent", override, f"paths.outputs={out_dir}", check=False)
    assert out.returncode == 2, out.stderr
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and expect in lines[0], out.stderr
    assert not [p for p in tmp_path.rglob("*") if p.is_file() or p.name == ".hydra"], list(tmp_path.rglob("*"))


def test_failed_rerun_keeps_a_finished_row(tmp_path):
    """Only a folder holding nothing but `.hydra/` (and its run.log) is removed: a finished row stays."""
    row = tmp_path / "digits" / "small_cnn" / "linear_svm" / "trainer.batch_size=0" / "source=even" / "seed=0"
    row.mkdir(parents=True)
    (row / "results.csv").write_text("source,target\n")
    out = run_py("dataset=digits", "source=even", "trainer.batch_size=0", f"paths.outputs={tmp_path}", check=False)
    assert out.returncode == 2 and (row / "results.csv").exists()


@pytest.mark.slow
@pytest.mark.parametrize("signum,code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_while_training_is_one_line_and_its_exit_code(tmp_path, signum, code):
    """Ctrl-C, or SIGTERM (`kill`, a scheduler ending the job) while the source model trains: one line saying what
    was interrupted and that a rerun resumes from the checkpoint, exit 128 + the signal, nothing that looks
    finished; the rerun does resume."""
    import signal
    import time

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    log = tmp_path / "stderr.txt"
    args = [sys.executable, str(REPO / "run.py"), "dataset=digits", "source=even", "target=[even,wide]",
            "trainer.max_epochs=50", "callbacks.patience=1000", f"paths.outputs={tmp_path / 'out'}"]
    with open(log, "w") as err:
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
        # Training is under way once its first epoch checkpoint exists (the progress bar is not drawn without a
        # terminal, so stderr says nothing); early stopping is pushed out so that it cannot end the run first.
        deadline = time.time() + 180
        while not list((tmp_path / "out").glob("cache/models/*/training/*.ckpt")) and time.time() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(getattr(signal, signum))
        proc.wait(timeout=120)
    stderr = log.read_text()
    row = (tmp_path / "out" / "digits" / "small_cnn" / "linear_svm" / "callbacks.patience=1000,trainer.max_epochs=50"
           / "source=even" / "seed=0")
    assert proc.returncode == code, stderr[-2000:]
    said = [l for l in stderr.splitlines() if l.startswith("interrupted")]
    assert "Traceback" not in stderr and len(said) == 1, stderr[-2000:]
    assert said[0].startswith(f"interrupted ({signum}) while training the source model: nothing of this run is "
                              "marked finished; rerunning the same command resumes from its last epoch checkpoint")
    assert not (row / "results.csv").exists() and not (row / "done.json").exists()
    assert said[0] in (row / "run.log").read_text()
    if signum == "SIGTERM":
        done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "resuming source training after epoch" in done.stdout
        assert pd.read_json(row / "source.json", typ="series")["resumed_from_epoch"] >= 1


@pytest.mark.slow
def test_two_jobs_needing_one_source_model_train_it_once(tmp_path):
    """Two processes started together, same source, different heads (as `-m head=linear_svm,logistic
    launcher=joblib` or two Slurm array tasks): one trains, the other waits on the model cache entry's lock and
    reuses it; two correct rows, no traceback."""
    from helpers.config import validated

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    args = {head: ["dataset=digits", "source=even", f"head={head}", "target=[even,prime,wide]", "trainer=debug",
                   "trainer.max_epochs=4", "trainer.limit_train_batches=null"] for head in ("linear_svm", "logistic")}
    jobs = {head: subprocess.Popen([sys.executable, str(REPO / "run.py"), *a, f"paths.outputs={tmp_path}"],
                                   cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for head, a in args.items()}
    outs = {head: p.communicate(timeout=600) for head, p in jobs.items()}
    for head, p in jobs.items():
        assert p.returncode == 0 and "Traceback" not in outs[head][1], outs[head][1][-2000:]
    reused = [head for head, (out, _) in outs.items() if "reusing source model" in out]
    assert len(reused) == 1, {h: o[0][-500:] for h, o in outs.items()}
    train_s = {}
    for head in jobs:
        row = Path(validated(args[head], outputs=tmp_path).run_dir)
        assert (row / "done.json").exists() and len(pd.read_csv(row / "results.csv")) == 3
        train_s[head] = pd.read_json(row / "source.json", typ="series")["timings"]["train_s"]
    assert train_s[reused[0]] == 0 and min(train_s.values()) == 0 < max(train_s.values())
    assert len([d for d in (tmp_path / "cache" / "models").iterdir() if d.is_dir()]) == 1


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_a_sweep_over_a_setting_makes_one_row_per_setting(tmp_path, launcher):
    """`-m head.C=0.01,0.1,1,10`: four rows, each in its setting's folder (C = 1 is the default: no folder),
    each made with its own C; a rerun finds all four finished."""
    args = ["-m", f"launcher={launcher}", "dataset=digits", "source=even", "head.C=0.01,0.1,1,10",
            "target=[even,prime,wide,digit]", *QUICK, f"paths.outputs={tmp_path}"]
    out = run_py(*args)
    head = tmp_path / "digits" / "small_cnn" / "linear_svm"
    # parallel jobs' lines carry their row's name
    prefix = f"[linear_svm/{quick_and('head.C=0.01')}/source=even/seed=0] results: "
    assert any(line.startswith(prefix) for line in out.stdout.splitlines()), out.stdout[-2000:]
    rows = {c: head / (quick_and(f"head.C={c}") if c != "1" else QUICK_SETTINGS) / "source=even" / "seed=0"
            for c in ("0.01", "0.1", "1", "10")}
    for c, row in rows.items():
        assert (row / "done.json").exists(), c
        assert pd.read_json(row / "config.json", typ="series")["head"]["C"] == float(c)
        assert f"results: {row / 'results.csv'}" in (row / "run.log").read_text()   # the row's own log
    nll = {c: pd.read_csv(row / "results.csv")["train_nll"].round(6).tolist() for c, row in rows.items()}
    assert len({tuple(v) for v in nll.values()}) == 4, nll   # four settings, four sets of numbers
    again = run_py(*args)
    assert again.stdout.count("already done") == 4


@pytest.mark.slow
def test_the_end_of_a_sweep_analyses_each_settings_matrix(tmp_path):
    """A sweep over a setting analyses each setting's matrix on its own (AnalyzeOnEnd), each analysis listing the
    other setting's rows without reading them; `stage=analyze head.C=...` does the same alone."""
    targets = "target=[digit,even,ge5,prime,ink_heavy,wide]"
    run_py("-m", "dataset=digits", "source=digit,even,ge5", "head.C=0.1,1", targets, *QUICK,
           f"paths.outputs={tmp_path}", "+hydra.callbacks.analyze._target_=transferability.stages.sweep_callback."
           "AnalyzeOnEnd")
    head = tmp_path / "digits" / "small_cnn" / "linear_svm"
    view = "target=digit,even,ge5,prime,ink_heavy,wide"
    for folder, other in ((quick_and("head.C=0.1"), QUICK_SETTINGS), (QUICK_SETTINGS, quick_and("head.C=0.1"))):
        summary = (head / folder / "analysis" / view / "summary.md").read_text()
        assert f"rows read from `{head / folder}`: 3 finished runs" in summary
        assert f"rows of other settings beside these, not used: {other} (3 rows)" in summary
        assert "sweep finished; analysing into" in (head / folder / "analysis" / view / "run.log").read_text()
    matrix = {c: pd.read_csv(head / f / "analysis" / view / "matrix.csv", index_col="source")
              for c, f in (("0.1", quick_and("head.C=0.1")), ("1", QUICK_SETTINGS))}
    assert not matrix["0.1"].equals(matrix["1"])
    alone = run_py("stage=analyze", "dataset=digits", "head.C=0.1", targets, *QUICK, f"paths.outputs={tmp_path}")
    assert f"rows of other settings beside these (not used): {QUICK_SETTINGS} (3 rows)" in alone.stdout
    pd.testing.assert_frame_equal(pd.read_csv(head / quick_and("head.C=0.1") / "analysis" / view / "matrix.csv",
                                              index_col="source"), matrix["0.1"])


@pytest.mark.slow
def test_ground_truths_from_commands_then_one_analysis(tmp_path):
    """The linear rows and the fine-tuned rows of a small matrix, then one `stage=analyze`: both ground truths
    analysed, each folder with ground_truths.csv, the invoked summary opening with the claims under every one."""
    common = ["dataset=digits", "target=[digit,even,ge5,prime,ink_heavy,wide]", *QUICK, f"paths.outputs={tmp_path}"]
    run_py("-m", "source=digit,even,ge5", *common)
    run_py("-m", "source=digit,even,ge5", "transfer=finetune", "transfer.max_epochs=1", *common)
    run_py("stage=analyze", *common)
    base = tmp_path / "digits" / "small_cnn" / "linear_svm"
    view = "target=digit,even,ge5,prime,ink_heavy,wide"
    linear = base / QUICK_SETTINGS / "analysis" / view
    tuned = base / ("transfer=finetune," + QUICK_SETTINGS + ",transfer.max_epochs=1") / "analysis" / view
    for folder in (linear, tuned):
        compared = pd.read_csv(folder / "ground_truths.csv")
        assert len(set(zip(compared.a, compared.b))) == 1 and len(compared)
    rows = pd.read_csv(tuned.parent.parent / "source=digit" / "seed=0" / "results.csv")
    assert rows.finetune_lr.notna().all() and "frozen_test_error" in rows
    summary = (linear / "summary.md").read_text().splitlines()
    assert summary[2] == "## Under every ground truth (head.C=1, transfer=finetune,transfer.max_epochs=1)"
