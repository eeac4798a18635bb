"""dataset=table: a label file alone (an id column and one column per task), read by dataset=folder's rules."""
import pandas as pd
import pytest

from transferability.config import DatasetConfig
from transferability.data.registry import load_dataset
from transferability.errors import UserError

PARAMS = dict(split_seed=0, test_fraction=0.3, ignore=[], max_classes=64, quantiles=None)


def table(path, id_column="id", **params):
    return load_dataset(DatasetConfig(name="table", root=None, image_size=64, default_source="",
                                      params={**PARAMS, "labels": None if path is None else str(path),
                                              "id_column": id_column, **params}))


def test_ids_and_tasks_from_any_supported_file(tmp_path):
    frame = pd.DataFrame({"id": ["u1", "u2", "u3"], "a": ["x", "y", None], "b": [1, 0, 1]})
    frame.to_csv(tmp_path / "labels.csv", index=False)
    frame.to_parquet(tmp_path / "labels.parquet")
    for name in ("labels.csv", "labels.parquet"):
        ds = table(tmp_path / name)
        assert ds.images is None and "backbone=features backbone.path=" in ds.no_images_reason
        assert list(ds.labels.labels.index) == ["u1", "u2", "u3"] and ds.labels.tasks == ["a", "b"]
        assert ds.labels.labels["a"].isna().tolist() == [False, False, True]
    assert table(tmp_path / "labels.csv").locate(1) == f"{tmp_path / 'labels.csv'}, line 3, column id"
    assert table(tmp_path / "labels.parquet").locate(1) == f"{tmp_path / 'labels.parquet'}, row 2, column id"


def test_numeric_ids_stay_as_written(tmp_path):
    (tmp_path / "labels.csv").write_text("id,a\n007,1\n7,0\n")
    assert list(table(tmp_path / "labels.csv").labels.labels.index) == ["007", "7"]


@pytest.mark.parametrize("params, message", [
    ({"labels": None}, r"table: dataset.labels is not set"),
    ({"id_column": None}, r"table: dataset.id_column is not set"),
    ({"id_column": "image"}, r"labels.csv, line 1: no image column \(columns: id, a\) \(set dataset.id_column"),
    ({"labels": "nowhere.csv"}, r"label file not found: nowhere.csv"),
    ({"labels": "labels.txt"}, r"labels.txt: expected a .csv, .jsonl or .parquet label file"),
])
def test_bad_settings_are_one_line(tmp_path, params, message):
    (tmp_path / "labels.csv").write_text("id,a\nu1,1\nu1,0\n")
    kwargs = {"id_column": "id", **params}
    path = kwargs.pop("labels", tmp_path / "labels.csv")
    with pytest.raises(UserError, match=message):
        table(path, **kwargs)


def test_duplicate_ids_are_named(tmp_path):
    (tmp_path / "labels.csv").write_text("id,a\nu1,1\nu2,0\nu1,0\n")
    with pytest.raises(UserError, match=r"labels.csv, line 4, column id: 'u1' again \(first on line 2\)"):
        table(tmp_path / "labels.csv")
