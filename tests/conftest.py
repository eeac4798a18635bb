"""Shared fixtures: the real annotation files, and the real Hydra config (helpers live in tests/helpers/)."""
from __future__ import annotations

import logging
import os

import pytest

from helpers.config import validated
from helpers.paths import shared_data_dir


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` need CUDA: skipped (with the reason) on a machine without it."""
    gpu = [item for item in items if "gpu" in item.keywords]
    if not gpu:
        return
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA (run on a GPU machine: scripts/device_check.sh)")
        for item in gpu:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data():
    """../shared/data; in CI (CI=true) its absence is a failure, elsewhere a skip."""
    path = shared_data_dir()
    if not path.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"real annotation files not found at {path} (set TRANSFERABILITY_SHARED_DATA)")
        pytest.skip(f"real annotation files not found at {path}")
    return path


@pytest.fixture
def run_config(tmp_path):
    """A validated RunConfig for `overrides`, writing under tmp_path."""
    return lambda overrides=None: validated(overrides, outputs=tmp_path / "outputs")


@pytest.fixture(autouse=True)
def _info_logs(caplog):
    """The package's info lines (what a run shows) in `caplog.text`, as Hydra's job logging shows them."""
    caplog.set_level(logging.INFO, logger="transferability")
