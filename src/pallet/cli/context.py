"""State shared by every command: where the store is, and whether to show tracebacks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pallet.paths import default_root


@dataclass
class CliContext:
    root: Path | None
    debug: bool

    @property
    def store_root(self) -> Path:
        return self.root if self.root is not None else default_root()
