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


def test_table1_row9_experiment_reproduces_the_paper(run_config, shared_data, caplog):
    run = run_config(["+experiment=table1_celeba", f"dataset.root={shared_data / 'celeba'}"])
    out = run_estimate(run)
    ce = pd.read_csv(out / "ce.csv").set_index("target").ce
    for target, paper in run.reference["identity"].items():
        assert round(ce[target], 3) == paper, target
    printed = caplog.text
    assert printed.count(" yes") == 10 and " NO" not in printed


def test_openimages_estimate_writes_the_matrix_and_top_k(run_config, tmp_path, caplog):
    """The sparse path on a generated table: every pair equals the dense engine on the same labels, ce.csv
    holds the top_k lowest H(t|s) per target (the target itself left out) with the target's entropy."""
    import json

    import numpy as np

    from transferability import ce_matrix
    from transferability.data import openimages_synth

    root = tmp_path / "oi"
    openimages_synth.generate(root, openimages_synth.SynthSpec(n_images=2000, n_classes=40, seed=3), progress=False)
    run = run_config(["stage=estimate", "dataset=openimages", f"dataset.root={root}", "estimate.top_k=3",
                      "estimate.min_pair_rows=5"])
    out = run_estimate(run)
    m = np.load(out / "ce_matrix.npy")
    axes = json.loads((out / "ce_matrix_axes.json").read_text())
    dense = load_dataset(run.dataset).labels.labels
    want = ce_matrix(dense).loc[axes["rows (targets)"], axes["columns (sources)"]].to_numpy()
    assert m.dtype == np.float32 and m.shape == (40, 40)
    assert np.array_equal(np.isnan(m), np.isnan(want)) and np.nanmax(np.abs(m - want)) < 1e-6
    ce = pd.read_csv(out / "ce.csv")
    assert (ce.source != ce.target).all() and ce.groupby("target").size().max() == 3
    both = (dense.notna().astype(int).T @ dense.notna().astype(int))
    for target, rows in ce.groupby("target"):
        eligible = pd.Series(want[axes["rows (targets)"].index(target)], index=axes["columns (sources)"])
        eligible = eligible[(both.loc[target] >= 5) & (eligible.index != target)].dropna()
        assert rows["rank"].tolist() == list(range(1, len(rows) + 1))
        assert np.allclose(rows.ce, np.sort(eligible.to_numpy())[:len(rows)], atol=1e-12)
        assert rows.target_entropy.iloc[0] == pytest.approx(hardness(dense[target].dropna()))
        assert (rows.n == both.loc[target, rows.source].to_numpy()).all()
    assert (out / "best_sources.png").stat().st_size > 0
    assert "| target | most transferable source |" in (out / "best_sources.md").read_text()
    assert "all pairs in" in caplog.text


def test_estimate_top_k_is_validated(run_config):
    from transferability.errors import UserError

    with pytest.raises(UserError, match=r"estimate.top_k=0: expected a positive integer"):
        run_config(["stage=estimate", "estimate.top_k=0"])


@pytest.mark.slow
def test_openimages_scale_agrees_with_the_dense_engine_on_a_subset(run_config, tmp_path):
    """200,000 images x 2,000 classes, generated: a random 60 x 60 block of the written matrix (float32) and
    every ce.csv value inside it (float64) against `ce_matrix` on the dense columns of those classes."""
    import json

    import numpy as np

    from transferability import ce_matrix
    from transferability.data import openimages_synth

    root = tmp_path / "oi"
    openimages_synth.generate(root, openimages_synth.SynthSpec(n_images=200_000, n_classes=2_000), progress=False)
    run = run_config(["stage=estimate", "dataset=openimages", f"dataset.root={root}"])
    out = run_estimate(run)
    table = load_dataset(run.dataset).labels
    m = np.load(out / "ce_matrix.npy", mmap_mode="r")
    axes = json.loads((out / "ce_matrix_axes.json").read_text())
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(2000, 60, replace=False))
    pick[:5] = np.arange(5)                                    # the frequent classes too
    names = [axes["rows (targets)"][j] for j in pick]
    pos = table.positions(names)
    dense = np.full((table.n, len(pick)), np.nan)
    lines = np.isin(table.task, pos)
    dense[table.image[lines], pd.Index(pos).get_indexer(table.task[lines])] = table.present[lines]
    want = ce_matrix(pd.DataFrame(dense, columns=names)).to_numpy()
    got = np.asarray(m[np.ix_(pick, pick)], dtype=np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.nanmax(np.abs(got - want)) < 1e-6                # float32 on disk
    ce = pd.read_csv(out / "ce.csv")
    inside = ce[ce.target.isin(names) & ce.source.isin(names)]
    exact = pd.DataFrame(want, index=names, columns=names)
    assert len(inside) > 20
    assert max(abs(r.ce - exact.loc[r.target, r.source]) for r in inside.itertuples()) < 1e-9
