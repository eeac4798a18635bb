"""Animals with Attributes 2 (Xian et al. 2018): 37,322 images of 50 animal classes, 85 predicates.

The paper's second benchmark (Sec. 5): every predicate is a binary task, and `class` (the animal) is
the multi-class task. Predicates are class-level, so each image takes its class's row of
predicate-matrix-binary.txt; H(predicate | class) = 0 for all 85 (Eq. 7), which the paper's AwA2
results reflect (transfer from `class` is near-perfect).

Layout (`dataset.root` = the Animals_with_Attributes2 folder):

    classes.txt, predicates.txt       "%6d\\t%s" lines (1-based id, TAB, name); class names use '+'
    predicate-matrix-binary.txt       50 x 85 of 0/1, classes.txt rows x predicates.txt columns
    JPEGImages/<class>/<file>.jpg     optional: without it, param `image_list` names a listing file
                                      of `JPEGImages/<class>/<file>.jpg <1-based class id>` lines

Tasks: the 85 predicates (int8 0/1, predicates.txt order), then `class`, the 0-based row of the class
in classes.txt (int16). Image ids are `<class>/<file stem>`. Rows are sorted by relative path, so
the split does not depend on directory walk or listing order.
Split: the paper's random 33,568 train / 3,754 test images: a permutation seeded by `split_seed`,
the first `n_test` rows of it are test; there is no val split.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import DatasetConfig
from ..errors import UserError, unknown_name
from .labels import LabelTable
from .parsing import (
    fail_scan,
    find_file,
    line_error,
    parse_params,
    read_columns,
    read_id_names,
    require_root,
    split_series,
)
from .registry import Dataset

log = logging.getLogger(__name__)

IMAGE_DIR = "JPEGImages"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class AwA2Params:
    image_list: str | None = None  # listing of JPEGImages/ used when the folder itself is absent
    split_seed: int = 0            # seed of the random train/test split
    n_test: int = 3754             # test images (the paper: 33,568 train / 3,754 test)


def read_matrix(path: Path, n_rows: int, n_cols: int) -> np.ndarray:
    """predicate-matrix-binary.txt as an (n_rows, n_cols) int8 array of 0/1."""
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(rows) == n_rows:
                raise line_error(path, lineno, f"expected {n_rows} rows (one per class in classes.txt), found more")
            if len(fields) != n_cols:
                raise line_error(path, lineno, f"expected {n_cols} values (one per predicate), found {len(fields)}")
            bad = next((v for v in fields if v not in ("0", "1")), None)
            if bad is not None:
                raise line_error(path, lineno, f"value {bad!r}; expected 0 or 1")
            rows.append([int(v) for v in fields])
    if len(rows) != n_rows:
        raise line_error(path, len(rows) + 1, f"file ends after {len(rows)} rows; expected {n_rows} (one per class)")
    return np.asarray(rows, dtype=np.int8)


def walk_images(root: Path, classes: list[str]) -> tuple[list[str], np.ndarray]:
    """(relpaths `JPEGImages/<class>/<file>`, 0-based class) of every image file under JPEGImages/."""
    index = {c: i for i, c in enumerate(classes)}
    paths, labels = [], []
    for entry in os.scandir(root / IMAGE_DIR):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        if entry.name not in index:
            raise UserError(f"{entry.path}: {unknown_name('class folder', entry.name, classes)} (from classes.txt)")
        for f in os.scandir(entry.path):
            if not f.name.startswith(".") and f.name.lower().endswith(IMAGE_SUFFIXES):
                paths.append(f"{IMAGE_DIR}/{entry.name}/{f.name}")
                labels.append(index[entry.name])
    if not paths:
        raise UserError(f"{root / IMAGE_DIR}: no images found; expected {IMAGE_DIR}/<class>/<file>.jpg")
    return paths, np.asarray(labels, dtype=np.int64)


def _listing_check(classes: list[str]):
    def check(fields: list[str]) -> str | None:
        if len(fields) != 2:
            return f"expected '{IMAGE_DIR}/<class>/<file>.jpg <class id>', found {len(fields)} fields"
        parts = fields[0].split("/")
        if len(parts) != 3 or parts[0] != IMAGE_DIR or not parts[2]:
            return f"path {fields[0]!r}; expected {IMAGE_DIR}/<class>/<file>"
        if not fields[1].isdigit() or not 1 <= int(fields[1]) <= len(classes):
            return f"class id {fields[1]!r}; expected 1..{len(classes)} (classes.txt)"
        if classes[int(fields[1]) - 1] != parts[1]:
            return (f"class id {fields[1]} is {classes[int(fields[1]) - 1]!r} in classes.txt, "
                    f"but the image is in folder {parts[1]!r}")
        return None
    return check


# Where the listing sits when the release was unpacked beside it (the shared data layout:
# awa2/Animals_with_Attributes2/ and awa2/derived/awa2_all_images.txt), relative to the root.
LISTING_PLACES = ("awa2_all_images.txt", "derived/awa2_all_images.txt", "../derived/awa2_all_images.txt")


def find_listing(root: Path) -> Path | None:
    """The derived image listing next to the release, so stage=estimate works without images or options."""
    for rel in LISTING_PLACES:
        if (root / rel).is_file():
            return (root / rel).resolve()
    return None


def read_image_list(path: Path, classes: list[str]) -> tuple[list[str], np.ndarray]:
    """(relpaths, 0-based class) from a listing file; each id must agree with its folder name."""
    if not path.is_file():
        raise UserError(f"awa2 image_list {path} not found: expected lines '{IMAGE_DIR}/<class>/<file>.jpg <class id>'")
    check = _listing_check(classes)
    df = read_columns(path, 2, dtype={0: str, 1: np.int64})
    if df is None or len(df) == 0:
        fail_scan(path, check, fallback=f"no lines; expected '{IMAGE_DIR}/<class>/<file>.jpg <class id>'")
    paths, ids = df[0].to_numpy(dtype=object), df[1].to_numpy()
    parts = pd.Series(paths).str.split("/", regex=False)
    folder = parts.str[1].to_numpy(dtype=object)
    ok = (parts.str.len() == 3).to_numpy() & (parts.str[0] == IMAGE_DIR).to_numpy() & (ids >= 1) & (ids <= len(classes))
    ok[ok] = np.asarray(classes, dtype=object)[ids[ok] - 1] == folder[ok]
    if not ok.all():
        fail_scan(path, check)
    dup = pd.Index(paths).duplicated()
    if dup.any():
        raise UserError(f"{path}: image {paths[np.flatnonzero(dup)[0]]!r} is listed twice")
    return list(paths), ids - 1


def random_split(n: int, seed: int, n_test: int) -> np.ndarray:
    """'train'/'test' per row: the first n_test rows of a seeded permutation are test."""
    if not 0 < n_test < n:
        raise UserError(f"awa2 n_test={n_test}: expected 1..{n - 1} ({n} images)")
    split = np.full(n, "train", dtype=object)
    split[np.random.default_rng(seed).permutation(n)[:n_test]] = "test"
    return split


def build_table(relpaths: list[str], labels: np.ndarray, predicates: list[str], matrix: np.ndarray,
                params: AwA2Params) -> tuple[LabelTable, list[str]]:
    """The label table (rows sorted by path) and the relpaths in its row order."""
    order = np.argsort(np.asarray(relpaths, dtype=object), kind="stable")
    relpaths = [relpaths[i] for i in order]
    labels = labels[order]
    index = pd.Index([p.split("/", 1)[1].rsplit(".", 1)[0] for p in relpaths], name="image_id")
    if not index.is_unique:
        raise UserError(f"awa2: image {index[index.duplicated()][0]!r} appears twice under different file types")
    cols = {name: matrix[labels, j] for j, name in enumerate(predicates)}
    cols["class"] = labels.astype(np.int16)
    split = random_split(len(index), params.split_seed, params.n_test)
    table = LabelTable(pd.DataFrame(cols, index=index), split_series(index, split),
                       multiclass=("class",))
    return table, relpaths


def load(cfg: DatasetConfig) -> Dataset:
    params = parse_params(AwA2Params, cfg.params, "awa2")
    root = require_root(cfg.root, "awa2", "the Animals_with_Attributes2 folder (classes.txt, predicates.txt, "
                                          "predicate-matrix-binary.txt)")
    classes = read_id_names(find_file([root / "classes.txt"], "awa2", "class list"), sep="\t")
    predicates = read_id_names(find_file([root / "predicates.txt"], "awa2", "predicate list"), sep="\t")
    if "class" in predicates:
        raise UserError(f"{root / 'predicates.txt'}: a predicate is named 'class', which is the class task's name")
    matrix = read_matrix(find_file([root / "predicate-matrix-binary.txt"], "awa2", "predicate matrix"),
                         len(classes), len(predicates))
    has_images = (root / IMAGE_DIR).is_dir()
    listing = Path(params.image_list) if params.image_list is not None else find_listing(root)
    if has_images:
        relpaths, labels = walk_images(root, classes)
    elif listing is not None:
        if params.image_list is None:
            log.info(f"awa2: {root / IMAGE_DIR}/ not found; image list and labels from {listing}")
        relpaths, labels = read_image_list(listing, classes)
    else:
        raise UserError(f"awa2: {root / IMAGE_DIR}/ not found and no image_list given; set dataset.image_list="
                        f"<file of '{IMAGE_DIR}/<class>/<file>.jpg <class id>' lines> (e.g. "
                        f"shared/data/awa2/derived/awa2_all_images.txt) or put the images there")
    table, relpaths = build_table(relpaths, labels, predicates, matrix, params)
    if not has_images:
        reason = (f"{root / IMAGE_DIR}/ not found: labels come from image_list {listing} "
                  f"(stage=estimate works; transfer needs images)")
        return Dataset(name="awa2", labels=table, images=None, no_images_reason=reason)
    from .images import FileImages

    return Dataset(name="awa2", labels=table, images=FileImages(root, relpaths, list(table.labels.index)))
