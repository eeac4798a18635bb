"""The real Hydra config, composed and validated outside a `python run.py` process (benches, tests, notebooks):
the same RunConfig run.py would build for the same overrides, with its run directory resolved."""
from __future__ import annotations

from ..config import CONF, RunConfig, from_dict
from .dispatch import plain_experiment
from .run_dirs import register_resolvers, run_dir_for


def compose(overrides: list[str] | None = None):
    """The composed DictConfig (with its `hydra` node) for command-line style `overrides`."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=plain_experiment(list(overrides or [])),
                             return_hydra_config=True)


def run_config(overrides: list[str] | None = None, run_dir: str | None = None) -> RunConfig:
    """A validated RunConfig for `overrides`; `run_dir` defaults to where run.py would write."""
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(compose(overrides), resolve=False)
    choices = plain.pop("hydra")["runtime"]["choices"]
    resolved = OmegaConf.to_container(OmegaConf.create(plain), resolve=True)
    resolved["experiment"] = choices.get("experiment")
    return from_dict(resolved, run_dir=run_dir or run_dir_for(resolved))
