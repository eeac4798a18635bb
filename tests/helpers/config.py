"""The real Hydra config, composed with Hydra's compose API (no subprocess), and validated as run.py does."""
from __future__ import annotations

from .paths import CONF


def compose(overrides: list[str] | None = None):
    """The composed config with its `hydra` node; `+experiment=` is read as run.py reads it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from transferability.stages.dispatch import plain_experiment
    from transferability.stages.run_dirs import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=plain_experiment(list(overrides or [])),
                             return_hydra_config=True)


def validated(overrides: list[str] | None = None, outputs=None):
    """A validated RunConfig for `overrides` (writing under `outputs` when given), run directory resolved."""
    from omegaconf import OmegaConf

    from transferability.config import from_dict
    from transferability.stages.run_dirs import run_dir_for

    extra = [f"paths.outputs={outputs}"] if outputs is not None else []
    cfg = compose([*extra, *(overrides or [])])
    plain = OmegaConf.to_container(cfg, resolve=False)
    choices = plain.pop("hydra")["runtime"]["choices"]
    resolved = OmegaConf.to_container(OmegaConf.create(plain), resolve=True)
    resolved["experiment"] = choices.get("experiment")
    return from_dict(resolved, run_dir=run_dir_for(resolved))
