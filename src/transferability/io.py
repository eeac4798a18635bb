"""Files are the truth: atomic writes and the finished-run marker.

A file appears under its final name only once it is complete (write to a temporary sibling, fsync,
rename), so a killed run never leaves anything that looks finished. The temporary sibling is named
`.<name>.<host>-<pid>.<random>.tmp`; the next write into the same folder removes those whose process is gone.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the same folder; on success rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)   # mkstemp makes 0600; results are meant to be shared like any file
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40] or "host"
_OURS = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)\.[^.]+\.tmp$")
_OTHER_HOST_STALE_S = 24 * 3600   # another machine's process cannot be asked; a day-old temp file is dead


def remove_stale_tmp(folder: Path) -> list[Path]:
    """Remove `.*.tmp` files left in `folder` by killed writes: ours whose process is gone, and any in
    the old unnamed form. A live writer's file (this or another process) is left alone."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        m = _OURS.match(tmp.name)
        try:
            if m and m["host"] == _HOST and _alive(int(m["pid"])):
                continue
            if m and m["host"] != _HOST and time.time() - tmp.stat().st_mtime < _OTHER_HOST_STALE_S:
                continue
            tmp.unlink()
            removed.append(tmp)
        except OSError:   # gone already (another cleaner), or not ours to remove
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # exists, another user's
        return True
    return True


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def write_csv(path, df: pd.DataFrame, **kw) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=kw.pop("index", False), **kw)


def file_sha256(path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(manifest, files) -> None:
    """Record each file's sha256 and size in the JSON file `manifest`; write it after the files."""
    write_json(manifest, {Path(f).name: {"sha256": file_sha256(f), "size": Path(f).stat().st_size} for f in files})


def manifest_problem(manifest, files) -> str | None:
    """Why `files` cannot be trusted against `manifest` (None when every checksum matches): a cache entry
    is used only when this is None, so a truncated or garbled file is recomputed instead of read."""
    manifest = Path(manifest)
    if not manifest.exists():
        return f"no checksum record {manifest.name}"
    try:
        record = json.loads(manifest.read_text())
        for f in files:
            want = record[Path(f).name]
            if not Path(f).exists():
                return f"{Path(f).name} missing"
            if Path(f).stat().st_size != want["size"] or file_sha256(f) != want["sha256"]:
                return f"{Path(f).name} does not match its checksum (truncated or changed)"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return f"checksum record {manifest.name} unreadable ({type(e).__name__})"
    return None


def save_npz(path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
