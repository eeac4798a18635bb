"""wandb as a cluster user needs it, offline (no network): one run per row with a stable id that reruns and
requeues resume, one group per sweep, tags, validation curves and learning rate, the offline path printed."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from transferability.config import group_config
from transferability.tracking import Tracker, group_name, row_name, run_id, tags


@pytest.fixture
def row(run_config, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    return replace(run_config(["dataset=digits", "source=even", "logger=wandb"]), experiment="matrix_digits")


def test_id_is_stable_for_a_row_and_differs_between_rows(row):
    name = row_name(row, "even")
    same = [replace(row, force=True), replace(row, trainer=replace(row.trainer, num_workers=4)),
            replace(row, source=None, source_index=1), replace(row, run_dir="/elsewhere"),
            replace(row, trainer=replace(row.trainer, sources_per_job=8)),   # a row of a multi-source job
            replace(row, callbacks=replace(row.callbacks, name="cluster", refresh_rate=200))]
    assert {run_id(r, name, "transfer") for r in same} == {run_id(row, name, "transfer")}
    other_rows = [(row, row_name(row, "prime")), (replace(row, seed=1), row_name(replace(row, seed=1), "even")),
                  (replace(row, backbone=replace(row.backbone, width=16)), name)]
    ids = {run_id(r, n, "transfer") for r, n in other_rows} | {run_id(row, name, "transfer")}
    assert len(ids) == 4


def test_names_groups_and_tags(row):
    assert row_name(row, "even") == "even/linear_svm/seed0"
    assert row_name(replace(row, train_fraction=0.5), "even") == "even/linear_svm/seed0/fraction0.5"
    assert group_name(row) == "matrix_digits/digits/small_cnn/linear_svm"
    assert group_name(replace(row, logger=replace(row.logger, group="mine"))) == "mine"
    assert group_name(replace(row, experiment=None)) == "runs/digits/small_cnn/linear_svm"
    assert tags(row) == ["digits", "small_cnn", "linear_svm", "matrix_digits"]


def test_offline_rerun_resumes_the_same_run_with_curves_and_lr(row, tmp_path, caplog):
    from transferability.models.training import train_source

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (48, 8, 8, 1)).astype(np.uint8)
    y = rng.integers(0, 2, 48)
    cfg = group_config("trainer", "cpu", max_epochs=2, batch_size=16)
    ids = []
    for _ in range(2):   # a run and its rerun (or a requeued job)
        with Tracker(row, name=row_name(row, "even"), job_type="transfer") as tracker:
            run = tracker._wandb
            assert (run.group, tuple(run.tags)) == (group_name(row), tuple(tags(row)))
            ids.append(run.id)
            train_source(x[:32], y[:32], 2, row.backbone, cfg, seed=0, out_dir=tmp_path, x_val=x[32:], y_val=y[32:],
                         loggers=tracker.lightning_loggers,
                         callbacks=group_config("callbacks", "none", use=("lr_monitor",)))
    assert ids[0] == ids[1] == run_id(row, row_name(row, "even"), "transfer")
    runs = sorted((tmp_path / "outputs").rglob(f"offline-run-*-{ids[0]}"))
    assert len(runs) == 2, "both land under the row's id: `wandb sync` merges them into one run"
    logged = next(runs[0].glob("*.wandb")).read_bytes()
    for key in (b"val_loss", b"val_acc", b"train_loss", b"lr-AdamW"):
        assert key in logged, key
    printed = caplog.text
    assert f"wandb offline run: {runs[0]}" in printed and f"wandb sync {runs[1]}" in printed


@pytest.mark.slow
def test_rows_log_their_results_and_the_analysis_uses_them(run_config, monkeypatch, tmp_path):
    """Lineage, offline: each row logs results.csv as an artifact `results-<run id>` and records its name in
    source.json; the analysis run declares every row artifact it read as its input (offline: an artifact record
    marked use_after_commit, which `wandb sync` turns into the use), so the dashboard links the matrix to its rows."""
    import json

    from helpers.wandb_records import artifacts
    from transferability.stages import analyze
    from transferability.stages.transfer import run_transfer

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setattr(analyze, "N_BOOT", 50)
    monkeypatch.setattr(analyze, "N_BOOT_SOURCE", 20)
    quick = ["dataset=digits", "trainer=debug", "logger=wandb", "target=[digit,even,ge5,prime,wide]"]
    names = {}
    for source in ("digit", "even", "ge5"):
        row = run_transfer(run_config([*quick, f"source={source}"]))
        names[source] = json.loads((row / "source.json").read_text())["wandb_artifact"]
        run_ids = [p.name.rsplit("-", 2)[-2:] for p in (row / "wandb").glob("offline-run-*")]
        assert names[source] == f"results-{'-'.join(run_ids[0])}"              # results-<the row's run id>
        assert (names[source], "results", False) in artifacts(row / "wandb")   # the row's output
    assert len(set(names.values())) == 3
    out = analyze.run_analyze(run_config([*quick, "stage=analyze"]))
    used = artifacts(out / "wandb")
    assert sorted(n for n, kind, use in used if kind == "results" and use) == sorted(names.values())
def test_history_of_a_stacked_model_is_logged_per_epoch(run_config, tmp_path):
    """A source trained in a stack logs its curves after training: one csv line per epoch."""
    import pandas as pd

    row = replace(run_config(["dataset=digits", "source=even", "logger=csv"]), run_dir=str(tmp_path / "row"))
    history = [{"epoch": e, "train_loss": 1.0 / (e + 1), "val_loss": 2.0 / (e + 1), "seconds": 0.1} for e in range(3)]
    with Tracker(row, name=row_name(row, "even"), job_type="transfer") as tracker:
        tracker.log_history(history)
    logged = pd.read_csv(tmp_path / "row" / "csv" / "metrics.csv")
    assert list(logged.epoch) == [0, 1, 2] and list(logged.val_loss) == [2.0, 1.0, 2.0 / 3]
