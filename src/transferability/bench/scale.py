"""Full-size rehearsal: `python -m transferability.bench.scale [--n 202599] [--size 64] [--trainer cpu|gpu]`.

1. Writes a CelebA release tree under outputs/bench/scale/: `--n` generated 178x218 JPEGs in
   `img_align_celeba/` and the real label files (from ../shared/data/celeba; the first n rows when n is
   smaller), so the real CelebA loader reads it. Kept between runs (a stamp names n).
2. Decodes a sample with one process (the one-worker rate), then builds the image cache with `--workers`
   processes (default: the CPUs this process was given) through `FileImages.array`, the transfer stage's path.
3. Runs one transfer row with the real stage (`run_transfer`: a few training batches, full extraction from
   the memory-mapped cache, all targets' heads and estimators) in a child process, whose peak RSS it reports.
4. Writes outputs/bench/scale.json and prints a table with the goals: cache built at >= 0.8 x workers x the
   one-worker rate; the row's peak RSS < 4 GB at 64 px; heads + estimators < 90 s at CelebA size on 2 cores.

Needs no Hydra: configs are read from conf/ with PyYAML (a Lightning dependency) and validated by config.py.
Projection: the CelebA matrix (41 sources) at these rates, on this machine's CPU and, when
`make bench-gpu` has written outputs/bench/gpu.json, with its GPU training and extraction rates.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from ..config import group_config
from . import REPO, time_goal

FULL = 202_599
WIDTH, HEIGHT = 178, 218
SOURCES = 41          # the CelebA matrix: 40 attributes and identity
LABEL_FILES = ("list_attr_celeba.txt", "identity_CelebA.txt", "list_eval_partition.txt")
GOAL_PARALLEL, GOAL_RSS, GOAL_HEADS_S = 0.8, 4 * 2**30, 90.0
TREE_VERSION = 2   # bump when the generated tree changes: an old tree is rewritten, not reused


def default_labels() -> Path:
    """The real annotation files: $CELEBA_LABELS, ../shared/data/celeba, or shared/data/celeba in the repo."""
    for p in (os.environ.get("CELEBA_LABELS"), REPO.parent / "shared" / "data" / "celeba",
              REPO / "shared" / "data" / "celeba"):
        if p and (Path(p) / LABEL_FILES[0]).is_file():
            return Path(p)
    return REPO.parent / "shared" / "data" / "celeba"


# ---------------------------------------------------------------------------------------------- the tree
_GRAIN = np.random.default_rng(0).normal(0, 6, size=(2 * HEIGHT, 2 * WIDTH, 3)).astype(np.int16)


def _face(i: int):
    """A 178x218 PIL image: a smooth random field (bilinear upsampling of 7x8 colours) plus film grain, so
    its JPEG is photo-sized (~10 KB) and decodes like a photo."""
    from PIL import Image

    rng = np.random.default_rng(i)
    coarse = Image.fromarray(rng.integers(30, 226, size=(8, 7, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize((WIDTH, HEIGHT), Image.BILINEAR), dtype=np.int16)
    dy, dx = rng.integers(0, HEIGHT), rng.integers(0, WIDTH)
    return Image.fromarray(np.clip(smooth + _GRAIN[dy:dy + HEIGHT, dx:dx + WIDTH], 0, 255).astype(np.uint8))


def _write_jpegs(folder: str, names: list[str]) -> int:
    for name in names:
        _face(int(name.split(".")[0])).save(os.path.join(folder, name), quality=90)
    return len(names)


def _copy_labels(labels: Path, root: Path, n: int) -> list[str]:
    """The real label files, cut to n images evenly spaced over the release (so each split keeps its
    share); the attribute file keeps its two header lines. Returns the image file names."""
    keep = np.unique(np.linspace(0, FULL - 1, n).round().astype(np.int64))
    names = None
    for name in LABEL_FILES:
        src = labels / name
        if not src.is_file():
            raise SystemExit(f"label file not found: {src} (pass --labels <folder with the CelebA label files>)")
        with open(src, newline="") as f:
            lines = f.readlines()
        head, body = (lines[:2], lines[2:]) if name == LABEL_FILES[0] else ([], lines)
        if len(body) != FULL:
            raise SystemExit(f"{src}: {len(body)} image lines, expected {FULL:,} (the official release)")
        body = [body[i] for i in keep]
        if head:
            eol = head[0][len(head[0].rstrip("\r\n")):]
            head = [f"{len(body)}{eol}", head[1]]
        (root / name).write_text("".join(head + body), newline="")
        names = names or [line.split()[0] for line in body]
    return names


def make_tree(root: Path, n: int, labels: Path, workers: int) -> float:
    """The release tree with n images; reused when its stamp says n. Returns the seconds spent writing."""
    stamp = root / "tree.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == {"n": n, "version": TREE_VERSION}:
        return 0.0
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    t = time.perf_counter()
    shutil.rmtree(root, ignore_errors=True)
    images = root / "img_align_celeba"
    images.mkdir(parents=True)
    names = _copy_labels(labels, root, n)
    chunks = [names[lo:lo + 1024] for lo in range(0, len(names), 1024)]
    with ProcessPoolExecutor(workers) as pool, tqdm(total=n, unit="img", desc="writing JPEGs", mininterval=1) as bar:
        for done in pool.map(_write_jpegs, [str(images)] * len(chunks), chunks):
            bar.update(done)
    stamp.write_text(json.dumps({"n": n, "version": TREE_VERSION}))
    return time.perf_counter() - t


# ----------------------------------------------------------------------------------------- the decoding
def decode_rates(root: Path, size: int, cache: Path, workers: int, sample: int) -> dict:
    """Images/s of one process on a sample, then of `workers` processes building the whole cache."""
    import torch

    from ..data import images
    from ..data.registry import load_dataset

    src = load_dataset(group_config("dataset", "celeba", root=str(root), image_size=size)).images
    warm = min(200, len(src.relpaths) // 10)
    m = min(sample, len(src.relpaths) - warm)
    before = torch.get_num_threads()
    torch.set_num_threads(1)   # what one worker process runs with
    try:
        # Untimed first: a fresh process's first decodes are slow (full size: 708 img/s timed from a fresh
        # process, 1,941 after this warm-up), which made the workers look more than 100% efficient. The cache
        # build's workers pay that once each, inside its time.
        out = np.empty((max(m, warm), size, size, 3), np.uint8)
        images.decode_rows(out, src.root, src.relpaths[:warm], 0, size)
        t = time.perf_counter()
        images.decode_rows(out, src.root, src.relpaths[warm:warm + m], 0, size)
        one = m / (time.perf_counter() - t)
    finally:
        torch.set_num_threads(before)
    shutil.rmtree(cache / "images", ignore_errors=True)
    t = time.perf_counter()
    arr = src.array(size, cache_dir=cache, workers=workers)
    seconds = time.perf_counter() - t
    return dict(decode_img_s_one_worker=one, decode_img_s=len(arr) / seconds, decode_s=seconds,
                cache_bytes=src.cache_file(size, cache).stat().st_size, workers=workers)


# ------------------------------------------------------------------------------------------------ the row
def target_list(root: Path, targets: str) -> str | list[str]:
    """`all` (40 attributes and identity, as the matrix runs) or `attributes` (the 40 binary ones)."""
    if targets == "all":
        return "all"
    from ..data.registry import load_dataset

    table = load_dataset(group_config("dataset", "celeba", root=str(root))).labels
    return [t for t in table.tasks if t not in table.multiclass]


def row_config(root: Path, out: Path, size: int, trainer: str, batches: int, threads: int | None,
               targets: str = "all"):
    """The transfer stage's RunConfig for source Male -> `targets`, composed from conf/ as run.py would."""
    from ..stages.compose import run_config

    return run_config([
        "stage=transfer", "source=Male", f"target={_override(target_list(root, targets))}", "seed=0", "force=true",
        "dataset=celeba", f"dataset.root={root}", f"dataset.image_size={size}", "backbone=resnet18",
        "head=linear_svm", f"trainer={trainer}", "trainer.max_epochs=1", f"trainer.limit_train_batches={batches}",
        f"trainer.threads={'null' if threads is None else threads}", "callbacks=default", "logger=none",
        f"paths.outputs={out / 'rows'}", f"paths.cache={out / 'cache'}",
    ], run_dir=str(out / "row"))


def _override(value: str | list[str]) -> str:
    return value if isinstance(value, str) else f"[{','.join(value)}]"


class PeakAnon:
    """Samples RssAnon (private memory, the part a memory-mapped file does not add to) every 50 ms; `phase(name)`
    closes the previous phase, so `phases` holds each phase's own peak (where the memory goes)."""

    def __init__(self):
        self.peak, self._stop = 0, threading.Event()
        self.phases: dict[str, int] = {}
        self._name, self._phase_peak = "other", 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.05):
            try:
                for line in Path("/proc/self/status").read_text().splitlines():
                    if line.startswith("RssAnon:"):
                        now = int(line.split()[1]) * 1024
                        self.peak, self._phase_peak = max(self.peak, now), max(self._phase_peak, now)
            except OSError:
                return

    def phase(self, name: str) -> None:
        self.phases[self._name] = max(self.phases.get(self._name, 0), self._phase_peak)
        self._name, self._phase_peak = name, 0

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.phase("other")


def run_row(spec: dict) -> dict:
    """In the child process: the real transfer stage on the tree; its timings and this process's peak RSS."""
    import logging


    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    run = row_config(Path(spec["root"]), Path(spec["out"]), spec["size"], spec["trainer"], spec["batches"],
                     spec["threads"], spec["targets"])
    from ..stages import transfer

    shutil.rmtree(Path(run.paths.cache) / "models", ignore_errors=True)   # train, do not reuse
    with PeakAnon() as anon:
        # The stage's two steps, marked as phases (this child process runs nothing else).
        for step, name in ((transfer.source_model, "train_extract"), (transfer.fit_and_score, "heads_estimators")):
            def marked(*a, _step=step, _name=name, **k):
                anon.phase(_name)
                try:
                    return _step(*a, **k)
                finally:
                    anon.phase("other")   # loading, the glue between the steps, writing
            setattr(transfer, step.__name__, marked)
        t = time.perf_counter()
        out = transfer.run_transfer(run)
        row_s = time.perf_counter() - t
    meta = json.loads((out / "source.json").read_text())
    with open(out / "results.csv", newline="") as f:
        n_targets = sum(1 for _ in csv.DictReader(f))   # targets fitted (a skipped one has no line)
    kept = ("n_train", "n_test", "n_fit", "n_val", "threads", "threads_from", "timings", "history")
    return dict(row_s=row_s, n_targets=n_targets,
                peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                peak_anon_rss_bytes=anon.peak, peak_anon_by_phase={k: v for k, v in anon.phases.items() if v},
                source_json=str(out / "source.json"), **{k: meta[k] for k in kept})


def row_in_child(spec: dict) -> dict:
    """A fresh process, so its peak RSS is the row's alone (not the cache build's)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    result = Path(spec["out"]) / "row_result.json"
    result.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-m", "transferability.bench.scale", "--row", json.dumps(spec),
                           "--row-result", str(result)], env=env)
    if proc.returncode != 0:
        raise SystemExit(f"the transfer row failed (exit {proc.returncode}); its output is above")
    return json.loads(result.read_text())


# ---------------------------------------------------------------------------- heads + estimators, full size
def heads_at_full_size(labels: Path, out: Path, trainer: str, threads: int | None, targets: str) -> dict:
    """The stage's heads and scores (`fit_and_score`) on all 202,599 real label rows (train+val: 182,637
    rows, as the stage fits them) with label-driven synthetic 512-d embeddings: what one CelebA row costs
    after extraction, whatever n the image tree has."""
    from ..data.registry import load_dataset
    from ..stages.source_model import SourceOutputs
    from ..stages.targets import TargetPlan, encode_labels, split_rows
    from ..stages.transfer import fit_and_score
    from ..threads import use_threads

    n_threads, _ = use_threads(threads)
    table = load_dataset(group_config("dataset", "celeba", root=str(labels))).labels
    run = row_config(labels, out, 64, trainer, 1, threads, targets)
    names = table.select(run.target)
    codes, n_classes = encode_labels(table.labels[names])
    train, test = split_rows(table, 1.0, 0)
    rng = np.random.default_rng(0)
    # Features see the attributes through noise (as a trained network's embedding does), so the heads reach
    # the 60-95% accuracies of real attribute heads; noiseless label features make every target separable,
    # which a real row never is, and the squared hinge then takes many more Newton steps.
    binary = np.stack([table.labels[t].to_numpy() for t in table.tasks if t not in table.multiclass], 1)
    latent = binary + 1.0 * rng.normal(size=binary.shape)
    z = np.maximum(latent @ rng.normal(size=(binary.shape[1], 512)) / np.sqrt(binary.shape[1])
                   + rng.normal(size=(len(binary), 512)), 0).astype(np.float32)
    src = names.index("Male")
    logits = 3.0 * (2 * codes[:, src] - 1) + rng.normal(size=len(codes))
    p = np.stack([1 / (1 + np.exp(logits)), 1 / (1 + np.exp(-logits))], 1).astype(np.float32)
    import sklearn.mixture  # noqa: F401  (imports the stage has made before its heads: not the heads' cost)

    from ..models import training  # noqa: F401  (Lightning: seconds to import; the stage trained with it)

    timings: dict = {}
    cpu = time.process_time()   # CPU seconds: on a shared machine, wall time also counts the neighbours' work
    print(f"heads + estimators at full size: {len(train):,} x 512, {len(names)} targets, {n_threads} threads",
          flush=True)
    plan = TargetPlan("Male", names, codes, n_classes, codes[:, src], 2, train, test, [], False,
                      np.zeros(len(train), bool))
    fit_and_score(run, plan, SourceOutputs(z[train], z[test], p[train], p[test], {}, Path()), timings)
    return dict(full_heads_s=timings["heads_s"], full_estimators_s=timings["estimators_s"],
                full_cpu_s=time.process_time() - cpu,
                full_n_train=int(len(train)), full_targets=len(names), full_threads=n_threads,
                full_device=run.trainer.accelerator)


# ------------------------------------------------------------------------------------------ the projection
def project(r: dict, n: int, epochs: int, gpu: dict | None) -> dict:
    """Hours for the CelebA matrix: per source (41), `epochs` epochs of training on the fit rows and a
    validation pass over the val rows (at the extraction rate: the same forward pass), one extraction of all
    images, and the heads and estimators as measured at full size."""
    n_fit, n_val = r["n_fit"] * FULL / n, r["n_val"] * FULL / n
    heads = r["full_heads_estimators_s"]

    def hours(train_rate, extract_rate):
        return SOURCES * (epochs * (n_fit / train_rate + n_val / extract_rate) + FULL / extract_rate + heads) / 3600

    # A row run on the GPU measured no CPU rates: no CPU projection then.
    out = {"projected_matrix_h_cpu": hours(r["train_img_s"], r["extract_img_s"]) if r["device"] == "cpu" else None}
    if gpu:
        out["projected_matrix_h_gpu"] = hours(gpu["train_rate"], gpu["extract_rate"])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m transferability.bench.scale", description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=FULL, help=f"images in the generated tree (CelebA: {FULL:,})")
    ap.add_argument("--size", type=int, default=64, help="image side in the cache (the celeba config's 64)")
    ap.add_argument("--trainer", default="cpu", help="conf/trainer/<name>.yaml for the row (cpu or gpu)")
    ap.add_argument("--batches", type=int, default=20,
                    help="training batches of the row's source model (its rate: the first few include warm-up)")
    ap.add_argument("--workers", type=int, default=None, help="decoding processes (default: the allotted CPUs)")
    ap.add_argument("--threads", type=int, default=None, help="trainer.threads of the row (default: the allotment)")
    ap.add_argument("--targets", choices=("all", "attributes"), default="all",
                    help="all: the 40 attributes and identity (the matrix); attributes: the 40 binary ones")
    ap.add_argument("--heads-only", action="store_true",
                    help="only heads + estimators at full size on synthetic embeddings (no images)")
    ap.add_argument("--heads-from", type=Path, default=None,
                    help="take the full-size heads + estimators figures from an earlier --heads-only json")
    ap.add_argument("--skip-full-heads", action="store_true",
                    help="no full-size heads check: the projection scales the row's heads linearly to 202,599")
    ap.add_argument("--row-from", type=Path, default=None,
                    help="take the row's figures from an earlier run's row_result.json instead of running it")
    ap.add_argument("--sample", type=int, default=2000, help="images decoded by one process for its rate")
    ap.add_argument("--labels", type=Path, default=None, help="folder with the real CelebA label files")
    ap.add_argument("--out", type=Path, default=REPO / "outputs" / "bench" / "scale", help="tree, cache and row")
    ap.add_argument("--json", type=Path, default=REPO / "outputs" / "bench" / "scale.json")
    ap.add_argument("--gpu-json", type=Path, default=REPO / "outputs" / "bench" / "gpu.json",
                    help="make bench-gpu's rates, for the GPU projection")
    ap.add_argument("--row", help=argparse.SUPPRESS)
    ap.add_argument("--row-result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.row:
        from .. import io

        io.write_json(args.row_result, run_row(json.loads(args.row)))
        return 0
    if not 3000 <= args.n <= FULL:
        print(f"--n {args.n}: expected 3000..{FULL} (fewer images leave too few per split and identity)")
        return 2
    from .. import io
    from ..threads import allotted_cpus

    labels = args.labels or default_labels()
    for given in (args.heads_from, args.row_from):
        if given and not given.is_file():
            print(f"{given}: not found (expected a json written by an earlier run)")
            return 2
    if args.heads_only:
        r = heads_at_full_size(labels, args.out, args.trainer, args.threads, args.targets)
        r["full_heads_estimators_s"] = r["full_heads_s"] + r["full_estimators_s"]
        io.write_json(args.json, r)
        print(json.dumps(r, indent=1))
        print(f"wrote {args.json}")
        return 0
    cpus, why = allotted_cpus()
    workers = args.workers or cpus
    args.out.mkdir(parents=True, exist_ok=True)
    root = args.out / f"celeba_n{args.n}"
    t0 = time.perf_counter()
    print(f"CPUs: {cpus} ({why}); writing the tree {root}", flush=True)
    tree_s = make_tree(root, args.n, labels, workers)
    print(f"decoding: one process on {min(args.sample, args.n):,} images, then {workers} building the cache",
          flush=True)
    r = dict(n_images=args.n, image_size=args.size, cpus=cpus, cpus_from=why, tree_s=tree_s,
             **decode_rates(root, args.size, args.out / "cache", workers, args.sample))
    print(f"the row: source Male -> {args.targets} targets, trainer={args.trainer}, {args.batches} training batches",
          flush=True)
    if args.row_from:
        row = dict(json.loads(args.row_from.read_text()), row_from=str(args.row_from))
    else:
        row = row_in_child(dict(root=str(root), out=str(args.out), size=args.size, trainer=args.trainer,
                                batches=args.batches, threads=args.threads, targets=args.targets))
    tm = row.pop("timings")
    hist = row.pop("history")
    trainer = dataclasses.asdict(group_config("trainer", args.trainer))
    r.update(row, train_s=tm["train_s"], extract_s=tm["extract_s"], heads_s=tm["heads_s"],
             estimators_s=tm["estimators_s"], extract_img_s=(row["n_train"] + row["n_test"]) / tm["extract_s"],
             # training alone: an epoch's seconds include its validation pass (`val_seconds`)
             train_img_s=sum(h["images"] for h in hist)
             / max(1e-9, sum(h["seconds"] - h.get("val_seconds", 0.0) for h in hist)),
             trainer=args.trainer, batches=args.batches, device="cpu" if trainer["accelerator"] == "cpu" else "gpu",
             epochs_per_source=trainer["max_epochs"])
    r.update(parallel_efficiency=r["decode_img_s"] / (workers * r["decode_img_s_one_worker"]), targets=args.targets)
    if args.heads_from:
        earlier = json.loads(args.heads_from.read_text())
        r.update({k: v for k, v in earlier.items() if k.startswith("full_")}, full_from=str(args.heads_from))
    elif args.n == FULL:
        # The row itself was full size: its heads and estimators on real extracted embeddings are the figure,
        # so the synthetic stand-in (minutes more) would only measure the same thing less faithfully.
        r.update(full_heads_s=tm["heads_s"], full_estimators_s=tm["estimators_s"], full_n_train=row["n_train"],
                 full_targets=row["n_targets"], full_threads=row["threads"], full_device=r["device"],
                 full_from="the row itself (full size)")
    elif args.skip_full_heads:
        r.update(full_heads_s=tm["heads_s"] * FULL / args.n, full_estimators_s=tm["estimators_s"] * FULL / args.n,
                 full_n_train=round(row["n_train"] * FULL / args.n), full_targets=None, full_threads=row["threads"],
                 full_device=r["device"], full_from="the row's heads and estimators, scaled linearly to 202,599")
    else:
        r.update(heads_at_full_size(labels, args.out, args.trainer, args.threads, args.targets))
    r["full_heads_estimators_s"] = r["full_heads_s"] + r["full_estimators_s"]
    gpu = json.loads(args.gpu_json.read_text()) if args.gpu_json.is_file() else None
    r.update(project(r, args.n, trainer["max_epochs"], gpu), gpu_json=str(args.gpu_json) if gpu else None)
    r["total_s"] = time.perf_counter() - t0
    io.write_json(args.json, r)
    print(report(r))
    print(f"wrote {args.json}")
    return 0


def report(r: dict) -> str:
    gb = 2**30
    lines = [
        f"full-size rehearsal: {r['n_images']:,} images at {r['image_size']} px, {r['cpus']} CPUs ({r['cpus_from']}), "
        f"row on {r['device']} ({r['trainer']}), {r['threads']} threads, targets: {r['targets']}",
        f"{'measure':<40}{'value':>16}  goal",
        f"{'decode, 1 process (img/s)':<40}{r['decode_img_s_one_worker']:>16,.0f}",
        f"{'decode, %d processes (img/s)' % r['workers']:<40}{r['decode_img_s']:>16,.0f}  "
        f">= {GOAL_PARALLEL} x {r['workers']} x 1-process: {r['parallel_efficiency']:.2f} x "
        f"({'met' if r['parallel_efficiency'] >= GOAL_PARALLEL else 'NOT met'})",
        f"{'image cache (GB)':<40}{r['cache_bytes'] / gb:>16.2f}",
        f"{'row: train, %d batches (s)' % r['batches']:<40}{r['train_s']:>16.1f}",
        f"{'row: extract (img/s)':<40}{r['extract_img_s']:>16,.0f}  ({r['n_train'] + r['n_test']:,} images)",
        f"{'row: heads (s)':<40}{r['heads_s']:>16.1f}",
        f"{'row: estimators (s)':<40}{r['estimators_s']:>16.1f}",
        f"{'heads + estimators, %s x 512 (s)' % format(r['full_n_train'], ','):<40}"
        f"{r['full_heads_estimators_s']:>16.1f}  < {GOAL_HEADS_S:.0f} s on 2 cores: "
        f"{time_goal(r['full_heads_estimators_s'], r.get('full_cpu_s', r['full_heads_estimators_s']), GOAL_HEADS_S)} "
        f"({r['full_threads']} threads "
        f"here, heads on {r['full_device']}: {r['full_heads_s']:.1f} + {r['full_estimators_s']:.1f} s"
        + (f"; {r['full_cpu_s']:.0f} CPU-s" if "full_cpu_s" in r else "")
        + (f"; from {r['full_from']}" if "full_from" in r else "") + ")",
        f"{'row: total (s)':<40}{r['row_s']:>16.1f}",
        f"{'row: peak RSS (GB)':<40}{r['peak_rss_bytes'] / gb:>16.2f}  < {GOAL_RSS / gb:.0f} GB at 64 px "
        f"({'met' if r['peak_rss_bytes'] < GOAL_RSS else 'NOT met'}); private (anon) "
        f"{r['peak_anon_rss_bytes'] / gb:.2f} GB",
    ]
    if r.get("peak_anon_by_phase"):
        lines.append(f"{'row: private peak by phase (GB)':<40}" + ", ".join(
            f"{k} {r['peak_anon_by_phase'][k] / gb:.2f}" for k in ("train_extract", "heads_estimators", "other")
            if k in r["peak_anon_by_phase"]))
    for key, where in (("projected_matrix_h_cpu", "this CPU"), ("projected_matrix_h_gpu", "GPU (bench-gpu rates)")):
        if r.get(key) is not None:
            lines.append(f"{'CelebA matrix, 41 sources, ' + where + ' (h)':<40}{r[key]:>16.1f}  "
                         f"({r['epochs_per_source']} epochs per source)")
    return "\n".join(lines)


if __name__ == "__main__":
    from transferability.logs import to_console

    to_console()
    raise SystemExit(main())
