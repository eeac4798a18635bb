"""A transfer job over several sources (stages/stacked.py) on digits: K ordinary rows, where and as their single runs
write them; finished rows skipped, cached models shared both ways; the sweep's chunks; a stacked job against its
single runs."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import transferability.stages.stacked as stacked_stage
from helpers.paths import REPO
from transferability import io
from transferability.errors import UserError
from transferability.stages import row_record
from transferability.stages.run_dirs import job_values, source_chunks
from transferability.stages.stacked import run_stacked, several
from transferability.stages.transfer import run_transfer

QUICK = ["trainer=debug", "trainer.limit_train_batches=null"]


def _text(caplog) -> str:
    """What was logged since the last call, then cleared."""
    text = caplog.text
    caplog.clear()
    return text


def test_a_job_writes_each_row_where_its_single_run_would(run_config, caplog):
    run = run_config(["source=[even,prime,digit]", *QUICK])
    assert several(run) and "/sources=even,prime,digit/seed=0" in run.run_dir   # the job's own (Hydra's) folder
    outs = run_stacked(run)
    assert "3 in 1 stack(s) of 3" in _text(caplog)
    for name, out in zip(["even", "prime", "digit"], outs):
        single = run_config([f"source={name}", *QUICK])
        assert out == Path(single.run_dir)
        assert row_record.problem(out, "all") is None
        meta = json.loads((out / "source.json").read_text())
        assert meta["source"] == name and meta["stack_size"] == 3 and meta["n_fit"] > 0
        assert json.loads((out / "config.json").read_text())["source"] == name
        run_transfer(single)                              # the single run finds its row finished
        assert "already done" in _text(caplog)
    run_stacked(run)                                      # and so does the job
    assert "3 sources: 3 finished, 0 single, 0 in 0 stack(s)" in _text(caplog)


def test_models_are_shared_with_single_runs_both_ways(run_config, caplog):
    single = run_config(["source=ge5", *QUICK])
    (run_transfer(single) / "done.json").unlink()        # a single run's model is cached, its row unfinished
    caplog.clear()
    run = run_config(["source_index=[4,1,2]", *QUICK])   # ge5, even, prime
    run_stacked(run)
    out = _text(caplog)
    assert "3 sources: 0 finished, 1 single, 2 in 1 stack(s) of 2" in out and "reusing source model" in out
    run_transfer(replace(run_config(["source=even", *QUICK]), force=True))   # a stacked model, reused by a single run
    assert "reusing source model" in _text(caplog)


def test_a_chunk_with_finished_rows_trains_only_the_rest(run_config, caplog):
    run = run_config(["source=[even,prime,digit]", *QUICK])
    outs = run_stacked(run)
    before = (outs[0] / "results.csv").read_bytes()
    for out in outs[1:]:
        (out / "done.json").unlink()
    caplog.clear()
    run_stacked(run)
    out = _text(caplog)
    # the two unfinished rows find their models cached: nothing trains again
    assert "3 sources: 1 finished, 2 single, 0 in 0 stack(s)" in out and out.count("reusing source model") == 2
    assert (outs[0] / "results.csv").read_bytes() == before
    assert all(row_record.problem(o, "all") is None for o in outs)


def test_bad_sources_fail_before_training(run_config, monkeypatch):
    monkeypatch.setattr(stacked_stage, "_train_stack", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(UserError, match="unknown task 'evn'; did you mean: even"):
        run_stacked(run_config(["source=[even,evn]", *QUICK]))
    with pytest.raises(UserError, match="source_index=21: expected 0..20"):
        run_stacked(run_config(["source_index=[0,21]", *QUICK]))
    with pytest.raises(UserError, match="unknown task 'evn'"):   # a bad target: no row of the job trains
        run_stacked(run_config(["source=[even,prime]", "target=[evn]", *QUICK]))


def _member(fit, val, name):
    return stacked_stage.Member(None, name, np.zeros(10, np.int64), 2, np.array(fit), np.array(val), Path(name))


def test_sources_with_other_labelled_rows_stack_apart():
    """A stack shares every batch: sources whose models fit or validate on other rows (missing labels) are
    grouped apart, in the given order."""
    members = [_member([0, 1, 2], [3], "a"), _member([0, 1], [3], "b"), _member([0, 1, 2], [3], "c"),
               _member([0, 1, 2], [4], "d")]
    groups = stacked_stage._by_rows(members)
    assert [[m.source for m in g] for g in groups] == [["a", "c"], ["b"], ["d"]]


def test_sweep_chunks():
    assert source_chunks(range(21), 8) == [list(range(8)), list(range(8, 16)), list(range(16, 21))]
    assert job_values(range(3), 1) == ["0", "1", "2"] and job_values(range(5), 2) == ["[0,1]", "[2,3]", "[4]"]
    assert job_values(range(3), 8) == ["[0,1,2]"]


def test_matrix_experiments_sweep_chunks_of_sources_per_job():
    from helpers.config import sweep_jobs

    chunked = sweep_jobs(["experiment=matrix_digits", "seed=0", "trainer.sources_per_job=8"])
    assert [j[1] for j in chunked] == ["source_index=[0,1,2,3,4,5,6,7]", "source_index=[8,9,10,11,12,13,14,15]",
                                       "source_index=[16,17,18,19,20]"]
    assert [j[1] for j in sweep_jobs(["experiment=matrix_digits", "seed=0"])] == [f"source_index={k}"
                                                                                  for k in range(21)]


def test_a_bad_chunk_size_is_one_line_and_exit_2(capsys):
    from helpers.config import sweep_jobs

    with pytest.raises(SystemExit) as e:
        sweep_jobs(["experiment=matrix_digits", "trainer.sources_per_job=0"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "trainer.sources_per_job=0" in err and "\n" not in err


@pytest.mark.slow
def test_sweep_with_sources_per_job_runs_chunks_as_rows(tmp_path):
    """`python run.py -m experiment=matrix_digits trainer.sources_per_job=11`: two jobs, 21 ordinary rows, the
    analysis over them."""
    out = subprocess.run([sys.executable, str(REPO / "run.py"), "-m", "experiment=matrix_digits", "seed=0",
                          "trainer.sources_per_job=11", "trainer=debug", "trainer.limit_train_batches=1",
                          f"paths.outputs={tmp_path}"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = tmp_path / "digits" / "small_cnn" / "linear_svm" / "trainer=debug,trainer.limit_train_batches=1"
    assert len(list(rows.glob("source=*/seed=0/done.json"))) == 21
    assert len(list(rows.glob("sources=*/seed=0/.hydra"))) == 2
    # each row names the command that made it (the job's overrides), as a single run's row does
    assert all("trainer.sources_per_job=11" in p.read_text()
               for p in rows.glob("source=*/seed=0/.hydra/overrides.yaml"))
    assert len(list(rows.glob("source=*/seed=0/.hydra/overrides.yaml"))) == 21
    assert (rows / "analysis" / "summary.md").is_file()


@pytest.mark.slow
def test_a_stacked_job_equals_its_single_runs(run_config, tmp_path):
    """Six digits sources trained as one stack and one by one (same threads, the CPU's loop engine, early
    stopping on): every row's numbers are the same, bit for bit."""
    sources = ["digit", "even", "prime", "ink_heavy", "wide", "thick"]
    common = ["backbone.width=16", "trainer.max_epochs=8", "callbacks.patience=2", "trainer.threads=1"]
    run_stacked(run_config([f"source=[{','.join(sources)}]", *common]))
    epochs = set()
    for name in sources:
        job_row = Path(run_config([f"source={name}", *common]).run_dir)
        alone = run_config([f"source={name}", *common, f"paths.outputs={tmp_path / 'alone'}"])
        single_row = run_transfer(alone)
        a, b = pd.read_csv(job_row / "results.csv"), pd.read_csv(single_row / "results.csv")
        pd.testing.assert_frame_equal(a, b)
        ma, mb = (json.loads((d / "source.json").read_text()) for d in (job_row, single_row))
        assert ma["source_test_accuracy"] == mb["source_test_accuracy"] and ma["epochs"] == mb["epochs"]
        epochs.add(ma["epochs"])
    assert len(epochs) > 1   # networks stopped at different epochs: the stack shrank on the way


def test_rows_of_a_job_get_its_command_and_keep_their_own(tmp_path):
    job, made, single, unfinished = (tmp_path / n for n in ("job", "made", "single", "unfinished"))
    io.write_text(job / ".hydra" / "overrides.yaml", "- source=[a,b]\n")
    for row in (made, single):
        io.write_text(row / "done.json", "{}")
    io.write_text(single / ".hydra" / "overrides.yaml", "- source=b\n")
    stacked_stage._record_command(job, [made, single, unfinished])
    assert (made / ".hydra" / "overrides.yaml").read_text() == "- source=[a,b]\n"
    assert (single / ".hydra" / "overrides.yaml").read_text() == "- source=b\n"   # its own command stays
    assert not (unfinished / ".hydra").exists()                                    # no row, no record
