"""Interop with GNU tar: its archives extract to the same tree, and it reads ours."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pallet.layer.extract import extract_layer
from pallet.layer.writer import write_tar

TAR = shutil.which("tar")
pytestmark = pytest.mark.skipif(TAR is None, reason="GNU tar is not installed")


def sample_tree(root: Path) -> None:
    deep = root / ("long-directory-name-" * 6) / ("another-long-part-" * 5)
    deep.mkdir(parents=True)
    (deep / ("file-with-a-long-name-" * 8)).write_text("deep")
    (root / "exe").write_text("#!/bin/sh\n")
    os.chmod(root / "exe", 0o755)
    os.link(root / "exe", root / "exe-link")
    os.symlink("../" + "t" * 150, root / "far-link")
    (root / "empty").write_bytes(b"")
    os.setxattr(root / "exe", "user.origin", b"gnu")
    for dirpath, dirs, files in os.walk(root, topdown=False):
        for name in dirs + files:
            os.utime(
                os.path.join(dirpath, name), (1_600_000_000, 1_600_000_000), follow_symlinks=False
            )


@pytest.mark.parametrize("fmt", ["gnu", "posix"])
def test_gnu_tar_archives_extract_to_the_same_tree(
    tmp_path: Path, fmt: str, snapshot_tree: Callable[[Path], dict[str, Any]]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    sample_tree(src)
    assert TAR is not None
    archive = subprocess.run(
        [
            TAR,
            f"--format={fmt}",
            "--xattrs",
            "--xattrs-include=user.*",
            "-C",
            str(src),
            "-cf",
            "-",
            ".",
        ],
        capture_output=True,
        check=True,
    ).stdout
    dest = tmp_path / "dest"
    extract_layer(io.BytesIO(archive), dest, whiteouts="apply")
    want = snapshot_tree(src)
    got = snapshot_tree(dest)
    if fmt == "gnu":  # the GNU format has no xattrs: compare everything else
        want = {k: v[:-1] for k, v in want.items()}
        got = {k: v[:-1] for k, v in got.items()}
    assert got == want


def test_gnu_tar_reads_what_pallet_writes(
    tmp_path: Path, snapshot_tree: Callable[[Path], dict[str, Any]]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    sample_tree(src)
    buf = io.BytesIO()
    write_tar(src, buf)
    dest = tmp_path / "dest"
    dest.mkdir()
    assert TAR is not None
    subprocess.run(
        [TAR, "--xattrs", "--xattrs-include=user.*", "--same-owner", "-C", str(dest), "-xpf", "-"],
        input=buf.getvalue(),
        check=True,
    )
    assert snapshot_tree(dest) == snapshot_tree(src)
