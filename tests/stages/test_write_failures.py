"""A full disk or an unwritable place, wherever a run writes (the epoch checkpoint, the model cache, the row's files,
the analysis, stage=estimate's files, Open Images' ce_matrix.npy): one line naming the file (and the bytes it
needed where known), nothing half-written. The disk is made full by the write itself raising ENOSPC (no root,
no small file system); a path under a file is a real case. And dispatch's other ending that no library may turn
into success: Lightning's exit on SIGTERM."""
from __future__ import annotations

import errno
import sys

import pandas as pd
import pytest
from omegaconf import OmegaConf

from helpers.config import compose
from transferability.errors import UserError
from transferability.stages import dispatch
from transferability.stages.estimate import run_estimate
from transferability.stages.transfer import run_transfer

QUICK = ["dataset=digits", "source=even", "trainer=debug", "target=[even,prime,wide]"]


def full(name):
    return OSError(errno.ENOSPC, "No space left on device", name)


def leftovers(folder) -> list:
    """Files that would look like output: anything but lock files, logs and Hydra's record."""
    return sorted(str(p) for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".lock")
                  and p.name not in ("run.log", "settings.json"))


def fill_disk_on(monkeypatch, name: str) -> None:
    """The disk fills while io writes a file whose temporary name holds `name`: half of it is written, then the
    write raises ENOSPC (io's files are written through its module's `open`)."""
    import builtins

    from transferability import io

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(bytes(memoryview(data)[: len(memoryview(data)) // 2]))
            raise full(self.f.name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def opened(path, mode="r", *a, **k):
        f = builtins.open(path, mode, *a, **k)
        return Full(f) if name in str(path) and "w" in mode else f

    monkeypatch.setattr(io, "open", opened, raising=False)


def one_line(e: pytest.ExceptionInfo, *parts: str) -> None:
    text = str(e.value)
    assert "\n" not in text and all(p in text for p in parts), text


def test_the_epoch_checkpoint(run_config, tmp_path, monkeypatch):
    fill_disk_on(monkeypatch, "last.ckpt")
    run = run_config(QUICK)
    with pytest.raises(UserError) as e:
        run_transfer(run)
    one_line(e, "cannot write ", "/training/last.ckpt: No space left on device (needs ", " MB, ")
    assert leftovers(tmp_path) == []   # no half-written last.ckpt, no temporary file


def test_the_model_cache(run_config, tmp_path, monkeypatch):
    fill_disk_on(monkeypatch, "model.pt")
    with pytest.raises(UserError) as e:
        run_transfer(run_config(QUICK + ["callbacks=none"]))
    one_line(e, "cannot write ", "model.pt: No space left on device")
    assert "/models/" in str(e.value) and not [p for p in leftovers(tmp_path) if "/models/" in p]


def test_the_rows_files(run_config, tmp_path, monkeypatch):
    real = pd.DataFrame.to_csv

    def no_space(self, path=None, *a, **k):
        if path is not None and "results.csv" in str(path):
            raise full(str(path))
        return real(self, path, *a, **k)

    run = run_config(QUICK + ["callbacks=none"])
    monkeypatch.setattr(pd.DataFrame, "to_csv", no_space)
    with pytest.raises(UserError) as e:
        run_transfer(run)
    one_line(e, f"cannot write {run.run_dir}/results.csv: No space left on device")
    row = [p for p in leftovers(tmp_path) if p.startswith(run.run_dir)]
    assert not [p for p in row if p.endswith(("results.csv", "done.json", ".tmp"))], row


def test_the_estimate_files_and_the_analysis(run_config, tmp_path, monkeypatch):
    real = pd.DataFrame.to_csv

    def no_space(self, path=None, *a, **k):
        if path is not None and "ce.csv" in str(path):
            raise full(str(path))
        return real(self, path, *a, **k)

    monkeypatch.setattr(pd.DataFrame, "to_csv", no_space)
    with pytest.raises(UserError) as e:
        run_estimate(run_config(["stage=estimate", "dataset=digits"]))
    one_line(e, "ce.csv: No space left on device")
    assert not [p for p in leftovers(tmp_path) if p.endswith(("ce.csv", ".tmp"))]


def test_open_images_ce_matrix_names_the_bytes_it_needs(run_config, tmp_path, monkeypatch):
    import os

    from transferability.data import openimages_synth as synth

    root = tmp_path / "oi"
    synth.generate(root, synth.SynthSpec(n_images=300, n_classes=20), progress=False)

    def no_blocks(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_blocks)
    with pytest.raises(UserError) as e:
        run_estimate(run_config(["stage=estimate", "dataset=openimages", f"dataset.root={root}"]))
    one_line(e, "ce_matrix.npy: No space left on device (needs ", " bytes")   # 20 x 20 float32 and its header
    assert not list((tmp_path / "outputs").rglob("*.npy")) and not list((tmp_path / "outputs").rglob("*.tmp"))


def test_a_cache_under_a_file_is_one_line(run_config, tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    run = run_config(QUICK + [f"paths.cache={tmp_path / 'afile' / 'cache'}"])
    with pytest.raises(UserError) as e:
        run_transfer(run)
    one_line(e, "cannot write ", f"{tmp_path / 'afile'} is a file, not a folder")


def test_dispatch_turns_any_refused_write_into_one_line_exit_2(tmp_path, monkeypatch, capsys):
    """A write that went around io (a library's own file): dispatch's line, exit 2, no traceback."""
    cfg = OmegaConf.to_container(compose(QUICK + [f"paths.outputs={tmp_path}"]), resolve=False)
    cfg.pop("hydra")

    def stage(run):
        raise full(str(tmp_path / "metrics.csv"))

    monkeypatch.setitem(dispatch.STAGES, "transfer", stage)
    with pytest.raises(SystemExit) as e:
        dispatch.run_stage(OmegaConf.create(cfg))
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: cannot write {tmp_path / 'metrics.csv'}: No space left on device (")


@pytest.mark.parametrize("where", ["paths.outputs", "paths.cache"])
def test_a_path_under_a_file_through_run_py(tmp_path, where):
    """The real case: a folder that cannot be created because a file is on the way."""
    import os
    import subprocess

    from helpers.paths import REPO

    (tmp_path / "afile").write_text("x")
    args = [f"{where}={tmp_path / 'afile' / 'x'}"] + ([f"paths.outputs={tmp_path / 'out'}"] if where != "paths.outputs"
                                                     else [])
    out = subprocess.run([sys.executable, str(REPO / "run.py"), *QUICK, *args], cwd=REPO, capture_output=True,
                         text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}, timeout=600)
    lines = [l for l in out.stderr.splitlines() if l.strip() and "Warning" not in l and "warn" not in l]
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"{tmp_path / 'afile'} is a file" in lines[0]
    assert (tmp_path / "afile").read_text() == "x"
    assert not leftovers(tmp_path / "out") if (tmp_path / "out").exists() else True


def test_lightnings_sigterm_exit_is_not_a_finished_run(tmp_path, monkeypatch, capsys):
    """Where SIGTERM is another handler's (submitit), Lightning ends training with SIGTERMException, a SystemExit
    whose code says success: dispatch reports it as the interruption it is, exit 143, naming what ran."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from transferability.errors import doing

    cfg = OmegaConf.to_container(compose(QUICK + [f"paths.outputs={tmp_path}"]), resolve=False)
    cfg.pop("hydra")

    def stage(run):
        with doing("training the source model", rerun="resumes from its last epoch checkpoint"):
            raise SIGTERMException()

    monkeypatch.setitem(dispatch.STAGES, "transfer", stage)
    with pytest.raises(SystemExit) as e:
        dispatch.run_stage(OmegaConf.create(cfg))
    err = capsys.readouterr().err
    assert e.value.code == 143 and err.count("\n") == 1
    assert err.startswith("interrupted (SIGTERM) while training the source model: nothing of this run is marked "
                          "finished; rerunning the same command resumes from its last epoch checkpoint")
