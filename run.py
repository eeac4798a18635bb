"""Entry point: `python run.py [stage=estimate|transfer|analyze|widths] dataset=... source=... ...`.

Only composes the config and dispatches to a stage (src/transferability/stages/dispatch.py)."""
import sys

import hydra

from transferability.stages.dispatch import plain_experiment
from transferability.stages.run_dirs import register_resolvers

register_resolvers()
sys.argv = plain_experiment(sys.argv)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg) -> None:
    from transferability.stages.dispatch import run_stage

    run_stage(cfg)


if __name__ == "__main__":
    main()
