"""Where a run writes, predictable from its config, and the Hydra resolvers that put it there.

These live with the stages, not in config.py, because a sweep's `source_index` is turned into a task name
here, which needs the dataset's task list (data/), and config.py must stay below data/.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .. import identity
from ..config import DatasetConfig, build, group_config, split_params
from ..errors import UserError
from ..io import component


def run_dir_for(cfg: dict) -> str:
    """The run directory, predictable from the config (used as hydra.run.dir and sweep subdir).

    estimate: outputs/<dataset>/estimate[/<settings>]/split=<split>[/source=<s>][/target=<t>][/bias_correction=true]
    transfer: outputs/<dataset>/<backbone>/<head>[/<settings>]/source=<s>/seed=<k>[/fraction=<f>]
              (a job over several sources: .../sources=<s1>,<s2>,.../seed=<k>, its rows in their own folders)
    analyze:  outputs/<dataset>/<backbone>/<head>[/<settings>]/analysis[/target=<t>]
    widths:   outputs/<dataset>/<backbone without -D>/<head>[/<settings>]/widths

    <dataset> and <backbone> name what changes the task list and the network (dataset_folder, backbone_folder),
    so rows of `dataset.quantiles=[...]` or `backbone.embedding_dim=8` never share a folder with the defaults'.
    <settings> names every other setting that changes a row's numbers and differs from its default
    (identity.segment: `head.C=0.01`, `trainer=debug`, `settings-<hash>`); the defaults have none. An estimate
    folder's segment names the dataset and estimate settings only (what its files depend on).

    Every view (a target subset, a source, a corrected estimate) gets its own folder, so no view's
    outputs can replace another's; the full matrix keeps the plain folder. Every component is a safe name
    (io.component): a task name with `/` or `..` in it stays one folder inside its parent."""
    out = Path(cfg["paths"]["outputs"]) / component(dataset_folder(cfg["dataset"]))
    stage = cfg.get("stage", "transfer")
    source = cfg.get("source")
    if source is None and cfg.get("source_index") is not None:
        idx = cfg["source_index"]
        several = isinstance(idx, (list, tuple))
        names = _source_names_or_none(cfg["dataset"], list(idx) if several else [idx])
        source = [n or f"index{i}" for i, n in zip(idx if several else [idx], names)]
        source = source if several else source[0]
    folder = "source"
    if isinstance(source, (list, tuple)):
        # A transfer job over several sources (stages/stacked.py) keeps only Hydra's record here; each of its
        # rows has the folder of its single run.
        folder = "sources" if stage == "transfer" else folder
        source = short_list([str(s) for s in source]) if stage == "transfer" else \
            ",".join(component(s, also=",") for s in source)
    elif source is not None:
        source = component(source)
    if stage == "estimate":
        d = out / "estimate"
        seg = estimate_segment(cfg)
        if seg:
            d = d / seg
        d = d / component(f"split={cfg.get('split', 'train')}")
        if source not in (None, "all"):
            d = d / f"source={source}"
        if view(cfg):
            d = d / view(cfg)
        if cfg.get("bias_correction"):
            d = d / "bias_correction=true"
        return str(d)
    seg = segment(cfg)
    if stage == "widths":
        d = out / component(backbone_folder(cfg["backbone"], with_dim=False)) / component(cfg["head"]["name"])
        return str((d / seg if seg else d) / "widths")
    d = out / component(backbone_folder(cfg["backbone"])) / component(cfg["head"]["name"])
    if seg:
        d = d / seg
    if stage == "analyze":
        return str(d / "analysis" / view(cfg)) if view(cfg) else str(d / "analysis")
    source = source or component(cfg["dataset"].get("default_source") or "default")
    d = d / f"{folder}={source}" / component(f"seed={cfg.get('seed', 0)}")
    if float(cfg.get("train_fraction", 1.0)) != 1.0:
        d = d / component(f"fraction={cfg['train_fraction']}")
    return str(d)


def estimate_segment(cfg) -> str:
    """stage=estimate's settings folder: the dataset and estimate settings that differ from their defaults."""
    values, ref = identity.flat(cfg), identity.defaults(cfg)
    found = [e for e in identity.entries(cfg) if e.startswith("dataset.")]
    found += [f"{k}={identity.show(v)}" for k, v in sorted(values.items())
              if k.startswith("estimate.") and not identity.same(v, ref.get(k))]
    return identity.folder_name(found)


def rows_root(cfg) -> Path:
    """The folder holding one setting's rows (`source=*/seed=*`) for a config (a RunConfig or a plain dict):
    run_dir_for's rule without the row's own part."""
    plain = _plain(cfg)
    d = (Path(plain["paths"]["outputs"]) / component(dataset_folder(plain["dataset"]))
         / component(backbone_folder(plain["backbone"])) / component(plain["head"]["name"]))
    seg = segment(plain)
    return d / seg if seg else d


def settings_root(cfg) -> Path:
    """`<dataset>/<backbone>/<head>`: the folder whose settings segments hold each setting's rows."""
    plain = _plain(cfg)
    return (Path(plain["paths"]["outputs"]) / component(dataset_folder(plain["dataset"]))
            / component(backbone_folder(plain["backbone"])) / component(plain["head"]["name"]))


def _plain(cfg) -> dict:
    """A RunConfig as the plain dict the functions here read (a plain dict as it is)."""
    import dataclasses

    if dataclasses.is_dataclass(cfg):
        d = dataclasses.asdict(cfg)
        d["dataset"] = {**{k: v for k, v in d["dataset"].items() if k != "params"}, **d["dataset"]["params"]}
        return d
    return cfg


def segment(cfg) -> str:
    """identity.segment, for the transfer rows' settings (the stage and the run's own keys aside)."""
    return identity.segment(cfg)


def write_settings_record(cfg, folder: Path) -> None:
    """settings.json in the settings folder of `folder` (that folder, or the one above a row's source=/seed=/
    fraction= folders): the differences from the defaults, in full (a hashed name hides them). Nothing for the
    defaults, or for a folder outside the layout (a run_dir given by hand)."""
    from .. import io

    folder = Path(folder)
    while folder.name.startswith(("fraction=", "seed=", "source=")):
        folder = folder.parent
    if identity.is_segment(folder.name) and folder.name == segment(cfg):
        io.write_json(folder / identity.SETTINGS_FILE, identity.record(cfg))


def other_settings(cfg) -> list[tuple[str, int]]:
    """(settings folder, number of finished-looking rows) for the settings under `<dataset>/<backbone>/<head>`
    other than `cfg`'s: '' names the defaults' rows. What the analysis lists and never reads."""
    base, mine = settings_root(cfg), rows_root(cfg)
    if not base.is_dir():
        return []
    found = []
    candidates = [base] + sorted(p for p in base.iterdir() if p.is_dir() and identity.is_segment(p.name))
    for root in candidates:
        if root == mine:
            continue
        n = sum(len(list(root.glob(f"source=*/seed=*/{rows}done.json"))) for rows in ("", "fraction=*/"))
        if n:
            found.append(("" if root == base else root.name, n))
    return found


def dataset_folder(dataset: dict) -> str:
    """`digits`; `digits_q10-25-50-75-90` when continuous measures are cut at quantiles (another task list).

    A dataset that is the user's own files (dataset=folder, table) is named by them as well, since one name serves
    many data sets: `folder-<folder name>-<hash of its resolved path>`, `table-<file stem>-<hash>`."""
    from ..data.registry import USER_DATA

    params = dict(dataset.get("params") or {})
    name = str(dataset["name"])
    option = USER_DATA.get(name)
    where = params.get(option, dataset.get(option)) if option else None
    if where:
        path = Path(str(where)).resolve()
        name += f"-{component(path.stem or path.name or 'data')}-{_digest(str(path))}"
    quantiles = params.get("quantiles", dataset.get("quantiles"))
    if not quantiles:
        return name
    return f"{name}_q" + "-".join(f"{100 * float(q):.10g}" for q in quantiles)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def backbone_folder(backbone: dict, with_dim: bool = True) -> str:
    """`small_cnn`; `small_cnn-w32` / `small_cnn-D8` when its width / embedding size differ from the defaults
    (another network). The other backbones fix both. `with_dim=False`: the folder a width study sits in.
    An embeddings file (`backbone.path`, what `features` reads) is named as a user's dataset folder is:
    `features-<file stem>-<hash of its resolved path>`, so two embeddings of one table never share rows."""
    name = str(backbone["name"])
    if backbone.get("path"):
        path = Path(str(backbone["path"])).resolve()
        name += f"-{component(path.stem or path.name)}-{_digest(str(path))}"
    if not name.startswith("small_cnn"):
        return name
    default = group_config("backbone", "small_cnn")
    width, dim = backbone.get("width", default.width), backbone.get("embedding_dim")
    if width not in (None, default.width):
        name += f"-w{width}"
    if with_dim and dim not in (None, default.embedding_dim):
        name += f"-D{dim}"
    return name


def view(cfg) -> str:
    """`target=<names>` for a target subset ('' for all): the folder name and the first line of a summary.
    Each name is a safe component (a comma in a name encoded). A long list is shortened to its first names (up to
    three, within 80 characters) and a hash of the whole list, so names stay unique."""
    target = cfg.get("target", "all") if isinstance(cfg, dict) else getattr(cfg, "target", "all")
    if target in (None, "all"):
        return ""
    names = [str(t) for t in target] if isinstance(target, (list, tuple)) else [str(target)]
    return f"target={short_list(names)}"


def short_list(names: list[str]) -> str:
    """`a,b,c` as one safe folder name; a long list is shortened to its first names and a hash of the whole list."""
    parts = [component(n, also=",") for n in names]
    text = ",".join(parts)
    if len(text) > 80:
        digest = hashlib.sha256(",".join(names).encode()).hexdigest()[:8]
        shown = []
        while len(shown) < min(3, len(parts)) and len(",".join(shown + [parts[len(shown)]])) <= 80:
            shown.append(parts[len(shown)])
        text = ",".join(shown + [f"+{len(names) - len(shown)}-{digest}"])
    return text


def row_dir(run, source: str) -> str:
    """The folder of `run`'s row for source task `source`: where its single run (source=<source>) writes."""
    from ..config import to_dict

    return run_dir_for({**to_dict(run), "source": source, "source_index": None})


def source_chunks(indices, per_job: int) -> list[list[int]]:
    """A sweep's task indices cut into jobs of `per_job` sources each (the last may be shorter), in order."""
    indices = [int(i) for i in indices]
    return [indices[i:i + per_job] for i in range(0, len(indices), per_job)]


def job_values(indices, per_job: int) -> list[str]:
    """Each job's `source_index` override value for a sweep over the task numbers `indices`: `3` at one source
    per job, else a chunk `[0,1,...,K-1]` (a job over several sources, stages/stacked.py)."""
    if per_job == 1:
        return [str(int(i)) for i in indices]
    return ["[" + ",".join(map(str, c)) + "]" for c in source_chunks(indices, per_job)]


def register_resolvers() -> None:
    """`${tf_run_dir:}` in conf/config.yaml; safe to call more than once."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("tf_run_dir"):
        def _resolve(*, _root_):
            # The whole config but Hydra's own node: a row's folder names every setting that changes it.
            plain = {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
                     for k, v in ((k, _root_[k]) for k in _root_ if k != "hydra")}
            return _creatable(run_dir_for(plain))

        OmegaConf.register_new_resolver("tf_run_dir", _resolve)
        # A sweep job's directory relative to paths.outputs (the sweep dir), so it equals the single run's.
        OmegaConf.register_new_resolver(
            "tf_run_subdir", lambda *, _root_: os.path.relpath(_resolve(_root_=_root_), _root_.paths.outputs))
        OmegaConf.register_new_resolver("tf_sweep_dir", lambda *, _root_: _creatable(str(_root_.paths.outputs)))


def _creatable(folder: str) -> str:
    """`folder`, once it is known that Hydra can create it; otherwise one line on stderr and exit 2. Hydra makes
    the run folder before any of our code runs, and a folder under a file would end in its traceback."""
    import sys

    from ..io import unwritable

    why = unwritable(folder)
    if why is not None:
        print(f"error: cannot create the run folder {folder}: {why} (set paths.outputs=<a writable folder>)",
              file=sys.stderr)
        sys.exit(2)
    return folder


def _source_names_or_none(dataset: dict, indices: list) -> list[str | None]:
    """The tasks a sweep's `source_index` names, so a row lands under source=<name>. A bad index is reported
    later by the stage with a proper message; here it only falls back to None (`index<k>`)."""
    try:
        from ..data.registry import task_names

        tasks = task_names(build(DatasetConfig, split_params(dataset), "dataset"))
    except (UserError, ValueError, OSError):
        return [None] * len(indices)
    out = []
    for i in indices:
        try:
            out.append(tasks[int(i)] if int(i) >= 0 else None)
        except (IndexError, ValueError, TypeError):
            out.append(None)
    return out
