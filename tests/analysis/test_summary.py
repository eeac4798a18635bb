"""Pure summary helpers: the line naming a matrix made with mixed thread counts."""
import numpy as np
import pandas as pd

from transferability.analysis.summary import thread_counts_line


def _runs(threads, train_threads):
    # two rows (targets) per run, as load_runs gives them
    return pd.DataFrame({"run_dir": np.repeat([f"r{i}" for i in range(len(threads))], 2),
                         "threads": np.repeat(threads, 2), "train_threads": np.repeat(train_threads, 2)})


def test_uniform_or_unrecorded_counts_say_nothing():
    assert thread_counts_line(_runs([4, 4, 4], [4, 4, 4])) is None
    assert thread_counts_line(_runs([np.nan, np.nan], [np.nan, np.nan])) is None
    assert thread_counts_line(pd.DataFrame({"run_dir": ["a"], "threads": [1]})) is None


def test_mixed_counts_are_counted_per_run_not_per_row():
    line = thread_counts_line(_runs([1, 8, 8], [8, 8, 16]))
    assert "source models trained with 8 threads (2 runs), 16 threads (1 runs)" in line
    assert "heads and estimators run with 1 threads (1 runs), 8 threads (2 runs)" in line
    assert "trainer.threads=" in line
