"""Hydra callback: after a multirun sweep has filled the matrix, run the analysis stage once.

Enabled by the matrix experiments (`hydra.callbacks.analyze`), so one command
`python run.py -m experiment=matrix_digits` trains every source and then writes the figures."""
from __future__ import annotations

import copy
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict


class AnalyzeOnEnd(Callback):
    """`stage`: the stage run on the sweep's config at the end (analyze; widths for the width study)."""

    def __init__(self, stage: str = "analyze") -> None:
        self.stage = stage

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from ..config import from_dict
        from ..errors import UserError
        from .dispatch import STAGES
        from .run_dirs import register_resolvers, run_dir_for

        register_resolvers()
        cfg = copy.deepcopy(config)
        with open_dict(cfg):
            cfg.stage = self.stage
            cfg.source = None
            cfg.source_index = None
            cfg.pop("hydra", None)
        plain = OmegaConf.to_container(cfg, resolve=True)
        if HydraConfig.initialized():
            plain["experiment"] = HydraConfig.get().runtime.choices.get("experiment")
        run = from_dict(plain, run_dir=run_dir_for(plain))
        print(f"\nsweep finished; analysing into {run.run_dir}")
        try:
            STAGES[self.stage](run)
        except UserError as e:
            print(f"error: {e}")
        if run.logger.name == "wandb" and run.logger.mode == "offline":
            from ..tracking import offline_runs_hint

            print(offline_runs_hint(run))
