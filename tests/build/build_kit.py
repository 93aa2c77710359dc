"""Helpers for build tests (conftest puts this directory on sys.path)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from pallet.build import BuildOptions, BuildResult, build
from pallet.store import Store

Files = Mapping[str, "str | bytes | tuple[str, str]"]


def write_context(ctx: Path, files: Files) -> Path:
    """Files by relative path: text, bytes, or ("symlink", target)."""
    ctx.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = ctx / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, tuple):
            kind, target = content
            assert kind == "symlink"
            os.symlink(target, path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return ctx


def do_build(store: Store, ctx: Path, **options: object) -> BuildResult:
    return build(store, BuildOptions(context=ctx, **options))  # type: ignore[arg-type]


def rootfs_of(store: Store, result: BuildResult, dest: Path) -> Path:
    """The image's filesystem: its layers extracted in order, whiteouts applied."""
    manifest = store.load_manifest(result.manifest)
    store.snapshots.materialize_layers(list(manifest.layers), list(result.config.diff_ids), dest)
    return dest


def describe(path: Path) -> tuple[str, int, int, int]:
    """(type, mode, uid, gid) of a path, without following a symlink."""
    st = os.lstat(path)
    kind = (
        "dir"
        if stat.S_ISDIR(st.st_mode)
        else "symlink"
        if stat.S_ISLNK(st.st_mode)
        else "file"
        if stat.S_ISREG(st.st_mode)
        else "other"
    )
    return kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def pallet_cli(
    root: Path, *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real entry point: ``python -m pallet --root ROOT ...``."""
    return subprocess.run(
        [sys.executable, "-m", "pallet", "--root", str(root), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
