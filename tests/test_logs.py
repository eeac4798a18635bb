"""What a run shows and keeps (logs.py, conf/hydra/job_logging/rows.yaml): messages as they are, a row prefix in a
multirun, every line in the run folder's run.log, and progress bars that `callbacks=cluster` quiets."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from helpers.config import compose
from transferability import logs


@pytest.fixture(autouse=True)
def _reset():
    yield
    logs.set_row("", shown=False)
    logs.set_progress(1.0)


def test_console_lines_carry_the_row_in_a_multirun_only():
    record = logging.LogRecord("transferability.x", logging.INFO, __file__, 1, "first\nsecond", None, None)
    fmt = logs.ConsoleFormatter()
    logs.set_row("linear_svm/source=even/seed=0", shown=False)
    assert fmt.format(record) == "first\nsecond"
    logs.set_row("linear_svm/source=even/seed=0", shown=True)
    assert fmt.format(record) == "[linear_svm/source=even/seed=0] first\n[linear_svm/source=even/seed=0] second"


def test_job_logging_keeps_run_log_in_the_run_folder_and_splits_the_console():
    from omegaconf import OmegaConf

    job = OmegaConf.to_container(compose(["source=even"]).hydra.job_logging, resolve=False)
    assert job["handlers"]["file"]["filename"] == "${hydra.runtime.output_dir}/run.log"
    assert job["handlers"]["stdout"]["stream"] == "ext://sys.stdout" and job["handlers"]["stderr"]["level"] == "WARNING"
    assert job["root"]["level"] == "INFO"


def test_cluster_callbacks_quiet_the_extraction_and_decoding_bars(capsys):
    from transferability.config import group_config
    from transferability.models.backbones import build_net
    from transferability.models.training import extract

    assert group_config("callbacks", "cluster").progress_interval >= 60
    assert group_config("callbacks", "default").progress_interval <= 1
    net = build_net(group_config("backbone", "small_cnn", width=4, embedding_dim=4), 1, 8, 2)
    x = np.zeros((600, 8, 8, 1), np.uint8)
    logs.set_progress(1.0)
    extract(net, x, batch_size=100)
    assert "extract" in capsys.readouterr().err
    logs.set_progress(None)
    extract(net, x, batch_size=100)
    assert capsys.readouterr().err == ""
    logs.set_progress(60.0)
    bar = logs.progress(range(3), desc="decoding")
    assert bar.mininterval == 60.0 and bar.maxinterval >= 60.0
    bar.close()
