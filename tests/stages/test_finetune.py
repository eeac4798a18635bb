"""transfer=finetune: the fine-tuning ground truth (stages/finetune.py) through function calls on digits."""
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.kills import KillAtEpochStart, Killed
from transferability.errors import UserError
from transferability.stages import finetune
from transferability.stages.transfer import run_transfer

# One source epoch, fine-tuning two epochs: the plumbing and a clear gap to the frozen head, in seconds.
QUICK = ["dataset=digits", "source=even", "target=[digit]", "trainer=debug", "trainer.limit_train_batches=null",
         "transfer=finetune", "transfer.max_epochs=2", "callbacks.progress_interval=null"]


@pytest.fixture
def ft_run(run_config):
    return run_config(QUICK)


# -- config and identity --

def test_finetune_rows_get_their_own_settings_folder(run_config):
    linear, ft = run_config(QUICK[:5]), run_config(QUICK)
    assert "transfer=" not in linear.run_dir
    assert Path(ft.run_dir).parent.parent.name == Path(linear.run_dir).parent.parent.name.replace(
        "trainer=debug", "transfer=finetune,trainer=debug") + ",transfer.max_epochs=2"
    kept = run_config([*QUICK, "transfer.keep_models=true"])
    assert kept.run_dir == ft.run_dir, "keeping the weights changes no numbers"
    other = run_config([*QUICK, "transfer.lr_factors=[0.5]"])
    assert other.run_dir != ft.run_dir


@pytest.mark.parametrize("overrides,message", [
    (["+transfer.lr_factors=[1.0]"], "fine-tuning setting: add transfer=finetune"),
    (["transfer=finetune", "transfer.lr_factors=[]"], "transfer.lr_factors"),
    (["transfer=finetune", "transfer.lr_factors=[1.0,-0.1]"], "transfer.lr_factors"),
    (["transfer=finetune", "transfer.max_epochs=0"], "transfer.max_epochs"),
    (["transfer=finetune", "trainer.val_fraction=0", "callbacks=none"], "validation split"),
    (["transfer=finetune", "backbone=features"], "no network to fine-tune"),
    (["transfer=finetune", "transfer.name=tuned"], "unknown transfer .tuned."),
])
def test_bad_transfer_settings_are_one_line(run_config, overrides, message):
    with pytest.raises(UserError, match=message):
        run_config(overrides)


def test_linear_is_the_default_ground_truth(run_config):
    from transferability import identity
    from transferability.config import to_dict

    run = run_config([])
    assert run.transfer.name == "linear" and run.transfer.lr_factors is None
    # a row written before the transfer group existed (no `transfer` in its config.json) is a linear row
    older = {k: v for k, v in to_dict(run).items() if k != "transfer"}
    assert identity.differences(older, run) == []
    assert identity.differences(older, run_config(["transfer=finetune"])) == [
        "transfer.lr_factors: None -> [1.0, 0.1]", "transfer.max_epochs: None -> 5",
        "transfer.name: None -> 'finetune'"]


# -- the learning-rate choice --

def test_lr_choice_validation_accuracy_then_loss_then_order():
    n = float("nan")
    assert finetune.choose({1e-3: {"val_accuracy": 0.8, "val_loss": 0.1},
                            1e-4: {"val_accuracy": 0.9, "val_loss": 0.5}}) == 1e-4
    assert finetune.choose({1e-3: {"val_accuracy": 0.9, "val_loss": 0.3},
                            1e-4: {"val_accuracy": 0.9, "val_loss": 0.2}}) == 1e-4
    assert finetune.choose({1e-3: {"val_accuracy": 0.9, "val_loss": 0.2},
                            1e-4: {"val_accuracy": 0.9, "val_loss": 0.2}}) == 1e-3
    assert finetune.choose({1e-3: {"val_accuracy": n, "val_loss": n},
                            1e-4: {"val_accuracy": 0.1, "val_loss": 9.0}}) == 1e-4


def test_lr_is_chosen_on_the_validation_split_per_target(ft_run, monkeypatch):
    """A constructed case: at the large rate the network diverges (lr far too large), at the small one it learns;
    every target's chosen rate is the small one and its test error is that network's."""
    run = replace(ft_run, transfer=replace(ft_run.transfer, lr_factors=[3000.0, 1.0]))
    out = run_transfer(run)
    rows = pd.read_csv(out / "results.csv").set_index("target")
    lrs = sorted(rows.finetune_lr.unique())
    assert lrs == [pytest.approx(run.trainer.lr)]
    record = json.loads((out / "source.json").read_text())["finetune"]
    for target, per_lr in record.items():
        big, small = per_lr[f"{3000 * run.trainer.lr:g}"], per_lr[f"{run.trainer.lr:g}"]
        assert small["val_accuracy"] > big["val_accuracy"] or small["val_loss"] < big["val_loss"]
        assert rows.loc[target, "test_error"] == pytest.approx(small["test_error"])


# -- rows --

def test_finetuned_target_beats_or_matches_its_frozen_head(ft_run):
    out = run_transfer(ft_run)
    rows = pd.read_csv(out / "results.csv").set_index("target")
    assert list(rows.index) == ["even", "digit"]
    for col in ("frozen_test_error", "finetune_lr", "finetune_epochs", "finetune_val_accuracy", "leep", "ce"):
        assert col in rows.columns and rows[col].notna().all(), col
    np.testing.assert_allclose(rows.test_error + rows.test_accuracy, 1)
    # digit from a one-epoch `even` network: the frozen embeddings barely separate ten classes; tuned, they do.
    assert rows.loc["digit", "test_error"] <= rows.loc["digit", "frozen_test_error"]
    assert rows.loc["digit", "test_error"] < 0.5
    assert not (out / finetune.PROGRESS).exists(), "progress records go once the row is written"
    assert not (out / finetune.KEPT).exists(), "fine-tuned weights are not kept by default"
    meta = json.loads((out / "source.json").read_text())
    assert set(meta["finetune"]) == {"even", "digit"} and meta["timings"]["finetune_s"] > 0


def test_linear_rows_are_unchanged(run_config):
    out = run_transfer(run_config(QUICK[:5]))
    rows = pd.read_csv(out / "results.csv")
    assert "frozen_test_error" not in rows.columns and "finetune_lr" not in rows.columns


def test_keep_models_keeps_the_chosen_network(run_config):
    run = run_config([*QUICK, "transfer.keep_models=true", "transfer.lr_factors=[1.0,0.1]"])
    out = run_transfer(run)
    assert sorted(p.name for p in (out / finetune.KEPT).iterdir()) == ["digit.pt", "even.pt"]
    import torch

    blob = torch.load(out / finetune.KEPT / "digit.pt", weights_only=True)
    assert blob["state_dict"]["fc.weight"].shape[0] == 10


def test_killed_row_resumes_where_it_was(ft_run, run_config, monkeypatch, caplog, tmp_path):
    """A kill in the second rate's stack, epoch 2: the rerun reads the first stack's record, resumes the second
    from its epoch checkpoint in the row folder, and writes what an uninterrupted row writes."""
    from transferability.models import stacked

    run = replace(ft_run, transfer=replace(ft_run.transfer, lr_factors=[1.0, 0.1]))
    real, calls = stacked.train_stacked, []

    def killing(*a, **k):
        calls.append(a[4].lr)   # train_stacked(x, y, n_classes, backbone, trainer, ...)
        return real(*a, **k, extra_callbacks=[KillAtEpochStart(1)] if len(calls) == 2 else [])

    monkeypatch.setattr(stacked, "train_stacked", killing)
    with pytest.raises(Killed):
        run_transfer(run)
    out = Path(run.run_dir)
    assert not (out / "done.json").exists()
    assert len(list((out / finetune.PROGRESS).glob("*.json"))) == 1
    assert list((out / finetune.PROGRESS).glob("*.training/last.ckpt"))
    caplog.clear()
    calls.clear()
    run_transfer(run)
    assert calls == [pytest.approx(0.1 * run.trainer.lr)], "the finished stack is read back, not trained"
    assert "finished earlier" in caplog.text and "resuming source training after epoch 1" in caplog.text
    monkeypatch.setattr(stacked, "train_stacked", real)
    again = run_config([*QUICK, "transfer.lr_factors=[1.0,0.1]", f"paths.outputs={tmp_path / 'again'}"])
    fresh = run_transfer(again)
    a = pd.read_csv(out / "results.csv")
    b = pd.read_csv(fresh / "results.csv")
    pd.testing.assert_frame_equal(a, b)


def test_a_multi_source_job_fine_tunes_each_row(run_config):
    """source=[a,b] (stages/stacked.py: the sources trained together) writes each row as its single run does."""
    from transferability.stages.stacked import run_stacked

    run = run_config([*QUICK, "source=[even,prime]"])
    outs = run_stacked(run)
    assert [p.parent.name for p in outs] == ["source=even", "source=prime"]
    for out in outs:
        rows = pd.read_csv(out / "results.csv")
        assert rows.finetune_lr.notna().all() and "frozen_test_error" in rows
        assert not (out / finetune.PROGRESS).exists()
