"""Shared fixtures: the real annotation files, and composing the real Hydra config."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


def shared_data_dir() -> Path:
    return Path(os.environ.get("TRANSFERABILITY_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data; in CI (CI=true) its absence is a failure, elsewhere a skip."""
    path = shared_data_dir()
    if not path.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"real annotation files not found at {path} (set TRANSFERABILITY_SHARED_DATA)")
        pytest.skip(f"real annotation files not found at {path}")
    return path


def compose(overrides: list[str] | None = None):
    """The real config, composed with Hydra's compose API (no subprocess)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from transferability.stages.run_dirs import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides or []), return_hydra_config=True)


@pytest.fixture
def run_config(tmp_path):
    """A validated RunConfig for `overrides`, writing under tmp_path."""
    from omegaconf import OmegaConf

    from transferability.config import from_dict
    from transferability.stages.run_dirs import run_dir_for

    def make(overrides: list[str] | None = None):
        cfg = compose([f"paths.outputs={tmp_path / 'outputs'}", *(overrides or [])])
        plain = OmegaConf.to_container(cfg, resolve=False)
        plain.pop("hydra")
        resolved = OmegaConf.to_container(OmegaConf.create(plain), resolve=True)
        return from_dict(resolved, run_dir=run_dir_for(resolved))

    return make
