"""Where the store lives when no ``--root`` is given (a leaf: imports nothing of pallet,
so every command can ask it without loading the store)."""

from __future__ import annotations

import os
from pathlib import Path


def default_root() -> Path:
    """$PALLET_ROOT, else /var/lib/pallet as root, else $XDG_DATA_HOME/pallet."""
    env = os.environ.get("PALLET_ROOT")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/pallet")
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "pallet"


def which(name: str) -> str | None:
    """The executable ``name`` on $PATH, as ``shutil.which`` finds it; without importing
    shutil, whose archive support (bz2, lzma) costs a short command 3 ms to load."""
    if os.sep in name:
        return name if os.access(name, os.X_OK) and not os.path.isdir(name) else None
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(directory or os.curdir, name)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    return None
