"""The rows of other settings beside an analysed matrix that measure the same thing another way: the other ground
truths (`head.C`, `head.C_grid`, the `transfer` group: docs/ground_truths.md) and the other transfer heads. Found by
their settings (identity.py: what a row's config.json records), never by folder names: a settings folder holds
one setting's rows, and a row's config.json says which.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from .. import identity
from ..config import TransferConfig
from .run_dirs import rows_root, settings_root
from .targets import RANDOM

# The settings that choose the ground truth of a row (its `test_error`): the head's C, and the transfer group.
GROUND_TRUTH = ("head.C", "head.C_grid", "transfer")


def _settings_folders(head_root: Path) -> list[Path]:
    """`head_root` and its settings folders, those holding at least one finished-looking row."""
    if not head_root.is_dir():
        return []
    candidates = [head_root] + sorted(p for p in head_root.iterdir() if p.is_dir() and identity.is_segment(p.name))
    return [c for c in candidates if next(c.glob("source=*/seed=*/done.json"), None) is not None]


def row_settings(folder: Path) -> dict | None:
    """The config.json of a trained source's row in `folder` (the untrained `random` row never trains: its trainer
    is not the setting's), completed for rows that predate the transfer group (linear); None when unreadable."""
    for path in sorted(folder.glob("source=*/seed=*/config.json")):
        try:
            made = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(made, dict) and made.get("source") != RANDOM:
            made.setdefault("transfer", {"name": "linear"})
            return made
    return None


def siblings(cfg, vary: tuple[str, ...], all_heads: bool = False) -> list[tuple[Path, dict]]:
    """(settings folder, one row's config) of every setting under `cfg`'s dataset and backbone (`cfg`'s head only,
    unless `all_heads`) whose rows differ from `cfg` in the settings `vary` only (identity.differences); `cfg`'s
    own folder first when it has rows."""
    mine = rows_root(cfg)
    heads = sorted(p for p in settings_root(cfg).parent.iterdir() if p.is_dir()) if all_heads \
        and settings_root(cfg).parent.is_dir() else [settings_root(cfg)]
    out = []
    for head in heads:
        for folder in _settings_folders(head):
            made = row_settings(folder)
            if made is not None and not identity.differences(made, cfg, ignore=identity.IN_PATH + tuple(vary)):
                out.append((folder, made))
    return sorted(out, key=lambda fm: fm[0] != mine)


def ground_truth_name(made) -> str:
    """A ground truth as its overrides spell it: `transfer=finetune`, `head.C=auto`, `head.C=1` (the default)."""
    found = [e for e in identity.entries(made) if identity.covered(e.split("=", 1)[0], GROUND_TRUTH)]
    if found:
        return ",".join(found)
    head = identity.flat(made)
    return f"head.C={identity.show(head.get('head.C'))}"


def with_ground_truth(cfg, made: dict):
    """`cfg` with the ground-truth settings of the row config `made` (its head's C and C grid, its transfer)."""
    head = made.get("head", {})
    transfer = TransferConfig(**made.get("transfer") or {"name": "linear"})
    return replace(cfg, head=replace(cfg.head, C=head.get("C", cfg.head.C), C_grid=head.get("C_grid", cfg.head.C_grid)),
                   transfer=transfer)
