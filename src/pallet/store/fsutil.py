"""Small filesystem primitives the store builds its crash safety on."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable (the directory entry itself)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a mix.

    The temporary file lives in the same directory so the final step is a rename.
    """
    import tempfile  # not at import: commands that never write here skip its imports

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _remove_tree_fast(path: Path) -> None:
    """Bottom-up through directory descriptors (no symlink is followed: os.fwalk lists a
    symlink to a directory among the directories without entering it)."""
    for _top, dirs, files, top_fd in os.fwalk(path, topdown=False):
        for name in files:
            os.unlink(name, dir_fd=top_fd)
        for name in dirs:
            try:
                os.rmdir(name, dir_fd=top_fd)
            except NotADirectoryError:  # a symlink to a directory
                os.unlink(name, dir_fd=top_fd)
    os.rmdir(path)


def remove_tree(path: Path) -> None:
    """Remove a directory tree, even parts a layer made read-only."""
    if path.is_dir() and not path.is_symlink():
        try:
            _remove_tree_fast(path)  # the common case, without importing shutil (3 ms)
            return
        except FileNotFoundError:
            if not path.exists():
                return
        except OSError:
            pass  # read-only parts, a busy mount point...: shutil's way below
    import shutil

    def _retry(func: object, name: str, exc_info: tuple[type, BaseException, object]) -> None:
        del func
        if isinstance(exc_info[1], FileNotFoundError):
            return
        # A read-only directory blocks unlinking its entries: open it up and retry once.
        parent = os.path.dirname(name)
        try:
            os.chmod(parent, 0o700)
            if os.path.isdir(name) and not os.path.islink(name):
                os.chmod(name, 0o700)
                shutil.rmtree(name)
            else:
                os.unlink(name)
        except FileNotFoundError:
            pass

    if path.is_symlink() or not path.exists():
        path.unlink(missing_ok=True)
        return
    shutil.rmtree(path, onerror=_retry)
