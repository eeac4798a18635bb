"""Write an embedded dataset (digits, shapes) as a folder in the `imagefolder` convention that dataset=folder reads:
one PNG per image under images/ and a metadata.csv with file_name, one column per task and split.

    python -m transferability.data.export digits outputs/digits_folder
    python -m transferability.data.export shapes outputs/shapes_folder dataset.n=1000 dataset.image_size=64

`dataset=folder dataset.root=<out_dir>` on the result has the same tasks, rows, splits and pixels (PNG is
lossless; grey images stay grey), so its numbers are the embedded dataset's. metadata.csv is written last:
an interrupted export leaves no folder that dataset=folder would read.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..config import DatasetConfig, build, split_params
from ..errors import UserError, unknown_name
from .registry import DATASETS, load_dataset

CONF = Path(__file__).resolve().parents[3] / "conf"
SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}   # the imagefolder spelling


def dataset_config(name: str, overrides: list[str]) -> DatasetConfig:
    """conf/dataset/<name>.yaml with `dataset.<key>=<value>` overrides, composed by Hydra and validated."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    if name not in DATASETS:
        raise unknown_name("dataset", name, DATASETS)
    bad = [o for o in overrides if not o.startswith("dataset.")]
    if bad:
        raise UserError(f"{bad[0]!r}: expected dataset.<key>=<value> overrides only")
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[f"dataset={name}", *overrides])
    except HydraException as e:
        raise UserError(f"{' '.join(overrides)}: {str(e).splitlines()[0]}") from None
    return build(DatasetConfig, split_params(OmegaConf.to_container(cfg.dataset, resolve=True)), "dataset")


def export(cfg: DatasetConfig, out: Path) -> Path:
    """The dataset of `cfg` (an embedded one: root null) as PNGs + metadata.csv under `out` (new or empty)."""
    from PIL import Image

    if cfg.root is not None:
        raise UserError(f"dataset={cfg.name} reads its images from {cfg.root}: only the embedded datasets "
                        "(root null: digits, shapes) are exported")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty: export into a new folder")
    ds = load_dataset(cfg)
    if ds.images is None:
        raise UserError(f"dataset={cfg.name} has no images to export")
    table = ds.labels
    pixels = ds.images.array(cfg.image_size)
    safe = all(re.fullmatch(r"[A-Za-z0-9_.-]+", str(i)) for i in table.labels.index)
    width = len(str(table.n - 1))
    names = [f"images/{i}.png" if safe else f"images/{k:0{width}d}.png" for k, i in enumerate(table.labels.index)]
    (out / "images").mkdir(parents=True, exist_ok=True)
    for name, img in zip(names, pixels):
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else np.ascontiguousarray(img)).save(out / name)
    meta = table.labels.reset_index(drop=True)
    meta.insert(0, "file_name", names)
    meta["split"] = table.split.map(SPLIT_NAMES).to_numpy()
    io.write_csv(out / "metadata.csv", meta)
    return out / "metadata.csv"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m transferability.data.export", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", help="an embedded dataset: digits or shapes")
    p.add_argument("out_dir", type=Path, help="a new (or empty) folder")
    p.add_argument("overrides", nargs="*", help="dataset.<key>=<value>, as on run.py's command line")
    args = p.parse_args(argv)
    try:
        cfg = dataset_config(args.dataset, args.overrides)
        path = export(cfg, args.out_dir)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    n = len(pd.read_csv(path, usecols=["file_name"]))
    print(f"wrote {n} images and {path}; read them with: python run.py dataset=folder dataset.root={args.out_dir} "
          f"dataset.image_size={cfg.image_size}")


if __name__ == "__main__":
    main()
