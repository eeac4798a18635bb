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
