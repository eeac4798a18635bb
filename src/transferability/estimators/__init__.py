"""Pure numpy math, nothing else: the label-only engine (`label_only`: CE, hardness, streaming, sparse counts)
and the model-based estimators (`model_based`: LEEP, LogME, H-scores; `transrate_gbc_nleep`: TransRate, GBC,
N-LEEP). A new estimator goes here.

May import numpy, scipy and pandas only (a test checks that `import transferability` pulls in no torch)."""
from .label_only import CECounter, ce_matrix, ce_matrix_stream, conditional_entropy, hardness

__all__ = ["CECounter", "ce_matrix", "ce_matrix_stream", "conditional_entropy", "hardness"]
