"""Config tests: every group option and every experiment composes and validates; layout and names."""
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import CONF, REPO, compose
from transferability.config import from_dict
from transferability.stages.run_dirs import run_dir_for
from transferability.errors import UserError

GROUPS = ("dataset", "backbone", "head", "trainer", "logger", "launcher")


def options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def experiments():
    return sorted(p.stem for p in (REPO / "experiments").glob("*.yaml"))


def validate(cfg):
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain.pop("hydra")
    hydra = {"run": {"dir": cfg.hydra.run.dir}}
    resolved = OmegaConf.to_container(OmegaConf.create(plain), resolve=True)
    return from_dict(resolved, run_dir=run_dir_for(resolved)), hydra


def test_defaults_list_reads_as_table_of_contents():
    text = (CONF / "config.yaml").read_text()
    defaults = OmegaConf.load(CONF / "config.yaml").defaults
    assert list(defaults)[-1] == "_self_"
    for group in GROUPS:
        assert f"- {group}:" in text
        assert options(group), f"conf/{group}/ has no options"


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_group_option_composes(group, option):
    run, _ = validate(compose([f"{group}={option}"]))
    if group not in ("launcher",):
        assert getattr(run, group).name == option


@pytest.mark.parametrize("name", experiments())
def test_every_experiment_composes(name):
    cfg = compose([f"+experiment={name}"])
    run, _ = validate(cfg)
    text = (REPO / "experiments" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_"), "experiments are global deltas"
    assert "python run.py" in text, "each experiment names the command that runs it"
    assert run.stage in ("estimate", "transfer", "analyze")


def test_unknown_key_is_one_clear_line():
    cfg = compose(["+trainer.max_epoch=3"])
    with pytest.raises(UserError, match="max_epoch.*did you mean: max_epochs"):
        validate(cfg)


def test_bad_stage_and_fraction():
    with pytest.raises(UserError, match="unknown stage 'estimat'.*estimate"):
        validate(compose(["stage=estimat"]))
    with pytest.raises(UserError, match="train_fraction"):
        validate(compose(["train_fraction=1.5"]))


def test_run_dir_layout_is_predictable_from_config():
    run, hydra = validate(compose(["dataset=digits", "source=even", "seed=3"]))
    assert run.run_dir == "outputs/digits/small_cnn/linear_svm/source=even/seed=3"
    assert hydra["run"]["dir"] == run.run_dir
    run, _ = validate(compose(["stage=analyze", "head=logistic"]))
    assert run.run_dir == "outputs/digits/small_cnn/logistic/analysis"
    run, _ = validate(compose(["stage=estimate", "split=test"]))
    assert run.run_dir == "outputs/digits/estimate/split=test"
    run, _ = validate(compose(["source=even", "train_fraction=0.25"]))
    assert run.run_dir.endswith("source=even/seed=0/fraction=0.25")


def test_source_index_names_its_row_directory():
    run, _ = validate(compose(["dataset=digits", "source_index=0"]))
    # The directory carries the task's name (task 0 of digits is `digit`), not its number.
    assert "/source=digit/seed=0" in run.run_dir


def test_source_checked_against_task_list_with_close_matches():
    from transferability.data.registry import load_dataset

    run, _ = validate(compose(["dataset=digits", "source=evn"]))
    table = load_dataset(run.dataset).labels
    with pytest.raises(UserError, match=r"unknown task 'evn'; did you mean: even"):
        table.resolve_source(run.source, run.source_index, run.dataset.default_source)
    with pytest.raises(UserError, match="source_index=999"):
        table.resolve_source(None, 999, None)


@pytest.mark.parametrize("name", [e for e in experiments() if e.startswith("matrix_")])
def test_matrix_sweeps_cover_every_task_once(name, request):
    """A matrix experiment's source_index range equals its dataset's task count."""
    from dataclasses import replace

    from transferability.data.registry import task_names

    cfg = compose([f"+experiment={name}"])
    run, _ = validate(cfg)
    spec = str(cfg.hydra.sweeper.params.source_index)
    lo, hi = (int(v) for v in spec[spec.index("(") + 1:spec.index(")")].split(","))
    real = {  # the real datasets read their task names from ../shared/data (label files only)
        "celeba": ("celeba", {}),
        "awa2": ("awa2/Animals_with_Attributes2", {"image_list": "awa2/derived/awa2_all_images.txt"}),
        "cub": ("cub/CUB_200_2011", {"attribute_labels": "class"}),
    }
    if run.dataset.name in real:
        shared = request.getfixturevalue("shared_data")
        root, params = real[run.dataset.name]
        params = {k: (str(shared / v) if k == "image_list" else v) for k, v in params.items()}
        run = replace(run, dataset=replace(run.dataset, root=str(shared / root),
                                           params={**run.dataset.params, **params}))
    assert (lo, hi) == (0, len(task_names(run.dataset)))


def test_estimator_choices_are_typed_and_validated():
    run, _ = validate(compose([]))
    assert (run.estimators.transrate_eps, run.estimators.gbc_pca_dim, run.estimators.gbc_gaussian) == (1e-4, 64, "spherical")
    assert (run.estimators.nleep_pca_variance, run.estimators.nleep_components_per_class) == (0.8, 5)
    assert run.estimators.nleep_fit_rows == 10_000
    run, _ = validate(compose(["estimators.gbc_gaussian=diagonal", "estimators.gbc_pca_dim=16"]))
    assert (run.estimators.gbc_gaussian, run.estimators.gbc_pca_dim) == ("diagonal", 16)
    for override, message in [("estimators.gbc_gaussian=spherecal", "did you mean: spherical"),
                              ("estimators.transrate_eps=0", "transrate_eps=0: expected a number > 0"),
                              ("estimators.gbc_pca_dim=2.5", "gbc_pca_dim=2.5: expected an integer >= 1"),
                              ("estimators.nleep_pca_variance=1.5", r"nleep_pca_variance=1.5: expected a fraction"),
                              ("+estimators.nleep_components=3", "did you mean: nleep_components_per_class")]:
        with pytest.raises(UserError, match=message):
            validate(compose([override]))


def test_estimator_choices_reach_the_estimators_under_their_names():
    from dataclasses import asdict

    from transferability.estimators.transrate_gbc_nleep import DEFAULTS

    run, _ = validate(compose([]))
    assert {**asdict(run.estimators), "seed": run.seed} == DEFAULTS


@pytest.mark.parametrize("dataset, source, n_tasks", [("digits", "ink_heavy@q25", 65), ("shapes", "large@q90", 51)])
def test_quantile_targets_compose_and_name_their_cut(dataset, source, n_tasks):
    from transferability.data.registry import load_dataset

    run, _ = validate(compose([f"dataset={dataset}", "dataset.quantiles=[0.1,0.25,0.5,0.75,0.9]", f"source={source}"]))
    assert run.dataset.params["quantiles"] == [0.1, 0.25, 0.5, 0.75, 0.9]
    assert run.run_dir.endswith(f"source={source}/seed=0")
    table = load_dataset(run.dataset).labels
    assert len(table.tasks) == n_tasks and table.resolve_source(run.source, None, "") == source
    default, _ = validate(compose([f"dataset={dataset}"]))
    assert default.dataset.params["quantiles"] is None


def test_bad_quantiles_fail_at_load_with_one_line():
    from transferability.data.registry import load_dataset

    run, _ = validate(compose(["dataset=digits", "dataset.quantiles=[0.5,2]"]))
    with pytest.raises(UserError, match=r"digits quantiles=\[0.5, 2\]: expected a list of distinct numbers"):
        load_dataset(run.dataset)
