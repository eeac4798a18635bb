"""GPU benchmark of the source-model path: `python -m transferability.bench.gpu [--images N] [--size 64] [--batch 256]`.

Writes its rates to outputs/bench/gpu.json (`--json`), where `make bench-scale` finds them.
Trains resnet18 for one epoch on CelebA-sized random data (162,770 64x64 RGB images, 40 binary labels)
through the same `train_source` / LightningModule code as a real run with the `trainer=gpu` settings
(bf16-mixed, channels_last), times `extract` over the same images, and projects the time of the paper's
full source matrix at the measured rates. Random pixels and labels do not change the cost of an epoch.
Then the same resnet18 trained K at a time (models/stacked.py, `--stacks 1,8,41`, on `--stack-images` images, after
a two-batch warm-up): images per second each network sees, K times that, peak GPU memory, and the matrix
projected with sources trained in stacks of the best K, for each engine (`--engines grouped,loop`).
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


def project_stacked(rates: dict[int, float], extract_rate: float, overhead_s: float,
                    epochs: int) -> dict[str, tuple[int, float]]:
    """(stack size, seconds) per dataset for the full matrix with sources trained in stacks: `rates` maps a stack
    size K to the images per second each of its networks sees; each dataset uses the K (no larger than its
    source count) that finishes it soonest. Extraction stays one pass per source."""
    out = {}
    for name, (k, n_tr, n_te) in PAPER_MATRIX.items():
        best = None
        for size, rate in rates.items():
            size = min(size, k)
            stacks = -(-k // size)
            s = stacks * (epochs * n_tr / rate + overhead_s) + k * (n_tr + n_te) / extract_rate
            best = min(best, (s, size)) if best else (s, size)
        out[name] = (best[1], best[0])
    return out


def run_stacked_bench(n_images: int, size: int, trainer: TrainerConfig, stacks=(1, 8, 41), engines=("grouped",), *,
                      out_dir: Path = Path("outputs/bench_gpu"), device: str = "cuda") -> dict:
    """One epoch of resnet18 trained `k` at a time for each k in `stacks` and each engine: the rates."""
    from ..models.stacked import train_stacked

    x, y = random_data(n_images, size, n_labels=max(stacks), device=device)
    resnet = group_config("backbone", "resnet18")
    cuda = device == "cuda"
    rows = []
    for engine in engines:
        for k in stacks:
            # Two batches first: cuDNN picks its kernels for these shapes, outside the timed epoch.
            warm = dataclasses.replace(trainer, limit_train_batches=2)
            try:
                train_stacked(x, y[:, :k], [2] * k, resnet, warm, seed=0, out_dir=out_dir, engine=engine)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            try:
                trained = train_stacked(x, y[:, :k], [2] * k, resnet, trainer, seed=0, out_dir=out_dir,
                                        engine=engine)
            except torch.cuda.OutOfMemoryError:   # the row says so; the other sizes still count
                rows.append(dict(engine=engine, k=k, error="out of memory"))
                torch.cuda.empty_cache()
                continue
            epoch = trained[0].history[0]
            rate = epoch["images"] / epoch["seconds"]
            rows.append(dict(engine=engine, k=k, seconds=epoch["seconds"], images=epoch["images"], rate=rate,
                             network_rate=k * rate, setup_s=max(0.0, trained[0].seconds - epoch["seconds"]),
                             peak_gb=torch.cuda.max_memory_allocated() / 1e9 if cuda else float("nan")))
            del trained
            if cuda:
                torch.cuda.empty_cache()
    return dict(images_n=n_images, size=size, rows=rows)


def _stacked_report(r: dict, extract_rate: float, epochs: int) -> str:
    lines = [f"stacked: resnet18, {r['images_n']:,} random {r['size']}x{r['size']} images, one epoch per stack size",
             f"  {'engine':8s}{'K':>4s}{'img/s each network':>20s}{'x K':>12s}{'epoch s':>9s}{'peak GPU':>10s}"]
    done = [row for row in r["rows"] if "error" not in row]
    for row in r["rows"]:
        if "error" in row:
            lines.append(f"  {row['engine']:8s}{row['k']:4d}  {row['error']}")
            continue
        lines.append(f"  {row['engine']:8s}{row['k']:4d}{row['rate']:20,.0f}{row['network_rate']:12,.0f}"
                     f"{row['seconds']:9.1f}{row['peak_gb']:8.1f} GB")
    setup = max((row["setup_s"] for row in done), default=0.0)
    for engine in dict.fromkeys(row["engine"] for row in done):
        rates = {row["k"]: row["rate"] for row in done if row["engine"] == engine}
        proj = project_stacked(rates, extract_rate, setup, epochs)
        total = sum(s for _, s in proj.values())
        lines.append(f"projected full matrix, {engine} engine, {epochs} epochs per source, extraction one pass per "
                     f"source at {extract_rate:,.0f} img/s:")
        for name, (k, s) in proj.items():
            lines.append(f"  {name:7s} {PAPER_MATRIX[name][0]:3d} sources in stacks of {k:3d}: {s / 3600:6.2f} h")
        lines.append(f"  total: {total / 3600:.2f} h on one device (goal: under 1 h on one H100)")
    return "\n".join(lines)


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
    ap.add_argument("--stacks", default="1,8,41", help="stack sizes K timed with models/stacked.py ('' skips it)")
    ap.add_argument("--stack-images", type=int, default=20_000, help="images per stacked epoch")
    ap.add_argument("--engines", default="grouped,loop", help="engines of the stacked timing (trainer.stack_engine)")
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
    print(_report(torch.cuda.get_device_name(), trainer, r, args.images, args.size, args.epochs_per_source), flush=True)
    from .. import io

    record = dict(r, device=torch.cuda.get_device_name(), images_n=args.images, size=args.size,
                  trainer=dataclasses.asdict(trainer), epochs_per_source=args.epochs_per_source)
    io.write_json(args.json, record)
    if args.stacks:
        stacks = tuple(int(k) for k in args.stacks.split(","))
        st = run_stacked_bench(args.stack_images, args.size, trainer, stacks, tuple(args.engines.split(",")),
                               out_dir=args.out)
        print(_stacked_report(st, r["extract_rate"], args.epochs_per_source))
        io.write_json(args.json, dict(record, stacked=st))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    from transferability.logs import to_console

    to_console()
    raise SystemExit(main())
