from __future__ import annotations

from pathlib import Path

import pytest

from pallet_cli import Pallet


@pytest.fixture
def pallet(tmp_path: Path) -> Pallet:
    return Pallet(tmp_path / "root")
