"""How many CPU threads this process was given, and making torch, BLAS and DataLoader workers use that many.

A cluster job is given a share of a node: a CPU affinity mask (taskset, Slurm's cpusets), a
`SLURM_CPUS_PER_TASK`, or a cgroup CPU quota (containers, Slurm's cgroup plugin). Torch and BLAS
ignore all three and start one thread per core of the node, so eight jobs on a 64-core node run
512 threads. `allotted_cpus` reads every limit and takes the smallest; `trainer.threads` overrides
it. `OMP_NUM_THREADS` counts as a limit too: a user who set it meant it.

`allotted_cpus` is pure (the affinity, environment and cgroup folder are arguments, so tests pass
fake ones); `use_threads` applies a count to the running process.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

# Read by OpenMP / OpenBLAS / MKL when they load: libraries imported after `use_threads` obey them too.
_ENV_LIMITS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# The limits as the process was started: `use_threads` writes OMP_NUM_THREADS itself, and a later run in
# the same process (a joblib worker, a test) must not read its predecessor's setting as its allotment.
_GIVEN = {k: os.environ[k] for k in ("SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS") if k in os.environ}


def _positive_int(text: str | None) -> int | None:
    try:
        n = int(str(text).strip())
    except (TypeError, ValueError):
        return None
    return n if n >= 1 else None


def _quota(quota: int, period: int) -> int | None:
    """CPUs a CFS quota allows: quota / period, rounded up (1.5 CPUs of quota keep 2 threads busy enough)."""
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def cgroup_cpus(cgroup_root: Path = Path("/sys/fs/cgroup"),
                self_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """The CPU quota of this process's cgroup (v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`),
    the smallest along the path up to the root; None when there is no quota."""
    lines = (_read(self_cgroup) or "").splitlines()
    found: list[int] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":   # cgroup v2: 0::/path
            base, files = cgroup_root, None
        elif "cpu" in controllers.split(","):
            base = next((cgroup_root / d for d in (controllers, "cpu,cpuacct", "cpu") if (cgroup_root / d).is_dir()),
                        None)
            files = ("cpu.cfs_quota_us", "cpu.cfs_period_us")
            if base is None:
                continue
        else:
            continue
        rel = Path(path.lstrip("/"))
        # Inside a container the group's own path is often not mounted: its limit is at the mount root.
        for d in [base / rel, *[base / p for p in rel.parents]]:
            if files is None:
                text = _read(d / "cpu.max")
                fields = text.split() if text else []
                if len(fields) == 2 and fields[0] != "max":
                    n = _quota(int(fields[0]), int(fields[1]))
                    found += [n] if n else []
            else:
                q, p = _read(d / files[0]), _read(d / files[1])
                if q is not None and p is not None:
                    n = _quota(int(q), int(p))
                    found += [n] if n else []
    return min(found) if found else None


def allotted_cpus(affinity: set[int] | None = None, env: dict | None = None,
                  cgroup_root: Path = Path("/sys/fs/cgroup"),
                  self_cgroup: Path = Path("/proc/self/cgroup")) -> tuple[int, str]:
    """(CPU count, where it came from): the smallest of the affinity mask, `SLURM_CPUS_PER_TASK`, the
    cgroup quota and `OMP_NUM_THREADS`; the reason names each limit found, e.g. 'affinity 64, cgroup 8'."""
    if affinity is None:
        affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    env = _GIVEN if env is None else env
    limits = {"affinity": max(1, len(affinity))}
    for name in ("SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS"):
        n = _positive_int(env.get(name))
        if n is not None:
            limits[name] = n
    quota = cgroup_cpus(cgroup_root, self_cgroup)
    if quota is not None:
        limits["cgroup quota"] = quota
    n = min(limits.values())
    return n, ", ".join(f"{k} {v}" for k, v in limits.items())


def resolve(setting: int | None, **probe) -> tuple[int, str]:
    """`trainer.threads` when set, else the allotment."""
    if setting is not None:
        return int(setting), "trainer.threads"
    return allotted_cpus(**probe)


def loader_workers(wanted: int, threads: int) -> int:
    """DataLoader worker processes within the allotment: the main process keeps one CPU for itself."""
    return max(0, min(int(wanted), threads - 1))


def use_threads(setting: int | None = None) -> tuple[int, str]:
    """Make torch and every loaded BLAS / OpenMP pool use the resolved count; return (count, reason)."""
    n, why = resolve(setting)
    for name in _ENV_LIMITS:
        os.environ[name] = str(n)
    import torch
    from threadpoolctl import threadpool_limits

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    threadpool_limits(n)
    return n, why


# -- memory: what this process may still allocate (how many networks a stack may hold, models/stacked.py) --
def _meminfo_available(meminfo: Path) -> int | None:
    for line in (_read(meminfo) or "").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def _rss(status: Path = Path("/proc/self/status")) -> int:
    for line in (_read(status) or "").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cgroup_memory(cgroup_root: Path = Path("/sys/fs/cgroup"),
                  self_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """Bytes left under this process's cgroup memory limit (v2 `memory.max` - `memory.current`, v1
    `memory.limit_in_bytes` - `memory.usage_in_bytes`), the smallest along the path up to the root; None when
    there is no limit."""
    found: list[int] = []
    for line in (_read(self_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            base, files = cgroup_root, ("memory.max", "memory.current")
        elif "memory" in controllers.split(","):
            base, files = cgroup_root / "memory", ("memory.limit_in_bytes", "memory.usage_in_bytes")
            if not base.is_dir():
                continue
        else:
            continue
        rel = Path(path.lstrip("/"))
        for d in [base / rel, *[base / p for p in rel.parents]]:
            limit, used = _read(d / files[0]), _read(d / files[1])
            if limit is None or limit.strip() == "max":
                continue
            n = _positive_int(limit)
            # cgroup v1 writes "no limit" as a huge number (PAGE_COUNTER_MAX pages)
            if n is not None and n < 2**60:
                found.append(max(0, n - (_positive_int(used) or 0)))
    return min(found) if found else None


def allotted_memory(env: dict | None = None, meminfo: Path = Path("/proc/meminfo"),
                    cgroup_root: Path = Path("/sys/fs/cgroup"), self_cgroup: Path = Path("/proc/self/cgroup"),
                    rss: int | None = None) -> tuple[int, str]:
    """(bytes this process may still allocate, where it came from): the smallest of the kernel's MemAvailable,
    what the cgroup limit leaves, and Slurm's SLURM_MEM_PER_NODE or SLURM_MEM_PER_CPU x SLURM_CPUS_PER_TASK
    (MB) less this process's resident set (`rss`); the reason names each, e.g. 'MemAvailable 20.1 GB, cgroup 7.5 GB'."""
    env = dict(os.environ) if env is None else env
    limits: dict[str, int] = {}
    available = _meminfo_available(meminfo)
    if available is not None:
        limits["MemAvailable"] = available
    group = cgroup_memory(cgroup_root, self_cgroup)
    if group is not None:
        limits["cgroup"] = group
    slurm = _positive_int(env.get("SLURM_MEM_PER_NODE"))
    if slurm is None and _positive_int(env.get("SLURM_MEM_PER_CPU")) is not None:
        slurm = _positive_int(env.get("SLURM_MEM_PER_CPU")) * (_positive_int(env.get("SLURM_CPUS_PER_TASK")) or 1)
    if slurm is not None:
        limits["Slurm"] = max(0, slurm * 2**20 - (_rss() if rss is None else rss))
    if not limits:
        return 0, "unknown (no /proc/meminfo, cgroup limit or Slurm memory)"
    return min(limits.values()), ", ".join(f"{k} {v / 1e9:.1f} GB" for k, v in limits.items())
