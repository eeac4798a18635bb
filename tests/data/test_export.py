"""`python -m transferability.data.export`: an embedded dataset written as an imagefolder reads back, through
dataset=folder, as the same tasks, rows, splits and pixels."""
import numpy as np
import pandas as pd
import pytest

from transferability.data.export import dataset_config, export, main
from transferability.data.registry import load_dataset
from transferability.errors import UserError


@pytest.mark.parametrize("name, overrides", [("digits", []), ("shapes", ["dataset.n=60", "dataset.image_size=16"]),
                                             ("digits", ["dataset.quantiles=[0.25,0.75]"])])
def test_export_reads_back_as_the_same_dataset(tmp_path, name, overrides):
    cfg = dataset_config(name, overrides)
    meta = export(cfg, tmp_path / "out")
    embedded = load_dataset(cfg)
    a, pixels = embedded.labels, embedded.images.array(cfg.image_size)
    back = load_dataset(dataset_config("folder", [f"dataset.root={tmp_path / 'out'}",
                                                  f"dataset.image_size={cfg.image_size}"]))
    b = back.labels
    assert b.tasks == a.tasks and b.multiclass == a.multiclass
    assert (b.split.to_numpy() == a.split.to_numpy()).all()
    assert (b.labels.to_numpy() == a.labels.to_numpy()).all()
    assert list(b.labels.index) == [f"images/{i}.png" for i in a.labels.index]
    decoded = back.images.array(cfg.image_size, cache_dir=tmp_path / "cache")
    assert decoded.dtype == pixels.dtype and np.array_equal(decoded, pixels)   # PNG is lossless, grey stays grey
    assert pd.read_csv(meta).columns[[0, -1]].tolist() == ["file_name", "split"]


def test_export_refuses_what_it_cannot_write(tmp_path, capsys):
    with pytest.raises(UserError, match="only the embedded datasets"):
        export(dataset_config("celeba", []), tmp_path / "c")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(SystemExit) as e:
        main(["digits", str(tmp_path / "full")])
    assert e.value.code == 2 and "is not empty: export into a new folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["digitz", str(tmp_path / "new")])
    assert "unknown dataset 'digitz'; did you mean: digits?" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
