"""State shared by every command: where the store is, and whether to show tracebacks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_root() -> Path:
    env = os.environ.get("PALLET_ROOT")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/pallet")
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "pallet"


@dataclass
class CliContext:
    root: Path | None
    debug: bool

    @property
    def store_root(self) -> Path:
        return self.root if self.root is not None else default_root()
