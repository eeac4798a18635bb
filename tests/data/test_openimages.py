"""Open Images loader on small files in the release's exact format: values, unknown pairs, splits, both
class-description formats, names, bad lines; and the full-size generator's format and hierarchy at small size."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from helpers.data import write
from transferability.config import group_config
from transferability.data import openimages, openimages_synth
from transferability.errors import UserError

CLASSES = ["LabelName,DisplayName", "/m/0bt9lr,Dog", "/m/01lrl,Carnivore", '/m/0k4j,"Car, sports"', "/m/04yx4,Man",
           "/m/0dzct,Man"]
TRAIN = ["ImageID,Source,LabelName,Confidence",
         "000002b66c9c498e,verification,/m/0bt9lr,1",
         "000002b66c9c498e,verification,/m/01lrl,1",
         "000002b66c9c498e,crowdsource-verification,/m/0k4j,0",
         "000002b97e5471a0,verification,/m/01lrl,0",
         "000002b97e5471a0,verification,/m/0bt9lr,0",
         "000002b97e5471a0,verification,/m/0bt9lr,0",          # listed twice, same verdict: kept once
         "000002c707c9895e,verification,/m/0k4j,1"]
VALIDATION = ["ImageID,Source,LabelName,Confidence",
              "0001eeaf4aed83f9,verification,/m/0bt9lr,1",
              "0001eeaf4aed83f9,verification,/m/04yx4,0"]
NA = np.nan
# rows: the three train images then the validation one; columns: the five classes in file order
EXPECTED = [[1, 1, 0, NA, NA], [0, 0, NA, NA, NA], [NA, NA, 1, NA, NA], [1, NA, NA, 0, NA]]


def make(tmp_path, train=None, classes=None, validation=None, class_file="oidv6-class-descriptions.csv"):
    root = tmp_path / "oi"
    write(root / class_file, CLASSES if classes is None else classes)
    write(root / "oidv6-train-annotations-human-imagelabels.csv", TRAIN if train is None else train)
    write(root / "validation-annotations-human-imagelabels.csv", VALIDATION if validation is None else validation)
    return root


def load(root, **params):
    return openimages.load(group_config("dataset", "openimages", root=str(root), **params)).labels


def test_values_unknown_pairs_and_splits(tmp_path):
    t = load(make(tmp_path), chunk_lines=2)   # tiny chunks: codes must join up across chunks and files
    assert t.tasks == ["/m/0bt9lr", "/m/01lrl", "/m/0k4j", "/m/04yx4", "/m/0dzct"]
    assert list(t.display) == ["Dog", "Carnivore", "Car, sports", "Man", "Man"]
    assert list(t.image_ids) == ["000002b66c9c498e", "000002b97e5471a0", "000002c707c9895e", "0001eeaf4aed83f9"]
    assert list(t.split) == ["train", "train", "train", "val"]
    np.testing.assert_array_equal(t.labels.to_numpy(), np.array(EXPECTED, dtype=float))
    assert len(t.present) == 8                    # the duplicate line counted once
    assert t.subset("val").n == 1 and t.subset("val").labels.iloc[0, 0] == 1


def test_unverified_negative_fills_unknown_with_absent(tmp_path):
    t = load(make(tmp_path), unverified="negative")
    np.testing.assert_array_equal(t.labels.to_numpy(), np.nan_to_num(np.array(EXPECTED, dtype=float)))
    p, a = t.indicators(np.arange(5))
    assert a is None and p.sum() == 4
    with pytest.raises(UserError, match="unverified='maybe': expected missing or negative"):
        load(make(tmp_path), unverified="maybe")


def test_class_file_without_header_v4_name(tmp_path):
    root = make(tmp_path, classes=CLASSES[1:], class_file="class-descriptions.csv")
    assert load(root).tasks[0] == "/m/0bt9lr"


def test_task_names_by_id_or_unique_display_name(tmp_path):
    t = load(make(tmp_path))
    assert t.select(["Dog", "/m/01lrl"]) == ["/m/0bt9lr", "/m/01lrl"]
    with pytest.raises(UserError, match="display name of 2 tasks"):
        t.check_task("Man")
    with pytest.raises(UserError, match="did you mean: Dog"):
        t.check_task("Dgo")
    assert t.resolve_source(None, 1, default="") == "/m/01lrl" and t.resolve_source(None, None, "all") == "all"
    with pytest.raises(UserError, match="no source given"):
        t.resolve_source(None, None, default="")


@pytest.mark.parametrize("line, lineno, message", [
    ("000002c707c9895e,verification,/m/0k4j", 4, "expected 4 fields"),
    ("000002c707c9895e,verification,/m/0k4j,1,x", 4, "expected 4 fields"),
    ("000002c707c9895e,verification,/m/0k4j,2", 4, "Confidence '2'; expected 1"),
    ("000002c707c9895e,verification,/m/0k4j,0.9", 4, "Confidence '0.9'"),
    ("000002c707c9895e,verification,/m/0zzzz,1", 4, "LabelName '/m/0zzzz' is not in oidv6-class-descriptions.csv"),
    (",verification,/m/0k4j,1", 4, "empty ImageID"),
])
def test_bad_label_line_names_file_and_line(tmp_path, line, lineno, message):
    train = TRAIN[:3] + [line] + TRAIN[3:]
    with pytest.raises(UserError) as e:
        load(make(tmp_path, train=train), chunk_lines=3)
    path = tmp_path / "oi" / "oidv6-train-annotations-human-imagelabels.csv"
    assert str(e.value).startswith(f"{path}, line {lineno}: ") and message in str(e.value)


def test_other_bad_inputs(tmp_path):
    with pytest.raises(UserError, match=r"line 1: header 'ImageID,LabelName,Confidence'; expected ImageID,Source"):
        load(make(tmp_path, train=["ImageID,LabelName,Confidence", "a,/m/0k4j,1"]))
    with pytest.raises(UserError, match="both Confidence 1 and 0 for class '/m/0k4j'"):
        load(make(tmp_path, train=TRAIN + ["000002c707c9895e,verification,/m/0k4j,0"]))
    with pytest.raises(UserError, match="is in both oidv6-train.* and validation-"):
        load(make(tmp_path, validation=VALIDATION + ["000002c707c9895e,verification,/m/0k4j,1"]))
    with pytest.raises(UserError, match=r"oidv6-class-descriptions.csv, line 3: LabelName '/m/0bt9lr' is listed again"):
        load(make(tmp_path, classes=CLASSES[:2] + ["/m/0bt9lr,Hound"] + CLASSES[2:]))
    with pytest.raises(UserError, match="no .*-annotations-human-imagelabels.csv file"):
        load(tmp_path)
    (tmp_path / "odd").mkdir()
    write(tmp_path / "odd" / "x-annotations-human-imagelabels.csv", TRAIN)
    with pytest.raises(UserError, match="cannot tell the split"):
        load(tmp_path / "odd")


def test_generator_writes_the_release_format_with_its_hierarchy(tmp_path):
    root = tmp_path / "gen"
    stats = openimages_synth.generate(root, openimages_synth.SynthSpec(n_images=3000, n_classes=60, seed=1),
                                      chunk_images=700, progress=False)
    lines = (root / openimages_synth.LABELS_FILE).read_text().splitlines()
    assert lines[0] == "ImageID,Source,LabelName,Confidence" and len(lines) == stats["lines"] + 1
    assert all(re.fullmatch(r"[0-9a-f]{16},(verification|crowdsource-verification),/m/0[0-9a-f]{5},[01]", x)
               for x in lines[1:])
    t = load(root)
    assert t.n == 3000 and len(t.present) == stats["lines"] and t.present.sum() == stats["present"] > 0
    assert (~t.present).sum() > 0
    dense = t.labels
    parent = pd.read_csv(root / openimages_synth.HIERARCHY_FILE)
    assert len(parent) > 10
    for child, par in parent.itertuples(index=False):
        assert (dense.loc[dense[child] == 1, par] == 1).all()     # a present child implies its parent
    counts = (dense == 1).sum()
    assert counts.iloc[:5].mean() > 5 * counts.iloc[-20:].mean()   # power-law: early classes far more frequent
    again = tmp_path / "again"
    openimages_synth.generate(again, openimages_synth.SynthSpec(n_images=3000, n_classes=60, seed=1),
                              chunk_images=700, progress=False)
    assert (again / openimages_synth.LABELS_FILE).read_bytes() == (root / openimages_synth.LABELS_FILE).read_bytes()
