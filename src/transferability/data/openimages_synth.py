"""An Open-Images-sized image-level label table in the release's exact format, generated (never committed).

`python -m transferability.data.openimages_synth OUT_DIR [--images 9000000] [--classes 20000] [--seed 0]`
writes into OUT_DIR:

    oidv6-train-annotations-human-imagelabels.csv   ImageID,Source,LabelName,Confidence  (1 present, 0 absent)
    oidv6-class-descriptions.csv                    LabelName,DisplayName
    hierarchy.csv                                   LabelName,ParentLabelName (the generator's truth, for checks)
    synth.json                                      the arguments and counts, written last (present = complete)

The structure follows what makes Open Images' labels what they are:
- power-law class frequencies: a drawn label is class c (0 = most frequent) with probability ~ (c + 1)^-alpha;
- a class hierarchy: most classes have a parent among the more frequent ones (depth at most `max_depth`), and a
  present child implies its present parent (the release's labels are expanded up the hierarchy the same way);
- verified negatives: each image also gets some classes verified absent, drawn by the same frequencies (the
  release's negatives are mostly rejected guesses of common classes), never one of its present classes;
- every other (image, class) pair has no line: unknown.
Display names spell each class's path, e.g. `C3/C57/C1234`, so a reader of the estimate sees the hierarchy.
Same arguments, same bytes.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import io

LABELS_FILE = "oidv6-train-annotations-human-imagelabels.csv"
CLASSES_FILE = "oidv6-class-descriptions.csv"
HIERARCHY_FILE = "hierarchy.csv"
SPEC_FILE = "synth.json"
HEADER = b"ImageID,Source,LabelName,Confidence\n"
SOURCES = (b"verification", b"crowdsource-verification")
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@dataclass(frozen=True)
class SynthSpec:
    n_images: int = 9_000_000
    n_classes: int = 20_000
    alpha: float = 1.0               # class c drawn with probability ~ (c + 1)^-alpha
    labels_per_image: float = 2.2    # mean drawn present labels per image (at least one), before parents
    negatives_per_image: float = 2.0  # mean drawn verified-absent labels per image
    parent_fraction: float = 0.8     # classes that have a parent
    max_depth: int = 3               # longest chain child -> parent -> ... -> root
    seed: int = 0


def hierarchy(spec: SynthSpec, rng: np.random.Generator) -> np.ndarray:
    """parent[c] (-1 for a root): a more frequent class, favouring the most frequent, depth <= max_depth."""
    c_n = spec.n_classes
    parent = np.full(c_n, -1, dtype=np.int64)
    depth = np.zeros(c_n, dtype=np.int64)
    has = rng.random(c_n) < spec.parent_fraction
    pick = rng.random(c_n) ** 2
    for c in range(1, c_n):
        if has[c]:
            p = int(pick[c] * c)
            while depth[p] >= spec.max_depth:
                p = parent[p]
            parent[c], depth[c] = p, depth[p] + 1
    return parent


def label_names(n_classes: int) -> np.ndarray:
    """`/m/0` + 5 hex digits per class, as an (n_classes, 9) byte table (the release's MIDs look alike)."""
    c = np.arange(n_classes, dtype=np.int64)
    digits = _HEX[(c[:, None] >> np.array([16, 12, 8, 4, 0])) & 15]
    prefix = np.broadcast_to(np.frombuffer(b"/m/0", dtype=np.uint8), (n_classes, 4))
    return np.concatenate([prefix, digits], axis=1)


def display_names(parent: np.ndarray) -> list[str]:
    names: list[str] = []
    for c, p in enumerate(parent):   # parents precede children
        names.append(f"C{c}" if p < 0 else f"{names[p]}/C{c}")
    return names


def image_ids(index: np.ndarray, seed: int) -> np.ndarray:
    """16 hex digits per image: a bijective mix (splitmix64's finaliser) of the index, so ids are unique."""
    with np.errstate(over="ignore"):
        x = index.astype(np.uint64) + np.uint64(seed + 1) * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return _HEX[(x[:, None] >> np.arange(60, -4, -4, dtype=np.uint64)) & np.uint64(15)]


def chunk_labels(first: int, n: int, spec: SynthSpec, cum: np.ndarray, parent: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image index, class, confidence) of images first..first+n-1, sorted by image then class."""
    c_n = spec.n_classes
    k = 1 + rng.poisson(max(spec.labels_per_image - 1, 0.0), n)
    img = np.repeat(np.arange(n, dtype=np.int64), k)
    cls = np.minimum(np.searchsorted(cum, rng.random(len(img))), c_n - 1)
    up_img, up_cls = [img], [cls]
    for _ in range(spec.max_depth):     # a present child implies its parent
        p = parent[up_cls[-1]]
        keep = p >= 0
        up_img.append(up_img[-1][keep])
        up_cls.append(p[keep])
    pos = np.unique(np.concatenate(up_img) * c_n + np.concatenate(up_cls))
    m = rng.poisson(spec.negatives_per_image, n)
    neg_img = np.repeat(np.arange(n, dtype=np.int64), m)
    neg = np.unique(neg_img * c_n + np.minimum(np.searchsorted(cum, rng.random(len(neg_img))), c_n - 1))
    neg = neg[~np.isin(neg, pos, assume_unique=True)]
    keys = np.concatenate([pos, neg])
    conf = np.concatenate([np.ones(len(pos), np.uint8), np.zeros(len(neg), np.uint8)])
    order = np.argsort(keys, kind="stable")
    keys, conf = keys[order], conf[order]
    return keys // c_n + first, keys % c_n, conf


def format_lines(img: np.ndarray, cls: np.ndarray, conf: np.ndarray, names: np.ndarray, seed: int,
                 rng: np.random.Generator) -> bytes:
    """CSV lines: every field at a fixed offset in a byte matrix, the Source padded with NULs, which are
    then dropped (no field contains a NUL), so the lines come out variable-length as in the release."""
    n = len(img)
    w = 16 + 1 + 24 + 1 + 9 + 1 + 1 + 1
    mat = np.zeros((n, w), dtype=np.uint8)
    mat[:, :16] = image_ids(img, seed)
    mat[:, 16] = ord(",")
    src = np.zeros((2, 24), dtype=np.uint8)
    for i, s in enumerate(SOURCES):
        src[i, :len(s)] = np.frombuffer(s, dtype=np.uint8)
    mat[:, 17:41] = src[(rng.random(n) < 0.2).astype(np.int64)]
    mat[:, 41] = ord(",")
    mat[:, 42:51] = names[cls]
    mat[:, 51] = ord(",")
    mat[:, 52] = ord("0") + conf
    mat[:, 53] = ord("\n")
    flat = mat.ravel()
    return flat[flat != 0].tobytes()


def generate(out: Path, spec: SynthSpec, chunk_images: int = 200_000, progress: bool = True) -> dict:
    """Write the three files into `out` (each atomically); returns counts and the labels file's size."""
    from tqdm import tqdm

    rng = np.random.default_rng(spec.seed)
    parent = hierarchy(spec, rng)
    weights = (np.arange(spec.n_classes, dtype=np.float64) + 1.0) ** -spec.alpha
    cum = np.cumsum(weights / weights.sum())
    names = label_names(spec.n_classes)
    mids = [bytes(r).decode() for r in names]
    display = display_names(parent)
    out.mkdir(parents=True, exist_ok=True)
    io.write_text(out / CLASSES_FILE, "LabelName,DisplayName\n" + "".join(f"{m},{d}\n" for m, d in zip(mids, display)))
    io.write_text(out / HIERARCHY_FILE, "LabelName,ParentLabelName\n"
                  + "".join(f"{mids[c]},{mids[p]}\n" for c, p in enumerate(parent) if p >= 0))
    lines = present = 0
    with io.atomic_path(out / LABELS_FILE) as tmp, open(tmp, "wb") as f:
        f.write(HEADER)
        starts = range(0, spec.n_images, chunk_images)
        for first in tqdm(starts, desc="openimages_synth", unit="chunk", disable=not progress):
            n = min(chunk_images, spec.n_images - first)
            img, cls, conf = chunk_labels(first, n, spec, cum, parent, rng)
            f.write(format_lines(img, cls, conf, names, spec.seed, rng))
            lines += len(img)
            present += int(conf.sum())
    stats = dict(images=spec.n_images, classes=spec.n_classes, lines=lines, present=present,
                 bytes=(out / LABELS_FILE).stat().st_size)
    io.write_json(out / SPEC_FILE, {"spec": dataclasses.asdict(spec), "stats": stats})
    return stats


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    d = SynthSpec()
    p.add_argument("--images", type=int, default=d.n_images)
    p.add_argument("--classes", type=int, default=d.n_classes)
    p.add_argument("--seed", type=int, default=d.seed)
    args = p.parse_args(argv)
    if args.images < 1 or args.classes < 2:
        p.error("--images must be >= 1 and --classes >= 2")
    stats = generate(args.out, SynthSpec(n_images=args.images, n_classes=args.classes, seed=args.seed))
    print(f"wrote {args.out / LABELS_FILE}: {stats['lines']:,} lines ({stats['present']:,} present, "
          f"{stats['lines'] - stats['present']:,} verified absent) on {stats['images']:,} images x "
          f"{stats['classes']:,} classes, {stats['bytes'] / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
