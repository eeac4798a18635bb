"""Source training on the CPU: learning, determinism, extraction, missing labels, checkpoints, GPU bench exit."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from transferability.bench import gpu as bench_gpu
from transferability.config import group_config
from transferability.errors import UserError
from transferability.models.training import extract, load_checkpoint, save_checkpoint, train_source

SMALL = group_config("backbone", "small_cnn", width=4, embedding_dim=8)
FAST = group_config("trainer", "cpu", max_epochs=4, batch_size=16, lr=1e-2)


def toy(n: int, seed: int = 0, size: int = 8, channels: int = 1):
    """Class 0 is bright on the left half, class 1 on the right: trivially separable."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.integers(0, 60, (n, size, size, channels))
    half = size // 2
    for i, c in enumerate(y):
        x[i, :, c * half:(c + 1) * half] += 180
    return x.astype(np.uint8), y.astype(np.int64)


def test_small_cnn_learns_a_separable_task(tmp_path):
    x, y = toy(96)
    r = train_source(x, y, 2, SMALL, FAST, seed=0, out_dir=tmp_path)
    assert r.epochs == len(r.history) == 4 and r.seconds > 0
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"]
    x_test, y_test = toy(64, seed=1)
    _, p = extract(r.model, x_test, batch_size=32)
    assert (p.argmax(1) == y_test).mean() >= 0.95
    assert not r.model.training


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_same_seed_same_weights_and_embeddings(tmp_path):
    x, y = toy(64)
    cfg = dataclasses.replace(FAST, max_epochs=2, augment=True)
    a, b, c = (train_source(x, y, 2, SMALL, cfg, seed=s, out_dir=tmp_path) for s in (3, 3, 4))
    wa, wb, wc = _weights(a.model), _weights(b.model), _weights(c.model)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)  # the seed matters, so the check above can fail
    np.testing.assert_array_equal(extract(a.model, x, batch_size=16)[0], extract(b.model, x, batch_size=16)[0])
    assert not torch.are_deterministic_algorithms_enabled()  # Lightning's switch is undone afterwards


def test_extract_returns_embeddings_and_probabilities(tmp_path):
    x, y = toy(40, size=32, channels=3)
    r = train_source(x, y, 3, SMALL, dataclasses.replace(FAST, max_epochs=1), seed=0, out_dir=tmp_path)
    z, p = extract(r.model, x, batch_size=16)  # 40 = two full batches and a partial one
    assert z.shape == (40, 8) and p.shape == (40, 3)
    assert z.dtype == np.float32 and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    z0, p0 = extract(r.model, x[:0], batch_size=16)
    assert z0.shape == (0, 8) and p0.shape == (0, 3)


def test_missing_labels_are_dropped(tmp_path):
    x, y = toy(50)
    y[::5] = -1
    cfg = dataclasses.replace(FAST, max_epochs=1, batch_size=64)  # one batch: every labelled row once
    r = train_source(x, y, 2, SMALL, cfg, seed=0, out_dir=tmp_path)
    assert r.history[0]["images"] == 40
    with pytest.raises(UserError, match="no labelled rows"):
        train_source(x, np.full(50, -1), 2, SMALL, cfg, seed=0, out_dir=tmp_path)


def test_validation_and_csv_logging(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    x, y = toy(48)
    xv, yv = toy(20, seed=2)
    yv[0] = -1
    logger = CSVLogger(save_dir=str(tmp_path), name="", version="csv")
    r = train_source(x, y, 2, SMALL, dataclasses.replace(FAST, max_epochs=2), seed=0, out_dir=tmp_path,
                     loggers=[logger], x_val=xv, y_val=yv)
    assert {"val_loss", "val_acc", "train_loss", "train_acc"} <= set(r.history[-1])
    # the validation pass is timed apart from the epoch it runs in (the bench's training rate excludes it)
    assert all(h["val_images"] == 19 and 0 < h["val_seconds"] < h["seconds"] for h in r.history)
    logged = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "epoch"} <= set(logged)


def test_limit_train_batches(tmp_path):
    x, y = toy(96)
    cfg = dataclasses.replace(FAST, max_epochs=1, limit_train_batches=2)
    assert train_source(x, y, 2, SMALL, cfg, seed=0, out_dir=tmp_path).history[0]["images"] == 32


def test_checkpoint_round_trip(tmp_path):
    x, y = toy(32)
    r = train_source(x, y, 2, SMALL, dataclasses.replace(FAST, max_epochs=1), seed=0, out_dir=tmp_path)
    path = tmp_path / "cache" / "model.pt"
    save_checkpoint(r.model, path)
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary left behind
    back = load_checkpoint(path, SMALL, 1, 8, 2)
    for want, got in zip(extract(r.model, x, batch_size=8), extract(back, x, batch_size=8)):
        np.testing.assert_array_equal(want, got)
    with pytest.raises(UserError, match=r"different model \(n_classes differ"):
        load_checkpoint(path, SMALL, 1, 8, 3)
    with pytest.raises(UserError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt", SMALL, 1, 8, 2)


def test_features_backbone_trains_only_the_head(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    feats = (rng.normal(size=(90, 6)) + 3 * np.eye(3, 6)[y]).astype(np.float32)
    cfg = dataclasses.replace(FAST, max_epochs=15, lr=0.05)
    r = train_source(feats, y, 3, group_config("backbone", "features"), cfg, seed=0, out_dir=tmp_path)
    assert sum(p.numel() for p in r.model.parameters()) == 6 * 3 + 3  # h_Z only
    z, p = extract(r.model, feats, batch_size=32)
    np.testing.assert_array_equal(z, feats)  # w is the identity on the precomputed embeddings
    assert (p.argmax(1) == y).mean() > 0.9


def test_trainer_and_backbone_configs_validate():
    for name in ("cpu", "gpu", "debug"):
        assert group_config("trainer", name).name == name
    gpu = bench_gpu.gpu_trainer()
    assert (gpu.accelerator, gpu.precision, gpu.channels_last, gpu.max_epochs) == ("gpu", "bf16-mixed", True, 1)
    for name in ("small_cnn", "resnet18", "resnet101", "features"):
        assert group_config("backbone", name).name == name


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_bench_gpu_exits_2_without_cuda(capsys):
    assert bench_gpu.main([]) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("no CUDA device: ")


def test_bench_code_path_on_cpu(tmp_path):
    """The benchmark's own train / extract / projection path with the gpu settings (bf16-mixed, channels_last,
    flips, DataLoader workers), shrunk to a CPU smoke run."""
    cfg = dataclasses.replace(bench_gpu.gpu_trainer(batch=16, workers=2), accelerator="cpu")
    assert (cfg.precision, cfg.channels_last, cfg.augment) == ("bf16-mixed", True, True)
    r = bench_gpu.run_bench(32, 16, cfg, epochs_per_source=2, out_dir=tmp_path, device="cpu")
    assert r["images"] == 32 and r["train_rate"] > 0 and r["extract_rate"] > 0
    assert set(r["projection"]) == {"CelebA", "AwA2", "CUB"} and all(v > 0 for v in r["projection"].values())
    report = bench_gpu._report("cpu", cfg, r, 32, 16, 2)
    assert "images/s" in report and "440 sources" in report
