"""The transfer stage through function calls on digits: rows, caching, skipping, atomicity, bad input."""
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.kills import KillAtEpochStart, Killed
from transferability.config import group_config
from transferability.errors import UserError
from transferability.stages.transfer import run_transfer

COLUMNS = ["source", "target", "dedicated", "n_classes", "n_train", "n_test", "ce", "ce_mm", "nce",
           "test_error", "test_accuracy", "train_error", "train_nll", "l_z", "theorem1_bound",
           "ce_head_train_ll", "leep", "logme", "hscore", "hscore_reg", "transrate", "gbc", "nleep"]


@pytest.fixture
def digits_run(run_config):
    # One quick epoch: these tests check the plumbing, not the accuracy.
    return run_config(["dataset=digits", "source=even", "trainer=debug", "trainer.limit_train_batches=null"])


def test_one_row_per_target_with_every_column(digits_run, tmp_path):
    out = run_transfer(digits_run)
    rows = pd.read_csv(out / "results.csv")
    from transferability.data.registry import task_names

    assert list(rows.target) == task_names(digits_run.dataset)
    assert set(COLUMNS) <= set(rows.columns)
    assert rows[["leep", "logme", "hscore", "hscore_reg", "transrate", "gbc", "nleep"]].notna().all().all()
    assert rows.dedicated.sum() == 1 and rows.loc[rows.dedicated, "target"].item() == "even"
    assert rows.test_error.between(0, 1).all()
    np.testing.assert_allclose(rows.test_accuracy + rows.test_error, 1)
    np.testing.assert_allclose(rows.theorem1_bound, rows.l_z - rows.ce)
    # The Theorem-1 head satisfies its bound exactly (Eq. 11 is Jensen's inequality on each row).
    assert (rows.ce_head_train_ll >= rows.theorem1_bound - 1e-9).all()
    # H(digit | even) is large, H(even | even) = 0.
    assert rows.set_index("target").loc["even", "ce"] == 0.0
    meta = json.loads((out / "source.json").read_text())
    assert meta["source"] == "even" and 0.5 < meta["source_test_accuracy"] <= 1
    assert (out / "config.json").exists() and (out / "model.pt").exists()


def test_rerun_is_skipped_and_force_reruns_from_cache(digits_run, caplog):
    out = run_transfer(digits_run)
    first = (out / "results.csv").read_bytes()
    caplog.clear()
    run_transfer(digits_run)
    assert "already done" in caplog.text
    run_transfer(replace(digits_run, force=True))
    assert "reusing source model" in caplog.text
    assert (out / "results.csv").read_bytes() == first


def test_same_seed_same_numbers(digits_run, tmp_path):
    a = run_transfer(digits_run)
    other = replace(digits_run, run_dir=str(tmp_path / "again"),
                    paths=replace(digits_run.paths, cache=str(tmp_path / "cache2")))
    b = run_transfer(other)
    pd.testing.assert_frame_equal(pd.read_csv(a / "results.csv"), pd.read_csv(b / "results.csv"))


def test_killed_run_leaves_no_results(digits_run, monkeypatch):
    import transferability.stages.transfer as tr

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(tr, "score_targets", boom)
    with pytest.raises(KeyboardInterrupt):
        run_transfer(digits_run)
    out = digits_run.run_dir
    assert not os.path.exists(os.path.join(out, "results.csv"))
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")] if os.path.isdir(out) else True


def test_unknown_target_fails_before_training(run_config, monkeypatch):
    import transferability.models.training as training

    monkeypatch.setattr(training, "train_source", lambda *a, **k: pytest.fail("trained"))
    run = run_config(["dataset=digits", "source=even", "target=[prime,evn]"])
    with pytest.raises(UserError, match="unknown task 'evn'; did you mean: even"):
        run_transfer(run)


def test_label_only_root_fails_transfer_clearly(run_config, shared_data):
    run = run_config(["dataset=celeba", f"dataset.root={shared_data / 'celeba'}", "source=Male"])
    with pytest.raises(UserError, match="img_align_celeba"):
        run_transfer(run)


def test_finished_row_from_other_settings_is_not_taken_as_done(digits_run, caplog):
    run_transfer(digits_run)
    # `widths` only says which rows stage=widths compares: a row is the same row whatever it holds
    caplog.clear()
    run_transfer(replace(digits_run, widths=[4, 16]))
    assert "already done" in caplog.text
    wider = replace(digits_run, backbone=replace(digits_run.backbone, width=16))
    with pytest.raises(UserError, match=r"other settings \(backbone.width: 64 -> 16\).*force=true"):
        run_transfer(wider)


def test_precomputed_features_backbone(run_config, tmp_path):
    """backbone=features (Sec. 5.2: a given representation): only the softmax head h_Z is trained on it."""
    from sklearn.datasets import load_digits

    from transferability.data.registry import load_dataset

    run = run_config(["dataset=digits", "backbone=features", "source=digit", "trainer=debug",
                      "trainer.limit_train_batches=null", f"backbone.path={tmp_path / 'f.npz'}"])
    ids = load_dataset(run.dataset).labels.labels.index.to_numpy().astype(str)
    pixels = load_digits().data.astype(np.float32)          # rows in the dataset's id order
    np.savez(tmp_path / "f.npz", ids=ids[::-1], embeddings=pixels[::-1])   # stored in another order
    out = run_transfer(run)
    rows = pd.read_csv(out / "results.csv").set_index("target")
    assert rows.loc["even", "test_accuracy"] > 0.8     # raw pixels carry parity well enough for a linear SVM
    meta = json.loads((out / "source.json").read_text())
    assert meta["source"] == "digit" and meta["source_n_classes"] == 10


def test_row_with_all_targets_serves_a_subset_request(digits_run, caplog):
    run_transfer(digits_run)
    caplog.clear()
    run_transfer(replace(digits_run, target=["even", "wide"]))
    assert "already done" in caplog.text


def test_thread_count_is_applied_and_recorded(run_config, caplog):
    import torch

    before = torch.get_num_threads()
    try:
        run = run_config(["dataset=digits", "source=even", "trainer=debug", "trainer.threads=1"])
        out = run_transfer(run)
        assert torch.get_num_threads() == 1 and "threads: 1 (trainer.threads)" in caplog.text
        meta = json.loads((out / "source.json").read_text())
        assert (meta["threads"], meta["threads_from"], meta["train_threads"]) == (1, "trainer.threads", 1)
        assert json.loads((out / "config.json").read_text())["trainer"]["threads"] == 1
        # another allotment does not make the finished row look like another setting
        run_transfer(replace(run, trainer=replace(run.trainer, threads=None)))
        assert "already done" in caplog.text
    finally:
        torch.set_num_threads(before)


def test_validation_split_official_or_seeded_holdout():
    from transferability.data.labels import LabelTable
    from transferability.stages.targets import validation_split

    ids = [str(i) for i in range(10)]
    labels = pd.DataFrame({"t": [0, 1] * 5}, index=ids)
    official = LabelTable(labels, pd.Series(["train"] * 6 + ["val"] * 2 + ["test"] * 2, index=ids))
    fit, val = validation_split(official, np.arange(8), 0.5, seed=0)
    assert fit.tolist() == list(range(6)) and val.tolist() == [6, 7]     # the dataset's own val split
    plain = LabelTable(labels, pd.Series(["train"] * 8 + ["test"] * 2, index=ids))
    fit, val = validation_split(plain, np.arange(8), 0.25, seed=0)
    assert len(val) == 2 and sorted(fit.tolist() + val.tolist()) == list(range(8))
    assert validation_split(plain, np.arange(8), 0.25, seed=0)[1].tolist() == val.tolist()   # seeded
    assert len(validation_split(plain, np.arange(8), 0.0, seed=0)[1]) == 0


def test_source_json_records_validation_and_resume(digits_run, monkeypatch):
    """A row whose training was cut short resumes from the epoch checkpoint next to the model cache."""
    from transferability.models import training

    run = replace(digits_run, trainer=replace(digits_run.trainer, max_epochs=3))
    real = training.train_source
    monkeypatch.setattr(training, "train_source", lambda *a, **k: real(*a, **k, extra_callbacks=[KillAtEpochStart(1)]))
    with pytest.raises(Killed):
        run_transfer(run)
    models = Path(run.paths.cache) / "models"
    assert list(models.glob("*/training/last.ckpt"))
    monkeypatch.setattr(training, "train_source", real)
    out = run_transfer(run)
    meta = json.loads((out / "source.json").read_text())
    assert meta["resumed_from_epoch"] == 1 and meta["epochs"] == 3
    assert meta["n_val"] == round(0.1 * meta["n_train"]) and meta["n_fit"] + meta["n_val"] == meta["n_train"]
    assert all("val_loss" in h and "val_acc" in h for h in meta["history"])
    assert not list(models.glob("*/training")), "epoch checkpoints go once the model is cached"


def test_random_source_is_the_untrained_backbone_with_the_same_head(run_config, caplog):
    """source=random: no training, one constant source class, so CE = H(Y), l_Z = 0 and k-bar is the prior."""
    from transferability.analysis.design import target_baselines
    from transferability.data.registry import load_dataset, task_names

    run = run_config(["dataset=digits", "source=random", "trainer=debug", "trainer.limit_train_batches=null"])
    out = run_transfer(run)
    rows = pd.read_csv(out / "results.csv").set_index("target")
    assert "source=random" in str(out) and list(rows.index) == task_names(run.dataset)
    assert not rows.dedicated.any() and (rows.source == "random").all()
    lab = load_dataset(run.dataset).labels.subset("trainval").labels
    h = target_baselines(lab).set_index("task")["target_entropy"]
    np.testing.assert_allclose(rows.ce, h[rows.index], atol=1e-9)          # H(Y | constant) = H(Y)
    np.testing.assert_allclose(rows.l_z, 0.0, atol=1e-9)
    np.testing.assert_allclose(rows.ce_head_train_ll, -h[rows.index], atol=1e-6)   # k-bar = the prior
    assert rows.test_error.between(0, 1).all()
    meta = json.loads((out / "source.json").read_text())
    assert meta["epochs"] == 0 and meta["source_n_classes"] == 1
    # its settings are those asked for (its folder's), not the max_epochs=0 it is made with
    assert out.parents[1].name == ",".join(meta["settings"]) == "trainer=debug,trainer.limit_train_batches=null"
    # its record says max_epochs=0 (never trained); a rerun of the same command is still the same row
    caplog.clear()
    run_transfer(run)
    assert "already done" in caplog.text


def test_a_target_with_no_test_class_seen_in_training_is_skipped():
    """CelebA's identity target: the official split is identity-disjoint, so no head can predict a test identity."""
    from transferability.stages.targets import shares_a_class

    assert not shares_a_class(np.array([0, 1, 2, -1]), np.array([3, 4, -1]))
    assert shares_a_class(np.array([0, 1, 2]), np.array([5, 2]))
    assert not shares_a_class(np.array([-1, -1]), np.array([0]))   # nothing labelled in training


def test_identity_disjoint_target_is_skipped_on_the_real_celeba_split(shared_data):
    from transferability.data.registry import load_dataset
    from transferability.stages.targets import TEST, TRAIN, encode_labels, shares_a_class

    labels = load_dataset(group_config("dataset", "celeba", root=str(shared_data / "celeba"), image_size=64,
                                        default_source="Male")).labels
    codes, _ = encode_labels(labels.labels[["identity", "Male"]])
    train, test = np.flatnonzero(labels.mask(TRAIN)), np.flatnonzero(labels.mask(TEST))
    assert not shares_a_class(codes[train, 0], codes[test, 0])   # identity: disjoint, skipped
    assert shares_a_class(codes[train, 1], codes[test, 1])
