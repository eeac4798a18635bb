"""Config tests: every group option and every experiment composes and validates; layout and names."""

import pytest
from omegaconf import OmegaConf

from helpers.config import compose, sweep_jobs
from helpers.paths import CONF, REPO
from transferability.config import from_dict
from transferability.errors import UserError
from transferability.stages.run_dirs import run_dir_for

GROUPS = ("dataset", "backbone", "head", "transfer", "trainer", "callbacks", "logger", "launcher")


def options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def experiments():
    return sorted(p.stem for p in (REPO / "experiments").glob("*.yaml"))


def validate(cfg):
    plain = OmegaConf.to_container(cfg, resolve=False)
    choices = plain.pop("hydra")["runtime"]["choices"]
    hydra = {"run": {"dir": cfg.hydra.run.dir}}
    resolved = OmegaConf.to_container(OmegaConf.create(plain), resolve=True)
    return from_dict({**resolved, "experiment": choices.get("experiment")}, run_dir=run_dir_for(resolved)), hydra


def test_defaults_list_reads_as_table_of_contents():
    text = (CONF / "config.yaml").read_text()
    defaults = list(OmegaConf.load(CONF / "config.yaml").defaults)
    # `_self_` after every group but the experiment, a delta over everything (this file's values included);
    # Hydra wants its own overrides at the end.
    assert defaults[-3:-1] == ["_self_", {"experiment": None}]
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
    cfg = compose([f"experiment={name}"])
    run, _ = validate(cfg)
    assert run.experiment == name
    text = (REPO / "experiments" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_"), "experiments are global deltas"
    assert "python run.py" in text, "each experiment names the command that runs it"
    assert run.stage in ("estimate", "transfer", "analyze")


def test_experiment_with_and_without_plus_is_the_same_config():
    """`experiment` is a defaults-list group; the `+experiment=` spelling run.py accepts composes the same."""
    from transferability.stages.dispatch import plain_experiment

    assert plain_experiment(["run.py", "-m", "+experiment=matrix_digits", "+trainer.x=1"]) == \
        ["run.py", "-m", "experiment=matrix_digits", "+trainer.x=1"]
    plain, plus = compose(["experiment=width_prevalence_digits"]), compose(["experiment=width_prevalence_digits"])
    assert OmegaConf.to_container(plain, resolve=False) == OmegaConf.to_container(plus, resolve=False)
    assert list(plain.widths) == [2, 8, 32, 128, 512] and list(plain.dataset.quantiles)[0] == 0.1
    # without an experiment nothing is swept and nothing of an experiment leaks in
    assert "params" not in compose([]).hydra.sweeper or not compose([]).hydra.sweeper.params


def test_unknown_key_is_one_clear_line():
    cfg = compose(["+trainer.max_epoch=3"])
    with pytest.raises(UserError, match="max_epoch.*did you mean: max_epochs"):
        validate(cfg)


def test_bad_stage_and_fraction():
    with pytest.raises(UserError, match="unknown stage 'estimat'.*estimate"):
        validate(compose(["stage=estimat"]))
    with pytest.raises(UserError, match="train_fraction"):
        validate(compose(["train_fraction=1.5"]))


@pytest.mark.parametrize("value", ["2", "-1", "0"])
def test_more_than_one_device_is_refused_with_the_way_out(value):
    with pytest.raises(UserError, match=rf"trainer.devices={value}: .*parallelise over sources.*python run.py -m"):
        validate(compose([f"trainer.devices={value}"]))


@pytest.mark.parametrize("value", ["0", "1.5", "many"])
def test_threads_must_be_a_positive_integer(value):
    with pytest.raises(UserError, match=r"trainer.threads=.*(positive integer|an integer or null)"):
        validate(compose([f"trainer.threads={value}"]))
    assert validate(compose(["trainer.threads=3"]))[0].trainer.threads == 3


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


# Each matrix experiment's task count: `source_index: all` must launch exactly the jobs of `range(0, <count>)`.
TYPED_RANGES = {"matrix_digits": 21, "matrix_shapes": 27, "matrix_celeba": 41, "matrix_awa2": 86, "matrix_cub": 313,
                "matrix_folder": 3}


def tiny_folder(root, columns=("colour", "big", "shape")):
    import numpy as np
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    lines = ["file_name," + ",".join(columns)]
    for i in range(12):
        Image.fromarray(np.full((6, 6), 20 * i, np.uint8)).save(root / f"{i}.png")
        lines.append(f"{i}.png," + ",".join(str((i >> j) % 2) for j in range(len(columns))))
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("name", [e for e in experiments() if e.startswith("matrix_")])
def test_matrix_sweeps_launch_the_jobs_of_the_typed_range(name, request, tmp_path):
    """`source_index: all` expands to the job list the typed `range(0, <task count>)` gave, in the same order."""
    real = {  # the real datasets read their task names from ../shared/data (label files only)
        "matrix_celeba": ["dataset.root={}/celeba"],
        "matrix_awa2": ["dataset.root={}/awa2/Animals_with_Attributes2",
                        "dataset.image_list={}/awa2/derived/awa2_all_images.txt"],
        "matrix_cub": ["dataset.root={}/cub/CUB_200_2011", "dataset.attribute_labels=class"],
    }
    arguments = [f"experiment={name}"]
    if name in real:
        shared = request.getfixturevalue("shared_data")
        arguments += [o.format(shared) for o in real[name]]
    if name == "matrix_folder":
        arguments.append(f"dataset.root={tiny_folder(tmp_path / 'data')}")
    jobs = sweep_jobs(arguments)
    assert jobs == sweep_jobs(arguments, typed=TYPED_RANGES[name])
    assert len(jobs) == 3 * TYPED_RANGES[name] and jobs[0][:2] == ["seed=0", "source_index=0"]


def test_task_sweeper_expands_per_dataset_and_leaves_typed_values_alone(tmp_path):
    a, b = tiny_folder(tmp_path / "a", ("x", "y")), tiny_folder(tmp_path / "b", ("x", "y", "z", "w"))
    jobs = sweep_jobs(["experiment=matrix_folder", "seed=0", f"dataset.root={a},{b}"])
    assert [(j[0], j[1], j[3].split("/")[-1]) for j in jobs] == (
        [("seed=0", f"source_index={k}", "a") for k in range(2)] + [("seed=0", f"source_index={k}", "b")
                                                                     for k in range(4)])
    typed = sweep_jobs(["experiment=matrix_folder", "seed=0", f"dataset.root={a}", "source_index=1,0"])
    assert [j[1] for j in typed] == ["source_index=1", "source_index=0"]


def test_task_sweeper_without_labels_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        sweep_jobs(["experiment=matrix_folder", f"dataset.root={tmp_path / 'none'}"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: source_index=all: folder root") and "\n" not in err


def test_every_view_has_its_own_folder():
    """Reported fault: a sub-matrix analysis, and table1_celeba, overwrote the full matrix's outputs."""
    full, _ = validate(compose(["stage=analyze"]))
    binary, _ = validate(compose(["stage=analyze", "target=binary"]))
    assert full.run_dir == "outputs/digits/small_cnn/linear_svm/analysis"
    assert binary.run_dir == "outputs/digits/small_cnn/linear_svm/analysis/target=binary"
    fig5, _ = validate(compose(["experiment=fig5_digits", "stage=analyze"]))
    assert fig5.run_dir.endswith("analysis/target=digit,ge5,closed_top")
    table1, _ = validate(compose(["experiment=table1_celeba"]))
    plain, _ = validate(compose(["stage=estimate", "dataset=celeba", "source=identity", "split=all"]))
    assert plain.run_dir == "outputs/celeba/estimate/split=all/source=identity"
    assert table1.run_dir.startswith(plain.run_dir + "/target=Male,Bald,") and len(table1.run_dir) < 200
    mm, _ = validate(compose(["stage=estimate", "dataset=celeba", "source=identity", "split=all",
                              "bias_correction=true"]))
    assert mm.run_dir == plain.run_dir + "/bias_correction=true"
    # a transfer row serves every target subset: its folder does not depend on the targets asked for
    row, _ = validate(compose(["source=even", "target=[even,wide]"]))
    assert row.run_dir == "outputs/digits/small_cnn/linear_svm/source=even/seed=0"


@pytest.mark.parametrize("override,expect", [
    ("trainer.lr=0", "trainer.lr=0: expected a number > 0"),
    ("trainer.max_epochs=2.5", "trainer.max_epochs=2.5: expected an integer"),
    ("trainer.deterministic=maybe", "trainer.deterministic='maybe': expected true/false"),
    ("head.C=-1", "head.C=-1: expected a number > 0, or `auto` (chosen per target on the validation split)"),
    ("head.C=best", "head.C='best': expected a number > 0, or `auto` (chosen per target on the validation split)"),
    ("dataset.image_size=0", "dataset.image_size=0: expected an integer >= 1"),
    ("seed=-1", "seed=-1: expected an integer in [0, 2**32)"),
    ("source=[]", "source=[]: expected a task name, `all` or a non-empty list"),
    ("train_fraction=0", "train_fraction=0: expected a number in (0, 1]"),
])
def test_values_checked_for_type_and_range(override, expect):
    with pytest.raises(UserError) as e:
        validate(compose([override]))
    assert str(e.value) == expect


def test_lightning_precision_names_and_numbers_both_pass():
    assert validate(compose(["trainer.precision=32"]))[0].trainer.precision == 32
    assert validate(compose(["trainer=gpu"]))[0].trainer.precision == "bf16-mixed"


@pytest.mark.parametrize("name", [e for e in experiments() if e.startswith("matrix_")])
def test_matrix_sweeps_run_three_seeds(name):
    """Verdicts need the seed spread and a noise ceiling: every matrix experiment sweeps >= 3 seeds."""
    cfg = compose([f"experiment={name}"])
    seeds = str(cfg.hydra.sweeper.params.seed).split(",")
    assert len(set(seeds)) >= 3, seeds


def test_estimator_choices_are_typed_and_validated():
    run, _ = validate(compose([]))
    assert (run.estimators.transrate_eps, run.estimators.gbc_pca_dim,
            run.estimators.gbc_gaussian) == (1e-4, 64, "spherical")
    assert (run.estimators.nleep_pca_variance, run.estimators.nleep_components_per_class) == (0.8, 5)
    assert run.estimators.nleep_fit_rows == 10_000
    run, _ = validate(compose(["estimators.gbc_gaussian=diagonal", "estimators.gbc_pca_dim=16"]))
    assert (run.estimators.gbc_gaussian, run.estimators.gbc_pca_dim) == ("diagonal", 16)
    for override, message in [("estimators.gbc_gaussian=spherecal", "did you mean: spherical"),
                              ("estimators.transrate_eps=0", "transrate_eps=0: expected a number > 0"),
                              ("estimators.gbc_pca_dim=2.5", "gbc_pca_dim=2.5: expected an integer"),
                              ("estimators.nleep_pca_variance=1.5", r"nleep_pca_variance=1.5: expected a fraction"),
                              ("+estimators.nleep_components=3", "did you mean: nleep_components_per_class")]:
        with pytest.raises(UserError, match=message):
            validate(compose([override]))


def test_estimator_choices_reach_the_estimators_under_their_names():
    """Every `estimators:` key (and `seed`) is a setting some registry score takes, and every setting a score
    requires is one of them: what the transfer stage passes by name is exactly what the estimators take."""
    from dataclasses import MISSING, asdict, fields

    from transferability.config import GBC_GAUSSIANS, EstimatorsConfig
    from transferability.estimators.gbc import GAUSSIANS
    from transferability.estimators.registry import COMPUTED, SCORES

    run, _ = validate(compose([]))
    passed = {**asdict(run.estimators), "seed": run.seed}
    assert set(passed) == {s for name in COMPUTED for s in SCORES[name].required_settings}
    assert all(f.default is MISSING for f in fields(EstimatorsConfig))   # the YAML is their one home
    assert GBC_GAUSSIANS == GAUSSIANS


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


def test_quantile_cuts_and_network_size_get_their_own_folders():
    """Rows of another task list or another network never share a folder with the defaults' rows."""
    q, _ = validate(compose(["dataset.quantiles=[0.1,0.25,0.5,0.75,0.9]", "source=even"]))
    assert q.run_dir == "outputs/digits_q10-25-50-75-90/small_cnn/linear_svm/source=even/seed=0"
    d8, _ = validate(compose(["backbone.embedding_dim=8", "source=even"]))
    assert d8.run_dir == "outputs/digits/small_cnn-D8/linear_svm/source=even/seed=0"
    same, _ = validate(compose(["backbone.embedding_dim=128", "source=even"]))
    assert same.run_dir == "outputs/digits/small_cnn/linear_svm/source=even/seed=0"   # the default D
    w, _ = validate(compose(["experiment=matrix_shapes", "source=shape"]))   # also 8 epochs of batches of 128
    assert w.run_dir == "outputs/shapes/small_cnn-w32/linear_svm/trainer.batch_size=128,trainer.max_epochs=8/" \
                        "source=shape/seed=0"
    r18, _ = validate(compose(["backbone=resnet18", "source=even"]))
    assert r18.run_dir == "outputs/digits/resnet18/linear_svm/source=even/seed=0"
    study, _ = validate(compose(["experiment=width_prevalence_digits", "stage=widths"]))
    assert study.run_dir == "outputs/digits_q10-25-50-75-90/small_cnn/linear_svm/widths"
    analysis, _ = validate(compose(["backbone.embedding_dim=8", "stage=analyze"]))
    assert analysis.run_dir == "outputs/digits/small_cnn-D8/linear_svm/analysis"


@pytest.mark.parametrize("name,n_tasks", [("digits", 65), ("shapes", 51)])
def test_width_study_sweeps_what_it_compares(name, n_tasks):
    """The experiment's sweep covers exactly `widths`, and every source it names is a task of its dataset."""
    from omegaconf import OmegaConf

    from transferability.data.registry import task_names

    cfg = compose([f"+experiment=width_prevalence_{name}"])
    run, _ = validate(cfg)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    assert [int(d) for d in str(params["backbone.embedding_dim"]).split(",")] == run.widths
    tasks = task_names(run.dataset)
    sources = str(params["source"]).split(",")
    assert len(tasks) == n_tasks and set(sources) <= set(tasks) and len(sources) == 12


@pytest.mark.parametrize("value", ["[8]", "[2,2]", "[0,8]", "eight"])
def test_widths_are_checked_at_validation(value):
    with pytest.raises(UserError, match="widths="):
        validate(compose([f"widths={value}"]))


def test_every_default_has_one_home_the_yaml():
    """The dataclasses validate; the values live in conf/. A dataclass field may have a default only when it is
    structural (None or empty: `absent`), and every option's YAML lists every field that has none."""
    import dataclasses

    from transferability.config import GROUPS as DATACLASSES
    from transferability.config import RunConfig

    structural = (None, {}, ())
    for cls in [*DATACLASSES.values(), RunConfig]:
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
            assert default is dataclasses.MISSING or default in structural or f.name == "run_dir", \
                f"{cls.__name__}.{f.name} has the default {default!r}: its value belongs in conf/"
    for group in ("dataset", "backbone", "head", "transfer", "trainer", "callbacks", "logger"):
        required = {f.name for f in dataclasses.fields(DATACLASSES[group])
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        for option in options(group):
            listed = set(OmegaConf.load(CONF / group / f"{option}.yaml"))
            assert required <= listed, f"conf/{group}/{option}.yaml lacks {sorted(required - listed)}"
    top = set(OmegaConf.load(CONF / "config.yaml"))
    required = {f.name for f in dataclasses.fields(RunConfig) if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING} - set(DATACLASSES)
    assert required <= top, sorted(required - top)


def test_group_config_reads_the_yaml():
    from transferability.config import group_config

    head = group_config("head", "logistic", C=0.5)
    assert (head.name, head.C, head.max_iter) == ("logistic", 0.5, OmegaConf.load(CONF / "head/logistic.yaml").max_iter)
    with pytest.raises(UserError, match="no config"):
        group_config("head", "svm")
    with pytest.raises(UserError, match="did you mean: max_iter"):
        group_config("head", "logistic", max_iters=3)


def test_ground_truth_experiments_make_one_matrix_per_ground_truth():
    """experiment=ground_truths_digits: C = 1 (the matrix_digits rows' folder) and C = auto, three seeds, every
    source; experiment=finetune_digits: the transfer=finetune folder, one seed unless told; all under one head."""
    from pathlib import Path

    def folders(arguments):
        out = set()
        for job in sweep_jobs(arguments):
            run, _ = validate(compose([o for o in job if not o.startswith("experiment=")] + [arguments[0]]))
            out.add(str(Path(run.run_dir).parents[1]))
        return out

    linear = sweep_jobs(["experiment=ground_truths_digits"])
    assert len(linear) == 2 * 3 * 21
    matrix, = {str(Path(validate(compose(["experiment=matrix_digits", "source_index=0"]))[0].run_dir).parents[1])}
    lin = folders(["experiment=ground_truths_digits"])
    assert lin == {matrix, str(Path(matrix) / "head.C=auto")}
    assert folders(["experiment=finetune_digits"]) == {str(Path(matrix) / "transfer=finetune")}
    assert len(sweep_jobs(["experiment=finetune_digits", "seed=0,1,2"])) == 3 * 21
    shapes = sweep_jobs(["experiment=ground_truths_shapes", "transfer=finetune", "head.C=1.0", "seed=0"])
    assert len(shapes) == 27 and all("transfer=finetune" in job for job in shapes)
