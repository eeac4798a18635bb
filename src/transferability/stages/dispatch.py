"""Stage dispatch: the Hydra config is validated once into a RunConfig, then one stage runs.

Bad input anywhere below becomes one line on stderr and exit code 2 (no traceback); Ctrl-C one line and
exit code 130. A run that fails this way removes the run folder it created (Hydra makes it, with `.hydra/`
inside, before our code runs), so a typo leaves no folder that looks like a run."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path


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
    from omegaconf import OmegaConf

    from ..config import from_dict
    from ..errors import UserError

    run_dir = HydraConfig.get().runtime.output_dir if HydraConfig.initialized() else None
    interrupted = _watch_sigint()
    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
        if HydraConfig.initialized():
            plain["experiment"] = HydraConfig.get().runtime.choices.get("experiment")
        run = from_dict(plain, run_dir=run_dir or ".")
        return STAGES[run.stage](run)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        remove_if_bare(run_dir, _outputs(cfg))
        sys.exit(2)
    except (KeyboardInterrupt, SystemExit) as e:
        # Lightning catches Ctrl-C during fit and exits 1 itself; the flag tells that exit from others.
        if isinstance(e, SystemExit) and not interrupted:
            raise
        print("interrupted: nothing of this run is marked finished; rerun the same command to redo it",
              file=sys.stderr)
        remove_if_bare(run_dir, _outputs(cfg))
        sys.exit(130)


def _watch_sigint() -> list:
    """A list that becomes non-empty once SIGINT arrives (which still raises KeyboardInterrupt as usual)."""
    import signal
    import threading

    seen: list = []
    if threading.current_thread() is threading.main_thread():
        def handler(signum, frame):
            seen.append(signum)
            raise KeyboardInterrupt

        signal.signal(signal.SIGINT, handler)
    return seen


def remove_if_bare(run_dir: str | None, outputs: str | None) -> None:
    """Remove `run_dir` when it holds nothing but Hydra's `.hydra/` (and empty folders), then its parents up to
    `outputs` while they are empty. A folder with anything else in it (a finished row) is left alone."""
    if not run_dir:
        return
    d = Path(run_dir)
    if not d.is_dir() or any(p.name != ".hydra" and not (p.is_dir() and not any(p.rglob("*")))
                             for p in d.iterdir()):
        return
    shutil.rmtree(d, ignore_errors=True)
    stop = Path(outputs).resolve() if outputs else None
    for parent in d.resolve().parents:
        if parent == stop or stop is None or stop not in parent.parents:
            break
        try:
            parent.rmdir()   # only succeeds when empty
        except OSError:
            break


def _outputs(cfg) -> str | None:
    try:
        return str(cfg.paths.outputs)
    except Exception:   # an unresolvable interpolation: remove only the run folder itself
        return None
