"""Caltech-UCSD Birds-200-2011 (Wah et al. 2011): 11,788 images, 200 species, 312 binary attributes.

The paper's third benchmark (Sec. 5): each attribute is a binary task and `species` is the
multi-class task. Only reliable attribute labels are kept, as the paper does ("average confidence
passes 0.5"); the others are missing, and the CE (Eq. 7) and the transfer stage skip them per pair.

Layout (`dataset.root` = the CUB_200_2011 folder; ids 1-based, space-separated, LF):

    images.txt                 <image_id> <class_folder>/<file>.jpg
    classes.txt                <class_id> <class_name>
    image_class_labels.txt     <image_id> <class_id>           (class id = the folder's number)
    train_test_split.txt       <image_id> <is_training_image>  (1 -> train, 0 -> test; no val)
    attributes/attributes.txt  or ../attributes.txt (the tarball's top level): <id> <name>
    attributes/certainties.txt <certainty_id> <name>  (1 not visible, 2 guessing, 3 probably, 4 definitely)
    attributes/image_attribute_labels.txt   <image_id> <attribute_id> <is_present> <certainty_id> <time>
                               (only the first 4 fields are read: some lines carry an extra field)
    attributes/class_attribute_labels_continuous.txt   200 x 312 percentages (param attribute_labels=class)
    images/<class_folder>/<file>.jpg                    optional: transfer needs it

Label rule with `attribute_labels: image` (the default). For each (image, attribute), over its lines
(normally exactly one):
    confidence = mean of confidence[certainty_id]   (param `confidence`, default
                 {1: 0.0, 2: 0.5, 3: 0.75, 4: 1.0}: not visible, guessing, probably, definitely)
    label = NA                           if confidence <= threshold (param `threshold`, default 0.5)
          = 1 if more than half of the lines say is_present=1, 0 if fewer than half,
            NA on an exact tie (no majority)
    and NA when the pair has no line at all.
With the defaults, 'not visible' and 'guessing' labels are missing; 'probably' and 'definitely' kept.

With `attribute_labels: class`, label = 1 when the class's percentage > `class_threshold` (default
50.0: most workers saw it), else 0, the same for every image of the class (no missing labels).

Tasks: the 312 attributes (names verbatim from attributes.txt, pandas nullable Int8), then `species`,
the 0-based row of the class in classes.txt (int16). Image ids are images.txt names without `.jpg`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import DatasetConfig
from ..errors import UserError, unknown_name
from .labels import LabelTable
from .parsing import (
    check_ids_match,
    fail_scan,
    find_file,
    int_field_check,
    parse_params,
    read_columns,
    read_id_names,
    require_root,
    split_series,
)
from .registry import Dataset

MODES = ("image", "class")
DEFAULT_CONFIDENCE = {1: 0.0, 2: 0.5, 3: 0.75, 4: 1.0}


@dataclass(frozen=True)
class CUBParams:
    attribute_labels: str = "image"  # image: per-image MTurk labels; class: thresholded class percentages
    confidence: dict = field(default_factory=lambda: dict(DEFAULT_CONFIDENCE))  # certainty id -> confidence
    threshold: float = 0.5           # keep an image label when its mean confidence > threshold
    class_threshold: float = 50.0    # class mode: present when the class percentage > this

    def __post_init__(self) -> None:
        if self.attribute_labels not in MODES:
            raise unknown_name("cub attribute_labels", self.attribute_labels, MODES)
        conf = {}
        for key, value in self.confidence.items():
            if isinstance(key, bool) or not str(key).strip().isdigit():
                raise UserError(f"cub confidence: key {key!r}: expected a certainty id (1, 2, ...)")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UserError(f"cub confidence[{key}]={value!r}: expected a number")
            conf[int(key)] = float(value)
        object.__setattr__(self, "confidence", conf)  # YAML/CLI may give "1": 0.0; ids are ints here


def aggregate(image: np.ndarray, attribute: np.ndarray, present: np.ndarray, confidence: np.ndarray,
              n_images: int, n_attributes: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(values, missing), both (n_images, n_attributes): the module docstring's rule applied to
    0-based image/attribute indices with each line's is_present (0/1) and confidence."""
    cell = image.astype(np.int64) * n_attributes + attribute
    size = n_images * n_attributes
    count = np.bincount(cell, minlength=size)
    conf_sum = np.bincount(cell, weights=confidence, minlength=size)
    yes = np.bincount(cell, weights=present, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        reliable = (count > 0) & (conf_sum / count > threshold)
    keep = reliable & (2 * yes != count)
    values = (2 * yes > count).astype(np.int8)
    shape = (n_images, n_attributes)
    return values.reshape(shape), ~keep.reshape(shape)


def read_image_labels(path: Path, n_images: int, n_attributes: int, params: CUBParams,
                      certainty_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """image_attribute_labels.txt (first 4 fields only) -> `aggregate`'s (values, missing)."""
    missing = [c for c in certainty_ids if c not in params.confidence]
    if missing:
        raise UserError(f"cub confidence: no value for certainty id {missing[0]} (certainties.txt); "
                        f"expected one per id, e.g. {DEFAULT_CONFIDENCE}")
    known = sorted(params.confidence)
    check = int_field_check(4, {0: lambda v: 1 <= v <= n_images, 1: lambda v: 1 <= v <= n_attributes,
                                2: lambda v: v in (0, 1), 3: lambda v: v in params.confidence},
                            f"image id 1..{n_images}, attribute id 1..{n_attributes}, "
                            f"is_present 0/1, certainty id in {known}")
    df = read_columns(path, 4, usecols=[0, 1, 2, 3])
    if df is None or len(df) == 0 or not all(pd.api.types.is_integer_dtype(df[c]) for c in range(4)):
        fail_scan(path, check, fallback="expected '<image_id> <attribute_id> <is_present> <certainty_id> <time>' lines")
    image, attribute, present, certainty = (df[c].to_numpy() for c in range(4))
    lut = np.full(max(max(known), int(certainty.max()), 0) + 1, np.nan)
    lut[known] = [params.confidence[k] for k in known]
    ok = ((image >= 1) & (image <= n_images) & (attribute >= 1) & (attribute <= n_attributes)
          & ((present == 0) | (present == 1)) & (certainty >= 0))
    ok[ok] = ~np.isnan(lut[certainty[ok]])
    if not ok.all():
        fail_scan(path, check)
    return aggregate(image - 1, attribute - 1, present, lut[certainty], n_images, n_attributes, params.threshold)


def read_class_matrix(path: Path, n_classes: int, n_attributes: int) -> np.ndarray:
    """class_attribute_labels_continuous.txt: (n_classes, n_attributes) percentages in 0..100."""
    def check(fields: list[str]) -> str | None:
        if len(fields) != n_attributes:
            return f"expected {n_attributes} values (one per attribute), found {len(fields)}"
        for v in fields:
            try:
                if not 0.0 <= float(v) <= 100.0:
                    return f"value {v!r}; expected a percentage in 0..100"
            except ValueError:
                return f"value {v!r}; expected a percentage in 0..100"
        return None

    df = read_columns(path, n_attributes, dtype=np.float64)
    values = None if df is None else df.to_numpy()
    if (values is None or len(values) != n_classes or np.isnan(values).any()
            or not ((values >= 0) & (values <= 100)).all()):
        fail_scan(path, check, n_lines=n_classes)
    return values


def read_per_image(path: Path, n_images: int, valid, expect: str, images_path: Path) -> np.ndarray:
    """A `<image_id> <int>` file listing images 1..n in images.txt order; the values."""
    check = int_field_check(2, {0: lambda v: v >= 1, 1: valid}, expect)
    df = read_columns(path, 2, dtype=np.int64)
    if df is None or not valid(df[1].to_numpy()).all():
        fail_scan(path, check, fallback=f"expected '<image_id> <value>' lines with {expect}")
    check_ids_match(df[0].to_numpy(), np.arange(1, n_images + 1), path, images_path)
    return df[1].to_numpy()


def image_relpaths(names: list[str]) -> list[str]:
    """Paths relative to the CUB_200_2011 folder of each row's image, in label-row order."""
    return [f"images/{n}" for n in names]


def load(cfg: DatasetConfig) -> Dataset:
    params = parse_params(CUBParams, cfg.params, "cub")
    root = require_root(cfg.root, "cub", "the CUB_200_2011 folder (images.txt, classes.txt, ...)")
    if not (root / "images.txt").is_file() and not (root / "classes.txt").is_file():
        raise UserError(f"cub root {root}: no CUB metadata found; expected the CUB_200_2011 folder "
                        f"(images.txt, classes.txt, image_class_labels.txt, train_test_split.txt, attributes/)")
    images_path = find_file([root / "images.txt"], "cub", "image list")
    names = read_id_names(images_path)
    classes = read_id_names(find_file([root / "classes.txt"], "cub", "class list"))
    labels_path = find_file([root / "image_class_labels.txt"], "cub", "image class labels")
    species = read_per_image(labels_path, len(names), lambda v: (np.asarray(v) >= 1) & (np.asarray(v) <= len(classes)),
                             f"a class id 1..{len(classes)}", images_path) - 1
    folders = np.array([n.split("/", 1)[0] for n in names], dtype=object)
    wrong = np.flatnonzero(folders != np.asarray(classes, dtype=object)[species])
    if len(wrong):
        i = int(wrong[0])
        raise UserError(f"{labels_path}, line {i + 1}: class {species[i] + 1} is {classes[species[i]]!r} in "
                        f"classes.txt, but images.txt puts image {i + 1} in folder {folders[i]!r}")
    is_train = read_per_image(find_file([root / "train_test_split.txt"], "cub", "train/test split"), len(names),
                              lambda v: np.isin(v, (0, 1)), "is_training_image 0 or 1", images_path)
    attributes = read_id_names(find_file([root / "attributes" / "attributes.txt", root.parent / "attributes.txt"],
                                         "cub", "attribute list"))
    if "species" in attributes:
        raise UserError("cub attributes.txt: an attribute is named 'species', which is the class task's name")
    if params.attribute_labels == "image":
        certainties = read_id_names(find_file([root / "attributes" / "certainties.txt"], "cub", "certainty list"))
        per_image = root / "attributes" / "image_attribute_labels.txt"
        if not per_image.is_file():
            raise UserError(f"cub: {per_image} not found: the per-image attribute labels are needed for "
                            f"attribute_labels=image; set dataset.attribute_labels=class to use class-level labels")
        values, missing = read_image_labels(per_image, len(names), len(attributes), params,
                                            list(range(1, len(certainties) + 1)))
    else:
        matrix = read_class_matrix(find_file([root / "attributes" / "class_attribute_labels_continuous.txt"],
                                             "cub", "class attribute labels"), len(classes), len(attributes))
        values = (matrix > params.class_threshold).astype(np.int8)[species]
        missing = np.zeros_like(values, dtype=bool)
    table = build_table(names, attributes, values, missing, species, is_train)
    if not (root / "images").is_dir():
        reason = (f"{root / 'images'}/ not found: this root has label files only (stage=estimate works; transfer "
                  "needs images)")
        return Dataset(name="cub", labels=table, images=None, no_images_reason=reason)
    from .images import FileImages

    return Dataset(name="cub", labels=table, images=FileImages(root, image_relpaths(names), list(table.labels.index)))


def build_table(names: list[str], attributes: list[str], values: np.ndarray, missing: np.ndarray,
                species: np.ndarray, is_train: np.ndarray) -> LabelTable:
    """Attributes as nullable Int8 (NA = missing), then `species`; split from is_training_image."""
    index = pd.Index([n.rsplit(".", 1)[0] for n in names], name="image_id")
    if not index.is_unique:
        raise UserError(f"cub images.txt: image {index[index.duplicated()][0]!r} is listed twice")
    values, missing = np.asfortranarray(values), np.asfortranarray(missing)  # contiguous columns
    cols = {name: pd.arrays.IntegerArray(values[:, j], missing[:, j]) for j, name in enumerate(attributes)}
    cols["species"] = species.astype(np.int16)
    split = np.where(is_train == 1, "train", "test").astype(object)
    return LabelTable(pd.DataFrame(cols, index=index), split_series(index, split),
                      multiclass=("species",))
