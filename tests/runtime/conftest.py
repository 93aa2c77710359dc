from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pallet_cli import Pallet


@pytest.fixture(scope="module", autouse=True)
def cached_bytecode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """These tests start pallet ~150 times: let those processes keep compiled bytecode
    (out of the source tree) instead of compiling every module at every start."""
    saved = {k: os.environ.get(k) for k in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.getbasetemp() / "pycache")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


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
