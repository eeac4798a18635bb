"""Preemption-safe source training: a run killed mid-epoch resumes from its last epoch checkpoint and ends
with the same weights, bit for bit, as a run that never stopped (CPU, deterministic)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import transferability.models.training as training
from helpers.kills import KillDuring, Killed
from transferability.config import group_config
from transferability.models.training import extract, train_source

SMALL = group_config("backbone", "small_cnn", width=4, embedding_dim=8)
# augment: the flips draw random numbers, which a resume must reproduce too
FIVE = group_config("trainer", "cpu", max_epochs=5, batch_size=16, lr=1e-2, augment=True)
CALLBACKS = group_config("callbacks", "none", use=("checkpoint", "early_stopping"), patience=5)


def toy(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.integers(0, 60, (n, 8, 8, 1))
    for i, c in enumerate(y):
        x[i, :, c * 4:(c + 1) * 4] += 180
    return x.astype(np.uint8), y.astype(np.int64)


def _train(ckpt_dir, **kw):
    x, y = toy(96, 0)
    xv, yv = toy(32, 1)
    return train_source(x, y, 2, SMALL, kw.pop("cfg", FIVE), seed=7, out_dir=ckpt_dir.parent, x_val=xv, y_val=yv,
                        callbacks=CALLBACKS, ckpt_dir=ckpt_dir, **kw)


def _same_weights(a, b) -> bool:
    wa, wb = a.state_dict(), b.state_dict()
    return all(torch.equal(wa[k], wb[k]) for k in wa)


def test_killed_in_epoch_3_of_5_resumes_and_matches_an_uninterrupted_run(tmp_path):
    whole = _train(tmp_path / "whole")
    assert whole.resumed_from_epoch == 0 and whole.epochs == 5
    with pytest.raises(Killed):
        _train(tmp_path / "killed", extra_callbacks=[KillDuring(epoch=2, batch=2)])
    assert (tmp_path / "killed" / "last.ckpt").is_file()
    again = _train(tmp_path / "killed")
    assert again.resumed_from_epoch == 2        # epochs 1 and 2 were done; epoch 3 starts over
    assert again.epochs == 5
    assert _same_weights(whole.model, again.model)
    drop = lambda h: [{k: v for k, v in row.items() if not k.endswith("seconds")} for row in h]  # noqa: E731
    assert drop(again.history) == drop(whole.history)   # losses of all 5 epochs, the resumed ones included
    x, _ = toy(96, 0)
    np.testing.assert_array_equal(extract(whole.model, x, batch_size=32)[0], extract(again.model, x, batch_size=32)[0])


def test_a_different_seed_gives_different_weights_so_the_check_above_can_fail(tmp_path):
    a = _train(tmp_path / "a", cfg=dataclasses.replace(FIVE, max_epochs=1))
    x, y = toy(96, 0)
    b = train_source(x, y, 2, SMALL, dataclasses.replace(FIVE, max_epochs=1), seed=8, out_dir=tmp_path)
    assert not _same_weights(a.model, b.model)


def test_an_unreadable_checkpoint_means_training_from_scratch(tmp_path, caplog):
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "last.ckpt").write_bytes(b"cut short by a kill")
    r = _train(tmp_path / "ck", cfg=dataclasses.replace(FIVE, max_epochs=1))
    assert r.resumed_from_epoch == 0 and r.epochs == 1
    assert "ignoring unreadable checkpoint" in caplog.text


def test_epoch_order_depends_on_seed_and_epoch_only():
    a, b = training._EpochBatches(50, 16, shuffle=True, seed=3), training._EpochBatches(50, 16, shuffle=True, seed=3)
    first = [list(batch) for batch in a]
    a.set_epoch(4)
    b.set_epoch(4)
    assert [list(x) for x in a] == [list(x) for x in b] != first
    assert len(a) == 3 and all(len(batch) == 16 for batch in a)   # the last partial batch is dropped
    plain = training._EpochBatches(50, 16, shuffle=False, seed=3)
    assert len(plain) == 4 and np.concatenate(list(plain)).tolist() == list(range(50))
