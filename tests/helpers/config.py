"""The real Hydra config, composed with Hydra's compose API (no subprocess), and validated as run.py does."""
from __future__ import annotations

from transferability.stages.compose import compose, run_config

__all__ = ["compose", "plain", "sweep_jobs", "validated"]


def validated(overrides: list[str] | None = None, outputs=None):
    """A validated RunConfig for `overrides` (writing under `outputs` when given), run directory resolved."""
    extra = [f"paths.outputs={outputs}"] if outputs is not None else []
    return run_config([*extra, *(overrides or [])])


def plain(**changes) -> dict:
    """The default config as a plain resolved dict (no `hydra` node), with `changes` merged in: a group's
    mapping updates that group's keys (`dataset={"name": "synth"}` keeps the other dataset keys)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(compose([]), resolve=False)
    cfg.pop("hydra")
    cfg = OmegaConf.to_container(OmegaConf.create(cfg), resolve=True)
    for key, value in changes.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) and isinstance(cfg.get(key), dict) else value
    return cfg


def sweep_jobs(arguments: list[str], typed: int | None = None) -> list[list[str]]:
    """The jobs `python run.py -m <arguments>` launches, in order: through the experiment's sweeper, or (`typed`)
    Hydra's BasicSweeper with `source_index=range(0, typed)` in place of `all`."""
    from hydra import initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.plugins import Plugins
    from hydra.types import HydraContext, RunMode

    from helpers.paths import CONF
    from transferability.stages.run_dirs import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        cfg = loader.load_configuration("config", list(arguments), run_mode=RunMode.MULTIRUN)
        params = {k: str(v) for k, v in cfg.hydra.sweeper.params.items()}
        if typed is not None:
            assert params["source_index"] == "all"
            params["source_index"] = f"range(0, {typed})"
            parser = OverridesParser.create(config_loader=loader)
            parsed = parser.parse_overrides([f"{k}={v}" for k, v in params.items()] + list(arguments))
            return BasicSweeper.split_arguments(parsed, None)[0]
        sweeper = Plugins.instance().instantiate_sweeper(
            hydra_context=HydraContext(config_loader=loader, callbacks=None), task_function=lambda c: None, config=cfg)
        assert type(sweeper).__name__ == "TaskSweeper"
        return sweeper.job_overrides(list(arguments))
