"""Pure math on arrays: the label-only engine (`label_only`: CE, hardness, streaming; `sparse_pairs`: sparse
label tables), the model-based estimators, one small module per family (`leep`, `logme`, `hscore`,
`transrate`, `gbc`, `nleep`) over what they share (`common`), the registry of every score the project ranks
transfer with (`registry`), and, above them, the batched dispatcher and one-target functions (`model_based`).
A new estimator or baseline is a family module and an entry in `registry`.

May import numpy, scipy, pandas and scikit-learn only (N-LEEP's Gaussian mixture; threadpoolctl, which
scikit-learn brings, sets BLAS threads); a test checks that `import transferability` pulls in no torch."""
from .label_only import CECounter, ce_matrix, ce_matrix_stream, conditional_entropy, hardness

__all__ = ["CECounter", "ce_matrix", "ce_matrix_stream", "conditional_entropy", "hardness"]
