"""Results pages rendered from analysis folders (transferability.report): a small synthetic matrix (the rows of
tests/stages/test_analyze.py, given provenance and Hydra overrides here) goes through the real stage=analyze,
and the page's numbers are checked against the files the stage wrote; likewise a width study's folder."""
from __future__ import annotations

import contextlib
import importlib.util
import io as stdio
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from transferability import io, report
from transferability.stages import analyze, row_record

STAGE_TESTS = Path(__file__).resolve().parent / "stages"
A = dict(version="0.1.0", commit="aaaaaaa1", dirty=False, python="3.11.9", torch="2.14.1", lightning="2.6.6",
         numpy="2.4.6", scipy="1.17.1", sklearn="1.9.1", device="cpu", hostname="node-a", cpu="TestCPU 9000",
         threads=2)
B = dict(A, commit="bbbbbbb2", dirty=True, torch="2.15.0", hostname="node-b")


def _module(name: str):
    """A stage test module, for its synthetic-tree helpers."""
    spec = importlib.util.spec_from_file_location(f"report_uses_{name}", STAGE_TESTS / f"test_{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(folder: Path, overrides: list[str] | None, prov: dict | None, where: str, targets) -> None:
    """Give a written row its Hydra overrides and a provenance block (in source.json or config.json), then
    re-record it as finished (done.json covers both files)."""
    if overrides is not None:
        (folder / ".hydra").mkdir(exist_ok=True)
        (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if prov is not None:
        path = folder / where
        data = json.loads(path.read_text()) if path.exists() else {}
        io.write_json(path, dict(data, provenance=prov))
    row_record.write(folder, "all", targets, [])


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    """(analysis folder, rows root): commit A made the seed-0 rows, B (dirty, another torch) the seed-1 row,
    a7's row records no provenance and no command, and one row is left unfinished."""
    an = _module("analyze")
    with pytest.MonkeyPatch.context() as mp:
        _, root, cfg = an.build_tree(tmp_path_factory.mktemp("report"), mp)
        for d in sorted(root.glob("source=*/seed=*")):
            source, seed = d.parent.name.split("=", 1)[1], int(d.name.split("=")[1])
            if source == "a7":
                _record(d, None, None, "source.json", an.TASKS)
                continue
            _record(d, ["+experiment=matrix_synth", f"seed={seed}", f"source={source}"], A if seed == 0 else B,
                    "source.json" if seed == 0 else "config.json", an.TASKS)
            for f in sorted(d.glob("fraction=*")):
                _record(f, ["+experiment=fig5_synth", f"source={source}", f"train_fraction={f.name.split('=')[1]}"],
                        A, "source.json", an.TASKS)
        half = root / "source=a4" / "seed=0"   # a row killed before its done.json: not a finished row
        io.write_csv(half / "results.csv", pd.DataFrame({"source": ["a4"], "target": ["a1"]}))
        with contextlib.redirect_stdout(stdio.StringIO()):
            out = analyze.run_analyze(cfg)
    return out, root


def _line(page: str, start: str) -> str:
    hits = [line for line in page.splitlines() if line.startswith(start)]
    assert len(hits) == 1, (start, hits)
    return hits[0]


def _section(page: str, heading: str) -> str:
    return page.split(f"\n## {heading}")[1].split("\n## ")[0]


def _f(v) -> str:
    return "-" if pd.isna(v) else f"{float(v):.3f}"


def test_page_numbers_are_the_analysis_files(matrix):
    out, _ = matrix
    page = report.render(out)
    summary = (out / "summary.md").read_text()
    title, _, parts = report.sections(summary)
    assert page.startswith(f"# {title}\n")
    assert parts["The paper's claims, measured here"] in page      # the verdict table, as the stage wrote it
    assert parts["Estimators"] in page
    assert (out / "table1_identity.md").read_text().strip() in page

    corr = pd.read_csv(out / "correlations.csv")
    for r in corr[corr["scope"] == "pooled"].itertuples():
        line = _line(page, f"| {r.view} | {int(r.n)} | ")
        ci = f" [{r.r_ci_low:.2f}, {r.r_ci_high:.2f}]" if pd.notna(r.r_ci_low) else ""
        assert f"| {_f(r.pearson_r)}{ci} | {_f(r.spearman_rho)} |" in line
        assert line.endswith(f"| {_f(r.noise_ceiling)} | {r.verdict} |")
    per = corr[(corr["view"] == "binary") & (corr["scope"] != "pooled")]
    for r in per.itertuples():
        assert _line(page, f"| {r.scope} | {int(r.n)} | {_f(r.pearson_r)} | {float(r.pearson_p):.2g} | ")

    hard, fig6 = pd.read_csv(out / "hardness.csv"), _section(page, "Hardness (Fig. 6)")
    for r in hard.itertuples():
        assert _line(fig6, f"| {r.task} | ") == f"| {r.task} | {_f(r.hardness)} | {_f(r.dedicated_test_error)} |"

    cells = pd.read_csv(out / "theorem1.csv")
    train = _line(page, "| train (Theorem 1, Eq. 10) |")
    assert cells["violates"].sum() == 1   # the planted violation
    assert train == (f"| train (Theorem 1, Eq. 10) | {cells['margin'].notna().sum()} | 1 | "
                     f"{-cells.loc[cells['violates'], 'margin'].min():.4f} | {_f(cells['margin'].median())} |")
    test = _line(page, "| test (generalisation check) |")
    assert f"| {int(cells['test_violates'].sum())} |" in test

    curves = pd.read_csv(out / "fig5_identity.csv")
    r = curves[(curves["target"] == curves["target"].iloc[0]) & (curves["kind"] == "transferred")]
    row = _line(_section(page, "Fig. 5"), f"| {r['target'].iloc[0]} | transferred | ")
    assert [f"{v:.3f}" for v in r.sort_values("train_fraction")["accuracy"]] == row.strip("| ").split(" | ")[2:]


def test_page_changes_with_the_files(matrix, tmp_path):
    """The numbers are read, not kept: edit a pooled r in a copy of the folder and the page shows the edit."""
    out, root = matrix
    import shutil

    copy = root / "analysis_copy"
    shutil.copytree(out, copy)
    corr = pd.read_csv(copy / "correlations.csv")
    corr.loc[(corr["view"] == "binary") & (corr["scope"] == "pooled"), "pearson_r"] = 0.123456
    corr.to_csv(copy / "correlations.csv", index=False)
    assert "| binary | " in report.render(copy)
    assert _line(report.render(copy), "| binary | ").split(" | ")[2].startswith("0.123 [")
    assert not _line(report.render(out), "| binary | ").split(" | ")[2].startswith("0.123 [")
    shutil.rmtree(copy)


def test_header_names_commits_libraries_machines_and_commands(matrix):
    out, root = matrix
    page = report.render(out, shown="outputs/synth/small_cnn/linear_svm/analysis")
    head = page.split("## The paper's claims")[0]
    # 7 seed-0 rows (a7's without provenance), 1 seed-1 row, 6 fraction rows; a4's unfinished row is left out
    assert "| rows | 14 finished rows under `outputs/synth/small_cnn/linear_svm`" in head
    assert "| rows left out | 1 not checked finished" in head
    assert ("| 12 | aaaaaaa1, clean, version 0.1.0 | python 3.11.9, torch 2.14.1, lightning 2.6.6, numpy 2.4.6, "
            "scipy 1.17.1, sklearn 1.9.1 | node-a, CPU TestCPU 9000, device cpu, threads 2 |") in head
    assert ("| 1 | bbbbbbb2, uncommitted changes, version 0.1.0 | python 3.11.9, torch 2.15.0, lightning 2.6.6"
            in head)
    assert "node-b, CPU TestCPU 9000, device cpu, threads 2" in head
    assert "| 1 | not recorded | not recorded | not recorded |" in head
    assert "made by 2 different commits (aaaaaaa1, bbbbbbb2)" in head and "2 different library sets" in head
    assert "1 of 14 rows record no provenance" in head
    commands = _line(head, "| row commands |")
    assert ("`python run.py -m +experiment=matrix_synth seed=0,1 source=a1,a2,a3,a5,a6,identity` "
            "(7 of the sweep's 12 combinations)") in commands
    assert ("`python run.py -m +experiment=fig5_synth source=a1,a2,identity train_fraction=0.1,0.5` (6 rows)"
            in commands)
    assert "not recorded for 1 row (no .hydra/overrides.yaml)" in commands
    assert "| analysis command | not recorded in the folder (no .hydra/" in head   # made by a function call here
    assert re.search(r"summary\.md written \d{4}-\d\d-\d\d \d\d:\d\d UTC", head)


def test_command_line_copies_figures_and_includes_notes(matrix, tmp_path, capsys):
    out, _ = matrix
    notes = tmp_path / "reading.md"
    notes.write_text("CE tracks the error here because **the labels say so**.\n")
    figures = tmp_path / "docs" / "results" / "figures" / "synth"
    assert report.main([str(out), "--notes", str(notes), "--figures", str(figures)]) == 0
    page = capsys.readouterr().out
    assert "## Reading\n\nCE tracks the error here because **the labels say so**.\n" in page
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", page)
    assert sorted(Path(link).name for link in links) == sorted(p.name for p in out.glob("*.png"))
    assert all((tmp_path / "docs" / "results" / link).is_file() for link in links)   # relative to the page
    assert links[0] == "figures/synth/fig2.png"   # the paper's order
    assert f"--figures {figures}" in page.split("\n")[2]   # the header says how to render it again


def test_width_study_folder(tmp_path, monkeypatch, capsys):
    w = _module("widths")
    from transferability.data.registry import Dataset
    from transferability.stages.widths import run_widths

    table = w._table()
    monkeypatch.setattr(analyze, "load_dataset", lambda cfg: Dataset(name="synth", labels=table))
    for d, folder in ((2, "small_cnn-D2"), (8, "small_cnn-D8")):
        for s in ("k", "e"):
            for seed in (0, 1):
                w._write(tmp_path / "synth" / folder / "linear_svm", table, s, seed, d)
                row = tmp_path / "synth" / folder / "linear_svm" / f"source={s}" / f"seed={seed}"
                _record(row, ["+experiment=width_prevalence_synth", f"seed={seed}", f"backbone.embedding_dim={d}",
                              f"source={s}"], A, "source.json", w.TASKS)
    out = run_widths(w._cfg(tmp_path))
    page = report.render(out)
    _, intro, _ = report.sections((out / "summary.md").read_text())
    _, _, tables = report.sections((out / "widths.md").read_text())
    assert all(line in page for line in intro) and all(body in page for body in tables.values())
    assert "| nce | " in page and "![widths](" not in page and "widths.png" in page
    assert "| rows | 8 finished rows under " in page and "small_cnn-D2/linear_svm" in page
    assert ("`python run.py -m +experiment=width_prevalence_synth seed=0,1 backbone.embedding_dim=2,8 source=e,k` "
            "(8 rows)") in page


def test_not_an_analysis_folder_is_one_line(tmp_path, capsys):
    assert report.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "not an analysis folder" in err


def test_estimate_folder_against_a_reference(tmp_path):
    """A stage=estimate folder (digits' labels, no training): the paper-style reference table is ce.csv's values,
    rounded as the paper prints them, and `match` says whether they agree."""
    from helpers.config import plain
    from transferability.config import from_dict
    from transferability.stages.estimate import run_estimate

    cfg = plain(stage="estimate", paths={"outputs": str(tmp_path)}, source="digit",
                reference={"digit": {"even": 0.0, "ink_heavy": 0.5}})
    with contextlib.redirect_stdout(stdio.StringIO()):
        out = run_estimate(from_dict(cfg, run_dir=str(tmp_path / "est")))
    (out / ".hydra").mkdir()
    (out / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["stage=estimate", "dataset=digits", "source=digit"]))
    page = report.render(out)
    ce = pd.read_csv(out / "ce.csv").set_index(["source", "target"])["ce"]
    assert _line(page, "| digit | even |") == f"| digit | even | 0.000 | {ce['digit', 'even']:.3f} | yes |"
    assert _line(page, "| digit | ink_heavy |") == (f"| digit | ink_heavy | 0.500 | {ce['digit', 'ink_heavy']:.3f} "
                                                     "| no |")
    assert "| command | `python run.py stage=estimate dataset=digits source=digit` |" in page
    assert "| not recorded | not recorded | not recorded |" in page   # config.json without provenance
    hard = pd.read_csv(out / "hardness.csv")
    fig = _section(page, "Hardness")
    assert _line(fig, "| digit | ") == f"| digit | {hard.set_index('task').at['digit', 'hardness']:.3f} |"


def test_rows_are_found_below_a_settings_folder(tmp_path):
    """An analysis or width study of a non-default setting sits in its settings folder; its rows are beside it."""
    head = tmp_path / "digits" / "small_cnn" / "linear_svm"
    assert report.row_roots(head / "head.C=0.1" / "analysis", "analyze") == [head / "head.C=0.1"]
    assert report.row_roots(head / "head.C=0.1" / "analysis" / "target=a,b", "analyze") == [head / "head.C=0.1"]
    study = head / "settings-0123456789ab" / "widths"
    study.mkdir(parents=True)
    pd.DataFrame({"D": [8, 128]}).to_csv(study / "widths.csv", index=False)
    assert report.row_roots(study, "widths") == [
        tmp_path / "digits" / "small_cnn-D8" / "linear_svm" / "settings-0123456789ab",
        tmp_path / "digits" / "small_cnn" / "linear_svm" / "settings-0123456789ab"]


def test_ground_truth_section_reads_ground_truths_csv(tmp_path):
    """With transfer=finetune rows beside the defaults', the page has a Ground truths section whose numbers are
    ground_truths.csv's and which quotes the summary's claims under every ground truth."""
    from transferability.stages.run_dirs import rows_root

    an = _module("analyze")
    with pytest.MonkeyPatch.context() as mp:
        table, root, cfg = an.build_tree(tmp_path, mp)
        made = an.row_config("a1", 0, transfer=an.FINETUNE)
        folder = rows_root({**made, "paths": {"outputs": str(root.parents[2])}})
        for s in an.RUN_SOURCES:
            an.write_run(folder, table, s, seed=0, config={"transfer": an.FINETUNE}, perturb=0.03)
        with contextlib.redirect_stdout(stdio.StringIO()):
            out = analyze.run_analyze(cfg)
    page = report.render(out)
    section = _section(page, "Ground truths")
    compared = pd.read_csv(out / "ground_truths.csv")
    errors = compared[compared["measure"] == "error matrix"].set_index("item")["value"]
    line = _line(section, "| head.C=1 vs transfer=finetune |")
    assert f"| {_f(errors['pearson'])} / {_f(errors['kendall'])} |" in line
    mean_tau = compared[(compared["measure"] == "target ranking") & (compared["scope"] == "mean over sources")]
    assert f"| {_f(mean_tau['value'].iloc[0])} |" in line
    verdicts = compared[(compared["measure"] == "estimator verdict") & (compared["direction"] == "choose a source")]
    assert f"{int(verdicts['value'].sum())} of {len(verdicts)}" in line
    assert "### Under every ground truth (head.C=1, transfer=finetune)" in section
    assert report.sections((out / "summary.md").read_text())[2][
        "Under every ground truth (head.C=1, transfer=finetune)"] in section
