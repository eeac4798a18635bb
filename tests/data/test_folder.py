"""dataset=folder: what each column becomes, the three file formats, the splits, the images, and bad input named by
file, line and column."""
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from transferability.config import DatasetConfig
from transferability.data import folder
from transferability.data.registry import load_dataset
from transferability.errors import UserError

PARAMS = dict(split_seed=0, test_fraction=0.3, ignore=[], max_classes=64, quantiles=None)


def load(root, **params):
    return load_dataset(DatasetConfig(name="folder", root=str(root), image_size=8, default_source="",
                                      params={**PARAMS, **params}))


def write_csv(root, text: str, name: str = "metadata.csv"):
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(text.encode() if isinstance(text, str) else text)
    return root


def png(path, value, mode="L", size=(6, 5)):
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    Image.fromarray(np.full(shape, value, np.uint8), mode).save(path)


CSV = """file_name,colour,big,n_legs,note,split
a/1.png,red,true,4,x,train
a/2.png,blue,false,2,,train
b/3.png,,True,6,y,validation
b/c/4.png,red,FALSE,,z,test
5.png,green,false,4,x,val
"""


def test_columns_become_tasks_with_their_values_and_missing_cells(tmp_path):
    t = load(write_csv(tmp_path, CSV), ignore=["note"]).labels
    assert t.tasks == ["colour", "big", "n_legs"] and t.multiclass == ("colour", "n_legs")
    assert list(t.labels.index) == ["a/1.png", "a/2.png", "b/3.png", "b/c/4.png", "5.png"]
    assert t.split.tolist() == ["train", "train", "val", "test", "val"]
    assert t.labels["big"].dtype == bool and t.labels["big"].tolist() == [True, False, True, False, False]
    colour, legs = t.labels["colour"], t.labels["n_legs"]
    assert list(colour.cat.categories) == ["blue", "green", "red"] and colour.isna().tolist() == [0, 0, 1, 0, 0]
    assert list(legs.cat.categories) == [2, 4, 6] and pd.isna(legs.iloc[3]) and legs.iloc[0] == 4
    assert t.n_classes("colour") == 3 and t.n_classes("big") == 2


def test_csv_jsonl_and_parquet_give_the_same_table(tmp_path):
    rows = [{"file_name": "a.png", "kind": "cat", "age": 3, "ok": True, "split": "train"},
            {"file_name": "b.png", "kind": "dog", "age": 5, "ok": False, "split": "test"},
            {"file_name": "c.png", "kind": None, "age": None, "ok": True, "split": "train"},
            {"file_name": "d.png", "kind": "dog", "age": 3, "ok": None, "split": "validation"}]
    frame = pd.DataFrame(rows)
    csv = write_csv(tmp_path / "csv", "file_name,kind,age,ok,split\na.png,cat,3,true,train\nb.png,dog,5,false,test\n"
                                      "c.png,,,true,train\nd.png,dog,3,,validation\n")
    jsonl = write_csv(tmp_path / "jsonl", "\n".join(json.dumps(r) for r in rows) + "\n", "metadata.jsonl")
    (tmp_path / "parquet").mkdir()
    frame.astype({"age": "Int64", "ok": "boolean"}).to_parquet(tmp_path / "parquet" / "metadata.parquet")
    tables = [load(root).labels for root in (csv, jsonl, tmp_path / "parquet")]
    for t in tables[1:]:
        pd.testing.assert_frame_equal(t.labels, tables[0].labels)
        pd.testing.assert_series_equal(t.split, tables[0].split)
        assert t.multiclass == tables[0].multiclass == ()
    assert tables[0].labels["age"].isna().tolist() == [False, False, True, False]


def test_text_that_reads_as_numbers_is_numbers(tmp_path):
    text = "file_name,level,score,word\n1.png,01,0.5,nan\n2.png,1,1.0,NA\n3.png,2,1,nan\n"
    t = load(write_csv(tmp_path, text)).labels
    assert list(t.labels["level"].unique()) == [1, 2]          # "01" and "1" are one class
    assert sorted(t.labels["score"].cat.categories) == [0.5, 1.0]
    assert list(t.labels["word"].cat.categories) == ["NA", "nan"]   # only an empty cell is missing


def test_continuous_column_is_cut_at_its_median_or_at_quantiles(tmp_path):
    values = np.arange(100) * 1.5
    lines = ["file_name,size,kind"] + [f"{i}.png,{'' if i == 7 else v},{i % 3}" for i, v in enumerate(values)]
    root = write_csv(tmp_path, "\n".join(lines) + "\n")
    t = load(root).labels
    present = np.delete(values, 7)
    want = np.where(values > np.median(present), 1.0, 0.0)
    want[7] = np.nan
    np.testing.assert_array_equal(t.labels["size"].astype(float).to_numpy(), want)
    assert t.tasks == ["size", "kind"] and t.multiclass == ("kind",)
    q = load(root, quantiles=[0.25, 0.9]).labels
    assert q.tasks == ["size@q25", "size@q90", "kind"]
    assert q.labels["size@q90"].astype(float).sum() == (present > np.quantile(present, 0.9)).sum()
    assert load(root, max_classes=100).labels.n_classes("size") == 99   # at most max_classes: classes


def test_seeded_split_when_there_is_no_split_column(tmp_path):
    root = write_csv(tmp_path, "file_name,a\n" + "".join(f"{i}.png,{i % 2}\n" for i in range(100)))
    split = load(root).labels.split
    assert (split == "test").sum() == 30 and set(split) == {"train", "test"}
    assert load(root, test_fraction=0.3).labels.split.equals(split)
    assert not load(root, split_seed=1).labels.split.equals(split)
    # an ignored `split` column is not used either
    text = "file_name,a,split\n" + "".join(f"{i}.png,{i % 2},bad\n" for i in range(100))
    with_split = write_csv(tmp_path / "s", text)
    assert load(with_split, ignore=["split"]).labels.split.equals(split)


def test_estimate_never_opens_an_image(run_config, tmp_path, monkeypatch):
    import PIL.Image

    from transferability.data import images
    from transferability.stages.estimate import run_estimate

    root = write_csv(tmp_path / "data", CSV)     # none of the listed images exists
    for name, module in (("open", PIL.Image), ("cache_key", images)):
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("an image was opened"))
    run = run_config(["stage=estimate", "dataset=folder", f"dataset.root={root}", "dataset.ignore=[note]",
                      "split=all"])
    ce = pd.read_csv(run_estimate(run) / "ce.csv")
    assert set(ce.source) == {"colour", "big", "n_legs"}


def test_images_anywhere_under_the_root_decoded_once(tmp_path):
    root = write_csv(tmp_path, "file_name,a\nx/1.png,0\n2.bmp,1\ny/z/3.tif,0\n")
    png(root / "x" / "1.png", 10)
    png(root / "2.bmp", 20)
    png(root / "y" / "z" / "3.tif", 30)
    images = load(root).images
    out = images.array(4, cache_dir=tmp_path / "cache")
    assert out.shape == (3, 4, 4, 1) and images.channels == 1          # all grey: one channel
    assert out.reshape(3, -1).mean(1).tolist() == [10, 20, 30]
    assert isinstance(images.array(4, cache_dir=tmp_path / "cache"), np.memmap)
    png(root / "2.bmp", (200, 0, 0), mode="RGB")                         # one colour image: the set is RGB
    rgb = load(root).images.array(4, cache_dir=tmp_path / "cache")
    assert rgb.shape == (3, 4, 4, 3) and (rgb[0] == 10).all() and (rgb[1][..., 0] == 200).all()


def test_folder_and_file_images_never_share_a_cache_entry(tmp_path):
    from transferability.data.images import FileImages
    from transferability.data.pil_images import PILImages

    png(tmp_path / "1.png", 5, mode="RGB")
    a = FileImages(tmp_path, ["1.png"], ["1"]).cache_file(4, tmp_path / "c")
    b = PILImages(tmp_path, ["1.png"], ["1"]).cache_file(4, tmp_path / "c")
    assert a != b


# -- bad input: one line naming the file, the line and the column ----------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("path,a\n1.png,0\n", r"metadata.csv, line 1: no file_name column \(columns: path, a\)"),
    ("file_name,a\n1.png,0\n2.png,1\n1.png,0\n",
     r"metadata.csv, line 4, column file_name: '1.png' again \(first on line 2\)"),
    ("file_name,a,split\n1.png,0,train\n2.png,1,dev\n",
     r"metadata.csv, line 3, column split: split 'dev'; expected train, validation \(or val\) or test"),
    ("file_name,a,split\n1.png,0,train\n2.png,1,\n", r"metadata.csv, line 3, column split: split ''"),
    ("file_name,a,b\n1.png,0,1\n2.png,1,0,7\n", r"metadata.csv, line 3: 4 fields; the header has 3"),
    (b"file_name,a,b\n1.png,0,1\n2.png,caf\xe9,0\n",
     r"metadata.csv, line 3, column a: not UTF-8 text \(byte 0xe9\)"),
    ("file_name,a\n1.png,0\n\n../2.png,1\n",
     r"metadata.csv, line 4, column file_name: '../2.png' is not a path inside"),
    ("file_name,a\n1.png,0\n,1\n", r"metadata.csv, line 3, column file_name: empty"),
    ("file_name,a,a\n1.png,0,1\n", r"metadata.csv, line 1: column 'a' appears twice"),
    ("file_name,split\n1.png,train\n", r"metadata.csv: no task columns"),
])
def test_bad_metadata_is_one_line_naming_file_line_and_column(tmp_path, text, message):
    root = write_csv(tmp_path, text)
    with pytest.raises(UserError, match=message) as e:
        load(root)
    assert "\n" not in str(e.value) and str(root / "metadata.csv") in str(e.value)


def test_a_quoted_line_break_counts_in_the_line_named(tmp_path):
    root = write_csv(tmp_path, 'file_name,note,split\n1.png,"two\nlines",train\n2.png,x,dev\n')
    with pytest.raises(UserError, match=r"line 4, column split: split 'dev'"):
        load(root)


@pytest.mark.parametrize("broken", ["missing", "unreadable"])
def test_a_listed_image_missing_or_unreadable_names_its_line(tmp_path, broken):
    root = write_csv(tmp_path, "file_name,a\n1.png,0\nsub/2.png,1\n3.png,0\n")
    for name in ("1.png", "3.png"):
        png(root / name, 9)
    if broken == "unreadable":
        (root / "sub").mkdir()
        (root / "sub" / "2.png").write_bytes(b"\x89PNG not really")
    images = load(root).images
    what = "image file not found: " if broken == "missing" else "cannot decode image "
    with pytest.raises(UserError, match=rf"metadata.csv, line 3, column file_name: {what}\S*sub/2.png") as e:
        images.array(4, cache_dir=tmp_path / "cache")
    assert "\n" not in str(e.value)
    # nothing written but the (empty) lock file the decoding job held
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.suffix != ".lock"]


def test_metadata_file_missing_or_twice(tmp_path):
    tmp_path.joinpath("d").mkdir()
    with pytest.raises(UserError, match=r"folder: no metadata file in .*d: expected metadata.csv, metadata.jsonl"):
        load(tmp_path / "d")
    write_csv(tmp_path / "d", "file_name,a\n1.png,0\n")
    write_csv(tmp_path / "d", '{"file_name": "1.png", "a": 0}\n', "metadata.jsonl")
    with pytest.raises(UserError, match="holds metadata.csv and metadata.jsonl: keep one metadata file"):
        load(tmp_path / "d")
    with pytest.raises(UserError, match="folder: dataset.root is not set"):
        folder.load(DatasetConfig(name="folder", root=None, image_size=8, default_source="", params=PARAMS))


def test_bad_jsonl_lines_are_named(tmp_path):
    root = write_csv(tmp_path, '{"file_name": "1.png", "a": 0}\n{"file_name": "2.png", "a": [1]}\n',
                     "metadata.jsonl")
    with pytest.raises(UserError, match=r"metadata.jsonl, line 2, column a: a JSON list"):
        load(root)
    (root / "metadata.jsonl").write_text('{"file_name": "1.png", "a": 0}\n\n{"file_name": "2.png", "a": 1,}\n')
    with pytest.raises(UserError, match=r"metadata.jsonl, line 3: not JSON"):
        load(root)


@pytest.mark.parametrize("params, message", [
    ({"test_fraction": 1.0}, r"folder test_fraction=1.0: expected a number in \(0, 1\)"),
    ({"max_classes": 1}, r"folder max_classes=1: expected an integer >= 2"),
    ({"ignore": ["nope"]}, r"unknown column in ignore= of metadata.csv: 'nope'; did you mean: note\?"),
    ({"ignore": ["file_name"]}, r"'file_name' names each row"),
    ({"quantiles": [0.5, 2]}, r"folder quantiles=\[0.5, 2\]: expected a list of distinct numbers"),
    ({"max_clases": 3}, r"unknown folder parameter 'max_clases'; did you mean: max_classes"),
])
def test_bad_parameters_are_one_line(tmp_path, params, message):
    with pytest.raises(UserError, match=message):
        load(write_csv(tmp_path, CSV), **params)


def test_every_parameter_has_its_home_in_the_yaml():
    import yaml

    from helpers.paths import CONF

    for name, cls in (("folder", folder.FolderParams), ("table", __import__(
            "transferability.data.table", fromlist=["TableParams"]).TableParams)):
        conf = yaml.safe_load((CONF / "dataset" / f"{name}.yaml").read_text())
        fields = set(cls.__dataclass_fields__)
        assert fields <= set(conf), fields - set(conf)
    with pytest.raises(UserError, match=r"folder: parameter\(s\) max_classes not set"):
        folder.load(DatasetConfig(name="folder", root="/", image_size=8, default_source="",
                                  params={k: v for k, v in PARAMS.items() if k != "max_classes"}))


def test_a_worker_process_names_the_line_of_an_unreadable_image(tmp_path, monkeypatch):
    from transferability.data import images as image_module

    monkeypatch.setattr(image_module, "_MIN_PARALLEL", 0)
    root = write_csv(tmp_path, "file_name,a\n" + "".join(f"{i}.png,{i % 2}\n" for i in range(80)))
    for i in range(80):
        png(root / f"{i}.png", i, mode="RGB")
    (root / "70.png").write_bytes(b"not an image")
    with pytest.raises(UserError, match=r"metadata.csv, line 72, column file_name: cannot decode image \S*/70.png"):
        load(root).images.array(4, cache_dir=tmp_path / "cache", workers=2)


def test_image_file_error_survives_the_trip_from_a_worker():
    import pickle

    from transferability.data.images import ImageFileError

    e = pickle.loads(pickle.dumps(ImageFileError("cannot decode image x.png: bad", 7)))
    assert isinstance(e, UserError) and (str(e), e.row) == ("cannot decode image x.png: bad", 7)
