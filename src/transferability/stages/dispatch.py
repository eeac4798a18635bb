"""Stage dispatch: the Hydra config is validated once into a RunConfig, then one stage runs.

Bad input anywhere below becomes one line on stderr and exit code 2 (no traceback)."""
from __future__ import annotations

import sys


def _estimate(run):
    from .estimate import run_estimate

    return run_estimate(run)


def _transfer(run):
    import logging

    import lightning.pytorch  # noqa: F401  (sets its loggers' levels on import; ours must come after)

    from .transfer import run_transfer

    # Lightning's device banners and tips repeat on every job of a sweep; its warnings still show.
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)

    return run_transfer(run)


def _analyze(run):
    from .analyze import run_analyze

    return run_analyze(run)


STAGES = {"estimate": _estimate, "transfer": _transfer, "analyze": _analyze}


def run_stage(cfg):
    """Validate the composed config and run its stage; a UserError exits 2 with one line."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from ..config import from_dict
    from ..errors import UserError

    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
        run_dir = "."
        if HydraConfig.initialized():
            run_dir = HydraConfig.get().runtime.output_dir
            plain["experiment"] = HydraConfig.get().runtime.choices.get("experiment")
        run = from_dict(plain, run_dir=run_dir)
        return STAGES[run.stage](run)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
