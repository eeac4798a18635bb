"""transferability: label-only transferability (conditional entropy) and hardness estimates of
supervised classification tasks (Tran, Nguyen, Hassner, ICCV 2019), with the experiments that test them.

`from transferability import conditional_entropy, hardness, ce_matrix` imports numpy/pandas only.
"""
from .estimators.label_only import CECounter, ce_matrix, ce_matrix_stream, conditional_entropy, hardness

__all__ = ["CECounter", "ce_matrix", "ce_matrix_stream", "conditional_entropy", "hardness"]
