"""Binary targets of controlled prevalence: a continuous measure cut at several quantiles.

`ink_heavy@q25` is 1 where the measure exceeds its 25% quantile over the whole table, so its prevalence is
about 75%; `@q90` about 10%. The cuts of one measure are nested (`@q90` implies `@q75`; q and 1 - q have
complementary prevalences), so they are not independent targets; an analysis pooling them should say so.
Measures with ties (counts, ratios of small integers) give a prevalence that differs from 1 - q by the mass
of the tie at the cut, and two quantiles may fall on the same value (then the tasks are identical).
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError


def check_quantiles(quantiles, dataset: str) -> tuple[float, ...] | None:
    """None (the median cut, the default) or a tuple of distinct numbers strictly between 0 and 1."""
    if quantiles is None:
        return None
    q = list(quantiles)
    if (not q or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1 for v in q)
            or len(set(q)) != len(q)):
        raise UserError(f"{dataset} quantiles={q!r}: expected a list of distinct numbers strictly between 0 and 1, "
                        "e.g. [0.1,0.25,0.5,0.75,0.9]")
    return tuple(float(v) for v in q)


def task_name(measure: str, q: float) -> str:
    """`ink_heavy@q25`; `@q12.5` for a quantile that is not a whole percent."""
    return f"{measure}@q{100 * q:.10g}"


def quantile_tasks(measures: dict[str, np.ndarray], quantiles: tuple[float, ...]) -> dict[str, np.ndarray]:
    """Every measure cut at every quantile: {task name: int8 array}, measures in order, quantiles in order."""
    out = {}
    for name, value in measures.items():
        for q, cut in zip(quantiles, np.quantile(value, quantiles)):
            out[task_name(name, q)] = (value > cut).astype(np.int8)
    return out
