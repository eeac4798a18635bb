"""Parsing helpers shared by the real-dataset loaders (celeba.py, awa2.py, cub.py).

The pattern every loader follows: parse a whole file fast with pandas, validate the result with numpy,
and only when something is wrong re-read the file line by line to name the first bad line. The error
path may be slow; the happy path on CelebA's 202,599-row files may not.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Callable, NoReturn, Sequence

import numpy as np
import pandas as pd

from ..errors import UserError, unknown_name

# A line check: the line's whitespace-split fields -> what was expected, or None when the line is fine.
LineCheck = Callable[[list[str]], "str | None"]


def parse_params(cls, params: dict | None, dataset: str):
    """Validate a dataset's `params` mapping into the frozen dataclass `cls` (one-line errors).

    Field types may be int, float, str, bool, dict, list or an optional (`X | None`) of one of them."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in dict(params or {}).items():
        if key not in names:
            raise unknown_name(f"{dataset} parameter", key, names)
        want = hints[key]
        allowed = typing.get_args(want) if isinstance(want, types.UnionType) else (want,)
        if value is None and type(None) in allowed:
            values[key] = None
            continue
        base = next(a for a in allowed if a is not type(None))
        base = typing.get_origin(base) or base
        if base is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if hasattr(value, "items") and base is dict:  # an OmegaConf DictConfig arrives as a mapping
            value = dict(value.items())
        if base is list and not isinstance(value, (str, bytes)) and hasattr(value, "__iter__") \
                and not hasattr(value, "items"):   # an OmegaConf ListConfig arrives as a sequence
            value = list(value)
        if not isinstance(value, base) or (base in (int, float) and isinstance(value, bool)):
            raise UserError(f"{dataset} {key}={value!r}: expected {base.__name__}")
        values[key] = value
    required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING and f.name not in values]
    if required:
        raise UserError(f"{dataset}: parameter(s) {', '.join(required)} not set "
                        f"(conf/dataset/{dataset}.yaml lists every one)")
    return cls(**values)


def require_root(root: str | Path | None, dataset: str, expect: str) -> Path:
    """The dataset folder, or a one-line error saying what it should contain."""
    if root is None or str(root) == "":
        raise UserError(f"{dataset}: dataset.root is not set; expected {expect}")
    path = Path(root)
    if not path.is_dir():
        raise UserError(f"{dataset} root {path} not found: expected {expect}")
    return path


def find_file(candidates: Sequence[Path], dataset: str, what: str) -> Path:
    """The first existing file among `candidates`, else an error naming every place looked in."""
    for path in candidates:
        if path.is_file():
            return path
    where = " or ".join(str(p) for p in candidates)
    raise UserError(f"{dataset}: {what} not found: expected {where}")


def line_error(path: Path, line: int, message: str) -> UserError:
    return UserError(f"{path}, line {line}: {message}")


def scan(path: Path, check: LineCheck, first_line: int = 1, n_lines: int | None = None) -> None:
    """Check each line from `first_line` (1-based) on, raising at the first bad one.

    `n_lines`: the number of data lines expected; fewer is an error naming the line after the last."""
    count = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if lineno < first_line:
                continue
            if not line.strip() and n_lines is None:
                continue  # a trailing blank line in a file without a count
            count += 1
            problem = check(line.split())
            if problem:
                raise line_error(path, lineno, problem)
            if n_lines is not None and count > n_lines:
                raise line_error(path, lineno, f"expected exactly {n_lines} data lines, found more")
    if n_lines is not None and count < n_lines:
        raise line_error(path, first_line + count, f"file ends after {count} data lines; expected {n_lines}")


def fail_scan(path: Path, check: LineCheck, first_line: int = 1, n_lines: int | None = None,
              fallback: str = "could not be parsed") -> NoReturn:
    """`scan` for a file the fast parser rejected; if no line is at fault, say what was wrong overall."""
    scan(path, check, first_line, n_lines)
    raise UserError(f"{path}: {fallback}")


def read_columns(path: Path, n_fields: int, skiprows: int = 0, usecols: Sequence[int] | None = None,
                 dtype=None) -> pd.DataFrame:
    """A whitespace-separated table with no header, read by pandas' C engine (None when it cannot).

    Columns are 0..n_fields-1 (or `usecols`); short lines come back with NaN, which callers
    detect and then `scan` to name the line."""
    try:
        return pd.read_csv(path, sep=r"\s+", header=None, skiprows=skiprows, engine="c",
                           names=list(range(n_fields)), usecols=usecols, dtype=dtype,
                           skip_blank_lines=True, index_col=False)
    except (ValueError, pd.errors.ParserError):
        return None


def int_field_check(n_fields: int, allowed: dict[int, Callable[[int], bool]] | None = None,
                    expect: str = "") -> LineCheck:
    """A line check: at least `n_fields` fields, the ones in `allowed` integers passing their test."""
    allowed = allowed or {}

    def check(fields: list[str]) -> str | None:
        if len(fields) < n_fields:
            return f"expected {n_fields} fields, found {len(fields)}"
        for j, ok in allowed.items():
            try:
                value = int(fields[j])
            except ValueError:
                return f"field {j + 1} is {fields[j]!r}; expected {expect or 'an integer'}"
            if not ok(value):
                return f"field {j + 1} is {fields[j]!r}; expected {expect or 'a valid value'}"
        return None

    return check


def read_id_names(path: Path, sep: str | None = None) -> list[str]:
    """An `<id> <name>` list with 1-based ids 1..n in order (CUB's classes/attributes files, AwA2's
    `"%6d\\t%s"` classes/predicates when `sep="\\t"`). Names are kept verbatim; with sep=None the name
    is the rest of the line after the id (certainties.txt has spaces in names)."""
    names: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split(sep, 1) if sep else line.strip().split(None, 1)
            if len(parts) != 2 or not parts[1].strip():
                how = "a TAB" if sep == "\t" else "whitespace"
                raise line_error(path, lineno, f"expected an id, {how}, then a name; got {line.strip()!r}")
            try:
                ident = int(parts[0])
            except ValueError:
                raise line_error(path, lineno, f"id {parts[0].strip()!r} is not an integer")
            if ident != len(names) + 1:
                raise line_error(path, lineno, f"id {ident}; expected {len(names) + 1} (ids run 1..n in order)")
            names.append(parts[1].strip())
    if not names:
        raise UserError(f"{path}: empty; expected '<id> <name>' lines")
    return names


def check_ids_match(ids: np.ndarray, reference: np.ndarray, path: Path, ref_path: Path,
                    first_line: int = 1) -> None:
    """`ids` (read from `path`, data starting on line `first_line`) list the same ids in the same
    order as `reference` (read from `ref_path`)."""
    ids, reference = np.asarray(ids).tolist(), np.asarray(reference).tolist()  # plain ints/strs in messages
    n = min(len(ids), len(reference))
    if ids[:n] == reference[:n] and len(ids) == len(reference):
        return
    i = next((k for k in range(n) if ids[k] != reference[k]), n)
    if i < n:
        raise line_error(path, first_line + i, f"image {ids[i]!r}; expected {reference[i]!r} "
                                               f"(the same images in the same order as {ref_path.name})")
    if len(ids) < len(reference):
        raise line_error(path, first_line + i, f"file ends after {len(ids)} rows; {ref_path.name} has "
                                               f"{len(reference)} (expected a line for {reference[i]!r})")
    raise line_error(path, first_line + i, f"extra row {ids[i]!r}: {ref_path.name} has only {len(reference)} rows")


def split_series(index: pd.Index, values: np.ndarray) -> pd.Series:
    """The split column of a LabelTable from an array of 'train'/'val'/'test' strings."""
    return pd.Series(np.asarray(values, dtype=object), index=index, name="split")
