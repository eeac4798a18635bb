"""stage=analyze end to end on a synthetic tree of transfer rows written here (no training, no data files).

The synthetic dataset has one multi-class task (`identity`) and binary attributes; rows carry the
true CE of each pair on the label table, a test error that grows with it, Theorem-1 columns that
hold (one planted violation), estimator columns, two seeds, train-fraction runs, and one expected
source (`a4`) with no run at all."""
from __future__ import annotations

import json
import re
import zlib
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from helpers.config import plain
from transferability import io
from transferability.analysis.matrix import correlate
from transferability.config import from_dict
from transferability.data.labels import LabelTable
from transferability.data.registry import Dataset
from transferability.errors import UserError
from transferability.estimators.label_only import ce_matrix, hardness
from transferability.stages import analyze, row_record

TASKS = ["identity", "a1", "a2", "a3", "a4", "a5", "a6", "a7"]
RUN_SOURCES = ["identity", "a1", "a2", "a3", "a5", "a6", "a7"]   # a4 is missing


def synthetic_table(n: int = 600, seed: int = 0) -> LabelTable:
    rng = np.random.default_rng(seed)
    ident = rng.integers(0, 30, n)
    cols = {"identity": ident}
    # Attributes derived from identity with growing noise: a1 nearly a function of identity, a7 noise.
    per_id = rng.integers(0, 2, size=(30, 7))
    for j in range(7):
        flip = rng.random(n) < 0.05 * j
        cols[f"a{j + 1}"] = np.where(flip, rng.integers(0, 2, n), per_id[ident, j])
    labels = pd.DataFrame(cols, index=[f"img{i}" for i in range(n)])
    split = pd.Series(np.where(np.arange(n) < 450, "train", "test"), index=labels.index)
    return LabelTable(labels, split, multiclass=("identity",))


def write_run(root, table: LabelTable, source: str, seed: int, fraction: float = 1.0, violate: bool = False,
              config: dict | None = None, perturb: float = 0.0, **meta):
    rng = np.random.default_rng(zlib.crc32(f"{source}/{seed}/{fraction}".encode()))   # hash() varies per process
    lab = table.subset("trainval").labels
    ce = ce_matrix(lab, lab[[source]])[source]
    ce_mm = ce_matrix(lab, lab[[source]], bias_correction=True)[source]
    err = np.clip(0.05 + 0.5 * ce.to_numpy() + rng.normal(0, 0.01, len(ce)) + 0.05 * (1 - fraction), 0, 1)
    if perturb:   # another ground truth of the same pairs: the same errors, moved by its own noise
        err = np.clip(err + np.random.default_rng(zlib.crc32(f"{root}/{source}".encode())).normal(0, perturb,
                                                                                                   len(err)), 0, 1)
    # the dedicated model's error grows with the task's hardness H(Z|C) (Fig. 6)
    err[TASKS.index(source)] = 0.02 + 0.3 * hardness(lab[source].to_numpy()) + rng.normal(0, 0.005)
    l_z = -0.2
    bound = l_z - ce.to_numpy()
    k_ll = bound + 0.01                # k-bar attains the bound (Eqs. 11-12)
    head_ll = bound + 0.02             # the fitted head beats it on train ...
    if violate:
        head_ll[-1] = bound[-1] - 0.5  # ... except in one planted cell
    test_ll = head_ll - np.where(np.arange(len(ce)) % 2 == 0, 0.1, 0.0)   # every other cell below on test
    rows = pd.DataFrame({
        "source": source, "target": TASKS, "dedicated": [t == source for t in TASKS],
        "n_classes": [table.n_classes(t) for t in TASKS], "n_train": int(450 * fraction), "n_test": 150,
        "ce": ce.to_numpy(), "ce_mm": ce_mm.to_numpy(), "nce": -ce.to_numpy(), "test_error": err,
        "test_accuracy": 1 - err, "train_error": err / 2, "train_nll": -head_ll, "test_nll": -test_ll, "l_z": l_z,
        "theorem1_bound": bound, "ce_head_train_ll": k_ll,
        "leep": -ce.to_numpy() + rng.normal(0, 0.05, len(ce)), "logme": rng.normal(size=len(ce)),
        "hscore": 1 - err + rng.normal(0, 0.001, len(ce)), "hscore_reg": np.nan,
        "knn1": 1 - err + rng.normal(0, 0.05, len(ce)),
    })
    # the row's multi-label target: its binary targets but the source
    binary = [t for t in TASKS if table.n_classes(t) == 2 and t != source]
    meta = dict(multilabel_n_targets=len(binary), logme_multilabel=-float(ce[binary].mean()),
                hscore_multilabel=None, **meta)
    d = root / f"source={source}" / f"seed={seed}"
    if fraction != 1.0:
        d = d / f"fraction={fraction}"
    io.write_json(d / "source.json", dict(source=source, seed=seed, train_fraction=fraction,
                                          source_n_classes=table.n_classes(source), source_test_accuracy=0.9,
                                          **meta))
    io.write_csv(d / "results.csv", rows)
    io.write_json(d / "config.json", row_config(source, seed, fraction, **(config or {})))
    row_record.write(d, "all", TASKS, [])


def row_config(source: str, seed: int, fraction: float = 1.0, **over) -> dict:
    """A row's config.json as the transfer stage writes it (the defaults on the synthetic dataset)."""
    from transferability.config import to_dict

    return to_dict(from_dict(plain(dataset={"name": "synth"}, source=source, seed=seed, train_fraction=fraction,
                                   **over)))


def make_cfg(tmp_path, **over):
    cfg = plain(stage="analyze", dataset={"name": "synth"}, paths={"outputs": str(tmp_path / "outputs")}, **over)
    return from_dict(cfg, run_dir=str(tmp_path / "outputs" / "synth" / "small_cnn" / "linear_svm" / "analysis"))


def build_tree(tmp_path, monkeypatch):
    table = synthetic_table()
    monkeypatch.setattr(analyze, "load_dataset", lambda cfg: Dataset(name="synth", labels=table))
    monkeypatch.setattr(analyze, "N_BOOT", 100)   # bootstrap size only changes CI precision; keep the test fast
    monkeypatch.setattr(analyze, "N_BOOT_SOURCE", 50)
    monkeypatch.setattr(analyze, "N_SUBSETS", 40)
    root = tmp_path / "outputs" / "synth" / "small_cnn" / "linear_svm"
    for s in RUN_SOURCES:
        write_run(root, table, s, seed=0, violate=(s == "a7"))
    write_run(root, table, "identity", seed=1)
    for f in (0.1, 0.5):
        for s in ("identity", "a1", "a2"):
            write_run(root, table, s, seed=0, fraction=f)
    return table, root, make_cfg(tmp_path)


@pytest.fixture
def tree(tmp_path, monkeypatch):
    return build_tree(tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """The stage run once on the full synthetic tree: (table, rows root, output folder, what it logged)."""
    import io as stdio
    import logging

    with pytest.MonkeyPatch.context() as mp:
        table, root, cfg = build_tree(tmp_path_factory.mktemp("tree"), mp)
        printed = stdio.StringIO()
        handler = logging.StreamHandler(printed)
        logger = logging.getLogger("transferability")
        level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            out = analyze.run_analyze(cfg)
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
    return table, root, out, printed.getvalue()


def verdict(summary: str, claim_start: str) -> str:
    """The bold verdict of the claims-table row starting with `claim_start`; the row must have
    exactly 3 cells (a bare '|' inside a cell, as in H(Y|Z), would break the markdown table)."""
    line = next(l for l in summary.splitlines() if l.startswith(f"| {claim_start}"))
    cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    assert len(cells) == 3, line
    return re.search(r"\*\*(.+?)\*\*", cells[2]).group(1)


def test_stage_writes_every_output(analysed):
    table, root, out, printed = analysed
    names = {p.name for p in out.iterdir()}
    expected = {"matrix.csv", "ce_matrix.csv", "correlations.csv", "fig2.png", "hardness.csv", "fig6.png",
                "table1_identity.md", "table1_identity.csv", "table1_identity_all.csv", "fig3_identity.png",
                "fig4_identity.png", "fig5_identity.png", "fig5_identity.csv", "theorem1.csv", "estimators.csv",
                "estimators.png", "selection.csv", "selection.png", "summary.md"}
    assert expected <= names
    assert not [n for n in names if n.endswith(".tmp")]
    assert "missing sources" in printed and "a4" in printed

    m = pd.read_csv(out / "matrix.csv", index_col="source")
    assert sorted(m.index) == sorted(RUN_SOURCES) and list(m.columns) == sorted(TASKS)
    # identity has two seeds: the matrix holds their mean
    r0 = pd.read_csv(root / "source=identity/seed=0/results.csv").set_index("target")
    r1 = pd.read_csv(root / "source=identity/seed=1/results.csv").set_index("target")
    assert m.at["identity", "a3"] == pytest.approx((r0.at["a3", "test_error"] + r1.at["a3", "test_error"]) / 2)

    corr = pd.read_csv(out / "correlations.csv")
    assert set(corr["view"]) == {"binary", "multiclass_target", "all"}
    binary = corr[corr["view"] == "binary"]
    assert set(binary["scope"]) == {"a1", "a2", "a3", "a5", "a6", "a7", "pooled"}   # identity is no binary source
    assert (binary.loc[binary["scope"] != "pooled", "n"] == 6).all()   # 7 binary targets less the dedicated one
    assert corr.loc[corr["view"] == "multiclass_target", "scope"].tolist() == ["identity", "pooled"]
    assert binary["bh_q"].notna().sum() == 6 and binary["noise_ceiling"].isna().all()   # one seed: no ceiling
    assert corr["partial_r_given_entropy"].notna().any()
    corr = corr[corr["view"] == "all"]
    a1 = r0.drop("identity")
    expect = correlate(a1["ce"], (a1["test_error"] + r1.drop("identity")["test_error"]) / 2)
    assert corr.set_index("scope").at["identity", "pearson_r"] == pytest.approx(expect["pearson_r"])
    assert corr.set_index("scope").at["identity", "n"] == len(TASKS) - 1   # dedicated cell excluded

    hard = pd.read_csv(out / "hardness.csv").set_index("task")
    lab = table.subset("trainval").labels
    assert hard.at["a3", "hardness"] == pytest.approx(hardness(lab["a3"].to_numpy()))
    assert np.isnan(hard.at["a4", "dedicated_test_error"])   # its run is missing

    wide = pd.read_csv(out / "table1_identity.csv", index_col="row")
    assert list(wide.columns)[-1] == "Average (all)"
    ce_row = wide.loc["CE (nats)"].iloc[:-1].to_numpy(float)
    assert np.all(np.diff(ce_row) >= 0)

    t1 = pd.read_csv(out / "theorem1.csv")
    assert t1["violates"].sum() == 1 and (t1["head"] == "linear_svm").all()
    assert t1.loc[t1["violates"], "source"].item() == "a7"
    assert t1["test_violates"].sum() > 1 and (t1["kbar_margin"] > 0).all()

    curves = pd.read_csv(out / "fig5_identity.csv")
    assert set(curves["target"]) == {"a1", "a2"} and set(curves["train_fraction"]) == {0.1, 0.5, 1.0}

    est = pd.read_csv(out / "estimators.csv")
    assert "hscore_reg" not in set(est["estimator"])   # all NaN: not compared
    assert {"nce", "ce_mm", "leep", "logme", "hscore", "knn1", "target_entropy", "majority_error", "random_ranking",
            "source_hardness", "source_test_accuracy", "source_n_classes"} == set(est["estimator"])
    undefined = est[est["estimator"].str.startswith("source_")]   # of the source: no ranking of its targets
    assert undefined["value"].isna().all() and (undefined["n"] == 0).all()
    assert (est.loc[est["estimator"] == "random_ranking", ["value", "ci_low", "ci_high"]] == 0).all().all()
    part = est[est["metric"] == "partial_r_given_entropy"].set_index(["estimator", "scope"])
    assert np.isnan(part.at[("target_entropy", "pooled"), "value"])   # H(Y) given itself: nothing left
    assert (part.at[("nce", "pooled"), "ci_low"] <= part.at[("nce", "pooled"), "value"]
            <= part.at[("nce", "pooled"), "ci_high"])
    assert part.loc["nce", "bh_q"].notna().sum() == len(RUN_SOURCES)


def test_summary_verdicts(analysed):
    summary = (analysed[2] / "summary.md").read_text()
    assert "missing sources (1): a4" in summary
    # the synthetic binary attributes all have H(Y|Z) ~ log 2: binary -> binary carries no CE signal here
    assert verdict(summary, "Fig. 2: CE predicts transfer test error for every source") == "did not hold"
    assert verdict(summary, "CE predicts transfer test error pooled over binary") == "did not hold"
    assert verdict(summary, "CE predicts transfer test error pooled over all") == "held"
    assert verdict(summary, "Beyond the paper: CE predicts transfer error beyond the target entropy H(Y), all")
    # the 30-class identity holds the spread of H(Z|C): the others span ~1% of its range
    assert verdict(summary, "Hardness").startswith("untestable: one point (identity)")
    assert verdict(summary, "Theorem 1") == "did not hold"        # the planted violation in a7
    assert verdict(summary, "Beyond the paper: the fitted head") == "did not hold"   # test side: planted
    assert verdict(summary, "Fig. 3 (identity)") == "held"
    assert verdict(summary, "Table 1 (identity)") == "held"
    # hscore was built from the accuracy itself: it must win
    assert "**hscore**" in summary


def test_choosing_a_source_per_target(analysed):
    """selection.csv on the synthetic tree: per target, the trained sources less the target itself; the scores
    of the target alone undefined; the pooled means with intervals; margins in both directions; stability over
    the seeds (identity has two) and the random halves; the multi-label target; the summary's section."""
    table, root, out, printed = analysed
    sel = pd.read_csv(out / "selection.csv")
    choose = sel[sel["direction"] == "choose a source"]
    a3 = choose[(choose["scope"] == "a3") & (choose["estimator"] == "nce")].set_index("metric")
    assert (a3["n"] == len(RUN_SOURCES) - 1).all()   # a3 is a source: its dedicated cell is no candidate
    a4 = choose[(choose["scope"] == "a4") & (choose["estimator"] == "nce")].set_index("metric")
    assert (a4["n"] == len(RUN_SOURCES)).all()       # a4 has no row of its own
    cells = pd.read_csv(out / "matrix.csv", index_col="source").drop(index=["a3"])["a3"]
    best = (1 - cells).idxmax()
    assert a3.at["top1_relative_accuracy", "best_source"] == best
    mean = choose[choose["scope"] == "mean over targets"].set_index(["estimator", "metric"])
    assert mean.loc["target_entropy", "value"].isna().all() and (mean.loc["target_entropy", "n"] == 0).all()
    assert mean.at[("hscore", "weighted_tau"), "ci_low"] <= mean.at[("hscore", "weighted_tau"), "value"]
    assert mean.at[("random_ranking", "weighted_tau"), "value"] == 0
    m = pd.read_csv(out / "matrix.csv", index_col="source")
    chance = [(col == col.min()).mean() for t, col in ((t, m[t].drop(index=t, errors="ignore")) for t in TASKS)]
    assert mean.at[("random_ranking", "recall_at_1"), "value"] == pytest.approx(np.mean(chance))   # ties: m / n
    for direction, scope in (("choose a source", "mean over targets"), ("rank targets", "mean over sources")):
        margin = sel[(sel["direction"] == direction) & (sel["scope"] == f"{scope}: margin over best baseline")]
        assert set(margin["estimator"]) == {"nce", "ce_mm", "leep", "logme", "hscore"}
        assert margin["best_baseline"].notna().all()
    stab = sel[sel["scope"].str.startswith("stability")]
    assert set(stab["scope"]) == {"stability over seed", "stability over subset", "stability over all setups"}
    n = stab[(stab["estimator"] == "best estimator") & (stab["scope"] == "stability over subset")]["n"]
    assert n.between(35, 40).all()   # 40 halves; one with no target of 3 scored candidates has no best
    ml = choose[choose["scope"] == "multilabel:synth"].set_index(["estimator", "metric"])
    assert ml.loc["logme_multilabel", "value"].notna().all() and "hscore_multilabel" not in ml.index
    summary = (out / "summary.md").read_text()
    assert "### Choosing a source for a target" in summary and "### Ranking the targets of a source" in summary
    line = next(l for l in summary.splitlines() if l.startswith("Best estimator for choosing a source"))
    assert "**hscore**" in line and "best for ranking the targets of a source (above): **hscore**" in line
    assert "| target_entropy | undefined (of the target) |" in summary
    assert "| source_hardness | mean over sources | undefined (of the source) |" in summary


def test_heads_present_under_the_dataset_and_backbone_are_setups(tree):
    import shutil

    table, root, cfg = tree
    shutil.copytree(root, root.parent / "ce_head")   # the same rows under another head
    sel = pd.read_csv(analyze.run_analyze(cfg) / "selection.csv")
    head = sel[(sel["scope"] == "stability over head") & (sel["estimator"] == "best estimator")]
    assert (head["n"] == 2).all() and (head["value"] == 1.0).all()


FINETUNE = {"name": "finetune", "lr_factors": [1.0, 0.1], "max_epochs": 5, "keep_models": False}


def test_ground_truths_beside_the_rows_are_analysed_and_compared(tree):
    """Rows of head.C=auto and transfer=finetune beside the defaults' (C = 1): each analysed into its own folder,
    compared pair by pair in ground_truths.csv, a setup axis of the stability, and summary.md opens with the
    claims under every ground truth. Rows that differ in anything else (trainer=debug) are no ground truth."""
    from transferability.stages.run_dirs import rows_root

    table, root, cfg = tree
    other = {"C=auto": {"head": {"C": "auto"}}, "finetune": {"transfer": FINETUNE}, "debug": {"trainer": "debug"}}
    folders = {}
    for name, over in other.items():
        made = row_config("a1", 0, **({"trainer": {**plain()["trainer"], "name": "debug", "max_epochs": 1,
                                                   "limit_train_batches": 2}} if name == "debug" else over))
        folders[name] = rows_root({**made, "paths": {"outputs": str(root.parents[2])}})
        config = {"trainer": made["trainer"]} if name == "debug" else over
        for s in RUN_SOURCES:
            write_run(folders[name], table, s, seed=0, config=config, perturb=0.03)
    assert folders["C=auto"].name == "head.C=auto" and folders["finetune"].name == "transfer=finetune"
    out = analyze.run_analyze(cfg)
    compared = pd.read_csv(out / "ground_truths.csv")
    names = ["head.C=1", "head.C=auto", "transfer=finetune"]
    assert set(zip(compared.a, compared.b)) == {(names[0], names[1]), (names[0], names[2]), (names[1], names[2])}
    for name, first in (("C=auto", names[1]), ("finetune", names[2])):
        assert (folders[name] / "analysis" / "matrix.csv").exists()
        theirs = pd.read_csv(folders[name] / "analysis" / "ground_truths.csv")
        assert len(theirs) == len(compared) and (theirs.a.iloc[0], theirs.b.iloc[0]) == (first, names[0])
        assert f"## Under every ground truth ({first}, " in (folders[name] / "analysis" / "summary.md").read_text()
    assert not (folders["debug"] / "analysis").exists()
    pearson = compared[(compared.measure == "error matrix") & (compared.item == "pearson")]
    assert (pearson.value > 0.8).all() and (pearson.value < 1).all()   # the same pairs, moved by noise
    best = compared[(compared.measure == "best source") & (compared.scope == "target")]
    assert set(best.item) <= set(TASKS) and best.value.isin([0, 1]).all()
    summary = (out / "summary.md").read_text().splitlines()
    assert summary[0].startswith("# synth") and summary[2] == f"## Under every ground truth ({', '.join(names)})"
    assert any(line.startswith("- leep beats the best baseline") for line in summary[:60])
    sel = pd.read_csv(out / "selection.csv")
    axis = sel[(sel["scope"] == "stability over ground truth") & (sel["estimator"] == "best estimator")]
    assert len(axis) == 2 and (axis["n"] == 3).all()


def test_missing_everything_names_folder_and_command(tmp_path):
    cfg = make_cfg(tmp_path)
    with pytest.raises(UserError) as e:
        analyze.run_analyze(cfg)
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "outputs" / "synth" / "small_cnn" / "linear_svm") in msg
    assert "stage=transfer" in msg


def test_malformed_results_is_one_line_error(tree):
    _, root, cfg = tree
    (root / "source=a1/seed=0/results.csv").write_text("source,target\na1,a2\n")
    row_record.write(root / "source=a1/seed=0", "all", ["a2"], [])   # recorded as such: read, and refused
    with pytest.raises(UserError, match=r"source=a1/seed=0/results.csv: missing column\(s\) n_classes"):
        analyze.run_analyze(cfg)


def test_without_labels_the_rows_are_still_analysed(tree, monkeypatch):
    _, _, cfg = tree

    def fail(_):
        raise UserError("no annotation files")

    monkeypatch.setattr(analyze, "load_dataset", fail)
    out = analyze.run_analyze(cfg)
    summary = (out / "summary.md").read_text()
    assert verdict(summary, "Hardness").startswith("not tested")
    assert not (out / "hardness.csv").exists()
    assert (out / "table1_identity.md").exists()   # multi-class found from source_n_classes


def test_only_checked_rows_are_analysed_and_the_others_listed(tree, caplog):
    """A truncated results.csv (11 of 21 rows in the reported fault) and a row without done.json are left
    out and named, in the output and in summary.md; the rest is analysed."""
    _, root, cfg = tree
    cut = root / "source=a1/seed=0/results.csv"
    cut.write_text("".join(cut.read_text().splitlines(keepends=True)[:4]))
    (root / "source=a2/seed=0" / row_record.NAME).unlink()
    out = analyze.run_analyze(cfg)
    printed = caplog.text
    assert "source=a1/seed=0: results.csv does not match the checksum" in printed
    assert "source=a2/seed=0: no done.json" in printed
    m = pd.read_csv(out / "matrix.csv")
    assert set(m["source"]) == {"identity", "a3", "a5", "a6", "a7"}   # rows are sources; a1, a2 left out
    summary = (out / "summary.md").read_text()
    assert "rows left out, not checked finished (2)" in summary and "source=a1/seed=0" in summary


def test_each_setting_is_analysed_alone_and_the_others_listed(tree, caplog):
    """Rows of another setting never enter a matrix: those in their own settings folder are listed (not read), and a
    row whose config.json records other settings in this folder (written before its setting had a folder) is left
    out with the difference; `head.C=0.1` analyses its own folder's rows only."""
    import json

    from transferability.config import to_dict

    table, root, cfg = tree
    for s in ("identity", "a1", "a2"):
        write_run(root / "head.C=0.1", table, s, seed=0, config={"head": {"C": 0.1}})
    c01 = replace(cfg, head=replace(cfg.head, C=0.1), run_dir=str(root / "head.C=0.1" / "analysis"))
    io.write_json(root / "source=a3/seed=0/config.json", {**to_dict(c01), "source": "a3"})
    row_record.write(root / "source=a3/seed=0", "all", TASKS, [])   # a checked row, of another setting
    out = analyze.run_analyze(cfg)
    assert set(pd.read_csv(out / "matrix.csv")["source"]) == {"identity", "a1", "a2", "a5", "a6", "a7"}
    summary = (out / "summary.md").read_text()
    assert "source=a3/seed=0` (made with other settings (head.C: 0.1 -> 1.0))" in summary
    assert "rows of other settings beside these, not used: head.C=0.1 (3 rows)" in summary
    caplog.clear()
    out = analyze.run_analyze(c01)
    assert out == root / "head.C=0.1" / "analysis"
    assert set(pd.read_csv(out / "matrix.csv")["source"]) == {"identity", "a1", "a2"}
    assert "rows of other settings beside these (not used): the defaults (" in caplog.text
    assert json.loads((out / "config.json").read_text())["head"]["C"] == 0.1


def test_sub_matrix_view_does_not_replace_the_full_matrix(tree):
    from transferability.stages.run_dirs import run_dir_for

    _, root, cfg = tree
    full = analyze.run_analyze(cfg)
    before = {p.name: p.read_bytes() for p in full.iterdir() if p.is_file()}
    cfg = plain(stage="analyze", dataset={"name": "synth"}, paths={"outputs": str(root.parents[2])},
                target=["identity", "a1", "a2"])
    sub = analyze.run_analyze(from_dict(cfg, run_dir=run_dir_for(cfg)))
    assert sub == full / "target=identity,a1,a2"
    assert {p.name: p.read_bytes() for p in full.iterdir() if p.is_file()} == before
    assert (sub / "summary.md").read_text().splitlines()[0].endswith("analysis of the view target=identity,a1,a2 "
                                                                     "(sub-matrix)")
    assert "analysis of the full matrix" in (full / "summary.md").read_text().splitlines()[0]


def test_matrix_mixing_thread_counts_is_named_in_the_summary(tree, analysed):
    table, root, cfg = tree
    assert "thread counts" not in (analysed[2] / "summary.md").read_text()   # no counts recorded: nothing said
    for i, s in enumerate(RUN_SOURCES):
        write_run(root, table, s, seed=0, violate=(s == "a7"), threads=8 if i else 2, train_threads=8)
    summary = (analyze.run_analyze(cfg) / "summary.md").read_text()
    line = next(l for l in summary.splitlines() if "thread counts" in l)
    assert "heads and estimators run with 2 threads (1 runs), 8 threads (" in line
    assert "source models trained" not in line   # uniform train_threads is not named


def test_matrix_mixing_code_versions_is_named_in_the_summary(tree):
    table, root, cfg = tree
    base = {"version": "0.1.0", "commit": "a" * 40, "dirty": False, "python": "3.11.7", "torch": "2.14.1",
            "numpy": "2.4.6"}
    runs = sorted(root.glob("source=*/seed=*/**/results.csv"))
    for path in runs:   # every row of the tree, made by one version
        meta = json.loads((path.parent / "source.json").read_text())
        write_run(root, table, meta["source"], seed=meta["seed"], fraction=meta["train_fraction"],
                  violate=(meta["source"] == "a7" and meta["train_fraction"] == 1.0), provenance=base)
    lines = (analyze.run_analyze(cfg) / "summary.md").read_text().splitlines()
    assert any(line.startswith("- this analysis: transferability") for line in lines)
    one = next(line for line in lines if line.startswith(f"- rows ({len(runs)}):"))
    assert "commit aaaaaaaaaaaa;" in one and "numpy 2.4.6" in one
    write_run(root, table, RUN_SOURCES[0], seed=0, provenance={**base, "commit": "b" * 40, "dirty": True})
    write_run(root, table, RUN_SOURCES[1], seed=0, provenance={**base, "numpy": "2.5.0"})
    mixed = next(line for line in (analyze.run_analyze(cfg) / "summary.md").read_text().splitlines()
                 if "mixes rows made by" in line)
    assert "3 different code or library versions" in mixed and "bbbbbbbbbbbb (uncommitted changes)" in mixed
    assert f"({len(runs) - 2} rows)" in mixed and "numpy 2.5.0" in mixed


def test_random_source_is_a_matrix_row_and_a_claim_never_a_source(tree):
    table, root, cfg = tree
    lab = table.subset("trainval").labels
    h = hardness  # H(Z|C) = H(Z): the random row's CE is the target entropy
    ce = np.array([h(lab[t].to_numpy()) for t in TASKS])
    rows = pd.DataFrame({"source": "random", "target": TASKS, "dedicated": False,
                         "n_classes": [table.n_classes(t) for t in TASKS], "n_train": 450, "n_test": 150, "ce": ce,
                         "ce_mm": ce, "nce": -ce, "test_error": 0.95, "test_accuracy": 0.05, "train_error": 0.5,
                         "train_nll": ce, "test_nll": ce, "l_z": 0.0, "theorem1_bound": -ce, "ce_head_train_ll": -ce,
                         "leep": -ce, "logme": 0.0, "hscore": 0.0, "hscore_reg": np.nan})
    d = root / "source=random" / "seed=0"
    io.write_json(d / "source.json", dict(source="random", seed=0, source_n_classes=1, source_test_accuracy=1.0))
    io.write_csv(d / "results.csv", rows)
    row_record.write(d, "all", TASKS, [])   # a checked row, as the transfer stage leaves it
    out = analyze.run_analyze(cfg)
    m = pd.read_csv(out / "matrix.csv", index_col="source")
    assert m.loc["random"].to_numpy() == pytest.approx(0.95)
    corr = pd.read_csv(out / "correlations.csv")
    assert "random" not in set(corr["scope"])
    assert (corr.loc[(corr.view == "all") & (corr.scope == "pooled"), "n"] == 7 * 7).all()   # random's 8 not pooled
    summary = (out / "summary.md").read_text()
    assert verdict(summary, "Beyond the paper: a trained source transfers better") == "held"


def test_nested_quantile_cuts_are_named():
    (note,) = analyze.nested_cuts_note(["even", "wide@q10", "wide@q50", "tall@q25", "tall@q75", "odd"])
    assert note.startswith("4 targets are cuts of 2 measures") and "not independent" in note
    assert analyze.nested_cuts_note(["even", "wide", "tall@q50"]) == []


@pytest.mark.slow
def test_selection_on_a_real_digits_matrix(tmp_path):
    """Four digits sources trained (one quick epoch each) and transferred to seven targets, then analysed: the
    k-NN probe and the multi-label scores come from the transfer stage, every score chooses a source per target,
    and the binary targets are one multi-label target."""
    from helpers.config import validated
    from transferability.stages.transfer import run_transfer

    targets = "target=[digit,even,ge5,prime,has_loop,wide,ink_heavy]"
    quick = ["dataset=digits", targets, "trainer=debug", "trainer.limit_train_batches=null"]
    sources = ["digit", "even", "ge5", "prime"]
    for s in sources:
        row = run_transfer(validated([*quick, f"source={s}"], outputs=tmp_path / "outputs"))
        results, meta = pd.read_csv(row / "results.csv"), json.loads((row / "source.json").read_text())
        assert results[["knn1", "knn5"]].notna().all().all() and results["knn1"].between(0, 1).all()
        assert meta["multilabel_n_targets"] == 6 - (s != "digit")   # the binary targets but the source
        assert np.isfinite([meta["logme_multilabel"], meta["hscore_multilabel"]]).all()
    out = analyze.run_analyze(validated(["stage=analyze", *quick], outputs=tmp_path / "outputs"))
    sel = pd.read_csv(out / "selection.csv")
    choose = sel[sel["direction"] == "choose a source"]
    per = choose[choose["metric"] == "weighted_tau"].groupby("scope")["n"].max()
    assert per["even"] == 3 and per["wide"] == 4   # a source is no candidate for itself
    mean = choose[choose["scope"] == "mean over targets"].set_index(["estimator", "metric"])
    for name in ("nce", "leep", "logme", "knn1", "knn5", "source_hardness", "source_n_classes", "random_ranking"):
        assert np.isfinite(mean.at[(name, "top1_relative_accuracy"), "value"]), name
    assert mean.loc["target_entropy", "value"].isna().all()
    ml = choose[choose["scope"] == "multilabel:digits"].set_index(["estimator", "metric"])
    assert np.isfinite(ml.at[("logme_multilabel", "regret"), "value"])
    assert np.isfinite(ml.at[("hscore_multilabel", "regret"), "value"])
    assert (out / "selection.png").stat().st_size > 1000
    assert "### Choosing a source for a target" in (out / "summary.md").read_text()
