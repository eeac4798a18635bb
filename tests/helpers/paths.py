"""Where the repository, its configs and the real annotation files are."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"


def shared_data_dir() -> Path:
    """../shared/data beside the checkout (override: TRANSFERABILITY_SHARED_DATA)."""
    return Path(os.environ.get("TRANSFERABILITY_SHARED_DATA", REPO.parent / "shared" / "data"))
