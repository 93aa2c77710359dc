"""Shared by CLI tests: run the real ``pallet`` entry point against a scratch store."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Each CLI call is a new interpreter: let it keep compiled bytecode (in a scratch cache,
# even where PYTHONDONTWRITEBYTECODE is set) instead of recompiling pallet every time.
CLI_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
CLI_ENV["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "pallet-test-pycache")


class Pallet:
    """``pallet --root ROOT ...`` as a subprocess; ``check`` raises with stderr on failure."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(
        self, *args: str, input: str | bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "pallet", "--root", str(self.root), *args],
            capture_output=True,
            input=input.encode() if isinstance(input, str) else input,
            env=CLI_ENV,
        )
        result = subprocess.CompletedProcess(
            proc.args,
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"pallet {' '.join(args)} failed ({proc.returncode}): {result.stderr}"
            )
        return result


def store_state(root: Path) -> tuple[bytes, list[str]]:
    """index.json bytes and the blob list: what must not change after a failed command."""
    blobs_dir = root / "blobs" / "sha256"
    blobs = sorted(p.name for p in blobs_dir.iterdir()) if blobs_dir.is_dir() else []
    return (root / "index.json").read_bytes(), blobs
