"""Image sources: pixels row-aligned with a dataset's label table, as uint8 (N, size, size, C).

Two kinds share one interface (`ids`, `channels`, `array(size, cache_dir=None)`):

- `ArrayImages`: images already in memory (digits); resized on request, nothing cached.
- `FileImages`: JPEG/PNG files (CelebA, AwA2, CUB); decoded and resized once into
  `cache_dir/images/<key>.npy` and memory-mapped from then on. The key hashes the files' sizes and
  mtimes, so editing an image invalidates the cache instead of silently serving stale pixels; the .npy's
  sha256 is recorded beside it (`<key>.npy.sha256.json`) and checked before use, so a garbled or
  truncated cache is decoded again (with a one-line notice) instead of read.

`fingerprint()` of either kind is what the source-model cache key holds for the images.

torch/torchvision are imported inside functions so that importing this module (and so loading a
label table for `stage=estimate`) stays light.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .. import io
from ..errors import UserError
from ..io import atomic_path

_CHUNK = 4096  # images resized per torch call: bounds the float copy's memory


class ArrayImages:
    """In-memory uint8 images, (N, H, W) grey or (N, H, W, C)."""

    def __init__(self, images: np.ndarray, ids: list[str]):
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise ValueError(f"expected uint8 (N,H,W) or (N,H,W,C) images, got {images.dtype} {images.shape}")
        if images.ndim == 3:
            images = images[..., None]
        if len(images) != len(ids):
            raise ValueError(f"{len(images)} images but {len(ids)} ids")
        self._images = images
        self.ids = list(ids)

    @property
    def channels(self) -> int:
        return int(self._images.shape[-1])

    def fingerprint(self) -> str:
        """sha256 of the pixels (and ids): a changed image changes every cache key made from it."""
        h = hashlib.sha256(json.dumps([list(self._images.shape), self.ids]).encode())
        h.update(np.ascontiguousarray(self._images).data)
        return h.hexdigest()[:20]

    def array(self, size: int, cache_dir: Path | None = None) -> np.ndarray:
        """(N, size, size, C) uint8; the stored array itself when it already has that size."""
        check_size(size)
        h, w = self._images.shape[1:3]
        if h == w == size:
            return self._images
        return resize_batch(self._images, size)


class FileImages:
    """Image files under `root` (one relative path per row), decoded once into an .npy cache."""

    channels = 3  # decoded as RGB whatever the file holds (CUB has a few grey JPEGs)

    def __init__(self, root: Path, relpaths: list[str], ids: list[str], workers: int | None = None):
        if len(relpaths) != len(ids):
            raise ValueError(f"{len(relpaths)} paths but {len(ids)} ids")
        self.root = Path(root)
        self.relpaths = list(relpaths)
        self.ids = list(ids)
        self.workers = workers or min(8, os.cpu_count() or 1)

    def fingerprint(self) -> str:
        """Each file's path, size and mtime (content hashes of 200k JPEGs would cost more than decoding)."""
        return cache_key(self.root, self.relpaths, 0)

    def cache_file(self, size: int, cache_dir: Path) -> Path:
        return Path(cache_dir) / "images" / f"{cache_key(self.root, self.relpaths, size)}.npy"

    def array(self, size: int, cache_dir: Path | None = None) -> np.ndarray:
        """(N, size, size, 3) uint8: shorter side resized to `size`, then centre-cropped.

        With `cache_dir`, the result is written once (atomically) and memory-mapped read-only."""
        check_size(size)
        if cache_dir is None:
            out = np.empty((len(self.relpaths), size, size, 3), np.uint8)
            self._decode_into(out, size)
            return out
        path = self.cache_file(size, cache_dir)
        shape = (len(self.relpaths), size, size, 3)
        record = path.with_name(path.name + ".sha256.json")
        if path.exists():
            why = io.manifest_problem(record, [path])
            if why is None:
                try:
                    cached = np.load(path, mmap_mode="r")
                    if cached.shape == shape and cached.dtype == np.uint8:
                        return cached
                    why = f"shape {cached.shape}, expected {shape}"
                except (ValueError, OSError, EOFError) as e:
                    why = f"unreadable ({type(e).__name__})"
            print(f"decoding the images again: cache {path} not usable ({why})")
        record.unlink(missing_ok=True)
        with atomic_path(path) as tmp:
            # Written straight into a memory map: a 200k-image cache never has to fit in RAM.
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            reserve(tmp, tmp.stat().st_size)
            self._decode_into(out, size)
            out.flush()
            del out
        io.write_manifest(record, [path])
        return np.load(path, mmap_mode="r")

    def _decode_into(self, out: np.ndarray, size: int) -> None:
        from tqdm import tqdm

        paths = [self.root / p for p in self.relpaths]
        # torchvision 0.29 warns once per call that decoding moves to torchcodec (not installed here);
        # the decoder still works, and thousands of identical warnings would bury real ones.
        warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                                category=DeprecationWarning)

        def one(i: int) -> None:
            out[i] = _resize_crop(_decode(paths[i]), size)

        # decode_image and resize release the GIL, so threads use every core without pickling.
        pool = ThreadPoolExecutor(self.workers)
        try:
            for _ in tqdm(pool.map(one, range(len(paths))), total=len(paths), unit="img",
                          desc=f"decoding {self.root.name} at {size}px", mininterval=1.0):
                pass
        finally:
            pool.shutdown(cancel_futures=True)  # a bad file stops the run now, not after the rest


def reserve(path: Path, nbytes: int) -> None:
    """Check the free space for `nbytes` and allocate the file's blocks now: writing into a sparse memory
    map on a full disk kills the process with SIGBUS, with no message at all."""
    import shutil

    free = shutil.disk_usage(path.parent).free
    if free < nbytes:
        raise UserError(f"not enough free space for the image cache {path.parent}: needs {nbytes / 1e9:.2f} GB, "
                        f"{free / 1e9:.2f} GB free (free some, or set paths.cache=<dir on another disk>)")
    if hasattr(os, "posix_fallocate"):
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, nbytes)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise UserError(f"not enough free space for the image cache in {path.parent}: needs "
                                f"{nbytes / 1e9:.2f} GB ({e.strerror}); set paths.cache=<dir on another disk>") from None
            # EOPNOTSUPP etc.: a file system without fallocate; the free-space check above stands
        finally:
            os.close(fd)


def cache_key(root: Path, relpaths: list[str], size: int) -> str:
    """Hash of (resolved root, relpaths, size, each file's size and mtime): a changed file changes it.

    Stats every file, so a missing one is reported here, before any decoding starts."""
    root = Path(root).resolve()
    h = hashlib.sha256(json.dumps([str(root), int(size)]).encode())
    for rel in relpaths:
        path = root / rel
        try:
            st = path.stat()
        except FileNotFoundError:
            raise UserError(f"image file not found: {path}") from None
        h.update(f"\0{rel}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def _decode(path: Path):
    """(3, H, W) uint8 tensor; an unreadable or corrupt file is a one-line UserError naming it."""
    from torchvision.io import ImageReadMode, decode_image, read_file

    if not path.is_file():
        raise UserError(f"image file not found: {path}")
    try:
        return decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
    except (RuntimeError, ValueError) as e:
        reason = (str(e).strip().splitlines() or ["unknown error"])[0]
        raise UserError(f"cannot decode image {path}: {reason}") from None


def _resize_crop(img, size: int):
    """(…, C, H, W) uint8 tensor -> (…, size, size, C) numpy: shorter side to `size`, centre crop."""
    from torchvision.transforms.v2 import functional as F

    if min(img.shape[-2:]) != size:
        img = F.resize(img, [size], antialias=True)  # one int = the shorter side
    img = F.center_crop(img, [size, size])
    return img.movedim(-3, -1).numpy()


def resize_batch(images: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W, C) uint8 -> (N, size, size, C) uint8, antialiased bilinear, in chunks."""
    import torch

    out = np.empty((len(images), size, size, images.shape[-1]), np.uint8)
    for lo in range(0, len(images), _CHUNK):
        batch = torch.from_numpy(np.ascontiguousarray(images[lo:lo + _CHUNK])).movedim(-1, 1)
        out[lo:lo + _CHUNK] = _resize_crop(batch, size)
    return out


def check_size(size: int) -> None:
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise UserError(f"image_size={size!r}: expected a positive integer")
