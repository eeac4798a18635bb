"""Stage dispatch: the Hydra config is validated once into a RunConfig, then one stage runs.

How a run ends, besides finishing:
- bad input anywhere below (a UserError), or a write the disk or the permissions refuse: one line on stderr,
  exit code 2, no traceback;
- Ctrl-C (SIGINT): one line, exit code 130; SIGTERM (`kill`, a scheduler stopping the job): one line, exit
  code 143 (128 + 15). The line says what was interrupted and what a rerun of the same command does about it
  (errors.doing: a source model resumes from its epoch checkpoint). Nothing of the run is marked finished
  (a row is finished only once its done.json is written, last).
Under submitit (a Slurm launcher) the signals stay submitit's: it requeues on the signal Slurm sends before a
time limit (USR2, `signal_delay_s` in conf/launcher/) and ignores the SIGTERM of a preemption or `scancel`; our
SIGTERM handler is installed only where no one else handles the signal.
A run that fails with an error removes the run folder it created (Hydra makes it, with `.hydra/` and `run.log`
inside, before our code runs) when nothing else is in it, so a typo leaves no folder that looks like a run. An
interrupted run keeps its folder and its run.log (no results in it: nothing looks finished). Every such line
goes into the run's `run.log` too."""
from __future__ import annotations

import errno
import logging
import shutil
import signal
import sys
from pathlib import Path

# A run folder holding only these is bare: Hydra's record, the run's log and the row lock (stages/transfer.py).
HOUSEKEEPING = (".hydra", "run.log", ".lock")
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


def _estimate(run):
    from .estimate import run_estimate

    return run_estimate(run)


def _transfer(run):
    import logging

    import lightning.pytorch  # noqa: F401  (sets its loggers' levels on import; ours must come after)

    from .stacked import run_stacked, several
    from .transfer import run_transfer

    # Lightning's device banners and tips repeat on every job of a sweep; its warnings still show.
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)

    return run_stacked(run) if several(run) else run_transfer(run)


def _analyze(run):
    from .analyze import run_analyze

    return run_analyze(run)


def _widths(run):
    from .widths import run_widths

    return run_widths(run)


STAGES = {"estimate": _estimate, "transfer": _transfer, "analyze": _analyze, "widths": _widths}


def plain_experiment(args: list[str]) -> list[str]:
    """`+experiment=x` read as `experiment=x`. `experiment` is a group of the defaults list (so `experiment=x`
    selects it), and Hydra refuses `+` for such a group; the `+` spelling is common in Hydra projects."""
    return [a[1:] if a.startswith("+experiment=") else a for a in args]


def run_stage(cfg):
    """Validate the composed config and run its stage; a UserError exits 2 with one line."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from ..config import from_dict
    from ..errors import UserError, doing, doing_when_left
    from ..io import WRITE_ERRORS, write_failed
    from ..logs import set_progress, set_row

    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    run_dir = hydra.runtime.output_dir if hydra else None
    set_row(_short_name(run_dir, _outputs(cfg)), shown=hydra is not None and hydra.mode == RunMode.MULTIRUN)
    interrupted = _watch_signals()
    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
        if hydra:
            plain["experiment"] = hydra.runtime.choices.get("experiment")
        run = from_dict(plain, run_dir=run_dir or ".")
        set_progress(run.callbacks.progress_interval)
        logging.captureWarnings(True)   # warnings reach run.log too (on the console as before: stderr)
        with doing(f"running stage={run.stage}"):
            return STAGES[run.stage](run)
    except UserError as e:
        _end(f"error: {e}", run_dir, cfg, 2)
    except OSError as e:
        # A write below that went around io.atomic_path (a library's file, a log) and was refused by the disk.
        if e.errno not in WRITE_ERRORS and e.errno != errno.EIO:
            raise
        _end(f"error: {write_failed(e.filename or run_dir or '.', e)}", run_dir, cfg, 2)
    except (KeyboardInterrupt, SystemExit) as e:
        # Lightning catches Ctrl-C during fit and exits 1 itself; the flag tells that exit from others. Where
        # another handler kept SIGTERM (submitit), Lightning ends fit with its SIGTERMException, a SystemExit
        # with no code: not a finished run either.
        lightning_sigterm = type(e).__name__ == "SIGTERMException"
        if isinstance(e, SystemExit) and not interrupted and not lightning_sigterm:
            raise
        if interrupted:
            signum, when = interrupted[-1]
        else:
            signum, when = (signal.SIGTERM if lightning_sigterm else signal.SIGINT), doing_when_left()
        what, rerun = when or ("running", "starts it again")
        # The run folder stays, with its run.log: it holds no results, so nothing looks finished.
        _end(f"interrupted ({signal.Signals(signum).name}) while {what}: nothing of this run is marked "
             f"finished; rerunning the same command {rerun}", None, cfg, EXIT.get(signum, 128 + signum))
    finally:
        interrupted.clear()


def _end(line: str, run_dir, cfg, code: int):
    """The one line on stderr (and in run.log), the run folder `run_dir` removed when bare, exit `code`."""
    from ..logs import to_file_only

    print(line, file=sys.stderr)
    to_file_only(logging.ERROR, line)
    remove_if_bare(run_dir, _outputs(cfg))
    sys.exit(code)


def _short_name(run_dir: str | None, outputs: str | None) -> str:
    """What a multirun prefixes its console lines with: the run folder below `<outputs>/<dataset>/<backbone>`
    (`linear_svm/source=even/seed=0`), or below `<outputs>` for a shallower one."""
    if not run_dir:
        return ""
    try:
        rel = Path(run_dir).resolve().relative_to(Path(outputs or ".").resolve())
    except ValueError:
        return Path(run_dir).name
    parts = rel.parts
    return "/".join(parts[2:] if len(parts) > 3 else parts)


def _watch_signals() -> list:
    """A list that gets (signal number, errors.doing_now()) when SIGINT or SIGTERM arrives; either then raises
    KeyboardInterrupt,
    so every library's Ctrl-C cleanup runs (Lightning's included). SIGTERM is taken over only from its default
    handler: a launcher that handles it (submitit) keeps it."""
    import threading

    from ..errors import doing_now

    seen: list = []
    if threading.current_thread() is not threading.main_thread():
        return seen

    def handler(signum, frame):
        seen.append((signum, doing_now()))   # what ran when it arrived: the blocks unwind before it is reported
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None) or _ours(signal.getsignal(signal.SIGTERM)):
        signal.signal(signal.SIGTERM, handler)
    return seen


def _ours(handler) -> bool:
    """A handler this module installed for an earlier job of the same process (the basic launcher)."""
    return getattr(handler, "__module__", None) == __name__ and getattr(handler, "__name__", "") == "handler"


def remove_if_bare(run_dir: str | None, outputs: str | None) -> None:
    """Remove `run_dir` when it holds nothing but HOUSEKEEPING (Hydra's `.hydra/`, `run.log`, the row lock) and
    empty folders, then its parents up to `outputs` while they are empty (a settings folder's `settings.json`
    alone counts as empty). A folder with anything else in it (a finished row) is left alone."""
    if not run_dir:
        return
    d = Path(run_dir)
    if not d.is_dir() or any(p.name not in HOUSEKEEPING and not (p.is_dir() and not any(p.rglob("*")))
                             for p in d.iterdir()):
        return
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(handler)   # run.log goes with the folder; a later line must not recreate it
        handler.close()
    shutil.rmtree(d, ignore_errors=True)
    stop = Path(outputs).resolve() if outputs else None
    for parent in d.resolve().parents:
        if parent == stop or stop is None or stop not in parent.parents:
            break
        try:
            left = [p.name for p in parent.iterdir()]
            if left == ["settings.json"]:
                (parent / "settings.json").unlink()
            parent.rmdir()   # only succeeds when empty
        except OSError:
            break


def _outputs(cfg) -> str | None:
    try:
        return str(cfg.paths.outputs)
    except Exception:   # an unresolvable interpolation: remove only the run folder itself
        return None
