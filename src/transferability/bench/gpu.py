"""GPU benchmark of the source-model path: `python -m transferability.bench.gpu [--images N] [--size 64] [--batch 256]`.

Writes its rates to outputs/bench/gpu.json (`--json`), where `make bench-scale` finds them.
Trains resnet18 for one epoch on CelebA-sized random data (162,770 64x64 RGB images, 40 binary labels)
through the same `train_source` / LightningModule code as a real run with the `trainer=gpu` settings
(bf16-mixed, channels_last), times `extract` over the same images, and projects the time of the paper's
full source matrix at the measured rates. Random pixels and labels do not change the cost of an epoch.
Without a CUDA device it prints one line and exits 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from ..config import TrainerConfig, group_config
from . import REPO

# (sources, train images, test images). Sources are the paper's 40 / 85 / 312 attribute tasks plus the
# identity / class task of each set; the splits are the paper's Sec. 5.1 (CelebA: the official train split).
PAPER_MATRIX = {
    "CelebA": (41, 182_637, 19_962),   # the transfer stage trains on train + val
    "AwA2": (86, 33_568, 3_754),
    "CUB": (313, 5_994, 5_794),
}


def gpu_trainer(batch: int | None = None, workers: int | None = None) -> TrainerConfig:
    """conf/trainer/gpu.yaml as a TrainerConfig, for one epoch."""
    cfg = group_config("trainer", "gpu")
    changes = {"max_epochs": 1}
    if batch is not None:
        changes["batch_size"] = batch
    if workers is not None:
        changes["num_workers"] = workers
    return dataclasses.replace(cfg, **changes)


def random_data(n: int, size: int, n_labels: int = 40, *, device: str = "cuda",
                chunk: int = 16_384) -> tuple[np.ndarray, np.ndarray]:
    """n random (size, size, 3) uint8 images and n x n_labels binary labels, drawn on `device` in chunks."""
    g = torch.Generator(device=device).manual_seed(0)
    x = np.empty((n, size, size, 3), np.uint8)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x[start:start + m] = torch.randint(0, 256, (m, size, size, 3), dtype=torch.uint8, device=device,
                                           generator=g).cpu().numpy()
    y = torch.randint(0, 2, (n, n_labels), device=device, generator=g).cpu().numpy().astype(np.int64)
    return x, y


def project(train_rate: float, extract_rate: float, overhead_s: float, epochs: int) -> dict[str, float]:
    """Seconds per dataset for the full matrix: per source, `epochs` epochs over its train split, one
    extraction of train + test, and the fixed per-run overhead (Trainer setup)."""
    return {name: k * (epochs * n_tr / train_rate + (n_tr + n_te) / extract_rate + overhead_s)
            for name, (k, n_tr, n_te) in PAPER_MATRIX.items()}


def run_bench(n_images: int, size: int, trainer: TrainerConfig, *, epochs_per_source: int = 20,
              out_dir: Path = Path("outputs/bench_gpu"), device: str = "cuda") -> dict:
    """Time one training epoch and one extraction; returns the measured rates and the projection."""
    from ..models.training import extract, train_source

    t = time.perf_counter()
    x, y = random_data(n_images, size, device=device)
    gen_s = time.perf_counter() - t
    trained = train_source(x, y[:, 0], 2, group_config("backbone", "resnet18"), trainer, seed=0, out_dir=out_dir)
    epoch = trained.history[0]
    train_rate = epoch["images"] / epoch["seconds"]
    overhead_s = max(0.0, trained.seconds - sum(h["seconds"] for h in trained.history))
    t = time.perf_counter()
    z, p = extract(trained.model, x, batch_size=max(1024, trainer.batch_size), accelerator=trainer.accelerator)
    extract_s = time.perf_counter() - t
    assert z.shape == (n_images, 512) and p.shape == (n_images, 2)
    extract_rate = n_images / extract_s
    return dict(generate_s=gen_s, train_s=trained.seconds, epoch_s=epoch["seconds"], images=epoch["images"],
                train_rate=train_rate, overhead_s=overhead_s, extract_s=extract_s, extract_rate=extract_rate,
                projection=project(train_rate, extract_rate, overhead_s, epochs_per_source))


def _report(device_name: str, trainer: TrainerConfig, r: dict, n: int, size: int, epochs: int) -> str:
    total = sum(r["projection"].values())
    lines = [
        f"device: {device_name}",
        f"data: {n:,} random {size}x{size} RGB uint8 images, 40 binary labels (generated in {r['generate_s']:.1f} s)",
        f"settings: resnet18, precision {trainer.precision}, channels_last {trainer.channels_last}, "
        f"batch {trainer.batch_size}, workers {trainer.num_workers}, augment {trainer.augment}",
        f"train: {r['train_rate']:,.0f} images/s (epoch of {r['images']:,} images in {r['epoch_s']:.1f} s; "
        f"train_source total {r['train_s']:.1f} s, setup {r['overhead_s']:.1f} s)",
        f"extract: {r['extract_rate']:,.0f} images/s ({n:,} images in {r['extract_s']:.1f} s)",
        f"projected full matrix at {epochs} epochs per source "
        f"({sum(k for k, _, _ in PAPER_MATRIX.values())} sources: the paper's 437 attribute tasks and each "
        f"set's identity / class task):",
    ]
    for name, s in r["projection"].items():
        k, n_tr, n_te = PAPER_MATRIX[name]
        lines.append(f"  {name:7s} {k:3d} sources x {n_tr:,} train + {n_te:,} test: {s / 3600:8.1f} h")
    lines.append(f"  total: {total / 3600:.1f} h at these rates on one device ({total / 86400:.2f} days)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m transferability.bench.gpu", description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=162_770, help="training images (CelebA train: 162,770)")
    ap.add_argument("--size", type=int, default=64, help="image side in pixels")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default: conf/trainer/gpu.yaml)")
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: gpu.yaml)")
    ap.add_argument("--epochs-per-source", type=int, default=20, help="epochs per source for the projection")
    ap.add_argument("--out", type=Path, default=Path("outputs/bench_gpu"), help="Lightning's root dir")
    ap.add_argument("--json", type=Path, default=REPO / "outputs" / "bench" / "gpu.json",
                    help="where the rates are written (make bench-scale reads them for its GPU projection)")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: torch.cuda.is_available() is False; the GPU benchmark needs one (exit 2)")
        return 2
    if args.images < 2 or args.size < 8:
        print(f"--images {args.images} --size {args.size}: expected at least 2 images of at least 8x8")
        return 2
    trainer = gpu_trainer(args.batch, args.workers)
    r = run_bench(args.images, args.size, trainer, epochs_per_source=args.epochs_per_source, out_dir=args.out)
    print(_report(torch.cuda.get_device_name(), trainer, r, args.images, args.size, args.epochs_per_source))
    from .. import io

    io.write_json(args.json, dict(r, device=torch.cuda.get_device_name(), images_n=args.images, size=args.size,
                                  trainer=dataclasses.asdict(trainer), epochs_per_source=args.epochs_per_source))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    from transferability.logs import to_console

    to_console()
    raise SystemExit(main())
