"""What a run shows and keeps: Python logging through Hydra's job logging (conf/hydra/job_logging/rows.yaml), and
the progress bars outside training.

The console shows each message as it is (info on stdout, warnings and errors on stderr); in a multirun every line
starts with the short name of the row it belongs to (`[linear_svm/source=even/seed=0] ...`), so the lines of
parallel jobs can be told apart. The run folder keeps every message, timestamped, in `run.log`. Progress bars go
to the console only; `callbacks.progress_interval` sets how often the bars of extraction and image decoding
redraw (seconds; null: no bars), which `callbacks=cluster` raises so that a job's log stays short.

Modules log through `logging.getLogger(__name__)`; nothing here is needed for that. This module holds the
pieces the logging config names (the console formatter and its filter), the row name they print, and
`progress`, the one way a bar is made.
"""
from __future__ import annotations

import logging
import sys

_ROW = {"name": "", "shown": False}          # the row's short name, and whether console lines carry it
_PROGRESS = {"interval": 1.0}                # seconds between a bar's redraws; None: no bars


def set_row(name: str, shown: bool) -> None:
    """The row (or analysis) the lines that follow belong to; `shown`: prefix console lines with it (multirun)."""
    _ROW.update(name=name, shown=bool(shown and name))


def row_name() -> str:
    return _ROW["name"]


class ConsoleFormatter(logging.Formatter):
    """The message as it is, prefixed with `[<row>] ` in a multirun."""

    def __init__(self, *args, **kwargs):
        super().__init__("%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if _ROW["shown"]:
            prefix = f"[{_ROW['name']}] "
            text = "\n".join(prefix + line for line in text.split("\n"))
        return text


class Below:
    """A handler filter passing records below `level` (the stdout handler: info; stderr takes the rest)."""

    def __init__(self, level: str | int = "WARNING"):
        self.level = logging.getLevelName(level) if isinstance(level, str) else level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


def to_file_only(level: int, message: str) -> None:
    """`message` into the run's log files (the root logger's file handlers) and not to the console: the line
    dispatch prints to stderr itself (a user error, an interruption) is kept in run.log too."""
    record = logging.LogRecord("transferability", level, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and record.levelno >= handler.level:
            handler.handle(record)


def set_progress(interval: float | None) -> None:
    """Seconds between redraws of the progress bars made by `progress`; None: no bars."""
    _PROGRESS["interval"] = interval


def progress(iterable=None, **kwargs):
    """A tqdm bar on stderr with the run's redraw interval (`set_progress`); disabled when the interval is None."""
    from tqdm.auto import tqdm

    interval = _PROGRESS["interval"]
    kwargs.setdefault("file", sys.stderr)
    if interval is None:
        kwargs["disable"] = True
    else:
        kwargs["mininterval"] = max(float(interval), kwargs.get("mininterval", 0.0))
        kwargs.setdefault("maxinterval", max(10.0, float(interval)))
    return tqdm(iterable, **kwargs)


def to_console() -> None:
    """For a command run outside Hydra (the benches): the package's messages on stdout, as a run shows them."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
