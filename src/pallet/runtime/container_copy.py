"""``pallet cp``: copy between the host and what a container sees, running or stopped.

Paths go through ``ContainerFS``, so a volume or a bind mount is read and written where
its data lives, not in the layer beneath its mount point, also below the destination
(a tree copied over a mount point fills the mount). Into the container, a tar stream (the
host files, or stdin's) is unpacked by :mod:`pallet.runtime.copy_in`, which opens every
parent without following symlinks and replaces an entry instead of writing through it: a
container that plants a symlink, even while the copy runs, cannot make pallet write
outside it. ``.wh.*`` names are plain files, as with docker. Out of the container,
entries are read the same way (:mod:`pallet.runtime.container_paths`: ``O_NOFOLLOW`` from
the rootfs or a mount's source), symlinks copied as symlinks: a directory swapped for a
symlink while the copy reads it stops the copy, and no host file is ever read. Under a
user namespace, owners are shown and written as the container sees them.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import stat
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from pallet.errors import InvalidArgument, NotFound, PalletError
from pallet.runtime.container import Containers
from pallet.runtime.container_fs import ContainerFS
from pallet.runtime.container_paths import Entry, open_entry, read_link, walk
from pallet.runtime.records import ContainerRecord

IdMap = Callable[[int, int], tuple[int, int]]


def container_fs(containers: Containers, record: ContainerRecord) -> ContainerFS:
    cdir = containers.dir(record.id)
    rootfs = cdir / "rootfs"
    if not os.path.ismount(rootfs):
        raise InvalidArgument(f"container {record.name} has no mounted filesystem")
    return ContainerFS.from_bundle(record.name, rootfs, cdir / "bundle" / "config.json")


def _wants_contents(path: str) -> bool:
    """``SRC/.``: the directory's content, not the directory (docker cp's rule)."""
    return path == "." or path.endswith("/.")


# -- into the container -----------------------------------------------------------------


@contextlib.contextmanager
def _tar_of(source: Path, arcname: str) -> Iterator[BinaryIO]:
    """A tar stream of a host path, written by a thread into a pipe (nothing buffered)."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with (
                os.fdopen(write_fd, "wb") as out,
                tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
            ):
                tar.add(str(source), arcname=arcname)
        except BaseException as exc:  # handed to the reader's thread
            failure.append(exc)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        with os.fdopen(read_fd, "rb") as stream:
            yield stream
    except PalletError:
        thread.join()
        if failure and not isinstance(failure[0], BrokenPipeError):
            raise _read_error(source, failure[0]) from failure[0]
        raise
    thread.join()
    if failure:
        raise _read_error(source, failure[0]) from failure[0]


def _read_error(source: Path, exc: BaseException) -> PalletError:
    if isinstance(exc, OSError):
        return InvalidArgument(f"cannot read {exc.filename or source}: {exc.strerror or exc}")
    return InvalidArgument(f"cannot read {source}: {exc}")


def _id_maps(record: ContainerRecord) -> tuple[IdMap, IdMap]:
    """(container IDs -> host IDs, host IDs -> container IDs) for the container."""
    if not record.host_config.get("IDMappings"):
        return _same, _same
    from pallet.runtime.idmap import user_namespace_of

    ns = user_namespace_of(record.host_config)
    if ns is None:
        return _same, _same
    return (lambda u, g: (ns.host_uid(u), ns.host_gid(g))), ns.container_ids


def _same(uid: int, gid: int) -> tuple[int, int]:
    return uid, gid


def _extract(
    fs: ContainerFS,
    record: ContainerRecord,
    stream: BinaryIO,
    into: str,
    keep_owner: bool,
    what: str,
) -> None:
    from pallet.runtime.copy_in import unpack_into

    unpack_into(fs, into, stream, _id_maps(record)[0], keep_owner=keep_owner, what=what)


def copy_in(
    containers: Containers,
    record: ContainerRecord,
    src: str | BinaryIO,
    dest: str,
    *,
    keep_owner: bool = False,
) -> None:
    """``cp SRC CTR:DEST`` (SRC a host path, or a tar stream extracted into DEST)."""
    fs = container_fs(containers, record)
    what = f"copy into {record.name}:{dest}"
    if not isinstance(src, str):
        resolved, target_dir = fs.existing(dest)
        if not target_dir.is_dir():
            raise InvalidArgument(f"destination {dest} must be a directory for a tar stream")
        _extract(fs, record, src, resolved, keep_owner, what)
        return
    source = Path(src)
    if not os.path.lexists(source):
        raise NotFound(f"lstat {src}: no such file or directory")
    is_dir = source.is_dir() and not source.is_symlink()
    resolved, host = fs.resolve(dest)
    if fs.is_mount_point(resolved) and host.is_file():
        # a file bind-mounted in (-v /host/file:/ctr/file, /etc/hosts): written in place,
        # since a new file there would not be the one the container has mounted
        if is_dir:
            raise InvalidArgument(f"cannot copy directory {src} over file {dest}")
        _overwrite(source, host)
        return
    if host.is_dir() and not host.is_symlink():
        into, name = resolved, ("." if _wants_contents(src) and is_dir else source.name)
    else:
        if is_dir and os.path.lexists(host):
            raise InvalidArgument(f"cannot copy directory {src} over file {dest}")
        if dest.endswith("/"):
            raise NotFound(f"Could not find the directory {dest} in container {record.name}")
        into, name = posixpath.split(resolved)
        if not fs.host_path(into).is_dir():
            raise NotFound(
                f"Could not find the file {posixpath.dirname(dest)} in container {record.name}"
            )
    with _tar_of(source, name) as stream:
        _extract(fs, record, stream, into, keep_owner, what)


def _overwrite(source: Path, target: Path) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
    with open(source, "rb") as src, os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(src, out)


# -- out of the container ---------------------------------------------------------------


def _clear(target: Path) -> None:
    """Make room for a new entry at ``target``: never write through what is there."""
    if target.is_dir() and not target.is_symlink():
        raise InvalidArgument(f"cannot overwrite directory {target} with a non-directory")
    if os.path.lexists(target):
        target.unlink()


def _write_entry(fs: ContainerFS, cpath: str, target: Path, st: os.stat_result) -> None:
    """One entry read from the container (never through a symlink) written at ``target``."""
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        if target.is_symlink() or (os.path.lexists(target) and not target.is_dir()):
            target.unlink()
        target.mkdir(exist_ok=True)
    elif stat.S_ISLNK(mode):
        _clear(target)
        os.symlink(read_link(fs, cpath), target)
    elif stat.S_ISREG(mode):
        _clear(target)
        with (
            os.fdopen(open_entry(fs, cpath), "rb") as src,
            open(target, "xb") as out,
        ):
            shutil.copyfileobj(src, out)
    elif stat.S_ISFIFO(mode):
        _clear(target)
        os.mkfifo(target)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        _clear(target)
        os.mknod(target, mode, st.st_rdev)


def _apply_metadata(
    target: Path, st: os.stat_result, keep_owner: bool, to_ctr: IdMap = _same
) -> None:
    if keep_owner:
        os.lchown(target, *to_ctr(st.st_uid, st.st_gid))
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(target, stat.S_IMODE(st.st_mode))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _write_host(
    fs: ContainerFS, entries: Iterator[Entry], into: Path, keep_owner: bool, to_ctr: IdMap
) -> None:
    dirs: list[tuple[Path, os.stat_result]] = []
    for entry in entries:
        st, target = entry.st, into / entry.arcname
        if stat.S_ISSOCK(st.st_mode):
            continue
        try:
            _write_entry(fs, entry.cpath, target, st)
        except FileNotFoundError:
            continue  # removed by the running container meanwhile
        if stat.S_ISDIR(st.st_mode):
            dirs.append((target, st))  # modes and times once their content is in
        else:
            _apply_metadata(target, st, keep_owner, to_ctr)
    for target, st in reversed(dirs):
        _apply_metadata(target, st, keep_owner, to_ctr)


def copy_out(
    containers: Containers,
    record: ContainerRecord,
    src: str,
    dest: str | BinaryIO,
    *,
    follow_link: bool = False,
    keep_owner: bool = False,
) -> None:
    """``cp CTR:SRC DEST`` (DEST a host path, or a stream that gets a tar)."""
    try:
        _copy_out(containers, record, src, dest, follow_link, keep_owner)
    except OSError as exc:  # e.g. a file the running container truncated meanwhile
        where = f" ({exc.filename})" if exc.filename else ""
        raise InvalidArgument(
            f"copy from {record.name}:{src}: {exc.strerror or exc}{where}"
        ) from exc


def _copy_out(
    containers: Containers,
    record: ContainerRecord,
    src: str,
    dest: str | BinaryIO,
    follow_link: bool,
    keep_owner: bool,
) -> None:
    fs = container_fs(containers, record)
    contents = _wants_contents(src)
    resolved, host = fs.existing(src, follow_last=follow_link or contents)
    name = posixpath.basename(posixpath.normpath("/" + src)) or "."
    to_ctr = _id_maps(record)[1]
    if not isinstance(dest, str):
        with tarfile.open(fileobj=dest, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for entry in walk(fs, resolved, "." if contents else name):
                with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                    _add_to_tar(tar, fs, entry, to_ctr)
        return
    is_dir = host.is_dir() and not host.is_symlink()
    target = Path(dest)
    if target.is_dir():
        into, top = target, ("." if contents and is_dir else name)
    else:
        if is_dir and os.path.lexists(target):
            raise InvalidArgument(f"cannot copy directory {src} over file {dest}")
        if dest.endswith("/"):
            raise NotFound(f"destination directory {dest} does not exist")
        into, top = target.parent, target.name
        if not into.is_dir():
            raise NotFound(f"destination directory {into} does not exist")
    _write_host(fs, walk(fs, resolved, top), into, keep_owner, to_ctr)


_TAR_TYPES = {stat.S_IFDIR: tarfile.DIRTYPE, stat.S_IFLNK: tarfile.SYMTYPE,
              stat.S_IFREG: tarfile.REGTYPE, stat.S_IFIFO: tarfile.FIFOTYPE,
              stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE}  # fmt: skip


def _add_to_tar(tar: tarfile.TarFile, fs: ContainerFS, entry: Entry, to_ctr: IdMap) -> None:
    """One entry, read from the container without following symlinks, owners as the
    container sees them."""
    st = entry.st
    kind = _TAR_TYPES.get(stat.S_IFMT(st.st_mode))
    if kind is None:
        return  # sockets: docker leaves them out too
    info = tarfile.TarInfo(entry.arcname)
    info.type, info.mode, info.mtime = kind, stat.S_IMODE(st.st_mode), int(st.st_mtime)
    info.uid, info.gid = to_ctr(st.st_uid, st.st_gid)
    if kind == tarfile.SYMTYPE:
        info.linkname = read_link(fs, entry.cpath)
    elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    if kind != tarfile.REGTYPE:
        tar.addfile(info)
        return
    with os.fdopen(open_entry(fs, entry.cpath), "rb") as src:
        info.size = os.fstat(src.fileno()).st_size
        tar.addfile(info, src)
