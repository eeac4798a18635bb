"""On a GPU (marked `gpu`, skipped without CUDA): the GPU trainer, heads and a whole transfer row agree with the
CPU path. scripts/device_check.sh runs these before the GPU benches."""
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.gpu


def test_gpu_trainer_learns_digits_and_extracts_float32(tmp_path):
    from transferability.config import group_config
    from transferability.data.registry import load_dataset
    from transferability.models.training import extract, train_source

    ds = load_dataset(group_config("dataset", "digits"))
    x = ds.images.array(8)
    y = ds.labels.labels["digit"].to_numpy().astype(np.int64)
    train = ds.labels.mask("train")
    trainer = group_config("trainer", "gpu", max_epochs=8, batch_size=64)
    trained = train_source(x[train], y[train], 10, group_config("backbone", "small_cnn"), trainer, seed=0,
                           out_dir=tmp_path)
    z, p = extract(trained.model, x[~train], batch_size=256, accelerator="gpu")
    assert z.dtype == np.float32 and p.dtype == np.float32
    assert (p.argmax(1) == y[~train]).mean() > 0.9


def test_heads_on_gpu_predict_as_on_cpu():
    from transferability.config import group_config
    from transferability.models.heads import fit_heads

    rng = np.random.default_rng(0)
    z, zt = rng.normal(size=(2000, 64)), rng.normal(size=(500, 64))
    w = rng.normal(size=(64, 6))
    y = np.stack([(z @ w[:, j] + rng.normal(0, 1, 2000) > 0) for j in range(5)]
                 + [np.digitize(z @ w[:, 5], [-1, 0, 1])], 1).astype(np.int64)
    k = [2] * 5 + [4]
    for name in ("linear_svm", "logistic"):
        head = group_config("head", name)
        cpu = fit_heads(head, z, y, zt, k, device="cpu")
        gpu = fit_heads(head, z, y, zt, k, device="cuda")
        assert (cpu.test_pred == gpu.test_pred).mean() > 0.995, name
        np.testing.assert_allclose(cpu.train_nll, gpu.train_nll, rtol=1e-6)


def test_a_transfer_row_on_the_gpu(run_config):
    from transferability.stages.transfer import run_transfer

    out = run_transfer(run_config(["dataset=digits", "source=digit", "trainer=gpu", "trainer.max_epochs=5"]))
    rows = pd.read_csv(out / "results.csv")
    assert len(rows) == 21 and rows["test_error"].between(0, 1).all()
    assert rows[["leep", "logme", "hscore", "transrate", "gbc", "nleep"]].notna().all().all()
