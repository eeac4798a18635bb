"""A row is named by every setting that changes its numbers (identity.py): the defaults keep their paths, any
other setting gets a settings folder between <head> and source=, and the settings that change nothing never do.
Config tests: the real config, composed (no run)."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
from omegaconf import OmegaConf

from helpers.config import compose, plain
from helpers.paths import CONF
from transferability import identity
from transferability.config import from_dict
from transferability.stages.run_dirs import rows_root, run_dir_for, write_settings_record
from transferability.tracking import row_name, run_id

DEFAULT_ROW = "outputs/digits/small_cnn/linear_svm/source=even/seed=0"


def run_dir(*overrides: str) -> str:
    cfg = OmegaConf.to_container(compose(["source=even", *overrides]), resolve=False)
    cfg.pop("hydra")
    return run_dir_for(OmegaConf.to_container(OmegaConf.create(cfg), resolve=True))


def test_the_defaults_keep_their_paths():
    assert run_dir() == DEFAULT_ROW
    assert run_dir("stage=analyze") == "outputs/digits/small_cnn/linear_svm/analysis"
    assert run_dir("stage=estimate", "source=null") == "outputs/digits/estimate/split=train"
    assert run_dir("train_fraction=0.5") == DEFAULT_ROW + "/fraction=0.5"
    assert run_dir("head=logistic") == "outputs/digits/small_cnn/logistic/source=even/seed=0"
    assert run_dir("dataset=shapes", "source=shape") == "outputs/shapes/small_cnn/linear_svm/source=shape/seed=0"


@pytest.mark.parametrize("override", [
    "head.C=1", "head.C=1.0",                    # the YAML's value, however spelled
    "force=true", "logger=wandb", "logger=csv", "launcher=joblib", "trainer.num_workers=4", "trainer.threads=1",
    "callbacks=cluster", "callbacks.refresh_rate=50", "paths.cache=/elsewhere", "dataset.root=/data/digits",
    "target=[even,prime]", "widths=[4,16]", "split=test", "bias_correction=true", "estimate.top_k=5",
    "experiment=fig5_digits",                    # a target list and a sweep: nothing that changes a row
])
def test_what_changes_no_number_adds_no_folder(override):
    assert run_dir(override) == DEFAULT_ROW


@pytest.mark.parametrize("overrides,folder", [
    (["head.C=0.01"], "head.C=0.01"),
    (["head.C=100"], "head.C=100"),
    (["head.max_iter=50"], "head.max_iter=50"),
    (["trainer.lr=0.01"], "trainer.lr=0.01"),
    (["trainer.weight_decay=0"], "trainer.weight_decay=0"),
    (["trainer.max_epochs=3"], "trainer.max_epochs=3"),
    (["trainer=gpu"], "trainer=gpu"),
    (["trainer=debug"], "trainer=debug"),
    (["trainer=debug", "trainer.limit_train_batches=null"], "trainer=debug,trainer.limit_train_batches=null"),
    (["callbacks=none"], "callbacks=none"),
    (["callbacks.patience=2"], "callbacks.patience=2"),
    (["estimators.gbc_pca_dim=32"], "estimators.gbc_pca_dim=32"),
    (["dataset.test_fraction=0.5"], "dataset.test_fraction=0.5"),
    (["dataset.image_size=16"], "dataset.image_size=16"),
])
def test_a_setting_that_changes_the_numbers_gets_its_folder(overrides, folder):
    assert run_dir(*overrides) == f"outputs/digits/small_cnn/linear_svm/{folder}/source=even/seed=0"


def test_shapes_noise_and_an_experiments_trainer_are_named():
    assert run_dir("dataset=shapes", "source=shape", "dataset.noise=0.1") == \
        "outputs/shapes/small_cnn/linear_svm/dataset.noise=0.1/source=shape/seed=0"
    assert run_dir("experiment=matrix_shapes", "source=shape") == \
        "outputs/shapes/small_cnn-w32/linear_svm/trainer.batch_size=128,trainer.max_epochs=8/source=shape/seed=0"


def test_every_estimator_setting_is_part_of_the_row():
    """The reported fault covered every estimators.* value: each one, changed, makes another row."""
    block = OmegaConf.load(CONF / "config.yaml").estimators
    seen = set()
    for key, value in block.items():
        other = {"spherical": "diagonal", "diagonal": "spherical"}.get(value, value * 2 if value != 1 else 0.5)
        d = run_dir(f"estimators.{key}={other}")
        assert d != DEFAULT_ROW and f"estimators.{key}=" in d, key
        seen.add(d)
    assert len(seen) == len(block)


def _leaves(node: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in node.items():
        if isinstance(v, dict) and v:
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _perturbed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value * 3 + 1
    if isinstance(value, list):
        return value[:-1] if value else ["early_stopping"]
    if value is None:
        return 7
    return f"{value}_x"


@pytest.mark.parametrize("dataset", ["digits", "shapes", "cub", "celeba"])
def test_every_setting_is_in_the_path_or_listed_as_changing_nothing(dataset):
    """A setting added to conf/ is part of every row's identity unless NOT_RESULTS says why it is not: changing
    any key of the composed config changes the row's folder exactly when it is not in NOT_RESULTS."""
    base = plain(dataset=OmegaConf.to_container(OmegaConf.load(CONF / "dataset" / f"{dataset}.yaml"),
                                                resolve=True))
    base.update(source="x", stage="transfer")
    here = run_dir_for(base)
    checked = 0
    for key, value in _leaves(base).items():
        if key in ("dataset.name", "backbone.name", "head.name", "logger.name", "paths.outputs"):
            continue   # a group option is chosen by its name (its values are its YAML's); outputs is the root
        cfg = json.loads(json.dumps(base))
        *parents, leaf = key.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        # callbacks.use=[] drops early stopping (the one that changes the model); quantiles are a list
        node[leaf] = {"callbacks.use": [], "dataset.quantiles": [0.5]}.get(key, _perturbed(value))
        changes_nothing = any(key == k or key.startswith(k + ".") for k in identity.NOT_RESULTS)
        assert (run_dir_for(cfg) == here) == changes_nothing, (key, value, run_dir_for(cfg))
        checked += 1
    assert checked > 30


def test_a_long_list_of_differences_is_hashed_with_settings_json(tmp_path):
    overrides = ["estimators.gbc_pca_dim=32", "head.max_iter=50", "trainer.lr=0.01", "trainer.weight_decay=0",
                 "trainer.max_epochs=3", "estimators.nleep_fit_rows=500"]
    d = run_dir(*overrides)
    folder = d.split("/")[4]
    assert folder.startswith("settings-") and len(folder) == len("settings-") + 12
    assert d != run_dir(*overrides[:-1], "trainer.max_epochs=4")
    cfg = OmegaConf.to_container(compose(["source=even", f"paths.outputs={tmp_path}", *overrides]), resolve=False)
    cfg.pop("hydra")
    run = from_dict(OmegaConf.to_container(OmegaConf.create(cfg), resolve=True))
    write_settings_record(run, rows_root(run))
    record = json.loads((rows_root(run) / "settings.json").read_text())
    assert sorted(record["settings"]) == sorted(overrides)
    assert record["values"]["trainer.lr"] == 0.01 and record["values"]["estimators.gbc_pca_dim"] == 32


def test_the_analysis_and_the_width_study_read_their_settings_folder():
    assert run_dir("stage=analyze", "head.C=0.1") == "outputs/digits/small_cnn/linear_svm/head.C=0.1/analysis"
    assert run_dir("stage=widths", "head.C=0.1") == "outputs/digits/small_cnn/linear_svm/head.C=0.1/widths"
    assert run_dir("stage=estimate", "source=null", "dataset=shapes", "dataset.noise=0.1") == \
        "outputs/shapes/estimate/dataset.noise=0.1/split=train"


def test_differences_and_wandb_ids_follow_the_same_identity(run_config):
    row = run_config(["source=even", "logger=wandb"])
    name = row_name(row, "even")
    same = [replace(row, force=True), replace(row, trainer=replace(row.trainer, threads=3, num_workers=4)),
            replace(row, callbacks=replace(row.callbacks, name="cluster", refresh_rate=200, progress_interval=60.0)),
            replace(row, source=None, source_index=1), replace(row, target=["even"]), replace(row, experiment="x"),
            replace(row, head=replace(row.head, C=1))]
    for other in same:
        assert identity.differences(row, other) == [] and run_id(other, name, "transfer") == run_id(row, name, "t"
                                                                                                 "ransfer")
    c01 = replace(row, head=replace(row.head, C=0.1))
    assert identity.differences(row, c01) == ["head.C: 1.0 -> 0.1"]
    assert run_id(c01, row_name(c01, "even"), "transfer") != run_id(row, name, "transfer")
    assert row_name(c01, "even") == "even/linear_svm/seed0/head.C=0.1"
    no_stop = replace(row, callbacks=replace(row.callbacks, use=["checkpoint"]))
    assert identity.differences(row, no_stop) == ["callbacks.min_delta: 0.0 -> None",
                                                   "callbacks.monitor: 'val_loss' -> None",
                                                   "callbacks.patience: 5 -> None",
                                                   "callbacks.use: ['early_stopping'] -> []"]


def test_a_recorded_config_json_reads_as_the_same_identity(run_config, tmp_path):
    """The rerun check and the analysis compare a row's config.json (JSON: string keys, lists) with a RunConfig."""
    from transferability.config import to_dict

    run = run_config(["dataset=cub", "source=species", "head.C=0.5"])
    recorded = json.loads(json.dumps(to_dict(run), default=str))
    assert identity.differences(recorded, run) == []
    assert identity.settings(recorded) == identity.settings(json.loads(json.dumps(identity.settings(run))))


def test_a_new_setting_or_group_gets_its_own_rows_with_no_code(tmp_path, monkeypatch):
    """What a later change adds (`head.C=auto`; a group of the defaults list, here `augmentation` with options
    `none` and `flips`) is part of the identity without touching identity.py: the default option adds no folder,
    the other one is named, a value of the new kind too."""
    import shutil

    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    (conf / "augmentation").mkdir()
    (conf / "augmentation" / "none.yaml").write_text("name: none\nepochs: 0\n")
    (conf / "augmentation" / "flips.yaml").write_text("name: flips\nepochs: 5\n")
    text = (conf / "config.yaml").read_text().replace("  - trainer: cpu\n",
                                                      "  - trainer: cpu\n  - augmentation: none\n")
    (conf / "config.yaml").write_text(text)
    monkeypatch.setattr(identity, "CONF", conf)
    identity._option.cache_clear()        # the defaults are read from conf/ once per process
    identity._config_yaml.cache_clear()
    try:
        base = plain(source="even")
        linear = {**base, "augmentation": {"name": "none", "epochs": 0}}
        assert identity.entries(linear) == []
        assert identity.entries({**base, "augmentation": {"name": "flips", "epochs": 5}}) == ["augmentation=flips"]
        assert identity.entries({**base, "augmentation": {"name": "flips", "epochs": 2}}) == [
            "augmentation=flips", "augmentation.epochs=2"]
        assert identity.entries({**linear, "head": {**base["head"], "C": "auto"}}) == ["head.C=auto"]
    finally:
        identity._option.cache_clear()
        identity._config_yaml.cache_clear()
