"""Mounting a stack of snapshots with overlayfs, however tall the stack.

The classic ``mount(2)`` takes all options in one page, so ``lowerdir=a:b:c...`` of long
absolute paths stops at a few dozen layers. The new mount API (Linux 6.8+) adds lower
layers one ``fsconfig("lowerdir+")`` call at a time, with no limit but overlay's own
(500 layers). On older kernels we fall back to ``mount(8)`` run inside a scratch directory
of numbered symlinks, so each layer costs only a few characters of the option page.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path

from pallet.errors import StoreError

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import Any

# The new mount syscalls have the same numbers on every architecture.
_SYS_MOVE_MOUNT = 429
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432

_FSOPEN_CLOEXEC = 0x1
_FSCONFIG_SET_FLAG = 0
_FSCONFIG_SET_STRING = 1
_FSCONFIG_CMD_CREATE = 6
_FSMOUNT_CLOEXEC = 0x1
_MOUNT_ATTR_RDONLY = 0x1
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_AT_FDCWD = -100
_MNT_DETACH = 0x2
_MS_RDONLY = 0x1
_MS_REMOUNT = 0x20
_MS_BIND = 0x1000
_MS_REC = 0x4000

#: overlayfs refuses deeper stacks
MAX_LAYERS = 500

_LIBC: Any = None  # the C library (ctypes.CDLL), once loaded


def _c() -> tuple[Any, Any]:
    """ctypes and the C library, loaded on first use: importing ctypes is 3 ms of every
    command that opens the store, and most mount nothing."""
    global _LIBC
    import ctypes

    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
        _LIBC.syscall.restype = ctypes.c_long
    return ctypes, _LIBC


class _Unsupported(Exception):
    """The kernel lacks the new mount API or ``lowerdir+``."""


def _syscall(number: int, *args: object) -> int:
    ctypes, libc = _c()
    ret = int(libc.syscall(ctypes.c_long(number), *args))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def _fsconfig(fd: int, cmd: int, key: str | None, value: str | None) -> None:
    ctypes, _ = _c()
    _syscall(
        _SYS_FSCONFIG,
        ctypes.c_int(fd),
        ctypes.c_uint(cmd),
        ctypes.c_char_p(key.encode() if key is not None else None),
        ctypes.c_char_p(os.fsencode(value) if value is not None else None),
        ctypes.c_int(0),
    )


def _set_path(fs_fd: int, key: str, path: Path, target: Path) -> None:
    try:
        _fsconfig(fs_fd, _FSCONFIG_SET_STRING, key, str(path))
    except OSError as exc:
        raise StoreError(f"cannot mount overlay on {target}: {key} {path}: {exc.strerror}") from exc


def _mount_new_api(
    lower_top_first: Sequence[Path],
    target: Path,
    upper: Path | None,
    work: Path | None,
    readonly: bool,
    volatile: bool = False,
) -> None:
    ctypes, _ = _c()
    try:
        fs_fd = _syscall(_SYS_FSOPEN, ctypes.c_char_p(b"overlay"), ctypes.c_uint(_FSOPEN_CLOEXEC))
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.ENODEV):
            raise _Unsupported from exc
        raise
    try:
        try:
            _fsconfig(fs_fd, _FSCONFIG_SET_STRING, "lowerdir+", str(lower_top_first[0]))
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise _Unsupported from exc  # a kernel before 6.8: no "lowerdir+"
            raise StoreError(
                f"cannot mount overlay on {target}: {lower_top_first[0]}: {exc.strerror}"
            ) from exc
        for path in lower_top_first[1:]:
            _set_path(fs_fd, "lowerdir+", path, target)
        if upper is not None and work is not None:
            _set_path(fs_fd, "upperdir", upper, target)
            _set_path(fs_fd, "workdir", work, target)
        if volatile:
            _fsconfig(fs_fd, _FSCONFIG_SET_FLAG, "volatile", None)
        _fsconfig(fs_fd, _FSCONFIG_CMD_CREATE, None, None)
        attrs = _MOUNT_ATTR_RDONLY if readonly else 0
        mnt_fd = _syscall(
            _SYS_FSMOUNT, ctypes.c_int(fs_fd), ctypes.c_uint(_FSMOUNT_CLOEXEC), ctypes.c_uint(attrs)
        )
        try:
            _syscall(
                _SYS_MOVE_MOUNT,
                ctypes.c_int(mnt_fd),
                ctypes.c_char_p(b""),
                ctypes.c_int(_AT_FDCWD),
                ctypes.c_char_p(os.fsencode(str(target))),
                ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH),
            )
        finally:
            os.close(mnt_fd)
    finally:
        os.close(fs_fd)


def _mount_short_paths(
    lower_top_first: Sequence[Path],
    target: Path,
    upper: Path | None,
    work: Path | None,
    readonly: bool,
    volatile: bool = False,
) -> None:
    # mount(8) runs in a directory of symlinks "0", "1", ...: the kernel resolves the
    # relative lowerdirs against that cwd, and the links can go once the mount exists.
    import tempfile  # rarely needed: the new mount API is the usual path

    with tempfile.TemporaryDirectory(prefix=".mnt-", dir=target.parent) as tmp:
        for i, path in enumerate(lower_top_first):
            os.symlink(path.resolve(), os.path.join(tmp, str(i)))
        opts = ["lowerdir=" + ":".join(str(i) for i in range(len(lower_top_first)))]
        if upper is not None and work is not None:
            opts += [f"upperdir={upper.resolve()}", f"workdir={work.resolve()}"]
        if readonly:
            opts.append("ro")
        if volatile:
            opts.append("volatile")
        try:
            import subprocess  # the mount(8) fallback only: kept off start-up

            proc = subprocess.run(
                ["mount", "-t", "overlay", "overlay", "-o", ",".join(opts), str(target.resolve())],
                cwd=tmp,
                capture_output=True,
                text=True,
                check=False,
            )
        except FileNotFoundError:
            raise StoreError(
                f"cannot mount overlay on {target}: mount(8) is not installed"
            ) from None
    if proc.returncode != 0:
        raise StoreError(f"cannot mount overlay on {target}: {proc.stderr.strip()}")


def mount_overlay(
    lowerdirs: Sequence[Path],
    target: Path,
    *,
    upperdir: Path | None = None,
    workdir: Path | None = None,
    readonly: bool = False,
    volatile: bool = False,
) -> None:
    """Mount ``lowerdirs`` (bottom layer first, as an image lists them) on ``target``.

    With ``upperdir`` and ``workdir`` the mount is writable; without, it is a read-only
    view (overlay then needs two lower layers, so a lone layer is bind-mounted read-only).
    ``volatile`` skips every sync of the upper dir: unmounting then does not wait for a
    sync of the whole filesystem it lives on. For an upper dir thrown away after use, or
    one whose durability is tracked otherwise (a build step's becomes a snapshot, which
    is verified after a reboot: see pallet.store.snapshots).
    """
    if not lowerdirs:
        raise StoreError(f"cannot mount overlay on {target}: no layers")
    if len(lowerdirs) > MAX_LAYERS:
        raise StoreError(f"cannot mount {len(lowerdirs)} layers: overlayfs allows {MAX_LAYERS}")
    if (upperdir is None) != (workdir is None):
        raise StoreError("an overlay upperdir needs a workdir, and the other way round")
    top_first = [Path(p) for p in reversed(lowerdirs)]
    writable = upperdir is not None
    if len(top_first) == 1 and not writable:
        _bind_readonly(top_first[0], target)
        return
    volatile = volatile and writable
    try:
        _mount_new_api(top_first, target, upperdir, workdir, readonly or not writable, volatile)
        return
    except _Unsupported:
        pass
    except OSError as exc:
        raise StoreError(f"cannot mount overlay on {target}: {exc.strerror}") from exc
    _mount_short_paths(top_first, target, upperdir, workdir, readonly or not writable, volatile)


def _bind_readonly(source: Path, target: Path) -> None:
    ctypes, libc = _c()
    src, dst = os.fsencode(str(source)), os.fsencode(str(target))
    if libc.mount(src, dst, None, ctypes.c_ulong(_MS_BIND | _MS_REC), None) != 0:
        err = ctypes.get_errno()
        raise StoreError(f"cannot bind {source} on {target}: {os.strerror(err)}")
    flags = _MS_BIND | _MS_REMOUNT | _MS_RDONLY
    if libc.mount(None, dst, None, ctypes.c_ulong(flags), None) != 0:
        err = ctypes.get_errno()
        libc.umount2(dst, ctypes.c_int(_MNT_DETACH))
        raise StoreError(f"cannot make {target} read-only: {os.strerror(err)}")


def unmount(target: Path, *, lazy: bool = False) -> None:
    ctypes, libc = _c()
    flags = _MNT_DETACH if lazy else 0
    ret = libc.umount2(os.fsencode(str(target)), ctypes.c_int(flags))
    if ret != 0:
        err = ctypes.get_errno()
        raise StoreError(f"cannot unmount {target}: {os.strerror(err)}")


def overlay_supported() -> bool:
    """Whether this kernel offers overlayfs at all (mounting still needs privilege)."""
    try:
        with open("/proc/filesystems") as f:
            if any(line.split()[-1:] == ["overlay"] for line in f):
                return True
    except OSError:
        return False
    return Path("/sys/module/overlay").exists()
