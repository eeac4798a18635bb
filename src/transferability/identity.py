"""A row's identity: every setting that changes its numbers.

The config, flattened to Hydra's dotted keys (`head.C`, `dataset.noise`, `estimators.gbc_pca_dim`), less the
settings in NOT_RESULTS, is the row: two runs that agree on it make the same numbers, two that differ anywhere in
it make different rows. NOT_RESULTS is the one list of settings that do not change a row, each with why; a new
setting is part of every row's identity unless it is added there (so `head.C=auto` or a `transfer=finetune`
group gets rows of its own with no code here). `NARROWED` says which part of a setting counts where only part
of it does (the callbacks: early stopping changes the model, a progress bar does not).

Where the identity is used: the folder a row is written to (`segment`, between `<head>` and `source=`), the
rerun check of a finished row (`differences`), the wandb run id (tracking.run_id) and the analysis, which reads
one setting's rows only.

Folders stay readable. The settings already named by the path (IN_PATH: the dataset folder with its quantiles and
a label table's file, the backbone folder with small_cnn's width and D and an embeddings file, the head, the
source, the seed, the train fraction) are not
repeated; every other setting is compared with its default, read from conf/ (the YAML is the one home of every
default): for the groups named in the path (dataset, backbone, head) the chosen option's YAML, for the other
groups the defaults list's choice, for the rest conf/config.yaml. The defaults add nothing to the path; a run
that differs adds one segment naming the differences (`head.C=0.01`, `trainer=debug`, `trainer=gpu,head.C=10`),
or, when that would be long, `settings-<hash>`; `settings.json` in that folder lists them in full.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from typing import Any

from .config import CONF
from .io import component

# Settings that do not change a row's numbers, and why. Every other setting is part of the row. A key names
# itself and everything below it (`paths` covers `paths.outputs`).
NOT_RESULTS = {
    "stage": "which stage runs; rows are the transfer stage's",
    "force": "whether a finished row is made again",
    "run_dir": "where the row is written, derived from this identity",
    "experiment": "the experiment's name; the values it sets are what count",
    "reference": "published values printed beside ours",
    "widths": "which rows stage=widths compares",
    "split": "the rows stage=estimate counts on",
    "bias_correction": "stage=estimate's and the analysis' choice; a row holds both CE estimates",
    "estimate": "what stage=estimate keeps of its matrix",
    "paths": "where files go",
    "logger": "how the files are viewed",
    "source_index": "picks the source, whose name is in the path",
    "target": "which targets a row holds is its completion record's business (done.json)",
    "dataset.root": "where the files are; what they hold is in the model cache key",
    "dataset.default_source": "the source when none is given; the source used is in the path",
    "dataset.id_column": "which column of a label table names the images; the table's file is in the path",
    "trainer.name": "an option's name; its values are what count",
    "trainer.num_workers": "how many processes read the images",
    "trainer.threads": "CPU threads; the count changes the last digits only and is recorded (source.json)",
    "trainer.sources_per_job": "how many rows one job makes; each row is its single run's (stages/stacked.py)",
    "trainer.stack_engine": ("how stacked networks share a batch: `loop` reproduces the single runs bit for bit, "
                             "`grouped` to rounding, as a GPU run does; recorded (source.json)"),
    "transfer.keep_models": "whether the fine-tuned weights are kept besides the numbers",
    "callbacks.name": "an option's name; its values are what count",
    "callbacks.refresh_rate": "how often the training progress bar redraws",
    "callbacks.progress_interval": "how often the other progress bars redraw",
}

# Settings of which only a part changes the numbers: the callbacks that change the model (early stopping), and
# early stopping's settings only while it is on; the transfer group's fine-tuning settings only with finetune.
MODEL_CALLBACKS = ("early_stopping",)
STOPPING = ("callbacks.monitor", "callbacks.patience", "callbacks.min_delta")

# Named by the path already: <dataset> (with its quantile cuts), <backbone> (with small_cnn's width and D),
# <head>, source=, seed=, fraction=.
IN_PATH = ("dataset.name", "dataset.quantiles", "dataset.labels", "backbone.name", "backbone.width",
           "backbone.embedding_dim", "backbone.path", "head.name", "source", "seed", "train_fraction")
# The groups whose chosen option the path names; every other group of the defaults list (trainer, callbacks, a
# group added later) is named in the settings folder when its chosen option is not the default and changes numbers.
PATH_GROUPS = ("dataset", "backbone", "head")
SEGMENT_CHARS = 100         # a longer list of differences becomes settings-<hash>
SETTINGS_FILE = "settings.json"
SETTINGS_PREFIX = "settings-"


def flat(cfg) -> dict[str, Any]:
    """A RunConfig, its `to_dict` (config.json) or a resolved Hydra config as {dotted key: value}, with the
    dataset's own options (`params`) under `dataset.` as Hydra spells them, and no `hydra` or `provenance`."""
    d = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
    d.pop("hydra", None)
    d.pop("provenance", None)
    if isinstance(d.get("dataset"), dict):
        ds = dict(d["dataset"])
        ds.update(ds.pop("params", None) or {})
        d["dataset"] = ds
    return _flatten(d)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


def covered(key: str, keys) -> bool:
    """Whether `key` is one of `keys` or below one of them (`keys` name themselves and everything below)."""
    return any(key == k or key.startswith(k + ".") for k in keys)


def _narrow(values: dict) -> dict:
    out = dict(values)
    if out.get("transfer.name", "linear") == "linear":
        # The linear ground truth has no settings of its own (the fine-tuning ones are absent), and a row written
        # before the transfer group existed is a linear row: neither names the group.
        for k in [k for k in out if k.startswith("transfer.")]:
            out.pop(k)
    if "callbacks.use" in out:
        used = [c for c in out["callbacks.use"] or [] if c in MODEL_CALLBACKS]
        out["callbacks.use"] = used
        if "early_stopping" not in used:
            for k in STOPPING:
                out.pop(k, None)
    return out


def settings(cfg) -> dict[str, Any]:
    """Every setting that changes the numbers: the row's identity (its source the config's, unresolved)."""
    return _narrow({k: v for k, v in flat(cfg).items() if not covered(k, NOT_RESULTS)})


def setting(cfg) -> dict[str, Any]:
    """The identity less what the path names: what a row's settings segment stands for, shared by every row of
    one matrix (all its sources, seeds and fractions)."""
    return {k: v for k, v in settings(cfg).items() if not covered(k, IN_PATH)}


def differences(old, new, ignore=()) -> list[str]:
    """`key: old -> new` for every setting (less `source` and `ignore`) on which two configs differ."""
    a, b = settings(old), settings(new)
    skip = ("source", *ignore)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if not covered(k, skip) and not same(a.get(k, _MISSING), b.get(k, _MISSING))]


_MISSING = object()


def same(a, b) -> bool:
    """Equal as settings: 1 and 1.0 are, True and 1 are not, lists element by element."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def show(value) -> str:
    """A value as an override spells it: null, true, 0.01, 10 (for 10.0), [0.1,0.5]."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{show(v)}" for k, v in value.items()) + "}"
    return str(value)


# ---------------------------------------------------------------------------------------------- the defaults

@functools.lru_cache(maxsize=None)
def _option(group: str, option: str) -> dict | None:
    """conf/<group>/<option>.yaml as {`group.key`: value} (resolved), or None when there is no such file."""
    from omegaconf import OmegaConf

    path = CONF / group / f"{option}.yaml"
    if not path.is_file():
        return None
    node = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    return flat({group: node})


@functools.lru_cache(maxsize=1)
def _config_yaml() -> tuple[dict, dict]:
    """conf/config.yaml: ({group: the defaults list's option}, {dotted key: value} of its own settings)."""
    from omegaconf import OmegaConf

    node = OmegaConf.load(CONF / "config.yaml")
    choices = {}
    for entry in node.get("defaults", []):
        if isinstance(entry, str) or not hasattr(entry, "items"):
            continue
        for k, v in entry.items():
            if not str(k).startswith("override ") and v is not None:
                choices[str(k)] = str(v)
    own = {k: v for k, v in OmegaConf.to_container(node, resolve=False).items()
           if k not in ("defaults", "hydra", "paths")}
    return choices, flat(OmegaConf.to_container(OmegaConf.create(own), resolve=True))


def defaults(cfg) -> dict[str, Any]:
    """What each setting of `cfg` is when nobody changes it: conf/config.yaml's own settings, the YAML of the
    chosen dataset, backbone and head, and of every other group's chosen option (the defaults list's when the
    chosen one has no YAML). A path group's option with no YAML (one built in code, as tests do) is its own
    default."""
    values = flat(cfg)
    choices, out = _config_yaml()
    out = dict(out)
    for group in dict.fromkeys((*PATH_GROUPS, *choices)):
        option = values.get(f"{group}.name")
        yaml = _option(group, str(option)) if option is not None else None
        if yaml is None and group not in PATH_GROUPS and group in choices:
            yaml = _option(group, choices[group])
        if yaml is None:
            yaml = {k: v for k, v in values.items() if k.startswith(group + ".")}
        out.update(yaml)
    return _narrow(out)


def entries(cfg) -> list[str]:
    """The settings of `cfg` that differ from their defaults, as overrides: a group option other than the defaults
    list's that changes the numbers first (`trainer=debug`; the path names dataset, backbone and head), then each
    setting that differs from its option's YAML (`trainer.limit_train_batches=null`, `head.C=0.01`), in key order.
    Empty for the defaults."""
    values, ref = setting(cfg), defaults(cfg)
    choices, _ = _config_yaml()
    named = flat(cfg)
    out = []
    for group, default in choices.items():
        chosen = named.get(f"{group}.name")
        if group in PATH_GROUPS or chosen is None or str(chosen) == default:
            continue
        mine, theirs = _option(group, str(chosen)), _option(group, default)
        if mine is not None and theirs is not None and _group_setting(mine, group) != _group_setting(theirs, group):
            out.append(f"{group}={chosen}")   # (an option without a YAML is named by its values alone)
    for key in sorted(values):
        if not same(values[key], ref.get(key, _MISSING)):
            out.append(f"{key}={show(values[key])}")
    return out


def _group_setting(option: dict, group: str) -> dict:
    return {k: show(v) for k, v in _narrow(option).items() if not covered(k, NOT_RESULTS) and k.startswith(group)}


def segment(cfg) -> str:
    """The folder naming a run's non-default settings ('' for the defaults): the entries joined by commas, one
    safe path component; `settings-<hash>` when longer than SEGMENT_CHARS (settings.json has the list)."""
    return folder_name(entries(cfg))


def folder_name(found: list[str]) -> str:
    """The folder for a list of differences: '' for none, the list joined by commas as one safe component, or
    `settings-<hash>` when that passes SEGMENT_CHARS."""
    if not found:
        return ""
    text = component(",".join(found))
    if len(text) <= SEGMENT_CHARS:
        return text
    return SETTINGS_PREFIX + hashlib.sha256("\n".join(found).encode()).hexdigest()[:12]


def is_segment(name: str) -> bool:
    """Whether a folder under `<head>` is a settings segment (rather than a row, an analysis or a study)."""
    return name.startswith(SETTINGS_PREFIX) or ("=" in name and not name.startswith(("source=", "target=")))


def record(cfg) -> dict:
    """What settings.json holds: the differences from the defaults, as overrides, and the values they set."""
    values = setting(cfg)
    found = entries(cfg)
    keys = [e.split("=", 1)[0] for e in found]   # a chosen option (`trainer=debug`) stands for its group's values
    return {"settings": found, "values": {k: v for k, v in values.items() if covered(k, keys)},
            "defaults": "conf/ (each group option's YAML, conf/config.yaml's defaults list)"}


def fingerprint(values: dict) -> str:
    """A short stable hash of a settings dict (values compared as `show` spells them: 1 and 1.0 agree)."""
    blob = json.dumps({k: show(v) for k, v in sorted(values.items())}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
