"""The one table of every score the project ranks transfer with: the estimators and the baselines they must beat.

Each entry names a column of the transfer rows (results.csv) or of the analysis' tables, and says how to read it:
`sign` (+1: higher = predicted more transferable; -1: lower), the inputs it needs (`labels`: the targets' and the
source's; the source `softmax`; the frozen `features`), a display name, its kind (`estimator` or `baseline`),
what computes it, its place in the width study's tables and figures, and what it is a property `of`:
- `pair`: the (source, target) pair; it can rank the targets of a source and choose a source for a target;
- `target`: the target alone (constant over the sources of a target): it ranks targets, it cannot choose a source;
- `source`: the source alone (constant over the targets of a source): it chooses a source, it cannot rank targets;
- `none`: the random ranking, whose expected score the analysis computes exactly (no column);
- `multilabel`: a (source, multi-label target) pair, the multi-label target being every binary target of the row
  but the source at once: one value per transfer row, in source.json.
Every list of scores derives from this table: the transfer stage's score columns (`COMPUTED`, in table order after
the stage's fixed columns) and its row-level scores (`MULTILABEL`), the analysis' optional columns and its ranking
signs (`SIGNS`: estimators, then baselines, in table order), which of them rank targets (`RANKS_TARGETS`) and
which choose sources (`CHOOSES_SOURCES`), the width study's order (`FIGURE_ORDER`), and the bench's display names
(`DISPLAY`).

What computes a score:
- `compute` set, `of` pair: `model_based.model_based_scores`, per transfer row, as compute(targets, **settings)
  -> (T,) array, `targets` a `common.Targets`. A score that needs `features` sees one group of targets that share
  their labelled rows at a time (their `Centred` features computed once); the others see the whole row, with
  -1 for a missing label. Its keyword-only parameters are its settings, named as the `estimators:` keys of
  conf/config.yaml (and `seed`), which is where their values live; a parameter with a default is a numerical
  constant of the method (LogME's tolerance), not a choice.
- `compute` set, `of` multilabel: `model_based.multilabel_scores`, per transfer row, as compute(targets) -> float,
  `targets` the row's binary targets but the source, on the rows labelled for all of them.
- `compute` None: a column a stage writes itself. `nce` and `ce_mm` come from the transfer stage's label-only
  CE counts (`label_only.CECounter`, Eq. 7); `target_entropy`, `majority_error` and `source_hardness` are added
  by the analysis from the label table (`analysis.design`); `source_test_accuracy` and `source_n_classes` are
  source.json's. Any column the analysis' rows already carry becomes a ranked score by an entry of its name.

A new score is one entry here (and, for a new setting, its key in conf/config.yaml's `estimators:` block).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

from .gbc import gbc_targets
from .hscore import hscore_reg_targets, hscore_targets
from .knn import knn1_targets, knn5_targets
from .leep import leep_targets
from .logme import logme_targets
from .multilabel import hscore_multilabel, logme_multilabel
from .nleep import nleep_targets
from .transrate import transrate_targets

INPUTS = ("labels", "softmax", "features")
ESTIMATOR, BASELINE = "estimator", "baseline"
PAIR, TARGET, SOURCE, NONE, MULTILABEL_PAIR = "pair", "target", "source", "none", "multilabel"
OF = (PAIR, TARGET, SOURCE, NONE, MULTILABEL_PAIR)
RANDOM_RANKING = "random_ranking"   # the entry whose expected score the analysis computes (of `none`)


@dataclass(frozen=True)
class Score:
    name: str                          # its column in results.csv and the analysis tables
    sign: int                          # +1: higher = more transferable; -1: lower
    needs: tuple[str, ...]             # from INPUTS
    display: str                       # its name in tables and figures for readers
    kind: str                          # ESTIMATOR or BASELINE
    figure_order: int                  # its place in the width study's tables and figures (lower first)
    compute: Callable | None = None    # batched over a row's targets (see the module docstring); None: a stage's column
    of: str = PAIR                     # from OF: what the score is a property of

    def __post_init__(self):
        if self.sign not in (1, -1):
            raise ValueError(f"score {self.name}: sign {self.sign!r}, expected +1 or -1")
        if self.kind not in (ESTIMATOR, BASELINE):
            raise ValueError(f"score {self.name}: kind {self.kind!r}, expected {ESTIMATOR} or {BASELINE}")
        if "labels" not in self.needs or not set(self.needs) <= set(INPUTS):
            raise ValueError(f"score {self.name}: needs {self.needs!r}, expected labels and any of {INPUTS}")
        if self.of not in OF:
            raise ValueError(f"score {self.name}: of {self.of!r}, expected one of {OF}")

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
    # Baselines every estimator must beat. Of the target, added by the analysis from the label table: the
    # target's entropy H(Y) (CE = H(Y|Z) <= H(Y)) and its majority-class error; both say "rarer targets are
    # easier", nothing about the source.
    Score("target_entropy", -1, LABELS, "target entropy H(Y)", BASELINE, 9, of=TARGET),
    Score("majority_error", -1, LABELS, "majority-class error", BASELINE, 10, of=TARGET),
    # A probe of the pair: leave-one-out k-nearest-neighbour accuracy of the target labels on the frozen
    # embedding (the trivial probe that beats published estimators in Sorkhei et al. 2025).
    Score("knn1", +1, FEATURES, "1-NN leave-one-out accuracy", BASELINE, 11, knn1_targets),
    Score("knn5", +1, FEATURES, "5-NN leave-one-out accuracy", BASELINE, 12, knn5_targets),
    # Of the source: its labels' entropy H(Z) (Eq. 14 as a predictor; I(Y; Z) <= H(Z), so a low-entropy source
    # can tell little about any target: CE >= H(Y) - H(Z)), its network's own test accuracy ("better source
    # models transfer better") and its number of classes ("richer labels, richer features").
    Score("source_hardness", +1, LABELS, "source entropy H(Z)", BASELINE, 13, of=SOURCE),
    Score("source_test_accuracy", +1, LABELS, "source network's test accuracy", BASELINE, 14, of=SOURCE),
    Score("source_n_classes", +1, LABELS, "number of source classes", BASELINE, 15, of=SOURCE),
    # Chance: a uniformly random order, scored by its exact expectation (tau 0, top-1 relative accuracy the
    # mean over candidates of acc / best, recall@k = k / n, regret best - mean).
    Score(RANDOM_RANKING, +1, LABELS, "random ranking (expected)", BASELINE, 16, of=NONE),
    # The multi-label target (every binary target of the row but the source, at once).
    Score("logme_multilabel", +1, FEATURES, "LogME, multi-output", ESTIMATOR, 17, logme_multilabel,
          of=MULTILABEL_PAIR),
    Score("hscore_multilabel", +1, FEATURES, "H-score of the label vector", ESTIMATOR, 18, hscore_multilabel,
          of=MULTILABEL_PAIR),
)

SCORES: dict[str, Score] = {s.name: s for s in TABLE}
if len(SCORES) != len(TABLE):
    raise ValueError("score names in the registry must be unique")
_PER_PAIR = [s for s in TABLE if s.of != MULTILABEL_PAIR]
COMPUTED = tuple(s.name for s in _PER_PAIR if s.compute is not None)
MULTILABEL = tuple(s.name for s in TABLE if s.of == MULTILABEL_PAIR)
ESTIMATORS = tuple(s.name for s in _PER_PAIR if s.kind == ESTIMATOR)
BASELINES = tuple(s.name for s in _PER_PAIR if s.kind == BASELINE)
SIGNS = {name: float(SCORES[name].sign) for name in ESTIMATORS + BASELINES}
RANKS_TARGETS = tuple(name for name in SIGNS if SCORES[name].of in (PAIR, TARGET, NONE))
CHOOSES_SOURCES = tuple(name for name in SIGNS if SCORES[name].of in (PAIR, SOURCE, NONE))
FIGURE_ORDER = tuple(sorted(RANKS_TARGETS, key=lambda name: SCORES[name].figure_order))
DISPLAY = {s.name: s.display for s in TABLE}
