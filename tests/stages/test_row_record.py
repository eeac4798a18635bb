"""A finished row is a checked row: done.json must match results.csv (checksum, row count, targets asked)."""
from dataclasses import replace

import pandas as pd
import pytest

from transferability.stages import row_record
from transferability.stages.transfer import run_transfer


@pytest.fixture
def digits_run(run_config):
    return run_config(["dataset=digits", "source=even", "trainer=debug", "trainer.limit_train_batches=null",
                       "target=[even,digit,prime,wide]"])


def test_record_matches_until_the_file_changes(tmp_path):
    pd.DataFrame({"source": ["a", "a"], "target": ["a", "b"]}).to_csv(tmp_path / "results.csv", index=False)
    assert row_record.problem(tmp_path) == "no done.json (the run did not finish, or predates the record)"
    row_record.write(tmp_path, ["a", "b"], ["a", "b"], [])
    assert row_record.problem(tmp_path) is None
    assert row_record.problem(tmp_path, ["b"]) is None
    assert "lacks asked-for target(s) c" in row_record.problem(tmp_path, ["b", "c"])
    assert "asked for all" in row_record.problem(tmp_path, "all")
    (tmp_path / "results.csv").write_text("source,target\na,a\n")
    assert "checksum" in row_record.problem(tmp_path)
    (tmp_path / "done.json").write_text("[1, 2]")
    assert "done.json unreadable" in row_record.problem(tmp_path)


def test_truncated_row_is_redone_not_already_done(digits_run, caplog):
    out = run_transfer(digits_run)
    whole = (out / "results.csv").read_text()
    (out / "results.csv").write_text("".join(whole.splitlines(keepends=True)[:3]))   # killed copy, edit, ...
    caplog.clear()
    run_transfer(digits_run)
    printed = caplog.text
    assert "already done" not in printed and "redoing" in printed and "checksum" in printed
    assert len(pd.read_csv(out / "results.csv")) == 4
    assert row_record.problem(out) is None
    run_transfer(digits_run)
    assert "already done" in caplog.text


def test_row_without_record_is_redone(digits_run, caplog):
    out = run_transfer(digits_run)
    (out / "done.json").unlink()   # killed between results.csv and its record
    caplog.clear()
    run_transfer(digits_run)
    assert "redoing" in caplog.text and (out / "done.json").exists()


def test_more_targets_than_the_row_holds_redo_it(digits_run, caplog):
    out = run_transfer(digits_run)
    caplog.clear()
    run_transfer(replace(digits_run, target=["even", "ge5"]))
    printed = caplog.text
    assert "lacks asked-for target(s) ge5" in printed
    assert "ge5" in set(pd.read_csv(out / "results.csv")["target"])


def test_garbled_config_json_redoes_the_row(digits_run, caplog):
    out = run_transfer(digits_run)
    (out / "config.json").write_text('{"stage": "tra')
    caplog.clear()
    run_transfer(digits_run)
    printed = caplog.text
    assert "redoing" in printed and "config.json" in printed and "Traceback" not in printed


def test_garbled_source_json_is_not_a_checked_row(tmp_path):
    pd.DataFrame({"source": ["a"], "target": ["a"]}).to_csv(tmp_path / "results.csv", index=False)
    (tmp_path / "source.json").write_text('{"seed": 0}')
    row_record.write(tmp_path, "all", ["a"], [])
    assert row_record.problem(tmp_path) is None
    (tmp_path / "source.json").write_bytes(b'{"seed": \xff\xfe')
    assert "source.json missing or does not match" in row_record.problem(tmp_path)
