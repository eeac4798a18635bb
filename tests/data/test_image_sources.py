"""Every image source honours the one interface the transfer stage calls (`fingerprint()`, `ids`, `channels`,
`array(size, cache_dir=, workers=)`), so a dataset cannot load its labels fine and then fail in the model
cache, as the generated shapes once did (`RenderedShapes` had no `fingerprint`)."""
import numpy as np
import pytest
from torchvision.io import write_png

from transferability.config import group_config
from transferability.data.images import FileImages
from transferability.data.registry import load_dataset


def _embedded(name, **params):
    cfg = group_config("dataset", name, image_size={"digits": 8, "shapes": 16}[name], **params)
    return load_dataset(cfg).images


def _files(tmp_path):
    import torch

    for i in range(3):
        write_png(torch.full((3, 12, 10), 40 * i, dtype=torch.uint8), str(tmp_path / f"{i}.png"))
    return FileImages(tmp_path, [f"{i}.png" for i in range(3)], ["a", "b", "c"], workers=1)


@pytest.mark.parametrize("make", [lambda tmp: _embedded("digits"), lambda tmp: _embedded("shapes", n=40),
                                  _files], ids=["digits", "shapes", "files"])
def test_every_image_source_has_the_transfer_interface(make, tmp_path):
    images = make(tmp_path)
    key = images.fingerprint()
    assert isinstance(key, str) and len(key) >= 16 and key == images.fingerprint()
    x = images.array(8, cache_dir=tmp_path / "cache", workers=1)
    assert x.shape == (len(images.ids), 8, 8, images.channels) and x.dtype == np.uint8


def test_shapes_fingerprint_follows_the_latents():
    assert _embedded("shapes", n=40).fingerprint() != _embedded("shapes", n=40, seed=1).fingerprint()
    assert _embedded("shapes", n=40).fingerprint() != _embedded("shapes", n=41).fingerprint()
