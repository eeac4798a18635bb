"""Image files of any format Pillow reads (dataset=folder), through `FileImages`' cache.

What differs from `FileImages` (torchvision's JPEG/PNG decoder, always RGB):
- Pillow decodes: BMP, TIFF, GIF (first frame), WebP, ... as well as JPEG and PNG;
- a set whose images are all grey (modes 1, L, LA, I, F and 16-bit) stays grey: one channel, so PNGs written from
  an in-memory grey set (`export.py`) read back as the very same arrays. One colour image makes the whole set RGB.
  The probe reads file headers only, and stops at the first colour image;
- the decoder is part of the cache key, so the two decoders never share an entry.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..errors import UserError
from .images import FileImages, ImageFileError

GREY_MODES = ("1", "L", "LA", "La", "I", "F")


def is_grey(mode: str) -> bool:
    return mode in GREY_MODES or mode.startswith("I;16")


class PILImages(FileImages):
    channel_options = (1, 3)
    decoder_name = "pil"

    def __init__(self, root: Path, relpaths: list[str], ids: list[str], workers: int | None = None, locate=None):
        super().__init__(root, relpaths, ids, workers=workers, locate=locate)
        self._channels: int | None = None

    @property
    def channels(self) -> int:
        """1 when every image is grey, else 3 (known from the cache once it exists, else from the files)."""
        if self._channels is None:
            with self._located():
                self._channels = self._probe()
        return self._channels

    def decode_channels(self) -> int:
        """Probed afresh for every entry written: the files may have changed since `channels` was last known."""
        with self._located():
            self._channels = self._probe()
        return self._channels

    def decoder(self):
        return functools.partial(decode_pil, grey=self.channels == 1)

    def _array(self, size: int, cache_dir, workers) -> np.ndarray:
        out = super()._array(size, cache_dir, workers)
        self._channels = int(out.shape[-1])
        return out

    def _probe(self) -> int:
        from PIL import Image

        for i, rel in enumerate(self.relpaths):
            path = self.root / rel
            try:
                with Image.open(path) as im:
                    mode = im.mode
            except FileNotFoundError:
                raise ImageFileError(f"image file not found: {path}", i) from None
            except (OSError, ValueError) as e:   # PIL's UnidentifiedImageError is an OSError
                raise ImageFileError(f"cannot decode image {path}: {_reason(e)}", i) from None
            if not is_grey(mode):
                return 3
        return 1


def decode_pil(path: Path, grey: bool):
    """(1, H, W) grey or (3, H, W) RGB uint8 tensor of one file; a missing or unreadable file is a UserError."""
    import torch
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode.startswith("I;16"):   # 16-bit grey: the high byte (convert("L") would clip at 255)
                a = (np.asarray(im).astype(np.uint32) >> 8).astype(np.uint8)
                a = a if grey else np.repeat(a[..., None], 3, axis=-1)
            else:
                a = np.asarray(im.convert("L" if grey else "RGB"))
    except FileNotFoundError:
        raise UserError(f"image file not found: {path}") from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"cannot decode image {path}: {_reason(e)}") from None
    t = torch.from_numpy(np.array(a))   # a writable copy: PIL's buffer is read-only
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1)


def _reason(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
