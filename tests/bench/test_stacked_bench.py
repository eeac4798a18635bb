"""The stacked benchmarks' code paths at smoke size on the CPU (the figures come from `make bench` and
`make bench-gpu`, never from a timed test)."""
import dataclasses

import pytest

from transferability.bench import gpu as bench_gpu
from transferability.bench import stacked as bench_stacked


def test_engine_steps_time_every_way():
    steps = bench_stacked.engine_steps(2, repeat=1)
    assert set(steps) == {"singles", "loop", "grouped", "vmap"} and all(s > 0 for s in steps.values())


@pytest.mark.slow
def test_quick_matrix_bench_runs_both_sweeps(capsys):
    bench_stacked.main(quick=True)
    out = capsys.readouterr().out
    assert "goal: >= 5x" in out and "per source" in out


def test_gpu_stacked_bench_code_path_on_cpu(tmp_path):
    """bench-gpu's stacked part (warm-up, one epoch per K, the projection), with the gpu settings shrunk to a
    CPU smoke run."""
    cfg = dataclasses.replace(bench_gpu.gpu_trainer(batch=8, workers=0), accelerator="cpu")
    r = bench_gpu.run_stacked_bench(16, 16, cfg, stacks=(1, 2), engines=("grouped", "loop"), out_dir=tmp_path,
                                    device="cpu")
    assert [(row["engine"], row["k"]) for row in r["rows"]] == [("grouped", 1), ("grouped", 2), ("loop", 1),
                                                                ("loop", 2)]
    assert all(row["images"] == 16 and row["network_rate"] == row["k"] * row["rate"] > 0 for row in r["rows"])
    report = bench_gpu._stacked_report(r, extract_rate=1000.0, epochs=2)
    assert "projected full matrix" in report and "CUB" in report


def test_projection_takes_the_fastest_stack_per_dataset():
    # stacks of 41 see 100 img/s each, single networks 1,000: per dataset the stacked route wins by 4.1x
    proj = bench_gpu.project_stacked({1: 1000.0, 41: 100.0}, extract_rate=1e9, overhead_s=0.0, epochs=1)
    k, s = proj["CelebA"]
    assert k == 41 and s == pytest.approx(182_637 / 100.0 + 41 * (182_637 + 19_962) / 1e9, rel=1e-9)
    assert proj["AwA2"][0] == 41 and proj["CUB"][0] == 41
    assert bench_gpu.project_stacked({1: 1000.0, 41: 10.0}, 1e9, 0.0, 1)["CelebA"][0] == 1
