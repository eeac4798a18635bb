"""The representation w of a source model M = (w, h) (paper Sec. 3.1): name -> constructor, no downloads.

`build_backbone(cfg, in_channels, image_size)` returns a feature extractor mapping a float image batch
(N, C, H, W) to embeddings (N, D), with `embedding_dim = D`. The source model adds the FC layer h on top
(training.py). Backbones:

- `small_cnn`: three conv blocks (widths w, 2w, 4w; BatchNorm + ReLU) and a projection to
  `cfg.embedding_dim` (default 128); max-pooling after a block only while the map is larger than 4x4,
  then adaptive average pooling, so the same net reads 8x8 digits and 32x32 / 64x64 images.
- `resnet18` (the paper's, Sec. 5.1), `resnet101`: torchvision's, `fc` replaced by Identity (D = 512 / 2048),
  the first conv adapted to `in_channels`. Pretrained weights come only from the local file `cfg.weights`.
- `features`: precomputed embeddings, e.g. of a face-recognition network (Sec. 5.2). The file is an .npz
  with `ids` (str array: the dataset's image ids) and `embeddings` (float32 (N, D)); `load_features` looks
  rows up by id. The backbone itself is the identity on (N, D) inputs (`in_channels` is D), so the source
  model is only the softmax head h_Z trained on fixed features (the paper's Discussion 1).

`SourceNet` is the whole source model M = (w, h): uint8 images in, logits out (training.py trains it).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..config import BackboneConfig
from ..errors import UserError, unknown_name


class SmallCNN(nn.Module):
    def __init__(self, in_channels: int, image_size: int, width: int, embedding_dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        size, c_in = image_size, in_channels
        for c_out in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True)]
            if size > 4:  # 64x64 -> 8x8 and 8x8 -> 4x4 over the three blocks; the rest is averaged
                layers.append(nn.MaxPool2d(2))
                size //= 2
            c_in = c_out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.project = nn.Sequential(nn.Linear(c_in, embedding_dim, bias=False),
                                     nn.BatchNorm1d(embedding_dim), nn.ReLU(inplace=True))
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.features(x))


class FeatureIdentity(nn.Module):
    """The `features` backbone: the embeddings are the precomputed features themselves."""

    def __init__(self, dim: int):
        super().__init__()
        self.embedding_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


def _small_cnn(cfg: BackboneConfig, in_channels: int, image_size: int) -> nn.Module:
    if cfg.embedding_dim is None:
        raise UserError("backbone=small_cnn needs backbone.embedding_dim (an integer >= 1)")
    return SmallCNN(in_channels, image_size, width=cfg.width, embedding_dim=cfg.embedding_dim)


def _resnet(arch: str, dim: int) -> Callable[[BackboneConfig, int, int], nn.Module]:
    def build(cfg: BackboneConfig, in_channels: int, image_size: int) -> nn.Module:
        import torchvision

        if cfg.embedding_dim not in (None, dim):
            raise UserError(f"backbone.embedding_dim={cfg.embedding_dim}: {arch} fixes it to {dim} (use null)")
        net = getattr(torchvision.models, arch)(weights=None)
        net.fc = nn.Identity()
        if cfg.weights:
            _load_weights(net, Path(cfg.weights))
        if in_channels != 3:
            net.conv1 = _adapt_conv(net.conv1, in_channels)
        net.embedding_dim = dim
        return net

    return build


def _features(cfg: BackboneConfig, in_channels: int, image_size: int) -> nn.Module:
    if cfg.embedding_dim not in (None, in_channels):
        raise UserError(f"backbone.embedding_dim={cfg.embedding_dim} but the features have {in_channels} "
                        f"dimensions ({cfg.path})")
    return FeatureIdentity(in_channels)


BACKBONES: dict[str, Callable[[BackboneConfig, int, int], nn.Module]] = {
    "small_cnn": _small_cnn,
    "resnet18": _resnet("resnet18", 512),
    "resnet101": _resnet("resnet101", 2048),
    "features": _features,
}


def build_backbone(cfg: BackboneConfig, in_channels: int, image_size: int) -> nn.Module:
    """The representation w: (N, in_channels, image_size, image_size) -> (N, embedding_dim).

    For `features`, `in_channels` is the feature dimension D and `image_size` is unused."""
    if cfg.name not in BACKBONES:
        raise unknown_name("backbone", cfg.name, BACKBONES)
    if in_channels < 1:
        raise UserError(f"in_channels={in_channels}: expected a positive number of channels")
    return BACKBONES[cfg.name](cfg, in_channels, image_size)


def _load_weights(net: nn.Module, path: Path) -> None:
    """A torchvision state_dict; its `fc.*` entries (ImageNet's 1000 classes) are not used."""
    if not path.is_file():
        raise UserError(f"backbone.weights: file not found: {path} (expected a local torchvision "
                        f"state_dict; nothing is downloaded)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle, a truncated file, not a torch file at all
        raise UserError(f"backbone.weights: {path}: not a torch state_dict ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict):
        raise UserError(f"backbone.weights: {path}: expected a state_dict, got {type(state).__name__}")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches are raised even when strict=False
        detail = " ".join(str(e).split("\n")[1:2]).strip()
        raise UserError(f"backbone.weights: {path} does not fit this network: {detail}") from None
    if missing or unexpected:
        raise UserError(f"backbone.weights: {path} does not fit this network: "
                        f"{len(missing)} missing keys (first: {missing[:1]}), "
                        f"{len(unexpected)} unexpected (first: {unexpected[:1]})")


def _adapt_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """The stem for 1 (or 4, ...) channels. Averaging the RGB filters and spreading them over the new
    channels keeps a pretrained stem's response to a grey image the same as to its RGB copy."""
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    bias=conv.bias is not None)
    with torch.no_grad():
        mean = conv.weight.mean(dim=1, keepdim=True)
        new.weight.copy_(mean.repeat(1, in_channels, 1, 1) * (3.0 / in_channels))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


class SourceNet(nn.Module):
    """M = (w, h) with the input preparation in front: uint8 (N, H, W, C) -> normalised float (N, C, H, W).

    The per-channel mean and std are buffers, so a checkpoint carries them with the weights."""

    def __init__(self, backbone_cfg: BackboneConfig, in_channels: int, image_size: int, n_classes: int,
                 channels_last: bool = False):
        super().__init__()
        self.spec = dict(backbone=dataclasses.asdict(backbone_cfg), in_channels=int(in_channels),
                         image_size=int(image_size), n_classes=int(n_classes))
        self.images = backbone_cfg.name != "features"
        self.channels_last = channels_last
        self.backbone = build_backbone(backbone_cfg, in_channels, image_size)
        self.embedding_dim = self.backbone.embedding_dim
        self.fc = nn.Linear(self.embedding_dim, n_classes)
        shape = (1, in_channels, 1, 1) if self.images else (1,)
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("std", torch.ones(shape))

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        if not self.images:
            return x.float()
        # The NHWC -> NCHW permute is already channels_last in memory; only the default layout copies.
        x = x.permute(0, 3, 1, 2)
        x = x.float() if self.channels_last else x.contiguous().float()
        return (x / 255.0 - self.mean) / self.std

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """r = w(x), the penultimate layer."""
        return self.backbone(self.prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of h(w(x)); P(z | x) is their softmax."""
        return self.fc(self.embed(x))


def build_net(backbone: BackboneConfig, in_channels: int, image_size: int, n_classes: int,
              channels_last: bool = False) -> SourceNet:
    """A fresh source model M = (w, h) for `n_classes` source labels (weights in channels_last if asked)."""
    net = SourceNet(backbone, in_channels, image_size, n_classes, channels_last=channels_last)
    if channels_last and net.images:
        net = net.to(memory_format=torch.channels_last)
    return net


def load_features(path: str | Path, ids, locate=None) -> np.ndarray:
    """Rows of the `embeddings` array of the .npz at `path`, in the order of `ids` (float32 (len(ids), D)).
    `locate(row)`, when given, says where an id was listed (e.g. 'labels.csv, line 7, column id'): the error
    for an id without an embedding names that place."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UserError(f"backbone.path: file not found: {path} (expected an .npz with ids, embeddings)")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "ids" not in f or "embeddings" not in f:
                raise UserError(f"{path}: expected arrays 'ids' and 'embeddings', found {sorted(f.files)}")
            file_ids, emb = f["ids"], f["embeddings"]
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"{path}: not a readable .npz ({type(e).__name__}: {e})") from None
    if emb.ndim != 2 or len(emb) != len(file_ids):
        raise UserError(f"{path}: expected embeddings of shape (len(ids), D) = ({len(file_ids)}, D), "
                        f"got {emb.shape}")
    index = pd.Index(file_ids.astype(str))
    if not index.is_unique:
        dup = index[index.duplicated()][0]
        raise UserError(f"{path}: image id {dup!r} appears more than once in 'ids'")
    wanted = pd.Index([str(i) for i in ids])
    rows = index.get_indexer(wanted)
    if (rows < 0).any():
        missing, first = int((rows < 0).sum()), int(np.argmax(rows < 0))
        listed = f"{locate(first)}; " if locate is not None else ""
        raise UserError(f"{path}: no embedding for image id {wanted[first]!r} "
                        f"({listed}{missing} of {len(wanted)} ids missing)")
    return np.ascontiguousarray(emb[rows], dtype=np.float32)
