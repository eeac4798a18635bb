"""Hydra finds plugins in the `hydra_plugins` namespace only: the sweeper of transferability.stages.sweeper,
registered here (experiments select it as hydra_plugins.transferability_sweeper.TaskSweeper)."""
from transferability.stages.sweeper import TaskSweeper as _TaskSweeper


class TaskSweeper(_TaskSweeper):
    """`source_index=all` -> every task index of the composed dataset (transferability/stages/sweeper.py)."""
