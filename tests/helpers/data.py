"""Helpers for the dataset-loader tests: the real annotation files, and tiny official-layout trees.

The real files live in ../shared/data (override: TRANSFERABILITY_SHARED_DATA). With CI=true their
absence fails the test; elsewhere it skips.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from .paths import shared_data_dir


def shared_path(*parts: str) -> Path:
    """A path under the shared data folder, or fail (CI) / skip (elsewhere) when it is missing."""
    path = shared_data_dir().joinpath(*parts)
    if not path.exists():
        msg = f"real annotation file not found: {path} (set TRANSFERABILITY_SHARED_DATA)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def write(path: Path, lines: list[str], newline: str = "\n") -> Path:
    """Write `lines` with the given line ending (CelebA: CRLF), bytes exactly as given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(line + newline for line in lines).encode())
    return path


def write_jpeg(path: Path, value: int, size: int = 12) -> Path:
    """A tiny solid-grey JPEG whose brightness identifies it after decoding."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size + 4, 3), value, np.uint8)).save(path, quality=95)
    return path


def decoded_means(images, size: int = 8) -> np.ndarray:
    """Mean brightness of each decoded image, in row order."""
    return images.array(size).reshape(len(images.ids), -1).mean(axis=1)
