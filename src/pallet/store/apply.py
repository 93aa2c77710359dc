"""The copy fallback for filesystems without overlay: flatten snapshots into one tree.

Each snapshot is in overlay form, so applying it over the layers below means: a 0:0
character device deletes the path, a directory marked opaque hides what the lower layers
had in it, anything else replaces what was there. Hard links inside a layer stay links.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pallet.errors import StoreError
from pallet.store.fsutil import remove_tree

OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
_OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        remove_tree(Path(path))
    elif os.path.lexists(path):
        os.unlink(path)


def _copy_metadata(src: str, dst: str, st: os.stat_result) -> None:
    try:
        os.lchown(dst, st.st_uid, st.st_gid)
    except PermissionError:
        pass  # unprivileged: files end up owned by the caller, as in rootless mode
    for name in os.listxattr(src, follow_symlinks=False):
        if name.startswith(_OVERLAY_XATTR_PREFIXES):
            continue
        try:
            value = os.getxattr(src, name, follow_symlinks=False)
            os.setxattr(dst, name, value, follow_symlinks=False)
        except OSError:
            continue
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_leaf(src: str, dst: str, st: os.stat_result) -> None:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        import shutil  # here: applying layers is rare, its imports cost every command

        shutil.copyfile(src, dst, follow_symlinks=False)
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISFIFO(mode):
        os.mkfifo(dst, stat.S_IMODE(mode))
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        os.mknod(dst, mode, st.st_rdev)
    else:
        return  # sockets and the like are not image content
    _copy_metadata(src, dst, st)


def apply_snapshot(layer: Path, dest: Path) -> None:
    """Apply one overlay-form tree onto ``dest`` (which holds the layers below it)."""
    links: dict[tuple[int, int], str] = {}
    # Directory modes are set after their content, since a read-only one blocks writes.
    dirs_done: list[tuple[str, str, os.stat_result]] = []
    stack = [""]
    while stack:
        rel = stack.pop()
        src_dir = os.path.join(layer, rel)
        dst_dir = os.path.join(dest, rel)
        for name in sorted(os.listdir(src_dir)):
            src = os.path.join(src_dir, name)
            dst = os.path.join(dst_dir, name)
            st = os.lstat(src)
            if is_whiteout(st):
                _remove(dst)
                continue
            if stat.S_ISDIR(st.st_mode):
                if os.path.lexists(dst) and (not os.path.isdir(dst) or os.path.islink(dst)):
                    os.unlink(dst)
                if is_opaque(src):
                    _remove(dst)
                if not os.path.isdir(dst):
                    os.mkdir(dst, 0o700)
                else:
                    os.chmod(dst, 0o700)
                dirs_done.append((src, dst, st))
                stack.append(os.path.join(rel, name))
                continue
            _remove(dst)
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                os.link(links[key], dst)
                continue
            _copy_leaf(src, dst, st)
            if st.st_nlink > 1:
                links[key] = dst
    for src, dst, st in reversed(dirs_done):
        _copy_metadata(src, dst, st)


def materialize(layers: list[Path], dest: Path) -> None:
    """Flatten ``layers`` (bottom first) into ``dest``, which must be empty or absent."""
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise StoreError(f"{dest}: not empty; cannot materialize an image into it")
    for layer in layers:
        apply_snapshot(layer, dest)
    root_st = os.lstat(layers[-1]) if layers else None
    if root_st is not None:
        _copy_metadata(str(layers[-1]), str(dest), root_st)
