"""Where a run writes, predictable from its config, and the Hydra resolvers that put it there.

These live with the stages, not in config.py, because a sweep's `source_index` is turned into a task name
here, which needs the dataset's task list (data/), and config.py must stay below data/.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..config import DatasetConfig, build, group_config, split_params
from ..errors import UserError


def run_dir_for(cfg: dict) -> str:
    """The run directory, predictable from the config (used as hydra.run.dir and sweep subdir).

    estimate: outputs/<dataset>/estimate/split=<split>[/source=<s>][/target=<t>][/bias_correction=true]
    transfer: outputs/<dataset>/<backbone>/<head>/source=<s>/seed=<k>[/fraction=<f>]
              (a job over several sources: .../sources=<s1>,<s2>,.../seed=<k>, its rows in their own folders)
    analyze:  outputs/<dataset>/<backbone>/<head>/analysis[/target=<t>]
    widths:   outputs/<dataset>/<backbone without -D>/<head>/widths

    <dataset> and <backbone> name what changes the task list and the network (dataset_folder, backbone_folder),
    so rows of `dataset.quantiles=[...]` or `backbone.embedding_dim=8` never share a folder with the defaults'.

    Every view (a target subset, a source, a corrected estimate) gets its own folder, so no view's
    outputs can replace another's; the full matrix keeps the plain folder."""
    out = Path(cfg["paths"]["outputs"]) / dataset_folder(cfg["dataset"])
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
        source = short_list([str(s) for s in source]) if stage == "transfer" else ",".join(map(str, source))
    if stage == "estimate":
        d = out / "estimate" / f"split={cfg.get('split', 'train')}"
        if source not in (None, "all"):
            d = d / f"source={source}"
        if view(cfg):
            d = d / view(cfg)
        if cfg.get("bias_correction"):
            d = d / "bias_correction=true"
        return str(d)
    d = out / backbone_folder(cfg["backbone"]) / cfg["head"]["name"]
    if stage == "widths":
        return str(out / backbone_folder(cfg["backbone"], with_dim=False) / cfg["head"]["name"] / "widths")
    if stage == "analyze":
        return str(d / "analysis" / view(cfg)) if view(cfg) else str(d / "analysis")
    source = source or cfg["dataset"].get("default_source") or "default"
    d = d / f"{folder}={source}" / f"seed={cfg.get('seed', 0)}"
    if float(cfg.get("train_fraction", 1.0)) != 1.0:
        d = d / f"fraction={cfg['train_fraction']}"
    return str(d)


def dataset_folder(dataset: dict) -> str:
    """`digits`; `digits_q10-25-50-75-90` when continuous measures are cut at quantiles (another task list)."""
    params = dict(dataset.get("params") or {})
    quantiles = params.get("quantiles", dataset.get("quantiles"))
    if not quantiles:
        return str(dataset["name"])
    return f"{dataset['name']}_q" + "-".join(f"{100 * float(q):.10g}" for q in quantiles)


def backbone_folder(backbone: dict, with_dim: bool = True) -> str:
    """`small_cnn`; `small_cnn-w32` / `small_cnn-D8` when its width / embedding size differ from the defaults
    (another network). The other backbones fix both. `with_dim=False`: the folder a width study sits in."""
    name = str(backbone["name"])
    if name != "small_cnn":
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
    A long list is shortened to its first names and a hash of the whole list, so names stay unique."""
    target = cfg.get("target", "all") if isinstance(cfg, dict) else getattr(cfg, "target", "all")
    if target in (None, "all"):
        return ""
    names = [str(t) for t in target] if isinstance(target, (list, tuple)) else [str(target)]
    return f"target={short_list(names)}"


def short_list(names: list[str]) -> str:
    """`a,b,c` for a folder name; a long list is shortened to its first names and a hash of the whole list."""
    text = ",".join(names)
    if len(text) > 80:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        text = f"{','.join(names[:3])},+{len(names) - 3}-{digest}"
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
    per job, else a chunk `[0,1,...,K-1]` (a job over several sources, stages/stacked.py). A sweeper that expands
    `source_index=all` into T tasks emits `source_index=<v>` for v in job_values(range(T), sources_per_job)."""
    if per_job == 1:
        return [str(int(i)) for i in indices]
    return ["[" + ",".join(map(str, c)) + "]" for c in source_chunks(indices, per_job)]


def sweep_values(lo: int, hi: int, per_job: int) -> str:
    """Hydra sweep values over tasks lo..hi-1, as a sweeper's params read them: `range(lo,hi)` at one source per
    job, else the chunks, `[0,...,K-1],[K,...],...` (job_values)."""
    return f"range({lo},{hi})" if per_job == 1 else ",".join(job_values(range(lo, hi), per_job))


def register_resolvers() -> None:
    """`${tf_run_dir:}` in conf/config.yaml; safe to call more than once."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("tf_run_dir"):
        def _resolve(*, _root_):
            plain = OmegaConf.to_container(_root_, resolve=False)
            keys = ("paths", "dataset", "backbone", "head")
            parts = {k: OmegaConf.to_container(_root_[k], resolve=True) for k in keys if k in _root_}
            for k in ("stage", "source", "source_index", "split", "seed", "train_fraction", "target",
                      "bias_correction"):
                parts[k] = plain.get(k)
            return run_dir_for(parts)

        OmegaConf.register_new_resolver("tf_run_dir", _resolve)
        # A sweep job's directory relative to paths.outputs (the sweep dir), so it equals the single run's.
        OmegaConf.register_new_resolver(
            "tf_run_subdir", lambda *, _root_: os.path.relpath(_resolve(_root_=_root_), _root_.paths.outputs))
    if not OmegaConf.has_resolver("tf_source_chunks"):
        # `source_index: ${tf_source_chunks:0,21}` in a sweeper's params: tasks 0..20, trainer.sources_per_job a job.
        OmegaConf.register_new_resolver(
            "tf_source_chunks", lambda lo, hi, *, _root_: sweep_values(int(lo), int(hi),
                                                                       int(_root_.trainer.sources_per_job)))


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
