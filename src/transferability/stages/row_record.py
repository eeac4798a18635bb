"""A finished row is a checked row: `done.json`, written after everything else of a transfer run, holds the
sha256 and row count of its `results.csv`, the sha256 of `source.json` and `config.json`, and the targets
asked for and written.

"Already done" and the analysis both trust a row only when its record matches the file on disk, so a
truncated, edited or half-replaced `results.csv` is redone (transfer) or left out and listed (analyze).
"""
from __future__ import annotations

import json
from pathlib import Path

from .. import io

NAME = "done.json"
COVERED = ("source.json", "config.json")   # besides results.csv: what the analysis and reruns read


sha256 = io.file_sha256


def write(out: Path, asked, targets: list[str], skipped: list[str], provenance: dict | None = None) -> None:
    """Record `out/results.csv` as finished; call it last. `provenance`: the code and libraries that made it."""
    import pandas as pd

    results = Path(out) / "results.csv"
    files = {name: sha256(Path(out) / name) for name in COVERED if (Path(out) / name).exists()}
    io.write_json(Path(out) / NAME, {"results_sha256": sha256(results), "rows": len(pd.read_csv(results)),
                                     "files": files, "asked": asked, "targets": list(targets),
                                     "skipped": list(skipped), "provenance": provenance})


def clear(out: Path) -> None:
    """A row being redone is not finished until its new record is written."""
    (Path(out) / NAME).unlink(missing_ok=True)


def problem(out: Path, asked=None) -> str | None:
    """Why `out` is not a checked finished row (None when it is). `asked`: the targets a rerun asks for
    (`all` or a list); the record must cover them."""
    import pandas as pd

    out = Path(out)
    results, record = out / "results.csv", out / NAME
    if not results.exists():
        return "no results.csv"
    if not record.exists():
        return f"no {NAME} (the run did not finish, or predates the record)"
    try:
        rec = json.loads(record.read_text())
        want_sha, want_rows, files = rec["results_sha256"], int(rec["rows"]), dict(rec.get("files", {}))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return f"{NAME} unreadable ({type(e).__name__})"
    if sha256(results) != want_sha:
        return f"results.csv does not match the checksum in {NAME} (changed or truncated)"
    for name, want in files.items():
        if not (out / name).exists() or sha256(out / name) != want:
            return f"{name} missing or does not match the checksum in {NAME}"
    try:
        rows = len(pd.read_csv(results))
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return "results.csv unreadable"
    if rows != want_rows:
        return f"results.csv has {rows} rows, {NAME} says {want_rows}"
    if asked is not None:
        if asked == "all" and rec.get("asked") != "all":
            return f"made for targets {rec.get('asked')}, asked for all"
        if isinstance(asked, (list, tuple)):
            missing = (set(map(str, asked)) - set(map(str, rec.get("targets", [])))
                       - set(map(str, rec.get("skipped", []))))
            if missing:
                return f"lacks asked-for target(s) {', '.join(sorted(missing))}"
    return None
