"""The CPU allotment from fake affinity masks, environments and cgroup trees."""
from pathlib import Path

import pytest

from transferability import threads


def _cgroup(tmp_path: Path, self_lines: str, files: dict[str, str]) -> dict:
    root = tmp_path / "sys_fs_cgroup"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    root.mkdir(exist_ok=True)
    proc = tmp_path / "proc_self_cgroup"
    proc.write_text(self_lines)
    return dict(cgroup_root=root, self_cgroup=proc)


def test_no_limits_but_affinity(tmp_path):
    fake = _cgroup(tmp_path, "0::/\n", {"cpu.max": "max 100000\n"})
    assert threads.allotted_cpus(affinity=set(range(64)), env={}, **fake) == (64, "affinity 64")


def test_slurm_cpus_per_task_limits(tmp_path):
    fake = _cgroup(tmp_path, "0::/\n", {})
    n, why = threads.allotted_cpus(affinity=set(range(64)), env={"SLURM_CPUS_PER_TASK": "8"}, **fake)
    assert (n, why) == (8, "affinity 64, SLURM_CPUS_PER_TASK 8")


def test_affinity_smaller_than_slurm(tmp_path):
    fake = _cgroup(tmp_path, "0::/\n", {})
    assert threads.allotted_cpus(affinity={3, 5}, env={"SLURM_CPUS_PER_TASK": "8"}, **fake)[0] == 2


def test_cgroup_v2_quota_of_own_group_and_parents(tmp_path):
    # the job's group allows 4.5 CPUs (-> 5), its parent 3: the parent's limit binds
    fake = _cgroup(tmp_path, "0::/slurm/job_7/step_0\n", {
        "slurm/job_7/step_0/cpu.max": "450000 100000\n",
        "slurm/job_7/cpu.max": "300000 100000\n",
        "slurm/cpu.max": "max 100000\n",
    })
    assert threads.cgroup_cpus(**fake) == 3
    assert threads.allotted_cpus(affinity=set(range(64)), env={}, **fake) == (3, "affinity 64, cgroup quota 3")


def test_cgroup_v2_fraction_rounds_up(tmp_path):
    fake = _cgroup(tmp_path, "0::/\n", {"cpu.max": "150000 100000\n"})
    assert threads.cgroup_cpus(**fake) == 2


def test_cgroup_v1_quota_and_unlimited(tmp_path):
    lines = "4:memory:/x\n2:cpu,cpuacct:/docker/abc\n"
    fake = _cgroup(tmp_path, lines, {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "600000\n",
                                     "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"})
    assert threads.cgroup_cpus(**fake) == 6
    unlimited = _cgroup(tmp_path / "u", lines, {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
                                                "cpu,cpuacct/cpu.cfs_period_us": "100000\n"})
    assert threads.cgroup_cpus(**unlimited) is None


def test_container_sees_its_limit_at_the_mount_root(tmp_path):
    # the host path of the group is not mounted inside the container; the container's own limit is at the root
    fake = _cgroup(tmp_path, "0::/kubepods/pod1/c1\n", {"cpu.max": "200000 100000\n"})
    assert threads.cgroup_cpus(**fake) == 2


def test_omp_num_threads_counts_and_garbage_is_ignored(tmp_path):
    fake = _cgroup(tmp_path, "", {})
    assert threads.allotted_cpus(affinity=set(range(8)), env={"OMP_NUM_THREADS": "1"}, **fake)[0] == 1
    assert threads.allotted_cpus(affinity=set(range(8)), env={"OMP_NUM_THREADS": "",
                                                            "SLURM_CPUS_PER_TASK": "x"}, **fake) == (8, "affinity 8")


def test_setting_overrides_the_allotment():
    assert threads.resolve(3) == (3, "trainer.threads")


@pytest.mark.parametrize("wanted,n,expect", [(8, 16, 8), (8, 4, 3), (8, 1, 0), (0, 16, 0)])
def test_loader_workers_stay_within_the_allotment(wanted, n, expect):
    assert threads.loader_workers(wanted, n) == expect


def test_use_threads_sets_torch_and_blas():
    import torch
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    try:
        assert threads.use_threads(1) == (1, "trainer.threads")
        assert torch.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    finally:
        torch.set_num_threads(before)


def test_memory_is_the_smallest_of_free_ram_cgroup_and_slurm(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 32000000 kB\nMemAvailable: 20000000 kB\n")
    gib = 2**30
    fake = _cgroup(tmp_path, "0::/slurm/job_7\n", {"slurm/job_7/memory.max": f"{8 * gib}\n",
                                                  "slurm/job_7/memory.current": f"{gib}\n",
                                                  "slurm/memory.max": "max\n", "slurm/memory.current": "5\n"})
    assert threads.allotted_memory(env={}, meminfo=meminfo, **fake) == (7 * gib, "MemAvailable 20.5 GB, cgroup 7.5 GB")
    slurm = {"SLURM_MEM_PER_CPU": "1024", "SLURM_CPUS_PER_TASK": "4"}   # MB per CPU x 4 CPUs, less what we hold
    n, why = threads.allotted_memory(env=slurm, meminfo=meminfo, rss=gib, **fake)
    assert n == 3 * gib and why.endswith("Slurm 3.2 GB")
    (tmp_path / "n").mkdir()
    none = _cgroup(tmp_path / "n", "", {})
    assert threads.allotted_memory(env={}, meminfo=tmp_path / "absent", **none)[0] == 0


def test_cgroup_v1_memory_limit_and_unlimited(tmp_path):
    lines = "4:memory:/docker/abc\n"
    fake = _cgroup(tmp_path, lines, {"memory/docker/abc/memory.limit_in_bytes": "4000000000\n",
                                     "memory/docker/abc/memory.usage_in_bytes": "1000000000\n"})
    assert threads.cgroup_memory(**fake) == 3_000_000_000
    (tmp_path / "u").mkdir()
    unlimited = _cgroup(tmp_path / "u", lines, {"memory/memory.limit_in_bytes": "9223372036854771712\n",
                                                "memory/memory.usage_in_bytes": "1\n"})
    assert threads.cgroup_memory(**unlimited) is None
