"""Backbones: output shapes at the dataset sizes, channel adaptation, local-only weights, feature lookup."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from transferability.config import group_config
from transferability.errors import UserError
from transferability.models.backbones import BACKBONES, build_backbone, load_features


def _out(net, in_channels, size, n=2):
    net.eval()
    with torch.no_grad():
        return net(torch.randn(n, in_channels, size, size))


@pytest.mark.parametrize("size", [8, 32, 64])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_small_cnn_shapes(size, in_channels):
    net = build_backbone(group_config("backbone", "small_cnn", width=8, embedding_dim=24), in_channels, size)
    assert net.embedding_dim == 24
    assert _out(net, in_channels, size).shape == (2, 24)


def test_small_cnn_default_embedding_dim():
    assert build_backbone(group_config("backbone", "small_cnn", width=8), 1, 8).embedding_dim == 128


@pytest.mark.parametrize("size", [8, 32, 64])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_resnet18_shapes(size, in_channels):
    net = build_backbone(group_config("backbone", "resnet18"), in_channels, size)
    assert net.embedding_dim == 512
    assert net.conv1.in_channels == in_channels
    assert _out(net, in_channels, size).shape == (2, 512)


def test_resnet101_shape():
    net = build_backbone(group_config("backbone", "resnet101"), 1, 32)
    assert net.embedding_dim == 2048
    assert _out(net, 1, 32, n=1).shape == (1, 2048)


def test_resnet_embedding_dim_is_fixed():
    with pytest.raises(UserError, match="resnet18 fixes it to 512"):
        build_backbone(group_config("backbone", "resnet18", embedding_dim=128), 3, 32)


def test_missing_weights_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "resnet18.pth"
    with pytest.raises(UserError, match=rf"file not found: {path}.*nothing is downloaded"):
        build_backbone(group_config("backbone", "resnet18", weights=str(path)), 3, 32)


def test_local_weights_are_loaded_and_grey_stem_averages_rgb(tmp_path):
    import torchvision

    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)  # with ImageNet's fc, which must be ignored
    net = build_backbone(group_config("backbone", "resnet18", weights=str(path)), 3, 32)
    assert torch.equal(net.layer4[1].conv2.weight, ref.layer4[1].conv2.weight)
    grey = build_backbone(group_config("backbone", "resnet18", weights=str(path)), 1, 32)
    # A grey image through the adapted stem = its RGB copy through the original stem.
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(grey.conv1(x), ref.conv1(x.repeat(1, 3, 1, 1)), atol=1e-5)


def test_weights_that_do_not_fit(tmp_path):
    path = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(UserError, match=rf"{path} does not fit this network"):
        build_backbone(group_config("backbone", "resnet18", weights=str(path)), 3, 32)


def test_unknown_backbone_suggests_close_names():
    with pytest.raises(UserError, match=r"unknown backbone 'resnet19'; did you mean: resnet18"):
        build_backbone(group_config("backbone", "resnet18", name="resnet19"), 3, 32)
    assert set(BACKBONES) == {"small_cnn", "resnet18", "resnet101", "features"}


def test_features_backbone_is_identity_of_width_d():
    net = build_backbone(group_config("backbone", "features"), 5, 0)
    x = torch.randn(3, 5)
    assert net.embedding_dim == 5 and torch.equal(net(x), x)
    with pytest.raises(UserError, match="embedding_dim=4 but the features have 5"):
        build_backbone(group_config("backbone", "features", embedding_dim=4), 5, 0)


@pytest.fixture
def features_file(tmp_path):
    path = tmp_path / "emb.npz"
    ids = np.array(["000001.jpg", "000002.jpg", "000003.jpg"])
    emb = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.savez(path, ids=ids, embeddings=emb)
    return path, emb


def test_features_lookup_follows_the_given_order(features_file):
    path, emb = features_file
    got = load_features(path, ["000003.jpg", "000001.jpg"])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, emb[[2, 0]])


def test_features_missing_id_names_file_and_first_missing(features_file):
    path, _ = features_file
    with pytest.raises(UserError, match=rf"{path}: no embedding for image id '000009.jpg' \(2 of 3 ids missing\)"):
        load_features(path, ["000001.jpg", "000009.jpg", "000010.jpg"])


def test_features_file_errors(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        load_features(tmp_path / "none.npz", ["a"])
    bad = tmp_path / "bad.npz"
    np.savez(bad, ids=np.array(["a"]), emb=np.zeros((1, 2)))
    with pytest.raises(UserError, match=r"expected arrays 'ids' and 'embeddings', found \['emb', 'ids'\]"):
        load_features(bad, ["a"])
    dup = tmp_path / "dup.npz"
    np.savez(dup, ids=np.array(["a", "a"]), embeddings=np.zeros((2, 2), np.float32))
    with pytest.raises(UserError, match="image id 'a' appears more than once"):
        load_features(dup, ["a"])
