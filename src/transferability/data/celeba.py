"""CelebA (Liu et al. 2015): 202,599 face images, 40 binary attributes and the subject identity.

The paper's first benchmark (Sec. 5) and its recognition-to-attribute case study (Sec. 5.2, Table 1,
where row 9 is H(attribute | identity), Eq. 7).

Layout (`dataset.root`), either flat as torchvision keeps it or as the official release ships it:

    root/list_attr_celeba.txt      or root/Anno/list_attr_celeba.txt
    root/identity_CelebA.txt       or root/Anno/identity_CelebA.txt
    root/list_eval_partition.txt   or root/Eval/list_eval_partition.txt
    root/img_align_celeba/<id>.jpg or root/Img/img_align_celeba/<id>.jpg   (optional: transfer needs it)

Files have CRLF line endings (pandas and text-mode reads both drop the CR). Tasks: the 40 attributes
as int8 0/1 (-1 -> 0, as torchvision maps them) in the file's column order, then `identity`
(the raw id, 1..10177). Split: partition 0 -> train, 1 -> val, 2 -> test.

Table 1 row 9 reproduces to the paper's 3 decimals on *all* 202,599 images (not on train, val,
test or train+val alone); the paper's quoted 182,626 / 19,961 split sizes match none of the official
partitions exactly. See tests/test_celeba.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import DatasetConfig
from ..errors import UserError
from .labels import LabelTable
from .parsing import (
    check_ids_match,
    fail_scan,
    find_file,
    int_field_check,
    line_error,
    parse_params,
    read_columns,
    require_root,
    split_series,
)
from .registry import Dataset

ATTR_FILE, IDENTITY_FILE, PARTITION_FILE = "list_attr_celeba.txt", "identity_CelebA.txt", "list_eval_partition.txt"
IMAGE_DIR = "img_align_celeba"
SPLIT_NAMES = np.array(["train", "val", "test"], dtype=object)


@dataclass(frozen=True)
class CelebAParams:
    """CelebA has no options: the official files fix tasks and split."""


def locate(root: Path) -> tuple[Path, Path, Path]:
    """The three annotation files, flat in root or in the release's Anno/ and Eval/ folders."""
    attr = [root / ATTR_FILE, root / "Anno" / ATTR_FILE]
    ident = [root / IDENTITY_FILE, root / "Anno" / IDENTITY_FILE]
    part = [root / PARTITION_FILE, root / "Eval" / PARTITION_FILE]
    if not any(p.is_file() for p in attr + ident + part):
        raise UserError(f"celeba root {root}: no CelebA annotation files found; expected {ATTR_FILE}, "
                        f"{IDENTITY_FILE} and {PARTITION_FILE} in it (or in its Anno/ and Eval/ folders)")
    return (find_file(attr, "celeba", "attribute file"), find_file(ident, "celeba", "identity file"),
            find_file(part, "celeba", "partition file"))


def _attr_line_check(n_attrs: int):
    def check(fields: list[str]) -> str | None:
        if len(fields) != n_attrs + 1:
            return f"expected {n_attrs + 1} fields (file name and {n_attrs} values), found {len(fields)}"
        bad = next((v for v in fields[1:] if v not in ("-1", "1")), None)
        return None if bad is None else f"value {bad!r}; expected -1 or 1"
    return check


def read_attributes(path: Path) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(file names, attribute names, (n, 40) int8 values in {-1, 1}) of list_attr_celeba.txt."""
    with open(path, encoding="utf-8", errors="replace") as f:
        count_line, names_line = f.readline(), f.readline()
    try:
        count = int(count_line.strip())
    except ValueError:
        raise line_error(path, 1, f"got {count_line.strip()!r}; expected the number of images") from None
    names = names_line.split()
    if not names:
        raise line_error(path, 2, "expected the attribute names")
    if len(set(names)) != len(names):
        raise line_error(path, 2, "attribute names repeat")
    k = len(names)
    check = _attr_line_check(k)
    df = read_columns(path, k + 1, skiprows=2, dtype={0: str, **{j: np.int8 for j in range(1, k + 1)}})
    if df is None:
        fail_scan(path, check, first_line=3, n_lines=count)
    values = df.iloc[:, 1:].to_numpy()
    if len(df) != count or not np.isin(values, (-1, 1)).all():
        fail_scan(path, check, first_line=3, n_lines=count)
    return df[0].to_numpy(dtype=object), names, values


def read_id_value(path: Path, valid, expect: str) -> tuple[np.ndarray, np.ndarray]:
    """(file names, int values) of a headerless `<file> <int>` file, every value passing `valid`."""
    check = int_field_check(2, {1: valid}, expect)

    def exact(fields: list[str]) -> str | None:
        return f"expected 2 fields (file name and value), found {len(fields)}" if len(fields) > 2 else check(fields)

    df = read_columns(path, 2, dtype={0: str, 1: np.int64})
    if df is None or len(df) == 0 or not valid(df[1].to_numpy()).all():
        fail_scan(path, exact, fallback=f"no '<file> <value>' lines; expected {expect}")
    return df[0].to_numpy(dtype=object), df[1].to_numpy()


def build_table(files: np.ndarray, names: list[str], attrs: np.ndarray, identity: np.ndarray,
                partition: np.ndarray) -> LabelTable:
    """The label table: attributes {-1,1} -> {0,1} int8, then identity; split from the partition."""
    index = pd.Index([f.rsplit(".", 1)[0] for f in files], name="image_id")
    if not index.is_unique:
        raise UserError(f"celeba: image {index[index.duplicated()][0]!r} is listed twice in {ATTR_FILE}")
    cols = {name: ((attrs[:, j] + 1) // 2).astype(np.int8) for j, name in enumerate(names)}
    cols["identity"] = identity.astype(np.int64)
    return LabelTable(pd.DataFrame(cols, index=index), split_series(index, SPLIT_NAMES[partition]),
                      multiclass=("identity",))


def image_dir(root: Path) -> Path | None:
    for d in (root / IMAGE_DIR, root / "Img" / IMAGE_DIR):
        if d.is_dir():
            return d
    return None


def image_relpaths(root: Path, images: Path, files: np.ndarray) -> list[str]:
    """Paths relative to `root` of each row's image file, in label-row order."""
    prefix = images.relative_to(root).as_posix()
    return [f"{prefix}/{f}" for f in files]


def load(cfg: DatasetConfig) -> Dataset:
    parse_params(CelebAParams, cfg.params, "celeba")
    root = require_root(cfg.root, "celeba", f"a folder with {ATTR_FILE}, {IDENTITY_FILE} and {PARTITION_FILE}")
    attr_path, ident_path, part_path = locate(root)
    files, names, attrs = read_attributes(attr_path)
    id_files, identity = read_id_value(ident_path, lambda v: np.asarray(v) >= 1, "a positive identity id")
    check_ids_match(id_files, files, ident_path, attr_path)
    part_files, partition = read_id_value(part_path, lambda v: np.isin(v, (0, 1, 2)), "0, 1 or 2")
    check_ids_match(part_files, files, part_path, attr_path)
    table = build_table(files, names, attrs, identity, partition)
    images = image_dir(root)
    if images is None:
        reason = (f"{root / IMAGE_DIR}/ not found: this root has label files only "
                  f"(stage=estimate works; transfer needs images)")
        return Dataset(name="celeba", labels=table, images=None, no_images_reason=reason)
    from .images import FileImages

    return Dataset(name="celeba", labels=table,
                   images=FileImages(root, image_relpaths(root, images, files), list(table.labels.index)))
