"""Image sources: in-memory resizing, and the decode-once file cache (hit, invalidation, errors, atomicity)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torchvision.io import write_jpeg, write_png

from transferability.data import images
from transferability.data.images import ArrayImages, FileImages, cache_key
from transferability.errors import UserError


def _rgb(h: int, w: int, seed: int) -> torch.Tensor:
    """A smooth (3, h, w) uint8 image: JPEG round-trips it closely."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = rng.uniform(40, 200, size=3)[:, None, None]
    img = base + 50 * np.sin(3 * xx + seed) + 30 * yy
    return torch.from_numpy(np.clip(img, 0, 255).astype(np.uint8))


@pytest.fixture
def tree(tmp_path):
    """root/a/0.png (40x60), root/a/1.jpg (60x40), root/b/2.png (grey 32x32)."""
    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    write_png(_rgb(40, 60, 0), str(root / "a" / "0.png"))
    write_jpeg(_rgb(60, 40, 1), str(root / "a" / "1.jpg"), quality=95)
    write_png(_rgb(32, 32, 2)[:1], str(root / "b" / "2.png"))
    return root, ["a/0.png", "a/1.jpg", "b/2.png"]


def test_array_images_resize_shape_dtype():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (7, 8, 8), dtype=np.uint8)
    src = ArrayImages(grey, [f"i{k}" for k in range(7)])
    assert src.channels == 1
    same = src.array(8)
    assert same.shape == (7, 8, 8, 1) and same.dtype == np.uint8
    np.testing.assert_array_equal(same[..., 0], grey)
    big = src.array(32)
    assert big.shape == (7, 32, 32, 1) and big.dtype == np.uint8
    rgb = ArrayImages(rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8), ["a", "b", "c"])
    small = rgb.array(4)
    assert small.shape == (3, 4, 4, 3) and rgb.channels == 3


def test_array_images_constant_image_stays_constant():
    # Antialiased resizing must not invent values: a flat image stays flat at every size.
    flat = np.full((2, 8, 8, 3), 77, np.uint8)
    for size in (4, 8, 13, 32):
        np.testing.assert_array_equal(ArrayImages(flat, ["a", "b"]).array(size), 77)


def test_array_images_rejects_bad_input():
    with pytest.raises(ValueError):
        ArrayImages(np.zeros((2, 8, 8), np.float32), ["a", "b"])
    with pytest.raises(ValueError):
        ArrayImages(np.zeros((2, 8, 8), np.uint8), ["a"])
    with pytest.raises(UserError, match="image_size=0"):
        ArrayImages(np.zeros((2, 8, 8), np.uint8), ["a", "b"]).array(0)


def test_file_images_decode_resize_crop(tree):
    root, rel = tree
    src = FileImages(root, rel, ["x0", "x1", "x2"], workers=2)
    out = src.array(16)
    assert out.shape == (3, 16, 16, 3) and out.dtype == np.uint8 and src.channels == 3
    # The grey PNG is expanded to three equal channels.
    np.testing.assert_array_equal(out[2, ..., 0], out[2, ..., 1])
    # Shorter side to 16 then centre crop: 40x60 -> 16x24 -> columns 4..19.
    from torchvision.transforms.v2 import functional as F

    want = F.resize(_rgb(40, 60, 0), [16], antialias=True)[:, :, 4:20].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(out[0], want)
    # The JPEG decodes close to what was encoded (lossy, so a tolerance).
    want1 = F.center_crop(F.resize(_rgb(60, 40, 1), [16], antialias=True), [16, 16]).permute(1, 2, 0).numpy()
    assert np.abs(out[1].astype(int) - want1.astype(int)).mean() < 4


def test_file_cache_hit_does_not_decode(tree, tmp_path, monkeypatch):
    root, rel = tree
    cache = tmp_path / "cache"
    src = FileImages(root, rel, ["x0", "x1", "x2"], workers=2)
    first = np.array(src.array(16, cache_dir=cache))
    files = sorted(p for p in (cache / "images").iterdir() if p.suffix != ".lock")   # the lock file stays
    assert len(files) == 2 and files[0].suffix == ".npy" and files[1].name == files[0].name + ".sha256.json"

    def boom(path):
        raise AssertionError(f"decoded {path} again")

    monkeypatch.setattr(images, "_decode", boom)
    again = src.array(16, cache_dir=cache)
    assert isinstance(again, np.memmap) and not again.flags.writeable
    np.testing.assert_array_equal(again, first)
    # A different size is a different cache entry, and needs decoding.
    with pytest.raises(AssertionError, match="decoded"):
        src.array(8, cache_dir=cache)


def test_changed_file_invalidates_cache(tree, tmp_path):
    root, rel = tree
    cache = tmp_path / "cache"
    src = FileImages(root, rel, ["x0", "x1", "x2"], workers=1)
    key0 = cache_key(root, rel, 16)
    before = np.array(src.array(16, cache_dir=cache))
    write_png(torch.zeros((3, 40, 60), dtype=torch.uint8), str(root / "a" / "0.png"))
    st = (root / "a" / "0.png").stat()
    os.utime(root / "a" / "0.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert cache_key(root, rel, 16) != key0
    after = src.array(16, cache_dir=cache)
    assert (after[0] == 0).all() and not (before[0] == 0).all()
    np.testing.assert_array_equal(after[1:], before[1:])
    assert len(list((cache / "images").glob("*.npy"))) == 2


def test_missing_file_names_the_path(tree, tmp_path):
    root, rel = tree
    src = FileImages(root, [*rel, "a/gone.jpg"], ["x0", "x1", "x2", "x3"])
    with pytest.raises(UserError, match=r"image file not found: .*a/gone\.jpg$"):
        src.array(16, cache_dir=tmp_path / "cache")
    with pytest.raises(UserError, match=r"a/gone\.jpg"):
        src.array(16)


def test_corrupt_file_names_the_path_and_leaves_no_temp_files(tree, tmp_path):
    root, rel = tree
    (root / "a" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    cache = tmp_path / "cache"
    src = FileImages(root, [*rel, "a/bad.jpg"], ["x0", "x1", "x2", "x3"], workers=2)
    with pytest.raises(UserError, match=r"cannot decode image .*a/bad\.jpg") as err:
        src.array(16, cache_dir=cache)
    assert "\n" not in str(err.value)
    # Nothing under the cache: no half-written .npy, no temporary sibling (the empty lock file stays).
    leftovers = [p for p in cache.rglob("*") if p.is_file() and p.suffix != ".lock"] if cache.exists() else []
    assert leftovers == []


def test_interrupted_write_leaves_no_cache_entry(tree, tmp_path, monkeypatch):
    root, rel = tree
    cache = tmp_path / "cache"
    real = images._decode
    calls = []

    def dies_on_third(path):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(images, "_decode", dies_on_third)
    src = FileImages(root, rel, ["x0", "x1", "x2"], workers=1)
    with pytest.raises(KeyboardInterrupt):
        src.array(16, cache_dir=cache)
    assert [p for p in cache.rglob("*") if p.is_file() and p.suffix != ".lock"] == []
    monkeypatch.setattr(images, "_decode", real)
    assert src.array(16, cache_dir=cache).shape == (3, 16, 16, 3)


def test_full_disk_is_one_line_before_decoding(tree, tmp_path, monkeypatch):
    """Not enough free space for the cache: a UserError before any image is decoded (never a SIGBUS later)."""
    import shutil
    from collections import namedtuple

    root, rel = tree
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 100, 100))
    monkeypatch.setattr(images, "_decode", lambda p: (_ for _ in ()).throw(AssertionError("decoded")))
    with pytest.raises(UserError, match=r"cannot write .*\.npy: No space left on device \(needs \d+ bytes, 100 bytes "
                                        r"free\); free some space or write elsewhere"):
        FileImages(root, rel, ["x0", "x1", "x2"]).array(16, cache_dir=tmp_path / "cache")
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.suffix != ".lock"] == []


def test_allocation_failure_is_one_line(tree, tmp_path, monkeypatch):
    """The file system says ENOSPC when the blocks are allocated (the free-space number was optimistic)."""
    import errno

    root, rel = tree

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(UserError, match="No space left on device"):
        FileImages(root, rel, ["x0", "x1", "x2"]).array(16, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("damage", [
    lambda p: p.write_bytes(p.read_bytes()[:-50]),                                  # truncated
    lambda p: p.write_bytes(p.read_bytes()[:-50] + bytes(range(50))),              # garbled pixels
    lambda p: p.write_bytes(b"garbage" + p.read_bytes()[7:]),                       # garbled header
])
def test_damaged_image_cache_is_decoded_again(tree, tmp_path, caplog, damage):
    """Reported fault: a garbled .npy was used as pixels (exit 0, garbage numbers)."""
    root, rel = tree
    cache = tmp_path / "cache"
    src = FileImages(root, rel, ["x0", "x1", "x2"], workers=1)
    first = np.array(src.array(16, cache_dir=cache))
    (npy,) = (cache / "images").glob("*.npy")
    damage(npy)
    caplog.clear()
    again = src.array(16, cache_dir=cache)
    assert "decoding the images again" in caplog.text
    np.testing.assert_array_equal(again, first)
    caplog.clear()
    src.array(16, cache_dir=cache)
    assert caplog.text == ""   # sealed again: a plain hit


def test_file_images_fingerprint_follows_each_file(tree):
    root, rel = tree
    src = FileImages(root, rel, ["x0", "x1", "x2"])
    before = src.fingerprint()
    st = (root / rel[1]).stat()
    os.utime(root / rel[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert src.fingerprint() != before


def _many(root, n):
    rel = []
    for i in range(n):
        (root / "m").mkdir(parents=True, exist_ok=True)
        write_jpeg(_rgb(30 + i % 7, 24 + i % 5, i), str(root / "m" / f"{i}.jpg"), quality=90)
        rel.append(f"m/{i}.jpg")
    return rel


def test_worker_processes_write_the_same_cache_as_one_process(tmp_path, monkeypatch):
    root = tmp_path / "imgs"
    rel = _many(root, 150)
    monkeypatch.setattr(images, "_MIN_PARALLEL", 0)   # small enough to test, parallel all the same
    src = FileImages(root, rel, [str(i) for i in range(len(rel))])
    one = np.array(src.array(12, cache_dir=tmp_path / "one", workers=1))
    two = src.array(12, cache_dir=tmp_path / "two", workers=2)
    assert isinstance(two, np.memmap)
    np.testing.assert_array_equal(two, one)
    assert one[1:].std() > 0 and not (one == 0).all(axis=(1, 2, 3)).any()   # every row was written


def test_worker_process_error_names_the_file_and_leaves_no_cache(tmp_path, monkeypatch):
    root = tmp_path / "imgs"
    rel = _many(root, 130)
    (root / rel[100]).write_bytes(b"not a jpeg")
    monkeypatch.setattr(images, "_MIN_PARALLEL", 0)
    with pytest.raises(UserError, match=r"cannot decode image .*100\.jpg"):
        FileImages(root, rel, rel).array(12, cache_dir=tmp_path / "c", workers=2)
    assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file() and p.suffix != ".lock"]


def test_rows_read_only_the_selected_rows_when_indexed(tmp_path):
    import pickle

    base = (np.arange(10 * 32 * 32 * 3) % 251).astype(np.uint8).reshape(10, 32, 32, 3)
    np.save(tmp_path / "a.npy", base)
    mm = np.load(tmp_path / "a.npy", mmap_mode="r")
    sel = images.select_rows(mm, [7, 2, 5, 9])
    assert sel.shape == (4, 32, 32, 3) and sel.dtype == np.uint8 and sel.ndim == 4 and len(sel) == 4
    np.testing.assert_array_equal(sel[np.array([1, 3])], base[[2, 9]])
    np.testing.assert_array_equal(sel[1:3], base[[2, 5]])
    sub = images.select_rows(sel, np.array([True, False, True, False]))
    assert sub.base is mm
    np.testing.assert_array_equal(sub[:], base[[7, 5]])
    # pickled for a spawned DataLoader worker: the file is reopened, not copied
    blob = pickle.dumps(sel)
    assert len(blob) < base.nbytes and isinstance(pickle.loads(blob).base, np.memmap)
    np.testing.assert_array_equal(pickle.loads(blob)[:], base[[7, 2, 5, 9]])


def _rss_file() -> int:
    text = open("/proc/self/status").read()
    return int(next(l for l in text.splitlines() if l.startswith("RssFile:")).split()[1]) * 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
@pytest.mark.parametrize("release", [True, False])
def test_reading_a_memory_map_through_rows_does_not_keep_it_resident(tmp_path, monkeypatch, release):
    size = 16 << 20
    np.save(tmp_path / "big.npy", np.ones((size // 4096, 4096), np.uint8))
    mm = np.load(tmp_path / "big.npy", mmap_mode="r")
    monkeypatch.setattr(images, "_RELEASE_BYTES", (1 << 20) if release else (1 << 40))
    rows = images.select_rows(mm, np.arange(len(mm)))
    before = _rss_file()
    total = sum(int(rows[lo:lo + 256].sum(dtype=np.int64)) for lo in range(0, len(rows), 256))
    grew = _rss_file() - before
    assert total == size
    if release:
        assert grew < size // 4, f"{grew >> 20} MiB of the map stayed resident"
    else:   # the check can fail: without releasing, the whole map stays resident
        assert grew > size // 2
