"""K networks trained as one (models/stacked.py) against their K single runs (training.train_source): the loop
engine bit for bit, the grouped one to rounding after an epoch; the same early-stopping epochs; resuming all K;
T fine-tuned copies."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from helpers.kills import KillDuring, Killed
from transferability.config import group_config
from transferability.models.backbones import build_net
from transferability.models.stack_nets import GroupedNet
from transferability.models.stacked import StackedTask, initial_nets, network_bytes, stack_sizes, train_stacked
from transferability.models.training import extract, train_source

SMALL = group_config("backbone", "small_cnn", width=4, embedding_dim=8)
FAST = group_config("trainer", "cpu", max_epochs=1, batch_size=16, lr=1e-2, augment=True)
STOP = group_config("callbacks", "none", use=("early_stopping",), patience=1)
N_CLASSES = [2, 2, 3]


def data(n: int = 120, seed: int = 0):
    """8x8 one-channel images and three labellings of them (two binary, one with three classes)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 255, (n, 8, 8, 1)).astype(np.uint8)
    left, top = x[:, :, :4].mean((1, 2, 3)), x[:, :4].mean((1, 2, 3))
    y = np.stack([left > x[:, :, 4:].mean((1, 2, 3)), top > x[:, 4:].mean((1, 2, 3)),
                  (x.mean((1, 2, 3)) > 127).astype(int) + (x[:, 0, 0, 0] > 128)], 1).astype(np.int64)
    return x, y


def rel_diff(a: dict, b: dict) -> float:
    """The largest difference of two state_dicts, each tensor's relative to its largest magnitude."""
    return max(float((a[k].double() - b[k].double()).abs().max() / max(float(a[k].double().abs().max()), 1e-12))
               for k in a if a[k].is_floating_point())


@pytest.mark.parametrize("backbone,shape", [(SMALL, (6, 8, 8, 1)),
                                            (group_config("backbone", "resnet18"), (4, 16, 16, 3))])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_stacked_forward_is_each_network_forward(backbone, shape, mode):
    torch.manual_seed(0)
    nets = [build_net(backbone, shape[3], shape[1], c) for c in (2, 5, 3)]
    for net in nets:   # different weights and running statistics per network
        for p in net.parameters():
            p.data.normal_(0, 0.1)
    wide = GroupedNet(nets)
    x = torch.randint(0, 255, shape, dtype=torch.uint8)
    for m in [wide, *nets]:
        m.train(mode == "train")
    with torch.no_grad():
        logits = wide(x)
        for k, net in enumerate(nets):
            c = net.fc.out_features
            torch.testing.assert_close(logits[:, k, :c], net(x), rtol=1e-4, atol=1e-5)
            assert torch.isneginf(logits[:, k, c:]).all()   # padded classes: no probability
    if mode == "train":   # BatchNorm's running statistics move per network, as each network's own would
        for k, net in enumerate(nets):
            state = wide.network_state(k, net)
            for name, t in net.state_dict().items():
                torch.testing.assert_close(state[name], t, rtol=1e-4, atol=1e-5)


def test_features_backbone_stacks_the_classifiers():
    feats = group_config("backbone", "features")
    nets = [build_net(feats, 6, 0, c) for c in (2, 4)]
    x = torch.randn(5, 6)
    with torch.no_grad():
        logits = GroupedNet(nets)(x)
        for k, net in enumerate(nets):
            torch.testing.assert_close(logits[:, k, :net.fc.out_features], net(x))


# The loop engine runs each network's own kernels: its single run, bit for bit. The grouped engine sums in
# another order: equal to rounding after one epoch.
TOLERANCE = {"loop": 0.0, "grouped": 1e-4}


@pytest.mark.parametrize("engine", ["loop", "grouped"])
def test_first_epoch_weights_match_single_runs(tmp_path, engine):
    x, y = data()
    stacked = train_stacked(x, y, N_CLASSES, SMALL, FAST, seed=5, out_dir=tmp_path, engine=engine)
    for k, c in enumerate(N_CLASSES):
        single = train_source(x, y[:, k], c, SMALL, FAST, seed=5, out_dir=tmp_path)
        assert rel_diff(single.model.state_dict(), stacked[k].model.state_dict()) <= TOLERANCE[engine]
        assert stacked[k].history[0]["train_loss"] == pytest.approx(single.history[0]["train_loss"], rel=1e-5)
    other = train_source(x, y[:, 0], 2, SMALL, FAST, seed=6, out_dir=tmp_path)   # the check above can fail
    assert rel_diff(other.model.state_dict(), stacked[0].model.state_dict()) > 1e-2


@pytest.mark.parametrize("engine", ["loop", "grouped"])
def test_networks_stop_early_each_as_its_single_run(tmp_path, engine):
    """Each network stops at its single run's epoch; stopped ones leave the stack (it shrinks, optimizer state
    and schedule with it) and the others carry on unchanged."""
    x, y = data()
    cfg = dataclasses.replace(FAST, max_epochs=12)
    stacked = train_stacked(x, y, N_CLASSES, SMALL, cfg, seed=5, out_dir=tmp_path, x_val=x[:40], y_val=y[:40],
                            callbacks=STOP, engine=engine)
    epochs = [s.epochs for s in stacked]
    assert len(set(epochs)) > 1 and max(epochs) < 12      # they stop at different epochs: the stack shrank
    for k, c in enumerate(N_CLASSES):
        single = train_source(x, y[:, k], c, SMALL, cfg, seed=5, out_dir=tmp_path, x_val=x[:40], y_val=y[:40, k],
                              callbacks=STOP)
        assert stacked[k].epochs == single.epochs
        np.testing.assert_allclose([h["val_loss"] for h in stacked[k].history],
                                   [h["val_loss"] for h in single.history], rtol=1e-3 if engine == "grouped" else 0)
        p_single = extract(single.model, x, batch_size=64)[1]
        p_stacked = extract(stacked[k].model, x, batch_size=64)[1]
        assert (p_single.argmax(1) == p_stacked.argmax(1)).mean() >= 0.98
        if engine == "loop":
            assert rel_diff(single.model.state_dict(), stacked[k].model.state_dict()) == 0


@pytest.mark.parametrize("engine", ["loop", "grouped"])
def test_a_killed_stack_resumes_all_networks(tmp_path, engine):
    """Killed after some networks stopped (a shrunk stack in the checkpoint), rerun: the same weights, bit for
    bit, and the same histories as a stack that never stopped."""
    x, y = data()
    cfg = dataclasses.replace(FAST, max_epochs=12)
    cb = dataclasses.replace(STOP, use=("checkpoint", "early_stopping"))
    kw = dict(seed=5, out_dir=tmp_path, x_val=x[:40], y_val=y[:40], callbacks=cb, engine=engine)
    whole = train_stacked(x, y, N_CLASSES, SMALL, cfg, ckpt_dir=tmp_path / "whole", **kw)
    stop = min(s.epochs for s in whole)                  # the first network stops in epoch `stop` (1-based)
    with pytest.raises(Killed):
        train_stacked(x, y, N_CLASSES, SMALL, cfg, ckpt_dir=tmp_path / "killed",
                      extra_callbacks=[KillDuring(epoch=stop + 1, batch=2)], **kw)
    again = train_stacked(x, y, N_CLASSES, SMALL, cfg, ckpt_dir=tmp_path / "killed", **kw)
    assert all(s.resumed_from_epoch == stop + 1 for s in again)
    drop = lambda h: [{k: v for k, v in row.items() if not k.endswith("seconds")} for row in h]  # noqa: E731
    for a, b in zip(whole, again):
        assert a.epochs == b.epochs and drop(a.history) == drop(b.history)
        assert rel_diff(a.model.state_dict(), b.model.state_dict()) == 0


@pytest.mark.parametrize("engine", ["loop", "grouped"])
def test_weight_decay_follows_each_parameters_shape_in_one_network(engine):
    nets = initial_nets(data()[0], N_CLASSES, SMALL, FAST, seed=0)
    task = StackedTask(nets, FAST, seed=0, stopping=None, engine=engine)
    decay, rest = (g["params"] for g in task._optimizer().param_groups)
    # the grouped engine pads every classifier to the largest class count
    singles = nets if engine == "loop" else [build_net(SMALL, 1, 8, max(N_CLASSES))] * len(nets)
    # per network: conv and linear weights decay; BatchNorm and biases do not (training.SourceTask's groups)
    assert sum(p.numel() for p in decay) == sum(p.numel() for n in singles for p in n.parameters() if p.ndim > 1)
    assert sum(p.numel() for p in rest) == sum(p.numel() for n in singles for p in n.parameters() if p.ndim <= 1)


def test_rows_missing_a_label_are_refused():
    x, y = data()
    y[3, 1] = -1
    with pytest.raises(ValueError, match="share their labelled rows"):
        train_stacked(x, y, N_CLASSES, SMALL, FAST, seed=0, out_dir=".")


def test_fine_tuning_copies_start_from_init_with_fresh_classifiers(tmp_path):
    """T copies of one trained network on T labellings: each starts from init's representation and
    normalisation under a fresh classifier, and trains as it would alone."""
    x, y = data()
    source = train_source(x, y[:, 2], 3, SMALL, FAST, seed=1, out_dir=tmp_path).model
    copies = initial_nets(x, [2, 2], SMALL, FAST, seed=9, init=source)
    for net in copies:
        for name, t in source.backbone.state_dict().items():
            assert torch.equal(net.backbone.state_dict()[name], t)
        assert torch.equal(net.mean, source.mean) and torch.equal(net.std, source.std)
        assert not torch.equal(net.fc.weight, source.fc.weight[:2])
    cfg = dataclasses.replace(FAST, max_epochs=6)
    tuned = train_stacked(x, y[:, :2], [2, 2], SMALL, cfg, seed=9, out_dir=tmp_path, init=source)
    alone = train_stacked(x, y[:, 1:2], [2], SMALL, cfg, seed=9, out_dir=tmp_path, init=source)
    assert rel_diff(alone[0].model.state_dict(), tuned[1].model.state_dict()) == 0   # copies train independently
    assert all(t.history[-1]["train_acc"] > t.history[0]["train_acc"] + 0.05 for t in tuned)   # each learns
    with pytest.raises(ValueError, match="init does not fit"):
        initial_nets(x, [2], dataclasses.replace(SMALL, width=8), FAST, seed=0, init=source)


def test_stack_sizes_and_network_bytes():
    assert stack_sizes(21, 100, 10_000) == [21]
    assert stack_sizes(21, 100, 800) == [7, 7, 7]
    assert stack_sizes(5, 100, 250) == [2, 2, 1]
    assert stack_sizes(3, 100, 10) == [1, 1, 1]
    x, _ = data(4)
    small = network_bytes(build_net(SMALL, 1, 8, 2), x, batch_size=16)
    assert network_bytes(build_net(SMALL, 1, 8, 2), x, batch_size=64) > small > 0
    wide = dataclasses.replace(SMALL, width=32)
    assert network_bytes(build_net(wide, 1, 8, 2), x, batch_size=16) > 10 * small


@pytest.mark.gpu
def test_stacked_training_on_the_gpu(tmp_path):
    """The GPU settings (bf16-mixed, channels_last, flips) with resnet18: the stack trains and each network
    stays close to its single run after one epoch."""
    from transferability.bench.gpu import gpu_trainer

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (256, 32, 32, 3)).astype(np.uint8)
    y = np.stack([(x[:, :, :16].mean((1, 2, 3)) > x[:, :, 16:].mean((1, 2, 3))), x[:, 0, 0, 0] > 127], 1)
    y = y.astype(np.int64)
    cfg = dataclasses.replace(gpu_trainer(batch=64, workers=0), max_epochs=2)
    resnet = group_config("backbone", "resnet18")
    assert cfg.stack_engine == "grouped"
    stacked = train_stacked(x, y, [2, 2], resnet, cfg, seed=0, out_dir=tmp_path)
    single = train_source(x, y[:, 0], 2, resnet, cfg, seed=0, out_dir=tmp_path)
    assert all(s.epochs == 2 and np.isfinite(s.history[-1]["train_loss"]) for s in stacked)
    assert stacked[0].history[0]["train_loss"] == pytest.approx(single.history[0]["train_loss"], rel=0.05)


def test_engine_names_are_the_configs():
    from transferability.config import STACK_ENGINES
    from transferability.models.stack_nets import ENGINES

    assert tuple(ENGINES) == STACK_ENGINES
    assert [group_config("trainer", t).stack_engine for t in ("cpu", "debug", "gpu")] == ["loop", "loop", "grouped"]
