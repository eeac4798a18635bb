"""Image sources: pixels row-aligned with a dataset's label table, as uint8 (N, size, size, C).

Two kinds share one interface (`ids`, `channels`, `array(size, cache_dir=None, workers=None)`):

- `ArrayImages`: images already in memory (digits); resized on request, nothing cached.
- `FileImages`: JPEG/PNG files (CelebA, AwA2, CUB); decoded and resized once into
  `cache_dir/images/<key>.npy` and memory-mapped from then on (`pil_images.PILImages`: any format PIL reads,
  grey sets kept grey; the same cache). The key hashes the files' sizes and
  mtimes, so editing an image invalidates the cache instead of silently serving stale pixels; the .npy's
  sha256 is recorded beside it (`<key>.npy.sha256.json`) and checked before use, so a garbled or
  truncated cache is decoded again (with a one-line notice) instead of read. Jobs that need the same cache
  take turns on its lock (`<key>.npy.lock`): one decodes, the others wait and read its file.
  Decoding runs in worker processes (one per allotted CPU, threads.py), each writing its chunk of
  images straight into the cache file: per-image Python work holds the GIL, so threads do not scale.

`fingerprint()` of either kind is what the source-model cache key holds for the images.
`Rows` is a selection of rows of such an array that reads them only when indexed: training and
extraction read a batch at a time from the memory map, and a 200k-image selection is never copied.

torch/torchvision are imported inside functions so that importing this module (and so loading a
label table for `stage=estimate`) stays light.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import warnings
from pathlib import Path

import numpy as np

from .. import io
from ..errors import UserError
from ..io import atomic_path
from ..logs import progress

log = logging.getLogger(__name__)

_CHUNK = 4096  # images resized per torch call: bounds the float copy's memory
_MIN_PARALLEL = 512  # fewer files than this are decoded in this process: starting workers costs more
_RELEASE_BYTES = 256 << 20  # Rows: after reading this much from a memory map, drop its pages from our RSS


class Rows:
    """Rows `index` of `base` (typically the memory-mapped cache), read only when indexed.

    `rows[i]` (an int, slice or integer array) is `base[index[i]]`: one fancy-index of the map per batch.
    `shape`, `dtype`, `ndim` and `len` describe the selection as if it were an array.

    Pages of a memory map that were read stay mapped, and count in the process's RSS, until released: an
    extraction pass over a 2.5 GB cache would hold all of it. Every `_RELEASE_BYTES` read, the map's pages
    are dropped from this process (madvise DONTNEED; the kernel's page cache keeps them, so a re-read is
    cheap). Only the batches in flight then count."""

    def __init__(self, base: np.ndarray, index):
        self.base = base
        self.index = np.asarray(index, dtype=np.int64)
        self._read = 0

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i) -> np.ndarray:
        out = self.base[self.index[i]]
        self._read += out.nbytes
        if self._read >= _RELEASE_BYTES:
            self._read = 0
            release_pages(self.base)
        return out

    @property
    def shape(self) -> tuple:
        return (len(self.index),) + tuple(self.base.shape[1:])

    @property
    def dtype(self):
        return self.base.dtype

    @property
    def ndim(self) -> int:
        return self.base.ndim

    def __getstate__(self):
        # A memory map pickles as a full copy; a DataLoader worker started by spawn reopens the file instead.
        if isinstance(self.base, np.memmap) and self.base.filename:
            return {"path": self.base.filename, "index": self.index}
        return {"base": self.base, "index": self.index}

    def __setstate__(self, state):
        self.index, self._read = state["index"], 0
        self.base = state["base"] if "base" in state else np.load(state["path"], mmap_mode="r")


def release_pages(x) -> None:
    """Drop a read-only memory map's resident pages from this process (no-op for anything else)."""
    import mmap

    m = getattr(x, "_mmap", None)   # numpy keeps the mmap object of a memmap it opened here
    if isinstance(m, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        m.madvise(mmap.MADV_DONTNEED)


def select_rows(x, rows) -> Rows:
    """Rows `rows` (integer indices or a boolean mask) of an array or of another selection, uncopied."""
    rows = np.asarray(rows)
    if rows.dtype == bool:
        rows = np.flatnonzero(rows)
    if isinstance(x, Rows):
        return Rows(x.base, x.index[rows])
    return Rows(x, rows)


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

    def array(self, size: int, cache_dir: Path | None = None, workers: int | None = None) -> np.ndarray:
        """(N, size, size, C) uint8; the stored array itself when it already has that size."""
        check_size(size)
        h, w = self._images.shape[1:3]
        if h == w == size:
            return self._images
        return resize_batch(self._images, size)


class ImageFileError(UserError):
    """A listed image that is missing or cannot be decoded; `row` is its position in the source's list."""

    def __init__(self, message: str, row: int):
        super().__init__(message)
        self.row = row

    def __reduce__(self):   # raised in decoding workers: pickled back with its row
        return type(self), (str(self), self.row)


class FileImages:
    """Image files under `root` (one relative path per row), decoded once into an .npy cache.

    `locate(row)`, when given, says where a row's file was listed ('metadata.csv, line 7, column file_name');
    it opens the error message about a missing or undecodable file."""

    channels = 3  # decoded as RGB whatever the file holds (CUB has a few grey JPEGs)
    channel_options: tuple[int, ...] = (3,)   # channel counts a cache entry of this source may have
    decoder_name = ""   # in the cache key of sources that decode otherwise (pil_images.py)

    def __init__(self, root: Path, relpaths: list[str], ids: list[str], workers: int | None = None,
                 locate=None):
        if len(relpaths) != len(ids):
            raise ValueError(f"{len(relpaths)} paths but {len(ids)} ids")
        self.root = Path(root)
        self.relpaths = list(relpaths)
        self.ids = list(ids)
        self.workers = workers   # None: the CPUs this process was given (threads.allotted_cpus)
        self.locate = locate

    def fingerprint(self) -> str:
        """Each file's path, size and mtime (content hashes of 200k JPEGs would cost more than decoding)."""
        with self._located():
            return cache_key(self.root, self.relpaths, 0, self.decoder_name)

    def cache_file(self, size: int, cache_dir: Path) -> Path:
        with self._located():
            return Path(cache_dir) / "images" / f"{cache_key(self.root, self.relpaths, size, self.decoder_name)}.npy"

    def decoder(self):
        """path -> (C, H, W) uint8 tensor, C = `decode_channels()`: a module-level function (or a partial of one)
        so that worker processes receive it. None: `_decode`, looked up when called."""
        return None

    def decode_channels(self) -> int:
        """The channels of a cache entry about to be written."""
        return 3

    @contextlib.contextmanager
    def _located(self):
        try:
            yield
        except ImageFileError as e:
            if self.locate is None:
                raise
            raise UserError(f"{self.locate(e.row)}: {e}") from None

    def array(self, size: int, cache_dir: Path | None = None, workers: int | None = None) -> np.ndarray:
        """(N, size, size, C) uint8: shorter side resized to `size`, then centre-cropped.

        With `cache_dir`, the result is written once (atomically) by `workers` processes and
        memory-mapped read-only; without, decoded here into memory."""
        with self._located():
            return self._array(size, cache_dir, workers)

    def _array(self, size: int, cache_dir: Path | None, workers: int | None) -> np.ndarray:
        check_size(size)
        if cache_dir is None:
            out = np.empty((len(self.relpaths), size, size, self.decode_channels()), np.uint8)
            decode_rows(out, self.root, self.relpaths, 0, size, self._progress(size), self.decoder())
            return out
        path = self.cache_file(size, cache_dir)
        # One job decodes, the others wait on the lock and then read its finished file.
        with io.locked(path.with_name(path.name + ".lock"), f"the image cache {path.name}"):
            return self._fill(path, size, workers)

    def _fill(self, path: Path, size: int, workers: int | None) -> np.ndarray:
        """The cache file at `path`, decoded first unless a checked one is there (its lock held)."""
        shape = (len(self.relpaths), size, size)
        record = path.with_name(path.name + ".sha256.json")
        if path.exists():
            why = io.manifest_problem(record, [path])
            if why is None:
                try:
                    cached = np.load(path, mmap_mode="r")
                    if (cached.shape[:3] == shape and cached.ndim == 4 and cached.shape[3] in self.channel_options
                            and cached.dtype == np.uint8):
                        return cached
                    why = f"shape {cached.shape}, expected {shape + (self.channel_options[-1],)}"
                except (ValueError, OSError, EOFError) as e:
                    why = f"unreadable ({type(e).__name__})"
            log.info(f"decoding the images again: cache {path} not usable ({why})")
        shape = shape + (self.decode_channels(),)
        record.unlink(missing_ok=True)
        with atomic_path(path, nbytes=int(np.prod(shape))) as tmp:
            # Written straight into a memory map: a 200k-image cache never has to fit in RAM.
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            io.reserve(tmp, tmp.stat().st_size, name=path)
            n_workers = workers or self.workers
            if n_workers is None:
                from ..threads import allotted_cpus

                n_workers = allotted_cpus()[0]
            if n_workers > 1 and len(self.relpaths) >= _MIN_PARALLEL:
                out.flush()
                del out
                self._decode_parallel(tmp, size, n_workers)
            else:
                decode_rows(out, self.root, self.relpaths, 0, size, self._progress(size), self.decoder())
                out.flush()
                del out
        io.write_manifest(record, [path])
        return np.load(path, mmap_mode="r")

    def _progress(self, size: int):
        return progress(total=len(self.relpaths), unit="img", desc=f"decoding {self.root.name} at {size}px",
                        mininterval=1.0)

    def _decode_parallel(self, path: Path, size: int, workers: int) -> None:
        """Chunks of files decoded by `workers` spawned processes into the .npy at `path` (already sized)."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        n = len(self.relpaths)
        step = max(64, min(1024, n // (workers * 8)))   # small enough to balance, large enough to amortise
        # fork, as torch's DataLoader does for its CPU workers: a child starts in milliseconds, where a
        # spawned one re-imports torch (seconds each). Workers touch neither CUDA nor the parent's threads.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
        bar = self._progress(size)
        try:
            jobs = [pool.submit(_decode_chunk, str(path), str(self.root), self.relpaths[lo:lo + step], lo, size,
                                self.decoder()) for lo in range(0, n, step)]
            for job in as_completed(jobs):
                bar.update(job.result())
        finally:
            pool.shutdown(cancel_futures=True)  # a bad file stops the run now, not after the rest
            bar.close()


def decode_rows(out: np.ndarray, root: Path, relpaths: list[str], lo: int, size: int, bar=None,
                decode=None) -> None:
    """out[lo + j] = file j decoded (by `decode`, else `_decode`), resized and cropped."""
    # torchvision 0.29 warns once per call that decoding moves to torchcodec (not installed here);
    # the decoder still works, and thousands of identical warnings would bury real ones.
    warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                            category=DeprecationWarning)
    root = Path(root)
    for j, rel in enumerate(relpaths):
        try:
            img = (decode or _decode)(root / rel)
        except UserError as e:
            raise ImageFileError(str(e), lo + j) from None
        out[lo + j] = _resize_crop(img, size)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()


def _decode_chunk(path: str, root: str, relpaths: list[str], lo: int, size: int, decode=None) -> int:
    """A decoding worker's job: its rows of the cache file, written in place; returns how many."""
    import torch

    torch.set_num_threads(1)   # one process per CPU already
    out = np.lib.format.open_memmap(path, mode="r+")
    try:
        decode_rows(out, Path(root), relpaths, lo, size, decode=decode)
        out.flush()
    finally:
        del out
    return len(relpaths)


def cache_key(root: Path, relpaths: list[str], size: int, decoder: str = "") -> str:
    """Hash of (resolved root, relpaths, size, each file's size and mtime, and the decoder when it is not
    the default one): a changed file changes it.

    Stats every file, so a missing one is reported here, before any decoding starts."""
    root = Path(root).resolve()
    h = hashlib.sha256(json.dumps([str(root), int(size)] + ([decoder] if decoder else [])).encode())
    for i, rel in enumerate(relpaths):
        path = root / rel
        try:
            st = path.stat()
        except FileNotFoundError:
            raise ImageFileError(f"image file not found: {path}", i) from None
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
