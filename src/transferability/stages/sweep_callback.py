"""Hydra callback: after a multirun sweep has filled the matrix, run the analysis stage once per setting.

Enabled by the matrix experiments (`hydra.callbacks.analyze`), so one command
`python run.py -m experiment=matrix_digits` trains every source and then writes the figures. A sweep over a setting
that changes the numbers (`head.C=0.01,0.1,1,10`, `trainer.lr=...`) made one matrix per setting, each in its own
settings folder (identity.py); each is analysed on its own, never mixed. The jobs' configs are composed again from
the sweep's overrides (less the ones that pick a row of a matrix: source, source_index, seed, train_fraction), and
every distinct analysis folder among them is analysed. Each analysis logs into its own folder's run.log."""
from __future__ import annotations

import copy
import logging
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

# Overrides that pick a row within one setting's matrix: every value of them is analysed together.
ROW_KEYS = ("source", "source_index", "seed", "train_fraction")


class AnalyzeOnEnd(Callback):
    """`stage`: the stage run on the sweep's config at the end (analyze; widths for the width study)."""

    def __init__(self, stage: str = "analyze") -> None:
        self.stage = stage

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from ..config import from_dict
        from ..errors import UserError
        from ..logs import set_row
        from .dispatch import STAGES
        from .run_dirs import register_resolvers, rows_root, run_dir_for

        register_resolvers()
        done = set()
        for job in settings_configs(config):
            cfg = copy.deepcopy(job)
            with open_dict(cfg):
                cfg.stage = self.stage
                cfg.source = None
                cfg.source_index = None
                choices = cfg.hydra.runtime.choices if "hydra" in cfg else {}
                cfg.pop("hydra", None)
            plain = OmegaConf.to_container(cfg, resolve=True)
            plain["experiment"] = choices.get("experiment") if choices else None
            run = from_dict(plain, run_dir=run_dir_for(plain))
            if run.run_dir in done:
                continue
            done.add(run.run_dir)
            with _log_into(config, run.run_dir):
                set_row(run.run_dir, shown=False)
                log.info(f"sweep finished; analysing into {run.run_dir}")
                try:
                    STAGES[self.stage](run)
                except UserError as e:
                    log.error(f"error: {e}")
                if run.logger.name == "wandb" and run.logger.mode == "offline":
                    from ..tracking import offline_runs_hint

                    log.info(offline_runs_hint(rows_root(run)))


def settings_configs(config: DictConfig) -> list[DictConfig]:
    """One composed job config per combination of the sweep's overrides that are not ROW_KEYS (the base config
    alone when nothing else is swept, or when the sweep cannot be composed again here)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not GlobalHydra.instance().is_initialized() or "hydra" not in config:
        return [config]
    loader = GlobalHydra.instance().config_loader()
    params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    given = list(config.hydra.overrides.task)
    parser = OverridesParser.create(config_loader=loader)
    overrides = [o for o in parser.parse_overrides(params + given) if o.get_key_element() not in ROW_KEYS]
    if not any(o.is_sweep_override() for o in overrides):
        return [config]
    jobs = [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
    return [loader.load_sweep_config(config, list(job)) for job in jobs]


class _log_into:
    """The analysis' lines to the console and into `<run_dir>/run.log`, as a job's would go (the sweep's
    job_logging config, its file moved): a sweep's last job, or the launcher's own logging, keeps none of them."""

    def __init__(self, config: DictConfig, run_dir: str):
        self.config, self.run_dir = config, run_dir

    def __enter__(self):
        import logging.config
        from pathlib import Path

        from .. import io

        node = self.config.hydra.get("job_logging") if "hydra" in self.config else None
        if not node:
            return self
        spec = OmegaConf.to_container(node, resolve=False)
        io.makedirs(self.run_dir)
        for handler in (spec.get("handlers") or {}).values():
            if "filename" in handler:
                handler["filename"] = str(Path(self.run_dir) / Path(str(handler["filename"])).name)
        logging.config.dictConfig(OmegaConf.to_container(OmegaConf.create(spec), resolve=True))
        return self

    def __exit__(self, *exc) -> None:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
            root.removeHandler(handler)
            handler.close()
