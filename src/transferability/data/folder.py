"""dataset=folder: your own labelled images in the Hugging Face `imagefolder` convention (docs/your_data.md).

`dataset.root` holds the images (anywhere below it) and one metadata file, metadata.csv, metadata.jsonl or
metadata.parquet: a `file_name` column (each image's path relative to the root) and one column per label. Every
other column is a task (label_files.py says what each becomes), except `split` and the columns in
`dataset.ignore`. A row's id is its file_name. Images are decoded by Pillow once into the image cache
(pil_images.py); reading the labels (stage=estimate) never opens them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..config import DatasetConfig
from ..errors import UserError
from .label_files import LabelFile, TaskParams, label_table, read_label_file
from .parsing import parse_params, require_root
from .pil_images import PILImages
from .registry import Dataset

METADATA = ("metadata.csv", "metadata.jsonl", "metadata.parquet")
KEY = "file_name"


@dataclass(frozen=True)
class FolderParams(TaskParams):
    def __post_init__(self) -> None:
        self.check("folder")


def load(cfg: DatasetConfig) -> Dataset:
    params = parse_params(FolderParams, cfg.params, "folder")
    root = require_root(cfg.root, "folder", "a folder of images with a metadata.csv, metadata.jsonl or "
                                            "metadata.parquet (file_name, then one column per label)")
    found = [root / name for name in METADATA if (root / name).is_file()]
    if not found:
        raise UserError(f"folder: no metadata file in {root}: expected {', '.join(METADATA[:-1])} or {METADATA[-1]} "
                        "with a file_name column and one column per label")
    if len(found) > 1:
        raise UserError(f"folder: {root} holds {' and '.join(p.name for p in found)}: keep one metadata file")
    lf = read_label_file(found[0], KEY)
    check_relative(lf)
    table = label_table(lf, params, KEY)
    locate = lambda row: lf.where(row, KEY)  # noqa: E731
    files = list(lf.keys)
    return Dataset(name="folder", labels=table, images=PILImages(root, files, files, locate=locate), locate=locate)


def check_relative(lf: LabelFile) -> None:
    """Every file_name is a path inside the root: not absolute, no `..` part. (One search over the names joined by
    line breaks: a million names in a fraction of a second.)"""
    joined = "\n".join(lf.keys)
    bad = re.search(r"^/|(?:^|/)\.\.(?:/|$)", joined, flags=re.MULTILINE)
    if bad:
        row = joined.count("\n", 0, bad.start())
        raise UserError(f"{lf.where(row, KEY)}: {lf.keys[row]!r} is not a path inside the dataset folder; "
                        "expected a path relative to dataset.root")
