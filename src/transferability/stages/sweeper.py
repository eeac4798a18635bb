"""A Hydra sweeper that expands `source_index=all` into every task index of the composed dataset.

The matrix experiments sweep one job per source task; typing `source_index: range(0, 21)` needs the task count,
which for a user's folder nobody knows in advance. With this sweeper (conf/config.yaml selects it:
`hydra.sweeper._target_: hydra_plugins.transferability_sweeper.TaskSweeper`), `source_index: all` becomes
0, 1, ..., T - 1 for each job's composed dataset (its label table only is loaded, once per distinct dataset).
Everything else is Hydra's BasicSweeper: the same cartesian product in the same order (`seed: 0,1,2` before
`source_index: all` runs the whole matrix for seed 0 first), the same batches, and the expanded jobs reach the
launcher as plain `source_index=<k>` overrides, so every launcher (basic, joblib, submitit/Slurm) runs them.

Hydra instantiates sweepers from the `hydra_plugins` namespace only: src/hydra_plugins/transferability_sweeper
registers this class there. `values` is the one place that says what one job gets: one task, or with
`trainer.sources_per_job=K` a chunk of K (`source_index=[0,1,2]`) that stages/stacked.py trains in one pass.
"""
from __future__ import annotations

import sys
from typing import List, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import OmegaConf

KEY = "source_index"
ALL = "all"


class TaskSweeper(BasicSweeper):
    def __init__(self, max_batch_size: Optional[int] = None, params: Optional[dict] = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self._counts: dict[tuple, int] = {}

    def job_overrides(self, arguments: List[str]) -> List[List[str]]:
        """Every job's overrides, in launch order, for the command-line `arguments` (after setup)."""
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(self._parse_config() + list(arguments))
        return [job for batch in self.split_arguments(overrides, None) for job in batch]

    # BasicSweeper.sweep calls self.split_arguments(overrides, max_batch_size) and launches its batches; as an
    # instance method here it also sees the config, and expands `source_index=all` before the batches are cut.
    def split_arguments(self, overrides: List[Override], max_batch_size: Optional[int]) -> List[List[List[str]]]:
        jobs = BasicSweeper.split_arguments(overrides, None)[0]
        jobs = [expanded for job in jobs for expanded in self._expand(job)]
        if max_batch_size is None:
            return [jobs]
        return [jobs[i:i + max_batch_size] for i in range(0, len(jobs), max_batch_size)]

    def _expand(self, job: List[str]) -> List[List[str]]:
        at = next((i for i, o in enumerate(job) if o.split("=", 1)[0].lstrip("+~") == KEY), None)
        if at is None or job[at].split("=", 1)[1].strip() != ALL:
            return [job]
        rest = job[:at] + job[at + 1:]
        n_tasks, per_job = self.task_count(rest)
        return [job[:at] + [f"{KEY}={v}"] + job[at + 1:] for v in self.values(n_tasks, per_job)]

    @staticmethod
    def values(n_tasks: int, per_job: int = 1) -> List[str]:
        """The `source_index` value of each job: `k` at one source per job, else chunks `[k,...,k+K-1]`."""
        from .run_dirs import job_values

        return job_values(range(n_tasks), per_job)

    def task_count(self, overrides: List[str]) -> tuple[int, int]:
        """(the number of tasks of the dataset a job with these overrides composes, its trainer.sources_per_job);
        one line and exit 2 when its labels cannot be read or the chunk size is not a positive integer: nothing
        is launched."""
        key = tuple(overrides)
        if key not in self._counts:
            from ..config import DatasetConfig, build, split_params
            from ..data.registry import task_names
            from ..errors import UserError

            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            try:
                node = OmegaConf.to_container(cfg.dataset, resolve=True)
                per_job = cfg.trainer.get("sources_per_job", 1)
                if not isinstance(per_job, int) or isinstance(per_job, bool) or per_job < 1:
                    raise UserError(f"trainer.sources_per_job={per_job}: expected a positive integer")
                self._counts[key] = (len(task_names(build(DatasetConfig, split_params(node), "dataset"))), per_job)
            except UserError as e:
                print(f"error: {KEY}={ALL}: {e}", file=sys.stderr)
                sys.exit(2)
        return self._counts[key]
