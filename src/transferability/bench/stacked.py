"""Benchmark (`make bench` section `stacked`): the digits matrix trained one source per job against all its sources
in one job (models/stacked.py), and the ways to run K networks on one batch.

1. `engines`: one training step of K small_cnn networks on a 64-image digits batch (forward, backward, AdamW):
   K single networks one after another (what K single runs compute), the `loop` and `grouped` engines
   (stack_nets.py), and torch.func's stack_module_state + functional_call + vmap over the same networks; one
   thread, the ways taking turns, best of 7 rounds each (on shared cores, two threads mostly time the neighbours).
2. `matrix`: `python run.py -m experiment=matrix_digits seed=0` as it runs today (launcher=basic: the 21 jobs one
   after another in one process) against the same sweep with `trainer.sources_per_job=21` (one job, one stack),
   each in a fresh process and outputs folder, at backbone.embedding_dim = 128 (the default), 8 and 512: wall
   time, CPU time and peak RSS of each, the machine's load meanwhile, and the speed-up (goal: >= 5x on 2 cores).
   Both run at `trainer.threads=1`, the fast setting on busy cores (docs/performance.md, heads and estimators).
   The analysis that ends both sweeps is switched off: it is the same work either way.
`--quick`: K=4 for the engines, and the first 4 sources at the debug trainer for the sweep.
"""
from __future__ import annotations

import copy
import os
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F

from ..config import group_config
from . import REPO, best_of

GOAL = 5.0


def engine_steps(k: int, dim: int | None = None, repeat: int = 7) -> dict[str, float]:
    """Seconds of one training step of `k` small_cnn networks (D = `dim`) on a digits-sized batch, per way."""
    from torch.func import functional_call, stack_module_state, vmap

    from ..models.backbones import build_net
    from ..models.stack_nets import GroupedNet, LoopNet

    backbone = group_config("backbone", "small_cnn", **({"embedding_dim": dim} if dim else {}))
    torch.manual_seed(0)
    x = torch.randint(0, 255, (64, 8, 8, 1), dtype=torch.uint8)
    y = torch.randint(0, 2, (64, k))
    nets = [build_net(backbone, 1, 8, 2) for _ in range(k)]
    opts = [torch.optim.AdamW(n.parameters(), lr=1e-3) for n in nets]

    def singles():
        for j, (net, opt) in enumerate(zip(nets, opts)):
            opt.zero_grad()
            F.cross_entropy(net(x), y[:, j]).backward()
            opt.step()

    def engine(net):
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

        def step():
            opt.zero_grad()
            net.losses(x, y)[0].sum().backward()
            opt.step()
        return step

    params, buffers = stack_module_state([copy.deepcopy(n) for n in nets])
    params = {name: torch.nn.Parameter(p) for name, p in params.items()}
    base = copy.deepcopy(nets[0]).to("meta")
    vopt = torch.optim.AdamW(params.values(), lr=1e-3)

    def vmapped():
        vopt.zero_grad()
        logits = vmap(lambda p, b, xx: functional_call(base, (p, b), (xx,)), in_dims=(0, 0, None))(params, buffers, x)
        F.cross_entropy(logits.permute(1, 2, 0), y, reduction="none").mean(0).sum().backward()
        vopt.step()

    ways = {"singles": singles, "loop": engine(LoopNet([copy.deepcopy(n) for n in nets])),
            "grouped": engine(GroupedNet(nets)), "vmap": vmapped}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for fn in ways.values():   # warm-up: first-call allocations and kernel choices
            fn()
        best = dict.fromkeys(ways, float("inf"))
        for _ in range(repeat):    # the ways take turns: a busy spell of the machine hits them all
            for name, fn in ways.items():
                best[name] = min(best[name], best_of(fn))
    finally:
        torch.set_num_threads(threads)
    return best


# Runs `python run.py <args>` and prints its (wall s, CPU s, peak RSS bytes): a small process starts it, so the peak
# is the sweep's own (a child forked straight from this benchmark would start its high-water mark at ours).
_TIMED = """
import json, os, subprocess, sys, time
t = time.perf_counter()
proc = subprocess.Popen([sys.executable, *sys.argv[1:]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
err = proc.stderr.read()
_, status, usage = os.wait4(proc.pid, 0)
if os.waitstatus_to_exitcode(status) != 0:
    sys.exit(err[-2000:])
print(json.dumps([time.perf_counter() - t, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024]))
"""


def _child(args: list[str]) -> tuple[float, float, int, float]:
    """(wall s, CPU s, peak RSS bytes, the machine's mean 1-minute load before and after) of `python run.py
    <args>` in a fresh process. The cores are shared: the load says how much of the wall time was other work's."""
    import json

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    load = os.getloadavg()[0]
    out = subprocess.run([sys.executable, "-c", _TIMED, str(REPO / "run.py"), *args], cwd=REPO, env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"run.py {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    wall, cpu, rss = json.loads(out.stdout.strip().splitlines()[-1])
    return wall, cpu, int(rss), (load + os.getloadavg()[0]) / 2


def matrix(dim: int | None, quick: bool) -> dict[str, tuple[float, float, int, float]]:
    """The per-source sweep and the stacked sweep of the digits matrix, each from scratch."""
    common = ["-m", "experiment=matrix_digits", "seed=0", "~hydra.callbacks.analyze", "trainer.threads=1"]
    if dim is not None:
        common.append(f"backbone.embedding_dim={dim}")
    n = 21
    if quick:
        n = 4
        common += ["trainer=debug", "trainer.limit_train_batches=null"]
    out = {}
    one_job = f"source_index=[{','.join(map(str, range(n)))}]"
    for name, extra in [("per source", [f"source_index=range(0,{n})"]),
                        ("stacked", [f"trainer.sources_per_job={n}", one_job])]:
        with tempfile.TemporaryDirectory(dir=REPO / "outputs" if (REPO / "outputs").is_dir() else None) as tmp:
            out[name] = _child([*common, *extra, f"paths.outputs={tmp}"])
    return out


def main(quick: bool = False) -> None:
    from ..threads import allotted_cpus

    k = 4 if quick else 21
    steps = engine_steps(k)
    print(f"one training step of {k} small_cnn networks (D=128) on a 64-image digits batch, one thread, "
          "best of 7 rounds:")
    for name, s in steps.items():
        print(f"  {name:8s} {s * 1e3:8.1f} ms  ({s / k * 1e3:6.2f} ms per network; "
              f"{steps['singles'] / s:4.2f}x the singles)")
    cpus, why = allotted_cpus()
    print(f"\ndigits matrix, {4 if quick else 21} sources, seed 0, small_cnn, launcher=basic, trainer.threads=1; each "
          f"sweep a fresh process and outputs folder; {cpus} CPUs ({why}):")
    print(f"{'D':>5s}{'per source':>13s}{'stacked':>11s}{'speed-up':>10s}{'CPU-s':>15s}{'CPU ratio':>11s}"
          f"{'peak RSS':>20s}{'load':>13s}")
    for dim in ([None] if quick else [None, 8, 512]):
        r = matrix(dim, quick)
        (w1, c1, m1, l1), (w2, c2, m2, l2) = r["per source"], r["stacked"]
        print(f"{dim or 128:>5d}{w1:12.1f}s{w2:10.1f}s{w1 / w2:9.2f}x{c1:7.0f} /{c2:6.0f}{c1 / c2:10.2f}x"
              f"{m1 / 1e9:10.2f} /{m2 / 1e9:5.2f} GB{l1:7.1f} /{l2:4.1f}", flush=True)
    print(f"goal: >= {GOAL:.0f}x less wall time for the stacked sweep (load: the machine's mean 1-minute load "
          "during each sweep; above the CPU count, other work shared the cores)")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
