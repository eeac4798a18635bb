"""stage=widths on synthetic rows written here for two embedding sizes (no training): it finds each D's
folder, writes the study's files, names a width without rows, and refuses what it cannot compare."""
import numpy as np
import pandas as pd
import pytest

from helpers.config import plain
from transferability import io
from transferability.config import from_dict
from transferability.data.labels import LabelTable
from transferability.data.registry import Dataset
from transferability.errors import UserError
from transferability.stages import analyze, row_record
from transferability.stages.widths import run_widths

TASKS = ["k", "b@q25", "b@q50", "b@q75", "c@q25", "c@q50", "c@q75", "e", "f"]


def _table(n=400):
    rng = np.random.default_rng(0)
    cols = {"k": rng.integers(0, 4, n)}
    for m in ("b", "c"):
        v = rng.normal(size=n)
        for q in (25, 50, 75):
            cols[f"{m}@q{q}"] = (v > np.quantile(v, q / 100)).astype(int)
    cols["e"], cols["f"] = (rng.random(n) < 0.3).astype(int), (rng.random(n) < 0.5).astype(int)
    labels = pd.DataFrame(cols, index=[f"i{j}" for j in range(n)])
    return LabelTable(labels, pd.Series("train", index=labels.index), multiclass=("k",))


def _write(root, table, source, seed, d):
    rng = np.random.default_rng(seed * 100 + d)
    lab = table.labels
    h = np.array([-(p * np.log(p)).sum() for p in (lab[t].value_counts(normalize=True).to_numpy() for t in TASKS)])
    ce = h * rng.uniform(0.2, 1.0, len(TASKS))
    err = 0.05 + 0.3 * ce + rng.normal(0, 0.01, len(TASKS))
    rows = pd.DataFrame(dict(source=source, target=TASKS, dedicated=[t == source for t in TASKS],
                             n_classes=[lab[t].nunique() for t in TASKS], n_train=300, n_test=100, ce=ce, ce_mm=ce,
                             nce=-ce, test_error=err, test_accuracy=1 - err, train_error=err, train_nll=0.1, l_z=-0.1,
                             theorem1_bound=-0.1 - ce, ce_head_train_ll=-0.1 - ce, logme=rng.normal(size=len(TASKS))))
    out = root / f"source={source}" / f"seed={seed}"
    io.write_json(out / "source.json", dict(source=source, seed=seed, train_fraction=1.0))
    io.write_csv(out / "results.csv", rows)
    row_record.write(out, "all", TASKS, [])


def _cfg(tmp_path, **over):
    cfg = plain(stage="widths", dataset={"name": "synth"}, paths={"outputs": str(tmp_path)}, widths=[2, 8, 32],
                **over)
    return from_dict(cfg, run_dir=str(tmp_path / "synth" / "small_cnn" / "linear_svm" / "widths"))


def test_widths_stage_reads_each_d_folder_and_writes_the_study(tmp_path, monkeypatch, caplog):
    table = _table()
    monkeypatch.setattr(analyze, "load_dataset", lambda cfg: Dataset(name="synth", labels=table))
    for d, folder in ((2, "small_cnn-D2"), (8, "small_cnn-D8")):   # no rows for D = 32
        for s in ("k", "e", "f", "b@q50"):
            for seed in (0, 1):
                _write(tmp_path / "synth" / folder / "linear_svm", table, s, seed, d)
    out = run_widths(_cfg(tmp_path))
    summary = pd.read_csv(out / "widths.csv")
    assert sorted(summary["D"].unique()) == [2, 8]
    nce = summary[(summary["estimator"] == "nce") & (summary["metric"] == "r")]
    assert (nce["n_sources"] == 4).all() and (nce["median"] > 0.5).all()   # err was made to grow with CE
    per = pd.read_csv(out / "per_source.csv")
    # 8 binary targets, minus the dedicated cell for a binary source; the 4-class task is no target
    assert dict(per.groupby("source")["n"].max()) == {"b@q50": 7, "e": 7, "f": 7, "k": 8}
    assert set(per["n_seeds"]) == {2}
    text = (out / "summary.md").read_text()
    assert "D = 2:" in text and "D = 8:" in text and "Widths with no finished rows, left out: 32" in text
    assert ("cuts of 2 measures" in text and "D = 2: mean 0." in text and summary["sd_error"].gt(0).all()
            and (out / "widths.png").stat().st_size > 1000)
    assert "| nce |" in (out / "widths.md").read_text()
    assert "widths without finished rows (left out): 32" in caplog.text


def test_widths_stage_without_rows_or_with_a_fixed_width_backbone(tmp_path, monkeypatch):
    monkeypatch.setattr(analyze, "load_dataset", lambda cfg: Dataset(name="synth", labels=_table()))
    with pytest.raises(UserError, match="no checked finished transfer rows for any of widths=\\[2, 8, 32\\]"):
        run_widths(_cfg(tmp_path))
    with pytest.raises(UserError, match="backbone=resnet18 fixes its own D"):
        run_widths(_cfg(tmp_path, backbone={"name": "resnet18"}))
