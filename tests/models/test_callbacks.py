"""The callbacks config group: names validated at compose time, each built from the name table."""
from __future__ import annotations

import pytest
from lightning.pytorch import callbacks as cb

from helpers.config import compose
from transferability.config import CALLBACKS, from_dict, group_config
from transferability.errors import UserError
from transferability.models.callbacks import BUILD, build_callbacks


def _validate(overrides):
    from omegaconf import OmegaConf

    cfg = compose(overrides)
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain.pop("hydra")
    return from_dict(OmegaConf.to_container(OmegaConf.create(plain), resolve=True))


def test_every_name_has_a_constructor():
    assert tuple(BUILD) == CALLBACKS


def test_default_builds_all_four(tmp_path):
    run = _validate([])
    assert run.callbacks.name == "default" and run.trainer.val_fraction > 0
    made = build_callbacks(run.callbacks, ckpt_dir=tmp_path, has_val=True, has_logger=True)
    kinds = (cb.ModelCheckpoint, cb.EarlyStopping, cb.LearningRateMonitor, cb.TQDMProgressBar)
    assert [isinstance(c, k) for c, k in zip(made, kinds)] == [True] * 4 and len(made) == 4
    assert made[1].monitor == "val_loss" and made[1].mode == "min"


def test_what_cannot_apply_is_left_out():
    cfg = group_config("callbacks", "default", monitor="val_acc")
    made = build_callbacks(cfg, ckpt_dir=None, has_val=False, has_logger=False)
    assert [type(c) for c in made] == [cb.TQDMProgressBar]   # no directory, no validation, no logger
    stop = build_callbacks(cfg, ckpt_dir=None, has_val=True, has_logger=False)[0]
    assert stop.mode == "max"                                # accuracy: higher is better


@pytest.mark.parametrize("overrides,expect", [
    (["callbacks.use=[checkpoint,early_stop]"],
     "unknown callback in callbacks.use: 'early_stop'; did you mean: early_stopping"),
    (["callbacks.monitor=train_loss"], "callbacks.monitor='train_loss'"),
    (["callbacks.patience=0"], "patience=0"),
    (["trainer.val_fraction=0"], "trainer.val_fraction=0 leaves no validation split"),
    (["trainer.val_fraction=1.5"], "trainer.val_fraction=1.5"),
])
def test_bad_callbacks_settings_are_one_clear_line(overrides, expect):
    with pytest.raises(UserError, match=None) as e:
        _validate(overrides)
    assert expect in str(e.value) and "\n" not in str(e.value)


def test_no_validation_without_early_stopping_is_fine():
    run = _validate(["callbacks=none", "trainer.val_fraction=0"])
    assert run.callbacks.use == [] and run.trainer.val_fraction == 0
