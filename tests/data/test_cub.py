"""CUB loader: the official layout on small files (both attributes.txt locations, extra-field lines),
the reliability rule and missing labels, class-level labels, images, bad inputs, the real metadata."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from helpers.data import decoded_means, shared_path, write, write_jpeg
from transferability.config import group_config
from transferability.data import cub
from transferability.errors import UserError

CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]
IMAGES = ["001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg",
          "001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg",
          "002.Laysan_Albatross/Laysan_Albatross_0002_1027.jpg",
          "003.Sooty_Albatross/Sooty_Albatross_0031_1066.jpg",
          "003.Sooty_Albatross/Sooty_Albatross_0040_796.jpg"]
SPECIES = [1, 1, 2, 3, 3]
TRAIN = [1, 0, 1, 1, 0]
ATTRIBUTES = ["has_bill_shape::curved_(up_or_down)", "has_bill_shape::dagger", "has_wing_color::blue",
              "has_wing_pattern::multi-colored"]
# (image, attribute, is_present, certainty[, extra]) lines; several lines for one pair test the rule.
LINES = [
    (1, 1, 1, 4), (1, 2, 1, 2), (1, 3, 0, 3), (1, 4, 1, 1),
    (2, 1, 1, 4), (2, 1, 1, 2),                 # mean confidence 0.75, both present -> 1
    (2, 2, 1, 4), (2, 2, 0, 4),                 # a tie -> NA
    (2, 3, 1, 3), (2, 3, 1, 1), (2, 3, 0, 4),   # mean 0.583 > 0.5, 2 of 3 present -> 1
    (2, 4, 0, 3), (2, 4, 0, 1),                 # mean 0.375 -> NA
    (3, 1, 0, 4), (3, 2, 1, 3), (3, 3, 1, 4),   # (3, 4) has no line -> NA
    *[(i, a, (i + a) % 2, 4) for i in (4, 5) for a in (1, 2, 3, 4)],
]
NA = None
EXPECTED = [[1, NA, 0, NA], [1, NA, 1, NA], [0, 1, 1, NA], [1, 0, 1, 0], [0, 1, 0, 1]]
CLASS_PCT = [[0.0, 2.9197080292, 50.0, 59.8540145985], [50.1, 100.0, 1.6393442623, 45.9016393443],
             [26.2773722628, 0.0, 3.6496350365, 99.0]]


def label_line(i, a, p, c, k) -> str:
    extra = " 0" if k % 7 == 3 else ""  # the release has a few lines with an extra field
    return f"{i} {a} {p} {c} {12.5 + k:.3f}{extra}"


def make(base, attributes_at_top=False, files=None, per_image=True):
    root = base / "CUB_200_2011"
    files = files or {}
    default = {
        "images.txt": [f"{i + 1} {n}" for i, n in enumerate(IMAGES)],
        "classes.txt": [f"{i + 1} {c}" for i, c in enumerate(CLASSES)],
        "image_class_labels.txt": [f"{i + 1} {c}" for i, c in enumerate(SPECIES)],
        "train_test_split.txt": [f"{i + 1} {t}" for i, t in enumerate(TRAIN)],
        "attributes/certainties.txt": ["1 not visible", "2 guessing", "3 probably", "4 definitely"],
        "attributes/class_attribute_labels_continuous.txt": [" ".join(map(str, r)) for r in CLASS_PCT],
    }
    if per_image:
        default["attributes/image_attribute_labels.txt"] = [label_line(*t, k) for k, t in enumerate(LINES)]
    for rel, lines in {**default, **files}.items():
        write(root / rel, lines)
    attrs = files.get("attributes.txt") or [f"{i + 1} {a}" for i, a in enumerate(ATTRIBUTES)]
    write(base / "attributes.txt" if attributes_at_top else root / "attributes" / "attributes.txt", attrs)
    return root


def load(root, **params):
    return cub.load(group_config("dataset", "cub", root=str(root), **params))


def as_lists(frame: pd.DataFrame) -> list[list]:
    return [[None if pd.isna(v) else int(v) for v in row] for row in frame.itertuples(index=False)]


def test_image_labels_follow_the_reliability_rule(tmp_path):
    ds = load(make(tmp_path))
    t = ds.labels
    assert t.tasks == ATTRIBUTES + ["species"] and t.multiclass == ("species",)
    assert list(t.labels.index) == [n[:-4] for n in IMAGES]
    assert all(str(t.labels[a].dtype) == "Int8" for a in ATTRIBUTES)
    assert as_lists(t.labels[ATTRIBUTES]) == EXPECTED
    assert t.labels["species"].tolist() == [s - 1 for s in SPECIES]
    assert t.split.tolist() == ["train", "test", "train", "train", "test"]
    assert ds.images is None and "images/ not found" in ds.no_images_reason


def test_threshold_and_confidence_params(tmp_path):
    root = make(tmp_path)
    # threshold 0.4: a lone 'guessing' (0.5) is now kept; (2, 4)'s mean of 0.375 still is not.
    low = as_lists(load(root, threshold=0.4).labels.labels[ATTRIBUTES])
    assert low[0][1] == 1 and low[1][3] is None
    # 'not visible' made fully confident: (1, 4) is kept as present; string keys (CLI) are accepted.
    conf = {"1": 1.0, "2": 0.5, "3": 0.75, "4": 1.0}
    assert as_lists(load(root, confidence=conf).labels.labels[ATTRIBUTES])[0][3] == 1


def test_attributes_txt_at_the_tarball_top_level(tmp_path):
    a = load(make(tmp_path / "a")).labels
    b = load(make(tmp_path / "b", attributes_at_top=True)).labels
    pd.testing.assert_frame_equal(a.labels, b.labels)


def test_class_level_labels(tmp_path):
    root = make(tmp_path, per_image=False)
    with pytest.raises(UserError,
                       match=r"image_attribute_labels\.txt not found: .* set dataset\.attribute_labels=class"):
        load(root)
    t = load(root, attribute_labels="class").labels
    by_class = [[0, 0, 0, 1], [1, 1, 0, 0], [0, 0, 0, 1]]  # > 50.0, so exactly 50.0 is absent
    assert as_lists(t.labels[ATTRIBUTES]) == [by_class[s - 1] for s in SPECIES]
    assert not t.labels[ATTRIBUTES].isna().any().any()
    assert as_lists(load(root, attribute_labels="class",
                         class_threshold=40.0).labels.labels[ATTRIBUTES])[3] == [0, 0, 0, 1]
    assert as_lists(load(root, attribute_labels="class",
                         class_threshold=45.0).labels.labels[ATTRIBUTES])[2] == [1, 1, 0, 1]


def test_images_found_in_label_row_order(tmp_path):
    root = make(tmp_path)
    for i, name in reversed(list(enumerate(IMAGES))):
        write_jpeg(root / "images" / name, value=30 + 45 * i)
    ds = load(root)
    assert ds.images.relpaths == [f"images/{n}" for n in IMAGES]
    assert ds.images.ids == list(ds.labels.labels.index)
    np.testing.assert_allclose(decoded_means(ds.images), 30 + 45 * np.arange(len(IMAGES)), atol=3)


def _labels_with(k, line):
    lines = [label_line(*t, j) for j, t in enumerate(LINES)]
    lines[k] = line
    return {"attributes/image_attribute_labels.txt": lines}


BAD = {
    # case: (files replaced, file named, line named, expected words)
    "is_present_2": (_labels_with(5, "2 1 2 2 3.5"), "image_attribute_labels.txt", 6, "field 3 is '2'"),
    "unknown_certainty": (_labels_with(8, "2 3 1 5 3.5"), "image_attribute_labels.txt", 9,
                          "certainty id in [1, 2, 3, 4]"),
    "image_id_out_of_range": (_labels_with(0, "6 1 1 4 3.5"), "image_attribute_labels.txt", 1, "image id 1..5"),
    "attribute_id_zero": (_labels_with(3, "1 0 1 4 3.5"), "image_attribute_labels.txt", 4, "field 2 is '0'"),
    "truncated_label_line": (_labels_with(10, "2 3 1"), "image_attribute_labels.txt", 11, "expected 4 fields, found 3"),
    "non_numeric_label": (_labels_with(12, "2 4 yes 3 1.0"), "image_attribute_labels.txt", 13, "field 3 is 'yes'"),
    "images_out_of_order": ({"images.txt": [f"{i + 1 if i != 2 else 7} {n}" for i, n in enumerate(IMAGES)]},
                            "images.txt", 3, "id 7; expected 3"),
    "class_labels_mismatched_ids": ({"image_class_labels.txt": [f"{i + 1 if i != 3 else 9} {c}"
                                                                for i, c in enumerate(SPECIES)]},
                                    "image_class_labels.txt", 4, "image 9; expected 4"),
    "class_disagrees_with_folder": ({"image_class_labels.txt": [f"{i + 1} {c if i != 1 else 2}"
                                                                for i, c in enumerate(SPECIES)]},
                                    "image_class_labels.txt", 2, "in folder '001.Black_footed_Albatross'"),
    "class_id_out_of_range": ({"image_class_labels.txt": [f"{i + 1} {c if i != 4 else 4}"
                                                          for i, c in enumerate(SPECIES)]},
                              "image_class_labels.txt", 5, "a class id 1..3"),
    "split_value": ({"train_test_split.txt": [f"{i + 1} {t if i != 2 else 2}" for i, t in enumerate(TRAIN)]},
                    "train_test_split.txt", 3, "is_training_image 0 or 1"),
    "split_short": ({"train_test_split.txt": [f"{i + 1} {t}" for i, t in enumerate(TRAIN[:4])]},
                    "train_test_split.txt", 5, "file ends after 4 rows"),
    "attributes_missing_name": ({"attributes.txt": ["1 has_bill_shape::dagger", "2"]}, "attributes.txt", 2,
                                "expected an id, whitespace, then a name"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_names_file_and_line(tmp_path, case):
    files, fname, line, expect = BAD[case]
    with pytest.raises(UserError) as err:
        load(make(tmp_path, files=files))
    msg = str(err.value)
    assert "\n" not in msg
    assert re.search(rf"{re.escape(fname)}, line {line}\b", msg), msg
    assert expect in msg, msg


def test_bad_class_matrix_names_line(tmp_path):
    rows = [" ".join(map(str, r)) for r in CLASS_PCT]
    rows[1] = "50.1 100.0 1.6"
    root = make(tmp_path, files={"attributes/class_attribute_labels_continuous.txt": rows})
    with pytest.raises(UserError, match=r"class_attribute_labels_continuous\.txt, line 2: expected 4 values"):
        load(root, attribute_labels="class")


def test_bad_params_missing_files_and_wrong_root(tmp_path):
    root = make(tmp_path / "a")
    with pytest.raises(UserError, match=r"unknown cub attribute_labels 'imgae'; did you mean: image"):
        load(root, attribute_labels="imgae")
    with pytest.raises(UserError, match=r"unknown cub parameter 'treshold'; did you mean: threshold"):
        load(root, treshold=0.4)
    with pytest.raises(UserError, match=r"cub confidence: no value for certainty id 4"):
        load(root, confidence={1: 0.0, 2: 0.5, 3: 0.75})
    with pytest.raises(UserError, match=r"cub confidence\[2\]='high': expected a number"):
        load(root, confidence={1: 0.0, 2: "high", 3: 0.75, 4: 1.0})
    with pytest.raises(UserError, match=r"cub threshold='x': expected float"):
        load(root, threshold="x")
    (root / "train_test_split.txt").unlink()
    with pytest.raises(UserError, match=r"train/test split not found: expected .*train_test_split\.txt"):
        load(root)
    with pytest.raises(UserError, match=r"cub root .*a: no CUB metadata found"):
        load(tmp_path / "a")
    with pytest.raises(UserError, match=r"cub root .*nowhere not found"):
        load(tmp_path / "nowhere")


def test_real_metadata_with_class_level_labels():
    root = shared_path("cub", "CUB_200_2011")
    t = load(root, attribute_labels="class").labels
    assert t.n == 11_788 and len(t.tasks) == 313 and t.tasks[-1] == "species"
    assert t.tasks[0] == "has_bill_shape::curved_(up_or_down)" and t.tasks[311] == "has_wing_pattern::multi-colored"
    assert t.split.value_counts().to_dict() == {"train": 5_994, "test": 5_794}
    assert t.n_classes("species") == 200 and t.labels["species"].min() == 0
    assert not t.labels[t.tasks[:312]].isna().any().any()
    # Class-level: H(attribute | species) is 0, every image of a species shares its row.
    assert (t.labels.groupby("species")[t.tasks[:312]].nunique() == 1).all().all()
