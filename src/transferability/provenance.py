"""What made a file: the project's version and git commit (with a dirty flag when run from a checkout with
uncommitted changes), the library versions that change numbers, and the machine. Recorded in every row and
analysis, so a matrix whose rows came from different code or libraries can say so.

Versions are read from the installed distributions' metadata: nothing heavy is imported (a label-only stage
never loads torch)."""
from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

# Distribution name -> the key it is recorded under.
LIBRARIES = {"torch": "torch", "lightning": "lightning", "numpy": "numpy", "scipy": "scipy",
             "scikit-learn": "sklearn", "pandas": "pandas"}
# The keys whose differences between rows of one matrix are worth a line in its summary.
CODE_KEYS = ("version", "commit", "dirty", "python", *LIBRARIES.values())
CHECKOUT = Path(__file__).resolve().parents[2]


def provenance(device: str = "cpu", threads: int | None = None) -> dict:
    """The record: version, commit, dirty, python, library versions, device, hostname, cpu, threads."""
    return {**_static(), "device": device, "threads": threads}


@functools.lru_cache(maxsize=1)
def _static() -> dict:
    out = {"version": _version("transferability"), **_git(), "python": platform.python_version()}
    out.update({key: _version(dist) for dist, key in LIBRARIES.items()})
    out.update(hostname=socket.gethostname(), cpu=_cpu())
    return out


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git() -> dict:
    """commit and dirty (tracked files changed) of the checkout the code runs from; None outside one."""
    def git(*args) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(CHECKOUT), *args], capture_output=True, text=True, timeout=10,
                                  env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD") if (CHECKOUT / ".git").exists() else None
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x {os.cpu_count()}"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} x {os.cpu_count()}"


def differences(records: list[dict]) -> dict[str, list]:
    """{key: sorted distinct values} for the CODE_KEYS on which `records` (rows' provenance) disagree."""
    out = {}
    for key in CODE_KEYS:
        values = {str(r.get(key)) for r in records}
        if len(values) > 1:
            out[key] = sorted(values)
    return out
