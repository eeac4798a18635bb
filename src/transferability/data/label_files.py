"""Label files in the Hugging Face `imagefolder` convention, shared by dataset=folder and dataset=table.

A file (.csv, .jsonl or .parquet) holds one row per image: a key column (`file_name`, or the table's id column),
an optional `split` column and one column per task. What a column becomes (`label_table`):
- its values (strings, integers, booleans; in a CSV, text that reads as a number or as true/false is taken as
  one) are the classes of one task; an empty cell (null in JSON or Parquet) is a missing label, left out pair by
  pair as everywhere;
- a numeric column with more distinct values than `max_classes` is a continuous measure, cut at its median (the
  task keeps the column's name: 1 above, 0 at or below) or at each of `quantiles` (`<name>@q25`, ...,
  quantiles.py); a missing value stays missing;
- a task with more than two classes is multi-class (LabelTable.multiclass);
- `split` (train, validation or val, test) gives the splits; without it a seeded random `test_fraction` of the
  rows is the test split, the rest train. Columns in `ignore` are left out.

Reading follows parsing.py's pattern: the whole file at once (pyarrow's CSV reader, every column as text, then one
dictionary per column), and only when something is wrong a second pass that names the line and the column.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError, unknown_name
from .labels import LabelTable
from .parsing import line_error, split_series
from .quantiles import check_quantiles, task_name

FORMATS = (".csv", ".jsonl", ".parquet")
SPLIT = "split"
SPLIT_VALUES = {"train": "train", "validation": "val", "val": "val", "test": "test"}
BOOL_TEXT = {"true": True, "false": False, "True": True, "False": False, "TRUE": True, "FALSE": False}
INT_TEXT = r"[+-]?\d+"
FLOAT_TEXT = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"


@dataclass(frozen=True)
class TaskParams:
    """What the columns of a label file become; conf/dataset/{folder,table}.yaml hold the values and say why."""
    split_seed: int
    test_fraction: float
    ignore: list
    max_classes: int
    quantiles: list | None

    def check(self, dataset: str) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise UserError(f"{dataset} test_fraction={self.test_fraction}: expected a number in (0, 1)")
        if self.max_classes < 2:
            raise UserError(f"{dataset} max_classes={self.max_classes}: expected an integer >= 2")
        if self.split_seed < 0:
            raise UserError(f"{dataset} split_seed={self.split_seed}: expected an integer >= 0")
        if not all(isinstance(c, str) for c in self.ignore):
            raise UserError(f"{dataset} ignore={self.ignore!r}: expected a list of column names")
        object.__setattr__(self, "quantiles", check_quantiles(self.quantiles, dataset))


@dataclass
class Column:
    """One column as read: `codes[i]` indexes `values` (the distinct values as the file holds them), -1 = empty."""
    codes: np.ndarray
    values: list


class LabelFile:
    """A label file read whole: its column names, the key column's values (str, row order) and every other column.
    `where(row, column)` names a row's place for messages: 'metadata.csv, line 7, column split' (CSV, JSONL) or
    'labels.parquet, row 7, column split'."""

    def __init__(self, path: Path, columns: list[str], keys: np.ndarray, raw: dict[str, Column], text: bool,
                 lines: np.ndarray | None = None):
        self.path, self.columns, self.keys, self.raw = path, columns, keys, raw
        self.text = text                  # values are the file's text (CSV): numbers and booleans still to read
        self._lines = lines               # JSONL: each row's line; CSV: found on first use (an error path)

    @property
    def n(self) -> int:
        return len(self.keys)

    def place(self, row: int) -> str:
        if self.path.suffix == ".parquet":
            return f"row {row + 1}"
        if self._lines is None:
            self._lines = _csv_record_lines(self.path)
        return f"line {int(self._lines[row])}"

    def where(self, row: int, column: str | None = None) -> str:
        return f"{self.path}, {self.place(row)}" + (f", column {column}" if column else "")


def read_label_file(path: Path, key: str, hint: str = "") -> LabelFile:
    """The file at `path` (by its suffix); `key`: the column naming each row (non-empty, unique). `hint`: how to
    name another key column, added to the error when `key` is absent."""
    path = Path(path)
    if path.suffix not in FORMATS:
        raise UserError(f"{path}: expected a .csv, .jsonl or .parquet label file")
    if not path.is_file():
        raise UserError(f"label file not found: {path}")
    read = {".csv": _read_csv, ".jsonl": _read_jsonl, ".parquet": _read_parquet}[path.suffix]
    lf = read(path, key, hint)
    if lf.n == 0:
        raise UserError(f"{path}: no rows below the header; expected one row per image")
    _check_keys(lf, key)
    return lf


def label_table(lf: LabelFile, params: TaskParams, key: str) -> LabelTable:
    """The LabelTable of a label file (the module docstring's rules), rows in file order, ids = the key column."""
    for name in params.ignore:
        if name not in lf.columns:
            raise unknown_name(f"column in ignore= of {lf.path.name}:", name, lf.columns)
        if name == key:
            raise UserError(f"ignore={params.ignore!r}: {key!r} names each row in {lf.path}; it cannot be ignored")
    split_column = SPLIT if SPLIT in lf.raw and SPLIT not in params.ignore else None
    names = [c for c in lf.columns if c not in (key, SPLIT) and c not in params.ignore]
    if not names:
        raise UserError(f"{lf.path}: no task columns (columns: {', '.join(lf.columns)}); expected one per label")
    labels, multiclass = {}, []
    for name in names:
        for task, values, k in column_tasks(name, lf.raw.pop(name), params, lf.text):
            if task in labels:
                raise UserError(f"{lf.path}: column {task!r} is also the name of a cut of another column; rename it")
            labels[task] = values
            if k > 2:
                multiclass.append(task)
    index = pd.Index(lf.keys, name="image_id")
    split = split_values(lf, split_column, params)
    return LabelTable(pd.DataFrame(labels, index=index), split_series(index, split), multiclass=tuple(multiclass))


def column_tasks(name: str, col: Column, params: TaskParams, text: bool) -> list[tuple[str, object, int]]:
    """The task(s) one column becomes: (task name, its labels, its number of classes)."""
    classes, inverse = np.unique(typed(col.values, text), return_inverse=True)   # sorted; "1" and "01" are one
    if classes.dtype.kind == "f":   # NaN in a float column (Parquet, JSON) is a missing label
        inverse = np.where(np.isnan(classes)[inverse], -1, inverse)
    codes = _remap(col.codes, inverse)
    used = np.bincount(codes[codes >= 0], minlength=len(classes)) > 0
    if not used.all():   # values of a Parquet dictionary that no row uses, or NaN
        codes, classes = _remap(codes, np.where(used, np.cumsum(used) - 1, -1)), classes[used]
    if classes.dtype.kind not in "iuf" or len(classes) <= params.max_classes:
        return [(name, _labels(codes, classes), len(classes))]
    measure = np.where(codes >= 0, classes.astype(np.float64)[np.maximum(codes, 0)], np.nan)
    present = measure[codes >= 0]
    cuts = ([(name, np.median(present))] if params.quantiles is None else
            [(task_name(name, q), c) for q, c in zip(params.quantiles, np.quantile(present, params.quantiles))])
    out = []
    for task, cut in cuts:
        with np.errstate(invalid="ignore"):
            above = np.where(codes >= 0, (measure > cut).astype(np.int32), -1)
        k = len(np.unique(above[above >= 0]))
        out.append((task, _labels(above, np.array([0, 1], np.int8)), k))
    return out


def typed(values: list, text: bool) -> np.ndarray:
    """A column's distinct values as one numpy array of one kind: bool, int64, float64 or str. From a CSV's text:
    all true/false -> bool, all integers -> int, all numbers -> float, else str. From JSON or Parquet values:
    their own type, a mix of numbers and text read as text."""
    if not values:
        return np.array([], dtype=str)
    s = pd.Series(values, dtype=object)
    if text:
        s = s.astype(str)
        if s.isin(list(BOOL_TEXT)).all():
            return s.map(BOOL_TEXT).to_numpy(dtype=bool)
        for pattern, dtype in ((INT_TEXT, np.int64), (FLOAT_TEXT, np.float64)):
            if s.str.fullmatch(pattern).all():
                try:
                    return s.astype(dtype).to_numpy()
                except (OverflowError, ValueError):   # an integer beyond int64: read as text
                    break
        return s.to_numpy(dtype=str)
    kinds = {type(v) for v in values}
    if kinds <= {bool, np.bool_}:
        return np.array(values, dtype=bool)
    if kinds <= {int, np.int64} and all(abs(v) < 2**63 for v in values):
        return np.array(values, dtype=np.int64)
    if kinds <= {int, float, np.int64, np.float64} and not kinds & {bool}:
        return np.array(values, dtype=np.float64)
    return np.array([str(v) for v in values], dtype=str)


def _remap(codes: np.ndarray, new: np.ndarray) -> np.ndarray:
    """codes -> new[codes], -1 (missing) staying -1: one lookup, the table's last entry serving index -1."""
    return np.append(new, -1).astype(np.int32)[codes]


def _labels(codes: np.ndarray, classes: np.ndarray):
    """A task column: the class values themselves where every row is labelled and the classes are integers or
    booleans (as the embedded datasets hold them), else a Categorical of the sorted classes (missing = NaN)."""
    if (codes >= 0).all() and classes.dtype.kind in "biu":
        out = classes[codes]
        return out if out.dtype.kind == "b" else pd.to_numeric(out, downcast="integer")
    return pd.Categorical.from_codes(codes, categories=classes)


def split_values(lf: LabelFile, column: str | None, params: TaskParams) -> np.ndarray:
    """Each row's split: from `column`, else a seeded random test fraction (the rest train)."""
    if column is None:
        split = np.full(lf.n, "train", dtype=object)
        test = np.random.default_rng(params.split_seed).permutation(lf.n)[: int(np.ceil(params.test_fraction * lf.n))]
        split[test] = "test"
        return split
    col = lf.raw[column]
    values = [str(v) for v in col.values]
    bad = np.array([v not in SPLIT_VALUES for v in values] + [True])   # the last entry: an empty cell (code -1)
    wrong = bad[col.codes]
    if wrong.any():
        row = int(np.argmax(wrong))
        value = values[col.codes[row]] if col.codes[row] >= 0 else ""
        raise UserError(f"{lf.where(row, column)}: split {value!r}; expected train, validation (or val) or test")
    return np.array([SPLIT_VALUES[v] for v in values], dtype=object)[col.codes]


def _check_keys(lf: LabelFile, key: str) -> None:
    """Every row has a key, and no key repeats (each names the row's line)."""
    empty = pd.isna(lf.keys) | (lf.keys == "")
    if empty.any():
        raise UserError(f"{lf.where(int(np.argmax(empty)), key)}: empty; every row needs its {key}")
    dup = pd.Index(lf.keys).duplicated()
    if dup.any():
        row = int(np.argmax(dup))
        first = int(np.flatnonzero(lf.keys == lf.keys[row])[0])
        raise UserError(f"{lf.where(row, key)}: {lf.keys[row]!r} again (first on {lf.place(first)}); "
                        f"each {key} must be listed once")


def _header(path: Path, names: list[str], key: str, hint: str) -> None:
    seen = set()
    for j, name in enumerate(names):
        if name == "":
            raise line_error(path, 1, f"column {j + 1} has no name")
        if name in seen:
            raise line_error(path, 1, f"column {name!r} appears twice")
        seen.add(name)
    if key not in seen:
        raise line_error(path, 1, f"no {key} column (columns: {', '.join(names)}){hint}")


# -- CSV -------------------------------------------------------------------------------------------------------


def _read_csv(path: Path, key: str, hint: str) -> LabelFile:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    names = _csv_header(path)
    _header(path, names, key, hint)
    # Every column as text (typed from its distinct values later), encoded as a dictionary while it is parsed.
    types = {c: pa.string() if c == key else pa.dictionary(pa.int32(), pa.string()) for c in names}
    options = pcsv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True,
                                  quoted_strings_can_be_null=True)
    try:
        table = pcsv.read_csv(path, convert_options=options)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as e:
        _scan_csv(path, names)
        raise UserError(f"{path}: cannot be read as CSV ({(str(e).splitlines() or ['unknown error'])[0]})")
    columns = {name: table.column(name) for name in names}
    del table   # each column's memory goes as soon as it is encoded
    keys = columns.pop(key).to_numpy(zero_copy_only=False)
    raw = {name: _dictionary_column(columns.pop(name)) for name in list(columns)}
    return LabelFile(path, names, keys, raw, text=True)


def _dictionary_column(col) -> Column:
    """A pyarrow column (chunked; dictionary-encoded or not) as codes into its distinct values."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(col.type):
        col = col.unify_dictionaries() if col.num_chunks > 1 else col
    else:
        col = pc.dictionary_encode(col)
    d = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    codes = (d.indices if d.null_count == 0 else d.indices.fill_null(-1)).to_numpy().astype(np.int32, copy=False)
    values = d.dictionary.to_pylist()
    if d.dictionary.null_count:   # a null inside a Parquet dictionary: an empty cell too
        codes = _remap(codes, np.array([-1 if v is None else j for j, v in enumerate(values)]))
    return Column(codes, values)


def _csv_header(path: Path) -> list[str]:
    with open(path, "rb") as f:
        first = f.readline()
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise line_error(path, 1, f"not UTF-8 text (byte 0x{first[e.start]:02x} at character {e.start + 1})")
    names = next(csv.reader([text]), [])
    if not names:
        raise line_error(path, 1, "empty; expected a header naming the columns")
    return names


def _scan_csv(path: Path, names: list[str]) -> None:
    """Name the first line that is not UTF-8 or whose number of fields differs from the header's."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                fields = next(csv.reader([raw.decode("utf-8", errors="replace")]), [])
                j = next((j for j, v in enumerate(fields) if "\ufffd" in v), None)
                column = f", column {names[j]}" if j is not None and j < len(names) else ""
                raise UserError(f"{path}, line {lineno}{column}: not UTF-8 text (byte 0x{raw[e.start]:02x}); "
                                "save the file as UTF-8")
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader, end = csv.reader(f), 0
        for record in reader:
            start, end = end + 1, reader.line_num
            if record and len(record) != len(names):
                raise line_error(path, start, f"{len(record)} fields; the header has {len(names)}")


def _csv_record_lines(path: Path) -> np.ndarray:
    """The line each data row starts on (blank lines skipped, quoted line breaks followed), as pyarrow reads them."""
    starts = []
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        reader, end = csv.reader(f), 0
        for record in reader:
            start, end = end + 1, reader.line_num
            if record:
                starts.append(start)
    return np.array(starts[1:], dtype=np.int64)


# -- JSON lines and Parquet ------------------------------------------------------------------------------------


def _read_jsonl(path: Path, key: str, hint: str) -> LabelFile:
    """One JSON object per line; a key missing from a line is an empty cell."""
    cols: dict[str, list] = {}
    lines: list[int] = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise line_error(path, lineno, f"not UTF-8 text (byte 0x{raw[e.start]:02x})")
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as e:
                raise line_error(path, lineno, f"not JSON ({e.msg} at character {e.colno})") from None
            if not isinstance(record, dict):
                raise line_error(path, lineno, f"a JSON {type(record).__name__}; expected an object, one per line")
            for name, value in record.items():
                if isinstance(value, (list, dict)):
                    raise UserError(f"{path}, line {lineno}, column {name}: a JSON {type(value).__name__}; "
                                    "expected a string, number, true/false or null")
                cols.setdefault(name, [None] * len(lines)).append(value)
            lines.append(lineno)
            for values in cols.values():
                if len(values) < len(lines):
                    values.append(None)
    names = list(cols)
    if key not in cols:
        raise UserError(f"{path}: no {key} column (columns: {', '.join(names)}){hint}")
    keys = np.array([None if v is None else str(v) for v in cols.pop(key)], dtype=object)
    raw = {}
    for name in list(cols):
        codes, uniques = pd.factorize(pd.Series(cols.pop(name), dtype=object))
        raw[name] = Column(codes.astype(np.int32), list(uniques))
    return LabelFile(path, names, keys, raw, text=False, lines=np.array(lines, dtype=np.int64))


def _read_parquet(path: Path, key: str, hint: str) -> LabelFile:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise UserError(f"{path}: not a readable Parquet file ({(str(e).splitlines() or ['unknown error'])[0]})")
    names = list(table.column_names)
    _header(path, names, key, hint)
    for name, field in zip(names, table.schema):
        if pa.types.is_nested(field.type):
            raise UserError(f"{path}, column {name}: type {field.type}; expected strings, numbers or booleans")
    columns = {name: table.column(name) for name in names}
    del table
    keys = pc.cast(columns.pop(key), pa.string()).to_numpy(zero_copy_only=False)
    raw = {name: _dictionary_column(columns.pop(name)) for name in list(columns)}
    return LabelFile(path, names, keys, raw, text=False)
