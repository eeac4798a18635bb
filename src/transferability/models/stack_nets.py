"""Two ways to run K SourceNets on one shared batch (models/stacked.py trains either): `loop` and `grouped`.

`loop` (LoopNet): the K networks as they are, one after another on the batch prepared once. Each network runs
the very kernels its single run runs, so on the CPU with `trainer.deterministic` it reproduces its single run bit
for bit; on the CPU it is also as fast as the alternatives, which do the same multiply-adds (`make bench`, section
`stacked`).

`grouped` (GroupedNet): the K networks laid side by side as one wide network; network k owns channels
[k C, (k+1) C) of every layer. A convolution becomes one grouped convolution (groups = K x its groups; the stem,
which reads the shared image, gets K x its filters), BatchNorm over K C channels is each network's own BatchNorm
exactly (its statistics are per channel), a linear layer is a batched matrix product, and the classifiers are
padded to the largest class count with the extra logits at -inf (no probability, no gradient). Pooling, ReLU and
residual additions act per channel and need no change, so one rule serves small_cnn, the ResNets and `features`.
One kernel per layer instead of K: what a GPU needs to stay busy with small networks. Its sums run in another
order than the single runs', so it agrees with them to rounding after an epoch (about 1e-5 relative), and
training, which amplifies rounding (AdamW normalises tiny gradients), then ends elsewhere (docs/cluster.md).
torch.func's stack_module_state + functional_call + vmap lowers convolutions to the same grouped kernels and adds
the batching layer's reshapes around every op (bench section `stacked` measures it too).

Both give: `losses(x, y)` (each network's Eq. 2 and correct count), `network_state(j, template)` (network j as a
SourceNet state_dict), `subset(positions)` (the networks kept, with where each parameter came from, so optimizer
state follows) and `base_name(name)` (a parameter's name in one SourceNet).
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import SourceNet

# Modules that act on each channel alone: the same module serves the wide layout unchanged.
_PER_CHANNEL = (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Identity)
# Buffers every network of a stack shares (the input normalisation).
_SHARED = ("mean", "std")


def _check_shared(nets: Sequence[SourceNet]) -> None:
    for name in _SHARED:
        if any(not torch.equal(getattr(n, name), getattr(nets[0], name)) for n in nets):
            raise ValueError(f"stacked networks must share their input normalisation ({name} differs)")


class LoopNet(nn.Module):
    """K SourceNets run one after another on a batch prepared once."""

    def __init__(self, nets: Sequence[SourceNet]):
        super().__init__()
        _check_shared(nets)
        self.nets = nn.ModuleList(nets)
        self.images = nets[0].images

    def losses(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(each network's mean cross-entropy (K,), its correct predictions (K,)); y: (N, K) codes."""
        prepared = self.nets[0].prepare(x)
        losses, correct = [], []
        for k, net in enumerate(self.nets):
            logits = net.fc(net.backbone(prepared))
            losses.append(F.cross_entropy(logits, y[:, k]))
            correct.append((logits.argmax(1) == y[:, k]).sum())
        return torch.stack(losses), torch.stack(correct)

    def network_state(self, j: int, template: SourceNet) -> dict[str, torch.Tensor]:
        return {name: t.detach().clone() for name, t in self.nets[j].state_dict().items()}

    def subset(self, positions: list[int], templates=None) -> tuple["LoopNet", dict[str, tuple[str, bool]]]:
        """The networks at `positions` (the same modules) and, per parameter, (its old name, whether to slice)."""
        new = LoopNet([self.nets[p] for p in positions])
        origin = {}
        for i, p in enumerate(positions):
            for name, _ in self.nets[p].named_parameters():
                origin[f"nets.{i}.{name}"] = (f"nets.{p}.{name}", False)
        return new, origin

    @staticmethod
    def base_name(name: str) -> str:
        return name.split(".", 2)[2]


class StackedLinear(nn.Module):
    """K linear maps side by side: (N, K * in) or (N, K, in) -> (N, K * out), network k's block at [k out, ...)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.weight = nn.Parameter(weight)                             # (K, out, in)
        self.bias = nn.Parameter(bias) if bias is not None else None   # (K, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, out, inp = self.weight.shape
        y = torch.bmm(x.reshape(len(x), k, inp).transpose(0, 1), self.weight.transpose(1, 2))   # (K, N, out)
        if self.bias is not None:
            y = y + self.bias.unsqueeze(1)
        return y.transpose(0, 1).reshape(len(x), k * out)


def _stack_leaf(parts: list[nn.Module], stem: bool) -> nn.Module | None:
    """The wide module standing for the K modules `parts`; None when the first one serves as it is."""
    m, k = parts[0], len(parts)
    cat = lambda name: torch.cat([getattr(p, name).detach() for p in parts])   # noqa: E731
    if isinstance(m, nn.Conv2d):
        # The stem reads the image every network shares: K x its filters over the same input channels.
        wide = nn.Conv2d(m.in_channels * (1 if stem else k), m.out_channels * k, m.kernel_size, m.stride, m.padding,
                         m.dilation, groups=m.groups * (1 if stem else k), bias=m.bias is not None,
                         padding_mode=m.padding_mode)
        with torch.no_grad():
            wide.weight.copy_(cat("weight"))
            if m.bias is not None:
                wide.bias.copy_(cat("bias"))
        return wide
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        wide = type(m)(m.num_features * k, m.eps, m.momentum, m.affine, m.track_running_stats)
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var"):
                if getattr(m, name) is not None:
                    getattr(wide, name).copy_(cat(name))
            if m.num_batches_tracked is not None:
                wide.num_batches_tracked.copy_(m.num_batches_tracked)
        return wide
    if isinstance(m, nn.Linear):
        return StackedLinear(torch.stack([p.weight.detach() for p in parts]).clone(),
                             torch.stack([p.bias.detach() for p in parts]).clone() if m.bias is not None else None)
    if isinstance(m, _PER_CHANNEL):
        return None
    raise ValueError(f"cannot stack a {type(m).__name__}: only convolutions, BatchNorm, linear layers and "
                     f"per-channel modules ({', '.join(t.__name__ for t in _PER_CHANNEL)}) are stacked")


def _stack_backbone(backbones: list[nn.Module]) -> nn.Module:
    wide = copy.deepcopy(backbones[0])
    leaves = [name for name, m in backbones[0].named_modules() if not list(m.children())]
    # The first convolution registered reads the input (small_cnn's features.0, a ResNet's conv1).
    stem = next((n for n in leaves if isinstance(backbones[0].get_submodule(n), nn.Conv2d)), None)
    for name in leaves:
        new = _stack_leaf([b.get_submodule(name) for b in backbones], stem=name == stem)
        if new is not None:
            parent, _, attr = name.rpartition(".")
            setattr(wide.get_submodule(parent), attr, new)
    return wide


class GroupedNet(nn.Module):
    """K SourceNets as one wide network: uint8 images (N, H, W, C) in, logits (N, K, C_max) out, the classes a
    network lacks at -inf. `pad_to`: the class axis (at least the largest class count)."""

    def __init__(self, nets: Sequence[SourceNet], pad_to: int | None = None):
        super().__init__()
        _check_shared(nets)
        first = nets[0]
        self.k, self.images, self.channels_last = len(nets), first.images, first.channels_last
        self.n_classes = [net.fc.out_features for net in nets]
        self.embedding_dim = first.embedding_dim
        self.register_buffer("mean", first.mean.clone())
        self.register_buffer("std", first.std.clone())
        self.backbone = _stack_backbone([n.backbone for n in nets]) if self.images else copy.deepcopy(first.backbone)
        self.c_max = max(pad_to or 0, *self.n_classes)
        weight = torch.zeros(self.k, self.c_max, self.embedding_dim)
        bias = torch.zeros(self.k, self.c_max)
        valid = torch.zeros(self.k, self.c_max, dtype=torch.bool)
        for j, net in enumerate(nets):
            c = net.fc.out_features
            weight[j, :c], bias[j, :c], valid[j, :c] = net.fc.weight.detach(), net.fc.bias.detach(), True
        self.fc = StackedLinear(weight, bias)
        self.register_buffer("valid", valid)
        if self.channels_last and self.images:
            self.to(memory_format=torch.channels_last)

    prepare = SourceNet.prepare

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """r_k = w_k(x) of every network: (N, K, D)."""
        z = self.backbone(self.prepare(x))
        if not self.images:   # `features`: every network reads the same precomputed embedding
            return z.unsqueeze(1).expand(len(z), self.k, self.embedding_dim)
        return z.reshape(len(z), self.k, self.embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.fc(self.embed(x)).reshape(len(x), self.k, self.c_max)
        return logits.masked_fill(~self.valid, float("-inf"))

    def losses(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(x)
        losses = F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(0)
        return losses, (logits.argmax(2) == y).sum(0)

    def network_state(self, j: int, template: SourceNet) -> dict[str, torch.Tensor]:
        """Network j's state_dict in `template`'s (a SourceNet's) names and shapes."""
        wide = self.state_dict()
        out = {}
        for name, t in template.state_dict().items():
            w = wide[name]
            if not _per_network(name):
                out[name] = w.detach().clone()
            elif name.startswith("fc."):
                out[name] = w[j, :t.shape[0]].detach().clone()
            else:
                out[name] = w.unflatten(0, (self.k, -1))[j].reshape(t.shape).detach().clone()
        return out

    def subset(self, positions: list[int], templates: Sequence[SourceNet]) -> tuple["GroupedNet", dict]:
        """A wide network of the networks at `positions` (`templates`: a SourceNet of each, for the shapes) with
        their current values, and, per parameter, (its old name, whether to slice)."""
        new = GroupedNet(templates, pad_to=self.c_max).to(self.valid.device)
        new.load_state_dict({name: take(t, positions, self.k) if _per_network(name) else t
                             for name, t in self.state_dict().items()})
        return new, {name: (name, True) for name, _ in new.named_parameters()}

    @staticmethod
    def base_name(name: str) -> str:
        return name


def _per_network(name: str) -> bool:
    return name not in _SHARED and not name.endswith("num_batches_tracked")


def take(t: torch.Tensor, positions: list[int], k: int) -> torch.Tensor:
    """The blocks of the networks at `positions` out of a tensor stacking K networks along its first axis."""
    return t.unflatten(0, (k, -1))[positions].flatten(0, 1).clone()


ENGINES = {"loop": LoopNet, "grouped": GroupedNet}
