from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pallet_cli import Pallet


@pytest.fixture(scope="module")
def busybox_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with busybox:latest, made once per module and copied per test."""
    if os.geteuid() != 0:
        pytest.skip("LOUD SKIP: containers need root (overlay mounts, runc); CI runs as root")
    root = tmp_path_factory.mktemp("bbstore") / "root"
    Pallet(root)("bootstrap", "busybox")
    return root


@pytest.fixture
def pallet(busybox_root: Path, tmp_path: Path) -> Pallet:
    root = tmp_path / "root"
    shutil.copytree(busybox_root, root, symlinks=True)
    p = Pallet(root)
    yield p  # type: ignore[misc]
    # leave no container, mount or runtime state behind
    for cid in p("ps", "-aq", "--no-trunc", check=False).stdout.split():
        p("rm", "-f", cid, check=False)
