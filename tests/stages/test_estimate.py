"""stage=estimate through function calls: files, values against the engine, the paper's Table 1 row 9."""
import pandas as pd
import pytest

from transferability import conditional_entropy, hardness
from transferability.data.registry import load_dataset
from transferability.stages.estimate import run_estimate


def test_estimate_files_match_the_engine(run_config):
    run = run_config(["stage=estimate", "dataset=digits", "source=[digit,even]", "split=test"])
    out = run_estimate(run)
    ce = pd.read_csv(out / "ce.csv")
    assert set(ce.source) == {"digit", "even"} and ce.target.nunique() == 21
    test = load_dataset(run.dataset).labels.subset("test").labels
    got = ce.set_index(["source", "target"]).ce
    assert got["digit", "wide"] == pytest.approx(conditional_entropy(test["wide"], test["digit"]))
    assert got["even", "even"] == 0.0
    hard = pd.read_csv(out / "hardness.csv").set_index("task").hardness
    assert hard["digit"] == pytest.approx(hardness(test["digit"]))


def test_table1_row9_experiment_reproduces_the_paper(run_config, shared_data, capsys):
    run = run_config(["+experiment=table1_celeba", f"dataset.root={shared_data / 'celeba'}"])
    out = run_estimate(run)
    ce = pd.read_csv(out / "ce.csv").set_index("target").ce
    for target, paper in run.reference["identity"].items():
        assert round(ce[target], 3) == paper, target
    printed = capsys.readouterr().out
    assert printed.count(" yes") == 10 and " NO" not in printed
