"""Helpers for the layer tests: hand-built tars (stdlib tarfile) and tree snapshots."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TarSpec = list[tuple[tarfile.TarInfo, bytes]]


def build_tar(members: TarSpec, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A tar written by Python's tarfile, independent of the code under test."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            if info.isreg():
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, **fields: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = fields.pop("mode", 0o755 if kind == tarfile.DIRTYPE else 0o644)
    info.mtime = fields.pop("mtime", 1_600_000_000)
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def tree_state(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything a layer records about a tree, keyed by relative path."""
    state: dict[str, tuple[Any, ...]] = {}
    inodes: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()  # a fixed walk order, so "first path of an inode" is stable
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            try:
                xattrs = sorted(
                    (k, os.getxattr(full, k, follow_symlinks=False))
                    for k in os.listxattr(full, follow_symlinks=False)
                )
            except OSError:
                xattrs = []
            extra: Any = None
            if stat.S_ISREG(st.st_mode):
                extra = Path(full).read_bytes()
                key = (st.st_dev, st.st_ino)
                # hardlinked files: record which earlier path they share an inode with
                extra = (extra, inodes.setdefault(key, rel) if st.st_nlink > 1 else None)
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(full)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                extra = st.st_rdev
            state[rel] = (
                stat.S_IFMT(st.st_mode),
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                st.st_mtime_ns // 1_000_000_000,
                extra,
                xattrs,
            )
    return state


@pytest.fixture(scope="session")
def make_tar() -> Callable[..., bytes]:
    return build_tar


@pytest.fixture(scope="session")
def tar_member() -> Callable[..., tarfile.TarInfo]:
    return member


@pytest.fixture(scope="session")
def snapshot_tree() -> Callable[[Path], dict[str, tuple[Any, ...]]]:
    return tree_state
