"""The folder bench's generated metadata.csv is what the section says it is, read by dataset=folder."""
from transferability.bench.folder import write_metadata
from transferability.config import DatasetConfig
from transferability.data.registry import load_dataset


def test_generated_metadata_has_the_promised_tasks(tmp_path):
    kinds = write_metadata(tmp_path / "metadata.csv", 4000, 16)
    params = dict(split_seed=0, test_fraction=0.3, ignore=[], max_classes=64, quantiles=None)
    table = load_dataset(DatasetConfig(name="folder", root=str(tmp_path), image_size=8, default_source="",
                                       params=params)).labels
    assert kinds == {"binary": 12, "multiclass": 4} and len(table.tasks) == 16 and table.n == 4000
    assert len(table.multiclass) == 4 and all(table.n_classes(t) == 2 for t in table.tasks if t not in table.multiclass)
    missing = table.labels.isna().mean()
    assert (missing.iloc[1::2].between(0.03, 0.07)).all() and (missing.iloc[::2] == 0).all()
    assert set(table.split) == {"train", "val", "test"}
    assert {str(table.labels[t].dtype) for t in table.tasks} >= {"bool", "category", "int8"}   # every kind of value
