"""Files are the truth: atomic writes, safe names, locks.

A file appears under its final name only once it is complete (write to a temporary sibling, fsync,
rename), so a killed run never leaves anything that looks finished. The temporary sibling is named
`.<name>.<host>-<pid>.<random>.tmp`; the next write into the same folder removes those whose process is gone.
A write that fails for want of space or permission (a full disk, a read-only folder, a path under a file) is a
`UserError` naming the file, with the bytes it needed where known; its temporary file is removed.

Names that come from data (tasks, classes, sources) become path components through `component`: one component,
inside its parent, whatever the name holds; `name_of` reverses it.

`locked` holds an exclusive `flock` (the `filelock` package) while a job fills something other jobs may want at the
same time (a model cache entry, the decoded images, a row): the second job waits, then finds it filled. The
operating system releases a flock when its process dies, so a killed job's lock never blocks anyone.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from .errors import UserError

log = logging.getLogger(__name__)

_UMASK = os.umask(0)
os.umask(_UMASK)

# Errors of the place a file goes, not of the program: a full disk or quota, a read-only or forbidden folder,
# a path through a file, a name too long. Reported as one line naming the file.
WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR,
                          errno.EISDIR, errno.ENAMETOOLONG, errno.EFBIG, errno.EEXIST})


def write_failed(path, error: OSError, nbytes: int | None = None) -> UserError:
    """The one line for a write into `path` that failed with `error`: the file, the reason, and for a full disk
    the bytes it needed (when known) and the free space left."""
    where = Path(path)
    named = Path(error.filename) if isinstance(error.filename, (str, os.PathLike)) else None
    space = error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    if not space and named is not None and not named.name.endswith(".tmp"):
        where = named   # the folder or file that refused (a path under a file names the file)
    why = error.strerror or type(error).__name__
    if space:   # the file being written (a copy's error names its source first)
        need = f"needs {_size(nbytes)}, " if nbytes else ""
        free = _free(where)
        why += f" ({need}{_size(free)} free)" if free is not None else (f" ({need.rstrip(', ')})" if need else "")
        return UserError(f"cannot write {where}: {why}; free some space or write elsewhere "
                         "(paths.outputs=<dir>, paths.cache=<dir>)")
    if error.errno in (errno.ENOTDIR, errno.EEXIST):
        blocker = _file_on_the_way(where)
        if blocker is not None:
            return UserError(f"cannot write {path}: {blocker} is a file, not a folder")
    return UserError(f"cannot write {where}: {why}")


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n} bytes"


def _free(path: Path) -> int | None:
    for p in [path, *path.parents]:
        try:
            return shutil.disk_usage(p).free
        except OSError:
            continue
    return None


def _file_on_the_way(path: Path) -> Path | None:
    """The first ancestor of `path` that exists and is not a folder (what makes a path under a file fail)."""
    for p in reversed([path, *path.parents]):
        if p.exists() and not p.is_dir():
            return p
        if not p.exists():
            return None
    return None


def unwritable(folder) -> str | None:
    """Why files cannot be created in `folder` (None when they can, as far as the file system says before
    trying): an ancestor that is a file, or the first existing ancestor is not writable."""
    folder = Path(folder)
    blocker = _file_on_the_way(folder)
    if blocker is not None:
        return f"{blocker} is a file, not a folder"
    existing = next((p for p in [folder, *folder.parents] if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def makedirs(folder) -> Path:
    """`mkdir -p`, with a failure as the one line of `write_failed`."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        if e.errno not in WRITE_ERRORS:
            raise
        raise write_failed(folder, e) from None
    return folder


def reserve(path, nbytes: int, name=None) -> None:
    """Allocate the blocks of the file `path` (already created) up to `nbytes` now, after checking the free space:
    writing into a sparse memory map on a full disk kills the process with SIGBUS, with no message at all.
    `name`: the file the message names (the final name of an atomic write's temporary file)."""
    path = Path(path)
    name = Path(name) if name is not None else path
    free = shutil.disk_usage(path.parent).free
    if free < nbytes:
        raise write_failed(name, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), nbytes)
    if hasattr(os, "posix_fallocate"):
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, nbytes)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise write_failed(name, e, nbytes) from None
            # EOPNOTSUPP etc.: a file system without fallocate; the free-space check above stands
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, nbytes: int | None = None) -> Iterator[Path]:
    """Yield a temporary path in the same folder; on success rename it to `path`. A write that fails for want of
    space or permission becomes `write_failed`'s UserError (`nbytes`: what the file needs, for its message)."""
    path = Path(path)
    makedirs(path.parent)
    remove_stale_tmp(path.parent)
    tmp = None
    try:
        # The name is cut so that the temporary name stays within a file system's 255 bytes.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:120]}.{_HOST}-{os.getpid()}.",
                                   suffix=".tmp")
        os.close(fd)
        tmp = Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)   # mkstemp makes 0600; results are meant to be shared like any file
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if e.errno not in WRITE_ERRORS:
            raise
        raise write_failed(path, e, nbytes) from None
    finally:
        if tmp is not None and tmp.exists():
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
    write_bytes(path, text.encode())


def write_bytes(path, data) -> None:
    """`data` (bytes or a buffer) into `path`, atomically; a full disk names the bytes it needed."""
    view = memoryview(data)
    with atomic_path(path, nbytes=view.nbytes) as tmp:
        with open(tmp, "wb") as f:
            f.write(view)


def torch_save(obj, path) -> None:
    """`torch.save(obj)` into `path`, atomically. Serialised in memory first and written by Python: torch's own
    file writer reports a full disk as a RuntimeError with no errno ('unexpected pos'), which could not be told
    from a bug; this way it is the one line of `write_failed`, with the bytes needed."""
    import io as bytes_io

    import torch

    buffer = bytes_io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(path, buffer.getbuffer())


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
    with atomic_path(path, nbytes=sum(int(np.asarray(a).nbytes) for a in arrays.values())) as tmp:
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


# ---------------------------------------------------------------------------------------------- safe names

_COMPONENT_BYTES = 200   # room left for a prefix (`source=`) and a temporary file's suffix within 255 bytes
_ENCODE = frozenset("%/\\") | {chr(c) for c in range(32)} | {chr(127)}


def component(name, also: str = "") -> str:
    """A name from data (a task, class, source, target) as exactly one path component inside its parent.

    Percent-encoding (`%XX`) of `%`, `/`, backslash and control characters, of a leading `.` (so `.` and `..`
    stay names), and of any character in `also` (e.g. `,` where names are joined by commas); everything else,
    spaces and non-ASCII letters included, stays as it is, so `Male` and `ink_heavy@q25` are their own folder
    names and `/m/0abc` becomes `%2Fm%2F0abc`. Reversed by `name_of`. A name whose encoding would pass
    200 bytes keeps its first part and a hash of the whole (`<start>%~<hash>`): still one unique component, but
    no longer reversible; the files inside hold the real name."""
    text = str(name)
    if not text:
        raise ValueError("an empty name has no path component")
    out = "".join(f"%{ord(c):02X}" if c in _ENCODE or c in also else c for c in text)
    if out.startswith("."):
        out = "%2E" + out[1:]
    if len(out.encode()) > _COMPONENT_BYTES:
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        start = out.encode()[:_COMPONENT_BYTES - 20].decode(errors="ignore")
        out = re.sub(r"%[0-9A-F]?$", "", start) + "%~" + digest
    return out


def name_of(part: str) -> str:
    """The name `component` encoded into `part`; a shortened component (`%~<hash>`) raises ValueError."""
    if "%~" in part:
        raise ValueError(f"{part!r} is a shortened name: the real one is in the files it holds")
    return re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), part)


# ---------------------------------------------------------------------------------------------- locks

_NO_FLOCK = (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL)


@contextlib.contextmanager
def locked(path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created if missing, never removed: waiters share its inode)
    while the block runs; `what` names the thing it guards in the line logged when another job holds it.

    A flock (filelock's UnixFileLock): the kernel drops it when the holding process exits, however it exits, so
    a killed job never leaves a lock behind. On a file system without flock the block runs unlocked, with a
    warning (jobs sharing an entry then do the work twice, as without locks)."""
    import filelock

    path = Path(path)
    makedirs(path.parent)
    lock = filelock.FileLock(str(path), fallback_to_soft=False, thread_local=False)
    try:
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            log.info("waiting for %s: another job holds %s", what, path)
            lock.acquire()
    except OSError as e:
        if e.errno in _NO_FLOCK:
            log.warning("no file locks on the file system of %s (%s): %s is not guarded against other jobs",
                        path, e.strerror, what)
            yield
            return
        if e.errno in WRITE_ERRORS:
            raise write_failed(path, e) from None
        raise
    try:
        yield
    finally:
        lock.release()
