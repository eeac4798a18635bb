"""AwA2 loader: the official tab/width formats on small files, image listing vs. JPEGImages/ walk,
the seeded split, every bad-input case, and the real metadata with the derived listing."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from helpers.data import decoded_means, shared_path, write, write_jpeg
from transferability.config import group_config
from transferability.data import awa2
from transferability.errors import UserError

CLASSES = ["antelope", "grizzly+bear", "killer+whale"]
PREDICATES = ["black", "white", "blue", "flippers"]
MATRIX = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]])
PER_CLASS = [4, 3, 5]


def relpaths() -> list[tuple[str, int]]:
    return [(f"JPEGImages/{c}/{c}_{10001 + k}.jpg", i + 1) for i, c in enumerate(CLASSES) for k in range(PER_CLASS[i])]


def make(root, classes_lines=None, predicates_lines=None, matrix_lines=None):
    # Official: "%6d\t%s" lines for both lists, space-separated 0/1 matrix, LF endings.
    write(root / "classes.txt", classes_lines or [f"{i + 1:6d}\t{c}" for i, c in enumerate(CLASSES)])
    write(root / "predicates.txt", predicates_lines or [f"{i + 1:6d}\t{p}" for i, p in enumerate(PREDICATES)])
    write(root / "predicate-matrix-binary.txt", matrix_lines or [" ".join(map(str, r)) for r in MATRIX])
    return root


def make_listing(path, lines=None):
    # The listing's order is deliberately not path order: the loader must sort.
    return write(path, lines or [f"{p} {c}" for p, c in reversed(relpaths())])


def load(root, **params):
    params.setdefault("n_test", 3)
    return awa2.load(group_config("dataset", "awa2", root=str(root), **params))


def test_listing_is_parsed_and_expanded_to_images(tmp_path):
    root = make(tmp_path / "Animals_with_Attributes2")
    ds = load(root, image_list=str(make_listing(tmp_path / "list.txt")))
    t = ds.labels
    assert t.tasks == PREDICATES + ["class"] and t.multiclass == ("class",)
    expected = sorted(relpaths())
    assert list(t.labels.index) == [p[len("JPEGImages/"):-len(".jpg")] for p, _ in expected]
    cls = np.array([c - 1 for _, c in expected])
    assert t.labels["class"].tolist() == cls.tolist()
    np.testing.assert_array_equal(t.labels[PREDICATES].to_numpy(), MATRIX[cls])
    assert all(t.labels[p].dtype == np.int8 for p in PREDICATES)
    assert t.split.value_counts().to_dict() == {"train": 9, "test": 3}
    assert ds.images is None and "JPEGImages/ not found" in ds.no_images_reason


def test_split_is_seeded_and_independent_of_listing_order(tmp_path):
    root = make(tmp_path / "r")
    fwd = make_listing(tmp_path / "fwd.txt", [f"{p} {c}" for p, c in relpaths()])
    rev = make_listing(tmp_path / "rev.txt")
    a = load(root, image_list=str(fwd), split_seed=5).labels.split
    pd.testing.assert_series_equal(a, load(root, image_list=str(rev), split_seed=5).labels.split)
    splits = {tuple(load(root, image_list=str(fwd), split_seed=s).labels.split) for s in range(6)}
    assert len(splits) > 1


def test_walk_finds_images_in_label_row_order_and_agrees_with_listing(tmp_path):
    root = make(tmp_path / "Animals_with_Attributes2")
    for k, (rel, _) in enumerate(relpaths()):
        write_jpeg(root / rel, value=10 + 18 * k)
    (root / "JPEGImages" / "antelope" / ".DS_Store").write_bytes(b"x")  # not an image: ignored
    ds = load(root)
    expected = sorted(relpaths())
    assert ds.images.relpaths == [p for p, _ in expected]
    assert ds.images.ids == list(ds.labels.labels.index)
    brightness = {rel: 10 + 18 * k for k, (rel, _) in enumerate(relpaths())}
    np.testing.assert_allclose(decoded_means(ds.images), [brightness[p] for p, _ in expected], atol=3)
    listed = load(root, image_list=str(make_listing(tmp_path / "l.txt"))).labels
    # With images present the walk wins; it yields the very table the listing does.
    pd.testing.assert_frame_equal(ds.labels.labels, listed.labels)
    pd.testing.assert_series_equal(ds.labels.split, listed.split)


def _listing(edit):
    lines = [f"{p} {c}" for p, c in relpaths()]
    lines[4] = edit(lines[4])
    return lines


BAD = {
    # case: (what to edit, edited lines, file named, line named, expected words)
    "classes_space_not_tab": ("classes", [f"{i + 1:6d} {c}" for i, c in enumerate(CLASSES)], "classes.txt", 1, "a TAB"),
    "predicates_ids_out_of_order": ("predicates",
                                    [f"{i + 1 if i != 2 else 9:6d}\t{p}" for i, p in enumerate(PREDICATES)],
                                    "predicates.txt", 3, "id 9; expected 3"),
    "matrix_short_row": ("matrix", ["0 1 0 0", "1 0 0", "1 1 1 1"], "predicate-matrix-binary.txt", 2,
                         "expected 4 values"),
    "matrix_value": ("matrix", ["0 1 0 0", "1 0 0 0", "1 1 2 1"], "predicate-matrix-binary.txt", 3,
                     "value '2'; expected 0 or 1"),
    "matrix_missing_row": ("matrix", ["0 1 0 0", "1 0 0 0"], "predicate-matrix-binary.txt", 3,
                           "expected 3 (one per class)"),
    "listing_wrong_class_id": ("listing", _listing(lambda s: s[:-1] + "3"), "list.txt", 5,
                               "class id 3 is 'killer+whale' in classes.txt, "
                               "but the image is in folder 'grizzly+bear'"),
    "listing_id_out_of_range": ("listing", _listing(lambda s: s[:-1] + "51"), "list.txt", 5, "expected 1..3"),
    "listing_not_int": ("listing", _listing(lambda s: s[:-1] + "x"), "list.txt", 5, "class id 'x'"),
    "listing_bad_path": ("listing", _listing(lambda s: "images/" + s), "list.txt", 5,
                         "expected JPEGImages/<class>/<file>"),
    "listing_truncated": ("listing", _listing(lambda s: s.split()[0]), "list.txt", 5, "found 1 fields"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_names_file_and_line(tmp_path, case):
    which, lines, fname, line, expect = BAD[case]
    root = make(tmp_path / "r", **({} if which == "listing" else {f"{which}_lines": lines}))
    listing = make_listing(tmp_path / "list.txt", lines if which == "listing" else None)
    with pytest.raises(UserError) as err:
        load(root, image_list=str(listing))
    msg = str(err.value)
    assert "\n" not in msg
    assert re.search(rf"{re.escape(fname)}, line {line}\b", msg), msg
    assert expect in msg, msg


def test_missing_inputs_and_bad_params(tmp_path):
    root = make(tmp_path / "r")
    with pytest.raises(UserError, match=r"JPEGImages/ not found and no image_list given"):
        load(root)
    with pytest.raises(UserError, match=r"image_list .*nope\.txt not found"):
        load(root, image_list=str(tmp_path / "nope.txt"))
    listing = str(make_listing(tmp_path / "list.txt"))
    with pytest.raises(UserError, match=r"awa2 n_test=12: expected 1\.\.11"):
        load(root, image_list=listing, n_test=12)
    with pytest.raises(UserError, match=r"unknown awa2 parameter 'split_sed'; did you mean: split_seed"):
        load(root, image_list=listing, split_sed=1)
    with pytest.raises(UserError, match=r"awa2 split_seed='1': expected int"):
        load(root, image_list=listing, split_seed="1")
    (root / "predicates.txt").unlink()
    with pytest.raises(UserError, match=r"predicate list not found: expected .*predicates\.txt"):
        load(root, image_list=listing)
    with pytest.raises(UserError, match=r"awa2 root .*nowhere not found"):
        load(tmp_path / "nowhere", image_list=listing)


def test_unknown_class_folder_is_named(tmp_path):
    root = make(tmp_path / "r")
    write_jpeg(root / "JPEGImages" / "grizly+bear" / "grizly+bear_10001.jpg", 100)
    with pytest.raises(UserError, match=r"JPEGImages/grizly\+bear: unknown class folder 'grizly\+bear'; "
                                        r"did you mean: grizzly\+bear"):
        load(root)


def test_real_metadata_with_derived_listing():
    root = shared_path("awa2", "Animals_with_Attributes2")
    listing = shared_path("awa2", "derived", "awa2_all_images.txt")
    ds = awa2.load(group_config("dataset", "awa2", root=str(root), image_list=str(listing)))
    t = ds.labels
    assert t.n == 37_322 and len(t.tasks) == 86 and t.tasks[0] == "black" and t.tasks[-1] == "class"
    assert t.split.value_counts().to_dict() == {"train": 33_568, "test": 3_754}
    counts = pd.read_csv(shared_path("awa2", "derived", "images_per_class.txt"), sep="\t", header=None)
    assert t.labels["class"].value_counts().sort_index().tolist() == counts[2].tolist()
    # Class-level predicates: every image of a class carries its class's matrix row.
    matrix = np.loadtxt(root / "predicate-matrix-binary.txt", dtype=np.int8)
    np.testing.assert_array_equal(t.labels[t.tasks[:85]].to_numpy(), matrix[t.labels["class"].to_numpy()])


def test_listing_next_to_the_release_is_found_without_options(tmp_path, caplog):
    """Reported fault: `stage=estimate dataset=awa2` failed on the shipped data unless image_list was given."""
    root = make(tmp_path / "awa2" / "Animals_with_Attributes2")
    make_listing(tmp_path / "awa2" / "derived" / "awa2_all_images.txt")
    ds = load(root)
    assert ds.labels.n == sum(PER_CLASS) and ds.images is None
    assert "derived/awa2_all_images.txt" in caplog.text


def test_real_release_without_options():
    root = shared_path("awa2", "Animals_with_Attributes2")
    assert awa2.load(group_config("dataset", "awa2", root=str(root))).labels.n == 37_322
