"""The real entry point starts, prints help and reports unknown commands as click does."""

from __future__ import annotations

import subprocess
import sys


def test_python_m_pallet_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pallet", "--version"], capture_output=True, text=True, check=True
    )
    assert "0.1.0" in out.stdout


def test_unknown_command_fails() -> None:
    out = subprocess.run([sys.executable, "-m", "pallet", "nope"], capture_output=True, text=True)
    assert out.returncode != 0
    assert "nope" in out.stderr
