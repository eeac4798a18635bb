"""The one table of every score the project ranks transfer with: the estimators and the baselines they must beat.

Each entry names a column of the transfer rows (results.csv) or of the analysis' tables, and says how to read it:
`sign` (+1: higher = predicted more transferable; -1: lower), the inputs it needs (`labels`: the targets' and the
source's; the source `softmax`; the frozen `features`), a display name, its kind (`estimator` or `baseline`),
what computes it, and its place in the width study's tables and figures. Every list of scores derives from this
table: the transfer stage's score columns (`COMPUTED`, in table order after the stage's fixed columns), the
analysis' optional columns and its ranking signs (`SIGNS`: estimators, then baselines, in table order), the width
study's order (`FIGURE_ORDER`), and the bench's display names (`DISPLAY`).

What computes a score:
- `compute` set: `model_based.model_based_scores`, per transfer row, as compute(targets, **settings) -> (T,)
  array, `targets` a `common.Targets`. A score that needs `features` sees one group of targets that share
  their labelled rows at a time (their `Centred` features computed once); the others see the whole row, with
  -1 for a missing label. Its keyword-only parameters are its settings, named as the `estimators:` keys of
  conf/config.yaml (and `seed`), which is where their values live; a parameter with a default is a numerical
  constant of the method (LogME's tolerance), not a choice.
- `compute` None: a column a stage writes itself. `nce` and `ce_mm` come from the transfer stage's label-only
  CE counts (`label_only.CECounter`, Eq. 7); `target_entropy` and `majority_error` are added by the analysis
  from the label table (`analysis.design.target_baselines`). Any column the analysis' rows already carry
  becomes a ranked score by an entry of its name.

A new score is one entry here (and, for a new setting, its key in conf/config.yaml's `estimators:` block).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

from .gbc import gbc_targets
from .hscore import hscore_reg_targets, hscore_targets
from .leep import leep_targets
from .logme import logme_targets
from .nleep import nleep_targets
from .transrate import transrate_targets

INPUTS = ("labels", "softmax", "features")
ESTIMATOR, BASELINE = "estimator", "baseline"


@dataclass(frozen=True)
class Score:
    name: str                          # its column in results.csv and the analysis tables
    sign: int                          # +1: higher = more transferable; -1: lower
    needs: tuple[str, ...]             # from INPUTS
    display: str                       # its name in tables and figures for readers
    kind: str                          # ESTIMATOR or BASELINE
    figure_order: int                  # its place in the width study's tables and figures (lower first)
    compute: Callable | None = None    # batched over a row's targets (see the module docstring); None: a stage's column

    def __post_init__(self):
        if self.sign not in (1, -1):
            raise ValueError(f"score {self.name}: sign {self.sign!r}, expected +1 or -1")
        if self.kind not in (ESTIMATOR, BASELINE):
            raise ValueError(f"score {self.name}: kind {self.kind!r}, expected {ESTIMATOR} or {BASELINE}")
        if "labels" not in self.needs or not set(self.needs) <= set(INPUTS):
            raise ValueError(f"score {self.name}: needs {self.needs!r}, expected labels and any of {INPUTS}")

    def _keyword_only(self) -> list[inspect.Parameter]:
        if self.compute is None:
            return []
        params = inspect.signature(self.compute).parameters.values()
        return [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]

    @property
    def settings(self) -> tuple[str, ...]:
        """The settings `compute` takes (its keyword-only parameters)."""
        return tuple(p.name for p in self._keyword_only())

    @property
    def required_settings(self) -> tuple[str, ...]:
        """The settings a caller must pass: the ones without a default (choices whose values live in the YAML)."""
        return tuple(p.name for p in self._keyword_only() if p.default is inspect.Parameter.empty)


LABELS, SOFTMAX, FEATURES = ("labels",), ("labels", "softmax"), ("labels", "features")

TABLE = (
    # The paper's label-only estimates (Eq. 7), from the transfer stage's CE counts.
    Score("nce", +1, LABELS, "NCE = -H(Y|Z)", ESTIMATOR, 0),
    Score("ce_mm", -1, LABELS, "CE, Miller-Madow", ESTIMATOR, 8),
    # Model-based estimators, all higher-is-better as published.
    Score("leep", +1, SOFTMAX, "LEEP", ESTIMATOR, 1, leep_targets),
    Score("logme", +1, FEATURES, "LogME", ESTIMATOR, 3, logme_targets),
    Score("hscore", +1, FEATURES, "H-score", ESTIMATOR, 4, hscore_targets),
    Score("hscore_reg", +1, FEATURES, "H-score, Ledoit-Wolf shrinkage", ESTIMATOR, 5, hscore_reg_targets),
    Score("transrate", +1, FEATURES, "TransRate", ESTIMATOR, 6, transrate_targets),
    Score("gbc", +1, FEATURES, "GBC", ESTIMATOR, 7, gbc_targets),
    Score("nleep", +1, FEATURES, "N-LEEP", ESTIMATOR, 2, nleep_targets),
    # Baselines every estimator must beat, added by the analysis from the label table: the target's entropy
    # H(Y) (CE = H(Y|Z) <= H(Y)) and its majority-class error; both say "rarer targets are easier", nothing
    # about the source.
    Score("target_entropy", -1, LABELS, "target entropy H(Y)", BASELINE, 9),
    Score("majority_error", -1, LABELS, "majority-class error", BASELINE, 10),
)

SCORES: dict[str, Score] = {s.name: s for s in TABLE}
if len(SCORES) != len(TABLE):
    raise ValueError("score names in the registry must be unique")
COMPUTED = tuple(s.name for s in TABLE if s.compute is not None)
ESTIMATORS = tuple(s.name for s in TABLE if s.kind == ESTIMATOR)
BASELINES = tuple(s.name for s in TABLE if s.kind == BASELINE)
SIGNS = {name: float(SCORES[name].sign) for name in ESTIMATORS + BASELINES}
FIGURE_ORDER = tuple(sorted(SCORES, key=lambda name: SCORES[name].figure_order))
DISPLAY = {s.name: s.display for s in TABLE}
