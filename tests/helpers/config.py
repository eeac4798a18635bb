"""The real Hydra config, composed with Hydra's compose API (no subprocess), and validated as run.py does."""
from __future__ import annotations

from transferability.stages.compose import compose, run_config

__all__ = ["compose", "plain", "validated"]


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
