"""The records of an offline wandb run (`<run>/run-<id>.wandb`), read without a server: the file is a log of
length-prefixed protobuf records in 32 KiB blocks (wandb's LevelDB-style log format)."""
from __future__ import annotations

import struct
from pathlib import Path

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list:
    """Every record of the run file as wandb's `Record` protobuf messages."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, part, out = Path(path).read_bytes(), HEADER, b"", []
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:   # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        chunk, pos = data[pos + HEADER:pos + HEADER + length], pos + HEADER + length
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(part + chunk)
            out.append(record)
            part = b""
        elif kind in (FIRST, MIDDLE):
            part += chunk
    return out


def artifacts(run_dir: Path, wait_s: float = 30.0) -> list:
    """(name, type, use_after_commit) of every artifact record of the offline runs under `run_dir`. wandb's
    service process writes the file: it is read once its run has ended (an `exit` record), waiting up to `wait_s`."""
    import time

    deadline = time.time() + wait_s
    while True:
        files = sorted(Path(run_dir).glob("offline-run-*/*.wandb"))
        runs = [records(f) for f in files]
        if (files and all(any(r.WhichOneof("record_type") == "exit" for r in run) for run in runs)) \
                or time.time() > deadline:
            break
        time.sleep(0.2)
    return [(r.artifact.name, r.artifact.type, r.artifact.use_after_commit)
            for run in runs for r in run if r.WhichOneof("record_type") == "artifact"]
