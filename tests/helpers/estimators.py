"""The estimators' settings from their one home, conf/config.yaml (its `estimators:` block and `seed`), for
tests that call the estimators directly, as the transfer stage does with the run's config, or that build a
config without Hydra."""
from __future__ import annotations

import yaml

from transferability.estimators.registry import SCORES

from .paths import CONF

CONFIG = CONF / "config.yaml"


def conf_estimators() -> dict:
    """The `estimators:` block as a plain mapping (a config node)."""
    return yaml.safe_load(CONFIG.read_text())["estimators"]


def settings(score: str | None = None, **changes) -> dict:
    """Every setting (score None) or the ones `score` takes, the YAML's values with `changes` applied."""
    values = {**conf_estimators(), "seed": yaml.safe_load(CONFIG.read_text())["seed"], **changes}
    return values if score is None else {k: v for k, v in values.items() if k in SCORES[score].settings}
