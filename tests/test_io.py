"""Atomic writes: leftovers of killed writes are removed by the next write there, a live writer's are not."""
import os
import subprocess
import sys

from transferability import io


def test_next_write_removes_leftover_tmp_files(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)   # that process has exited
    old_style = tmp_path / ".results.csv.k2j3h4.tmp"                       # the old name, no pid
    killed = tmp_path / f".model.npy.{io._HOST}-{dead_pid}.abc123.tmp"     # a killed writer's
    live = tmp_path / f".meta.json.{io._HOST}-{os.getpid()}.def456.tmp"    # a writer still running
    for p in (old_style, killed, live):
        p.write_text("half")
    io.write_text(tmp_path / "summary.md", "done\n")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([live.name, "summary.md"])


def test_atomic_write_leaves_only_the_file(tmp_path):
    io.write_json(tmp_path / "a.json", {"x": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
