"""The one exception type that reaches the user as a single line (run.py prints it, exits 2)."""
from __future__ import annotations

import difflib
from typing import Iterable


class UserError(Exception):
    """Bad input from the user: a file, line or value and what was expected. Never a traceback."""


def close_matches(name: str, valid: Iterable[str], n: int = 3) -> list[str]:
    valid = list(valid)
    lower = {v.lower(): v for v in valid}
    hits = difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.6)
    return [lower[h] for h in hits]


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> UserError:
    """`unknown <kind> 'Mael'; did you mean: Male? (valid: ...)`, listing all valid names when few."""
    valid = list(valid)
    msg = f"unknown {kind} {name!r}"
    hits = close_matches(name, valid)
    if hits:
        msg += f"; did you mean: {', '.join(hits)}?"
    if len(valid) <= 50:
        msg += f" (valid: {', '.join(valid)})"
    else:
        msg += f" ({len(valid)} valid names; see the dataset's task list)"
    return UserError(msg)


# What the run is doing now, innermost last: the line a signal ends the run with names it (stages/dispatch.py).
_DOING: list[tuple[str, str]] = []
_LEFT: list[tuple[str, str]] = []    # the innermost block an exception left (the blocks unwind before it is caught)


class doing:
    """`with doing("training the source model", rerun="resumes from its epoch checkpoint"):` marks what runs, and
    what a rerun of the same command does about it, for the one line an interrupted run ends with."""

    def __init__(self, what: str, rerun: str = "starts it again"):
        self.entry = (what, rerun)

    def __enter__(self) -> "doing":
        if not _DOING:
            _LEFT.clear()
        _DOING.append(self.entry)
        return self

    def __exit__(self, exc_type, *exc) -> None:
        _DOING.remove(self.entry)
        if exc_type is not None and not _LEFT:
            _LEFT.append(self.entry)


def doing_now() -> tuple[str, str] | None:
    """(what, what a rerun does) of the innermost `doing` block running, or None."""
    return _DOING[-1] if _DOING else None


def doing_when_left() -> tuple[str, str] | None:
    """(what, what a rerun does) of the innermost `doing` block the last exception left, or None."""
    return _LEFT[-1] if _LEFT else None
