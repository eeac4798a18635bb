"""The source-model cache: keyed by the images too, every file checked against its checksum before use,
and the run folder's model.pt a copy the cache does not share."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from transferability.data import registry
from transferability.data.images import ArrayImages
from transferability.stages.transfer import run_transfer


@pytest.fixture
def digits_run(run_config):
    return run_config(["dataset=digits", "source=even", "trainer=debug", "trainer.limit_train_batches=null",
                       "target=[even,digit,wide]"])


def entry(run) -> Path:
    (d,) = [p for p in (Path(run.paths.cache) / "models").iterdir() if p.is_dir()]   # beside it: its lock file
    return d


def test_other_images_under_the_same_labels_are_another_model(digits_run, monkeypatch, caplog):
    """Reported fault: swap every image, keep the labels, force=true: the old model was reused."""
    run_transfer(digits_run)
    real = registry.load_dataset

    def inverted(cfg):
        ds = real(cfg)
        pixels = ds.images.array(ds.images._images.shape[1])
        return replace(ds, images=ArrayImages(255 - pixels, ds.images.ids))

    monkeypatch.setattr("transferability.stages.transfer.load_dataset", inverted)
    caplog.clear()
    run_transfer(replace(digits_run, force=True))
    assert "reusing source model" not in caplog.text
    assert len([p for p in (Path(digits_run.paths.cache) / "models").iterdir() if p.is_dir()]) == 2


@pytest.mark.parametrize("name,damage", [
    ("model.pt", lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])),       # truncated
    ("model.pt", lambda p: p.write_bytes(p.read_bytes()[:100] + b"\0" * 64 + p.read_bytes()[164:])),  # garbled
    ("embeddings.npz", lambda p: p.write_bytes(p.read_bytes()[:200])),
    ("meta.json", lambda p: p.write_text('{"epochs": ')),
    ("manifest.json", lambda p: p.write_text("[]")),
])
def test_damaged_cache_file_is_recomputed_with_a_notice(digits_run, caplog, name, damage):
    first = pd.read_csv(run_transfer(digits_run) / "results.csv")
    damage(entry(digits_run) / name)
    caplog.clear()
    out = run_transfer(replace(digits_run, force=True))
    printed = caplog.text
    assert "recomputing the source model" in printed and "reusing" not in printed
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), first)   # same seed, same numbers
    caplog.clear()
    run_transfer(replace(digits_run, force=True))
    assert "reusing source model" in caplog.text   # the recomputed entry is sealed again


def test_run_folder_checkpoint_cannot_alter_the_cache(digits_run, caplog):
    out = run_transfer(digits_run)
    cached = entry(digits_run) / "model.pt"
    before = cached.read_bytes()
    with open(out / "model.pt", "r+b") as f:   # edit the run folder's copy in place
        f.write(b"garbage")
    assert cached.read_bytes() == before
    caplog.clear()
    run_transfer(replace(digits_run, force=True))
    assert "reusing source model" in caplog.text


def test_in_memory_images_fingerprint_follows_pixels():
    a = np.zeros((3, 4, 4), np.uint8)
    b = a.copy()
    b[1, 2, 2] = 1
    assert ArrayImages(a, list("xyz")).fingerprint() == ArrayImages(a.copy(), list("xyz")).fingerprint()
    assert ArrayImages(a, list("xyz")).fingerprint() != ArrayImages(b, list("xyz")).fingerprint()
