"""CelebA loader: the official CRLF formats on small files, every bad-input case, image trees, and the
real annotation files (sizes, splits, Table 1 row 9 of the paper)."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from helpers.data import decoded_means, shared_path, write, write_jpeg
from transferability.config import group_config
from transferability.data import celeba
from transferability.errors import UserError

NAMES = ("5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
         "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair "
         "Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face "
         "Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair "
         "Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young").split()
N = 6
RNG = np.random.default_rng(3)
ATTRS = RNG.choice([-1, 1], size=(N, 40))
IDENTITY = [2880, 2937, 8692, 2880, 4153, 10177]
PARTITION = [0, 0, 0, 1, 2, 2]


def attr_line(i: int, row) -> str:
    # Official: the file name, then each value right-aligned to width 2 after one space.
    return f"{i:06d}.jpg" + "".join(f" {v:2d}" for v in row)


def make(root, layout: str = "flat", attr_lines=None, identity_lines=None, partition_lines=None, count=N):
    anno = root / "Anno" if layout == "release" else root
    ev = root / "Eval" if layout == "release" else root
    attr_lines = attr_lines or [attr_line(i + 1, r) for i, r in enumerate(ATTRS)]
    write(anno / "list_attr_celeba.txt", [str(count), " ".join(NAMES) + " ", *attr_lines], "\r\n")
    write(anno / "identity_CelebA.txt",
          identity_lines or [f"{i + 1:06d}.jpg {v}" for i, v in enumerate(IDENTITY)], "\r\n")
    write(ev / "list_eval_partition.txt",
          partition_lines or [f"{i + 1:06d}.jpg {v}" for i, v in enumerate(PARTITION)], "\r\n")
    return root


def load(root, **params):
    return celeba.load(group_config("dataset", "celeba", root=str(root), **params))


def test_official_format_is_parsed(tmp_path):
    ds = load(make(tmp_path))
    t = ds.labels
    assert t.tasks == NAMES + ["identity"] and t.multiclass == ("identity",)
    assert list(t.labels.index) == [f"{i:06d}" for i in range(1, N + 1)]
    np.testing.assert_array_equal(t.labels[NAMES].to_numpy(), (ATTRS + 1) // 2)
    assert all(t.labels[a].dtype == np.int8 for a in NAMES)
    assert t.labels["identity"].tolist() == IDENTITY
    assert t.split.tolist() == ["train", "train", "train", "val", "test", "test"]
    assert ds.images is None and "img_align_celeba/ not found" in ds.no_images_reason


def test_release_layout_with_anno_and_eval_folders(tmp_path):
    flat = load(make(tmp_path / "flat")).labels
    release = load(make(tmp_path / "rel", layout="release")).labels
    pd.testing.assert_frame_equal(flat.labels, release.labels)
    pd.testing.assert_series_equal(flat.split, release.split)


@pytest.mark.parametrize("image_dir", ["img_align_celeba", "Img/img_align_celeba"])
def test_images_found_in_label_row_order(tmp_path, image_dir):
    root = make(tmp_path)
    # Written in reverse so directory order cannot stand in for label order.
    for i in reversed(range(N)):
        write_jpeg(root / image_dir / f"{i + 1:06d}.jpg", value=20 + 40 * i)
    ds = load(root)
    assert ds.images.relpaths == [f"{image_dir}/{i:06d}.jpg" for i in range(1, N + 1)]
    assert ds.images.ids == list(ds.labels.labels.index)
    np.testing.assert_allclose(decoded_means(ds.images), 20 + 40 * np.arange(N), atol=3)


def _bad_value_row():
    row = list(ATTRS[2])
    row[7] = 0
    return row


BAD = {
    # case: (file to edit, edit, file named, line named, what the message says)
    "truncated_row": ("attr", lambda: [attr_line(i + 1, r) if i != 3 else attr_line(4, r[:30])
                                       for i, r in enumerate(ATTRS)],
                      "list_attr_celeba.txt", 6, "expected 41 fields"),
    "extra_field": ("attr", lambda: [attr_line(i + 1, r) + (" 1" if i == 1 else "") for i, r in enumerate(ATTRS)],
                    "list_attr_celeba.txt", 4, "expected 41 fields"),
    "unknown_value": ("attr", lambda: [attr_line(i + 1, r if i != 2 else _bad_value_row())
                                       for i, r in enumerate(ATTRS)],
                      "list_attr_celeba.txt", 5, "value '0'; expected -1 or 1"),
    "count_too_big": ("count", lambda: N + 1, "list_attr_celeba.txt", N + 3,
                      "file ends after 6 data lines; expected 7"),
    "mismatched_ids": ("identity", lambda: [f"{i + 1 if i != 4 else 99:06d}.jpg {v}" for i, v in enumerate(IDENTITY)],
                       "identity_CelebA.txt", 5, "image '000099.jpg'; expected '000005.jpg'"),
    "identity_short": ("identity", lambda: [f"{i + 1:06d}.jpg {v}" for i, v in enumerate(IDENTITY[:-1])],
                       "identity_CelebA.txt", 6, "file ends after 5 rows"),
    "identity_long": ("identity", lambda: [f"{i + 1:06d}.jpg {v}" for i, v in enumerate(IDENTITY + [5])],
                      "identity_CelebA.txt", 7, "extra row '000007.jpg'"),
    "identity_not_int": ("identity", lambda: [f"{i + 1:06d}.jpg {v if i != 1 else 'x'}"
                                              for i, v in enumerate(IDENTITY)],
                         "identity_CelebA.txt", 2, "field 2 is 'x'"),
    "partition_value": ("partition", lambda: [f"{i + 1:06d}.jpg {v if i != 5 else 3}" for i, v in enumerate(PARTITION)],
                        "list_eval_partition.txt", 6, "expected 0, 1 or 2"),
    "partition_order": ("partition", lambda: [f"{i + 1:06d}.jpg {v}" for i, v in reversed(list(enumerate(PARTITION)))],
                        "list_eval_partition.txt", 1, "the same images in the same order"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_names_file_and_line(tmp_path, case):
    which, edit, fname, line, expect = BAD[case]
    kwargs = {"count": edit()} if which == "count" else {f"{which}_lines": edit()}
    root = make(tmp_path, **kwargs)
    with pytest.raises(UserError) as err:
        load(root)
    msg = str(err.value)
    assert "\n" not in msg
    assert re.search(rf"{re.escape(fname)}, line {line}\b", msg), msg
    assert expect in msg


def test_missing_file_and_wrong_root(tmp_path):
    root = make(tmp_path / "a")
    (root / "list_eval_partition.txt").unlink()
    with pytest.raises(UserError, match=r"partition file not found: expected .*list_eval_partition\.txt or "
                                        r".*Eval/list_eval_partition\.txt"):
        load(root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"celeba root .*empty: no CelebA annotation files found"):
        load(tmp_path / "empty")
    with pytest.raises(UserError, match=r"celeba root .*nowhere not found"):
        load(tmp_path / "nowhere")
    with pytest.raises(UserError, match=r"unknown celeba parameter 'split_seed'"):
        load(make(tmp_path / "b"), split_seed=1)


# Table 1, row 9: H(attribute | identity) in nats, as printed (3 decimals).
TABLE1 = {"Male": 0.017, "Bald": 0.026, "Gray_Hair": 0.052, "Mustache": 0.062, "Double_Chin": 0.083,
          "Attractive": 0.361, "Wavy_Hair": 0.381, "High_Cheekbones": 0.476, "Smiling": 0.521,
          "Mouth_Slightly_Open": 0.551}


@pytest.fixture(scope="module")
def real():
    return load(shared_path("celeba", "list_attr_celeba.txt").parent)


def test_real_files_sizes_and_splits(real):
    t = real.labels
    assert t.n == 202_599 and len(t.tasks) == 41 and t.tasks[-1] == "identity"
    assert t.split.value_counts().to_dict() == {"train": 162_770, "val": 19_867, "test": 19_962}
    assert t.labels["identity"].nunique() == 10_177 and t.labels["identity"].between(1, 10_177).all()
    # FORMATS.md: 1,830,201 ones among the attribute values.
    assert int(t.labels[t.tasks[:40]].to_numpy(dtype=np.int64).sum()) == 1_830_201


def test_real_files_reproduce_table1_row9_on_all_images(real):
    from transferability import ce_matrix

    labels = real.labels.labels
    ce = ce_matrix(labels[list(TABLE1)], labels[["identity"]])["identity"]
    assert {k: round(float(v), 3) for k, v in ce.items()} == TABLE1
    # The official train split alone does not: Male comes out 0.018 there.
    train = real.labels.subset("train").labels
    assert round(float(ce_matrix(train[["Male"]], train[["identity"]]).iloc[0, 0]), 3) == 0.018
