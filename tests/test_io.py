"""Atomic writes: leftovers of killed writes are removed by the next write there, a live writer's are not."""
import os
import subprocess
import sys

import pytest

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


# ---------------------------------------------------------------------------------------------- safe names

@pytest.mark.parametrize("name", ["Male", "ink_heavy@q25", "5_o_Clock_Shadow", "Gray Hair", "Größe", "лиса",
                                  "a=b", "x,y"])
def test_plain_names_stay_as_they_are(name):
    assert io.component(name) == name and io.name_of(name) == name


@pytest.mark.parametrize("name", ["/m/0abc", "..", ".", ".hidden", "../../../../tmp/x", "a/../b", "tab\there",
                                  "new\nline", "100%", "back\\slash", "%2F", "\x7f"])
def test_any_name_is_one_component_inside_its_parent(name, tmp_path):
    part = io.component(name)
    assert "/" not in part and part not in (".", "..") and not part.startswith(".")
    assert not any(ord(c) < 32 or c == "\x7f" for c in part)
    assert io.name_of(part) == name   # reversible
    (tmp_path / part).mkdir()
    assert (tmp_path / part).resolve().parent == tmp_path.resolve()


def test_distinct_names_get_distinct_components():
    names = ["/m/0abc", "%2Fm%2F0abc", ".x", "%2Ex", "a,b", "a%2Cb", "..", "%2E."]
    assert len({io.component(n) for n in names}) == len(names)
    assert io.component("a,b", also=",") == "a%2Cb" != io.component("a%2Cb", also=",")


def test_a_long_name_is_shortened_with_a_hash_and_stays_unique(tmp_path):
    long = ["x" * 300 + str(i) for i in range(3)] + ["/" * 300]
    parts = [io.component(n) for n in long]
    assert len(set(parts)) == 4 and all(len(p.encode()) <= 200 and "%~" in p for p in parts)
    for p in parts:
        (tmp_path / ("source=" + p)).mkdir()        # fits a file system's 255 bytes with a prefix
        io.write_text(tmp_path / ("source=" + p) / f"table1_{p}.csv", "x\n")   # and a temporary file's name
    with pytest.raises(ValueError, match="shortened"):
        io.name_of(parts[0])


# ---------------------------------------------------------------------------------------------- failed writes

def test_a_full_disk_is_one_line_naming_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    from transferability.errors import UserError

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(UserError, match=r"cannot write .*summary\.md: No space left on device \(needs 5 bytes, "
                                        r".* free\); free some space") as e:
        io.write_text(tmp_path / "summary.md", "done\n")
    assert "\n" not in str(e.value) and list(tmp_path.iterdir()) == []


def test_a_path_under_a_file_is_one_line_naming_the_file(tmp_path):
    from transferability.errors import UserError

    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match=r"afile is a file, not a folder"):
        io.write_json(tmp_path / "afile" / "row" / "done.json", {})
    assert io.unwritable(tmp_path / "afile" / "x") == f"{tmp_path / 'afile'} is a file, not a folder"
    assert io.unwritable(tmp_path / "fine" / "x") is None


# ---------------------------------------------------------------------------------------------- locks

HOLD = """
import sys, time
from transferability import io
with io.locked(sys.argv[1], "the test entry"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_second_holder_waits_and_a_killed_holder_releases(tmp_path):
    import signal
    import time

    lock = tmp_path / "entry.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), "60"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    waiter = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), "0"], stdout=subprocess.PIPE, text=True)
    time.sleep(1.5)
    assert waiter.poll() is None, "the second job waits while the first holds the lock"
    holder.send_signal(signal.SIGKILL)   # killed: no release, no cleanup; the kernel drops its flock
    holder.wait()
    assert waiter.stdout.readline().strip() == "held"
    assert waiter.wait(timeout=30) == 0
