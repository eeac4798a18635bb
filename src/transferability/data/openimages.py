"""Open Images image-level labels (Kuznetsova et al. 2020): ~9M images, ~20k classes, each class a binary task.

Layout (`dataset.root`), the release's own files, any subset of splits:

    root/*-annotations-human-imagelabels.csv   ImageID,Source,LabelName,Confidence
        e.g. oidv6-train-..., validation-..., test-...; the name says the split (train / validation / test)
    root/oidv7-class-descriptions.csv or oidv6-class-descriptions.csv (header LabelName,DisplayName)
        or class-descriptions.csv (the v4/v5 name, no header)

Confidence 1 = a human verified the class present, 0 = verified absent; an (image, class) pair with no line
is unknown. `unverified: missing` (the default) leaves unknown pairs out pair by pair, as missing labels are
everywhere in this project: H(t|s) is computed on the images labelled for both t and s. `unverified: negative`
is the common shortcut of treating every unknown pair as absent: every image then counts for every pair, and
classes look much rarer (and easier) than the verified labels say.

A pair listed twice with the same Confidence is kept once; with both 0 and 1 it is an error. Tasks are named by
LabelName (/m/...); a unique DisplayName works wherever a task name is asked for. The table stays sparse
(data/sparse_labels.py): the labels file is read in chunks of `chunk_lines` and kept as integer codes.
`python -m transferability.data.openimages_synth ROOT` writes a full-size generated table in this format.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import DatasetConfig
from ..errors import UserError
from .parsing import line_error, parse_params, require_root
from .registry import Dataset
from .sparse_labels import SparseLabelTable

LABELS_GLOB = "*-annotations-human-imagelabels.csv"
CLASS_FILES = ("oidv7-class-descriptions.csv", "oidv6-class-descriptions.csv", "class-descriptions.csv")
COLUMNS = ("ImageID", "Source", "LabelName", "Confidence")
SPLIT_WORDS = (("validation", "val"), ("train", "train"), ("test", "test"))   # file-name word -> split
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class OpenImagesParams:
    unverified: str = "missing"      # missing: unknown pairs are left out; negative: unknown = absent
    chunk_lines: int = 2_000_000     # label lines parsed at a time (memory: ~150 bytes per line in flight)

    def __post_init__(self) -> None:
        if self.unverified not in ("missing", "negative"):
            raise UserError(f"openimages unverified={self.unverified!r}: expected missing or negative")
        if self.chunk_lines < 1:
            raise UserError(f"openimages chunk_lines={self.chunk_lines}: expected a positive integer")


def locate(root: Path) -> tuple[list[tuple[Path, str]], Path]:
    """The label files with their splits, and the class-description file."""
    files = sorted(root.glob(LABELS_GLOB))
    if not files:
        raise UserError(f"openimages root {root}: no {LABELS_GLOB} file (e.g. oidv6-train-annotations-human-"
                        f"imagelabels.csv); `python -m transferability.data.openimages_synth {root}` writes a "
                        f"generated one")
    labelled = []
    for f in files:
        split = next((s for word, s in SPLIT_WORDS if word in f.name.lower()), None)
        if split is None:
            raise UserError(f"{f}: cannot tell the split from the file name; expected 'train', 'validation' or "
                            f"'test' in it")
        labelled.append((f, split))
    classes = next((root / c for c in CLASS_FILES if (root / c).is_file()), None)
    if classes is None:
        raise UserError(f"openimages root {root}: no class-description file; expected {' or '.join(CLASS_FILES)}")
    return labelled, classes


def _csv_records(path: Path):
    """(line number, fields) of each non-blank CSV record (quoted fields may hold commas)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        for fields in reader:
            if fields:
                yield reader.line_num, fields


def read_classes(path: Path) -> tuple[pd.Index, np.ndarray]:
    """(LabelNames, DisplayNames); the header line LabelName,DisplayName is optional (absent before v6)."""
    ids, names, seen = [], [], {}
    for lineno, fields in _csv_records(path):
        if lineno == 1 and [f.strip().lstrip("\ufeff") for f in fields] == ["LabelName", "DisplayName"]:
            continue
        if len(fields) != 2 or not fields[0].strip():
            raise line_error(path, lineno, f"expected LabelName,DisplayName; got {','.join(fields)!r}")
        label = fields[0].strip()
        if label in seen:
            raise line_error(path, lineno, f"LabelName {label!r} is listed again (first on line {seen[label]})")
        seen[label] = lineno
        ids.append(label)
        names.append(fields[1].strip())
    if not ids:
        raise UserError(f"{path}: no classes; expected LabelName,DisplayName lines")
    return pd.Index(ids, dtype=object), np.asarray(names, dtype=object)


def _check_header(path: Path) -> None:
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline().rstrip("\r\n").lstrip("\ufeff")
    if [c.strip() for c in first.split(",")] != list(COLUMNS):
        raise line_error(path, 1, f"header {first!r}; expected {','.join(COLUMNS)}")


def _first_bad_line(path: Path, classes: pd.Index, classes_path: Path) -> UserError:
    """The error path: read the file again record by record and name the first bad line."""
    known = set(classes)
    for lineno, fields in _csv_records(path):
        if lineno == 1:
            continue
        if len(fields) != 4:
            return line_error(path, lineno, f"expected 4 fields ({','.join(COLUMNS)}), found {len(fields)}")
        image, _, label, conf = (f.strip() for f in fields)
        if not image:
            return line_error(path, lineno, "empty ImageID")
        if label not in known:
            return line_error(path, lineno, f"LabelName {label!r} is not in {classes_path.name}")
        if conf not in ("0", "1"):
            return line_error(path, lineno, f"Confidence {conf!r}; expected 1 (verified present) or 0 "
                                            f"(verified absent)")
    return UserError(f"{path}: could not be parsed as {','.join(COLUMNS)} lines")


def _read_chunks(path: Path, classes: pd.Index, classes_path: Path, chunk_lines: int, progress):
    """(image-id uniques, image codes int32, class codes int32, present bool) per chunk of the labels file."""
    _check_header(path)
    # All four columns: with `usecols` the parser would let a line with extra fields through.
    reader = pd.read_csv(path, chunksize=chunk_lines, na_filter=False, engine="c",
                         dtype={"ImageID": str, "Source": str, "LabelName": str, "Confidence": np.int8})
    try:
        for chunk in reader:
            img_codes, img_uniques = pd.factorize(chunk["ImageID"].to_numpy(), sort=False)
            lab_codes, lab_uniques = pd.factorize(chunk["LabelName"].to_numpy(), sort=False)
            cls = classes.get_indexer(lab_uniques)
            conf = chunk["Confidence"].to_numpy()
            if (cls < 0).any() or (img_uniques == "").any() or not np.isin(conf, (0, 1)).all():
                raise _first_bad_line(path, classes, classes_path)
            progress.update(len(chunk))
            yield img_uniques, img_codes.astype(np.int32), cls[lab_codes].astype(np.int32), conf == 1
    except (ValueError, pd.errors.ParserError):   # a field that is not an integer, a line with extra fields
        raise _first_bad_line(path, classes, classes_path) from None


def read_labels(files: list[tuple[Path, str]], classes: pd.Index, classes_path: Path,
                chunk_lines: int = 2_000_000, show_progress: bool = True):
    """(image ids, split codes, image, class, present) of all label files, each pair once."""
    from tqdm import tqdm

    uniques, parts, file_of = [], [], []
    # Shown on a terminal only, and erased when done: an error stays the one line on stderr.
    with tqdm(desc="openimages labels", unit=" lines", unit_scale=True, leave=False,
              disable=None if show_progress else True) as bar:
        for k, (path, _) in enumerate(files):
            for u, img, cls, present in _read_chunks(path, classes, classes_path, chunk_lines, bar):
                uniques.append(u)
                parts.append((img, cls, present))
                file_of.append(k)
    if not parts:
        raise UserError(f"{files[0][0]}: no label lines after the header")
    # One code per image across chunks and files; lines keep 9 bytes each from here on.
    global_codes, image_ids = pd.factorize(np.concatenate(uniques), sort=False)
    split_codes = np.full(len(image_ids), -1, dtype=np.int8)
    image, start = [], 0
    for u, (img, _, _), k in zip(uniques, parts, file_of):
        g = global_codes[start:start + len(u)].astype(np.int32)
        start += len(u)
        want = SPLITS.index(files[k][1])
        clash = (split_codes[g] >= 0) & (split_codes[g] != want)
        if clash.any():
            other = files[[s for _, s in files].index(SPLITS[split_codes[g[clash][0]]])][0]
            raise UserError(f"image {u[clash][0]!r} is in both {other.name} and {files[k][0].name}; "
                            f"expected each image in one split")
        split_codes[g] = want
        image.append(g[img])
    image = np.concatenate(image)
    cls = np.concatenate([p[1] for p in parts])
    present = np.concatenate([p[2] for p in parts])
    del parts, uniques
    image, cls, present = _dedupe(image, cls, present, np.asarray(image_ids, dtype=object), classes, files)
    return np.asarray(image_ids, dtype=object), split_codes, image, cls, present


def _dedupe(image, cls, present, image_ids, classes, files):
    """Keep each (image, class) pair once; the same pair with Confidence 0 and 1 is an error."""
    import scipy.sparse as sp

    n_img, n_cls = len(image_ids), len(classes)
    count = sp.coo_matrix((np.ones(len(image), dtype=np.int32), (image, cls)), shape=(n_img, n_cls)).tocsr()
    if count.nnz == len(image):
        return image, cls, present
    key = image.astype(np.int64) * n_cls + cls
    order = np.argsort(key, kind="stable")
    key, present = key[order], present[order]
    first = np.r_[True, key[1:] != key[:-1]]
    group = np.cumsum(first) - 1
    n_present = np.bincount(group, weights=present)
    n_lines = np.bincount(group)
    mixed = np.flatnonzero((n_present > 0) & (n_present < n_lines))
    if len(mixed):
        k = key[first][mixed[0]]
        names = ", ".join(f.name for f, _ in files)
        raise UserError(f"{names}: image {image_ids[k // n_cls]!r} has both Confidence 1 and 0 for class "
                        f"{classes[k % n_cls]!r}; expected one verdict per image and class")
    key, present = key[first], present[first]
    return (key // n_cls).astype(np.int32), (key % n_cls).astype(np.int32), present


def load(cfg: DatasetConfig) -> Dataset:
    params = parse_params(OpenImagesParams, cfg.params, "openimages")
    root = require_root(cfg.root, "openimages", f"a folder with {LABELS_GLOB} and {CLASS_FILES[1]}")
    files, classes_path = locate(root)
    classes, display = read_classes(classes_path)
    image_ids, split_codes, image, cls, present = read_labels(files, classes, classes_path, params.chunk_lines)
    table = SparseLabelTable(image_ids, split_codes, classes, display, image, cls, present,
                             unverified_negative=params.unverified == "negative")
    return Dataset(name="openimages", labels=table, images=None,
                   no_images_reason="openimages: image-level labels only (stage=estimate works; transfer needs "
                                    "images, which this dataset does not read)")
