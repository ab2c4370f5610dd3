"""Where pydarknet keeps what it fetches once per user: upstream's verified tree (for
builds) and the zoo's weights. ``PYDARKNET_CACHE_DIR`` moves it; else
``$XDG_CACHE_HOME/pydarknet`` or ``~/.cache/pydarknet``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    override = os.environ.get("PYDARKNET_CACHE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pydarknet"
