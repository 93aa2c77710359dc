"""Fixtures for build tests: one bootstrapped busybox store per session, copied per module."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from build_kit import Files, write_context

from pallet.store import Store


@pytest.fixture(scope="session")
def busybox_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("LOUD SKIP: building needs root for overlay mounts and runc (CI runs as root)")
    from pallet.images.bootstrap import bootstrap_busybox

    root = tmp_path_factory.mktemp("template") / "store"
    bootstrap_busybox(Store.open(root), "busybox:latest")
    return root


@pytest.fixture(scope="module")
def store(busybox_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("store") / "root"
    shutil.copytree(busybox_template, root, symlinks=True)
    return Store.open(root)


@pytest.fixture
def make_context(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1000))

    def make(files: Files, dockerfile: str | None = None) -> Path:
        ctx = write_context(tmp_path / f"ctx{next(counter)}", files)
        if dockerfile is not None:
            (ctx / "Dockerfile").write_text(dockerfile)
        return ctx

    return make
