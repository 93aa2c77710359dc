"""Reach a container path on the host without following anything the container controls.

A (resolved, symlink-free) container path lives under a base the container cannot
replace: the rootfs, or the host source of the volume or bind mount that shows it.
Below that base every component is opened with ``O_NOFOLLOW``, so a symlink the
container puts there, even in the middle of a copy, is never followed on the host.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pallet.errors import InvalidArgument
from pallet.runtime.container_fs import ContainerFS

_KERNEL_TREES = ("/proc", "/sys", "/dev")
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def base_of(fs: ContainerFS, cpath: str, verb: str = "copy") -> tuple[Path, list[str]]:
    """(host directory to start from, components below it) for a container path."""
    for top in _KERNEL_TREES:
        if _under(cpath, top):
            raise InvalidArgument(
                f"cannot {verb} {cpath} of container {fs.name}: {top} is a kernel filesystem"
            )
    best = None
    for mount in fs.mounts:
        if _under(cpath, mount.destination) and (
            best is None or len(mount.destination) >= len(best.destination)
        ):
            best = mount
    if best is None:
        return fs.rootfs, [p for p in cpath.split("/") if p]
    if best.source is None:
        raise InvalidArgument(
            f"cannot {verb} {cpath} of container {fs.name}: it is on a {best.kind} "
            f"mount at {best.destination}, which has no copy on the host"
        )
    return best.source, [p for p in cpath[len(best.destination) :].split("/") if p]


def open_parent(
    fs: ContainerFS, cpath: str, create: tuple[int, int] | None = None
) -> tuple[int, str | None]:
    """An fd of ``cpath``'s parent directory and its last component (or, when ``cpath`` is
    a base itself, a mount point or the root, an ``O_PATH`` fd of it and None). Missing parents are made (owned by
    ``create``) when ``create`` is given; a parent that is not a directory is an error."""
    base, parts = base_of(fs, cpath)
    if not parts:  # a mount point: its source, a host path the container cannot swap
        return os.open(base, os.O_PATH | os.O_CLOEXEC), None
    fd = os.open(base, DIR_FLAGS)
    try:
        for i, part in enumerate(parts[:-1]):
            try:
                nfd = os.open(part, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if create is None:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                os.chown(part, *create, dir_fd=fd)
                nfd = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                where = "/" + "/".join(parts[: i + 1])
                raise InvalidArgument(
                    f"cannot copy {cpath} of container {fs.name}: {where} is not a "
                    "directory (a copy never follows a symlink on the host)"
                ) from None
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


@dataclass(frozen=True)
class Entry:
    arcname: str  # name in the copy
    cpath: str  # container path
    st: os.stat_result  # lstat, through the parent's fd


def lstat(fs: ContainerFS, cpath: str) -> os.stat_result:
    fd, leaf = open_parent(fs, cpath)
    try:
        return os.stat(leaf, dir_fd=fd, follow_symlinks=False) if leaf else os.fstat(fd)
    finally:
        os.close(fd)


def open_entry(fs: ContainerFS, cpath: str, flags: int = os.O_RDONLY) -> int:
    """An fd of the entry itself, never through a symlink."""
    base, parts = base_of(fs, cpath)
    if not parts:
        return os.open(base, flags | os.O_CLOEXEC)
    fd, leaf = open_parent(fs, cpath)
    assert leaf is not None
    try:
        return os.open(leaf, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)


def read_link(fs: ContainerFS, cpath: str) -> str:
    fd, leaf = open_parent(fs, cpath)
    try:
        if leaf is None:
            raise InvalidArgument(f"{cpath} of container {fs.name} is a mount point")
        return os.readlink(leaf, dir_fd=fd)
    finally:
        os.close(fd)


def walk(fs: ContainerFS, cpath: str, arcname: str) -> Iterator[Entry]:
    """``cpath`` and everything below it, parents first; mount points below are entered
    at their source. Entries removed meanwhile are left out; a directory swapped for a
    symlink meanwhile is an error, never followed."""
    stack = [(cpath, arcname)]
    while stack:
        path, name = stack.pop()
        try:
            st = lstat(fs, path)
        except FileNotFoundError:
            continue
        yield Entry(name, path, st)
        if not stat.S_ISDIR(st.st_mode):
            continue
        try:
            dir_fd = open_entry(fs, path, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise InvalidArgument(
                    f"cannot copy {path} of container {fs.name}: it changed to a "
                    "non-directory during the copy"
                ) from None
            raise
        try:
            names = set(os.listdir(dir_fd))
        finally:
            os.close(dir_fd)
        for mount in fs.mounts:  # a mount point with nothing beneath it in the layer
            parent, leaf = mount.destination.rsplit("/", 1)
            if (parent or "/") == path and leaf:
                names.add(leaf)
        for child in sorted(names, reverse=True):
            child_path = f"{path.rstrip('/')}/{child}"
            if any(_under(child_path, top) for top in _KERNEL_TREES):
                continue
            if any(m.destination == child_path and m.source is None for m in fs.mounts):
                continue  # tmpfs and kernel mounts are left out of copies
            stack.append((child_path, f"{name}/{child}"))
