"""Unpack a tar stream into a container as its processes see it (``pallet cp`` into one).

Each member is written where the container would find it: under a volume or bind mount
at its host source, elsewhere in the rootfs. Every directory on the way is opened from
that base one component at a time with ``O_NOFOLLOW``, so a symlink the container plants
(or swaps in for a directory while the copy runs) is never followed: a member's own
directory entry replaces what is in its place, and a parent that turned into a symlink
stops the copy with an error. Nothing can land outside the container's view.

Members are plain files whatever their names: ``.wh.*`` is no whiteout here (docker's
``cp`` copies such files as they are). Owners are the container root's unless ``-a``
keeps the archive's; under a user namespace both are mapped to host IDs.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
import tarfile
from collections.abc import Callable
from typing import BinaryIO

from pallet.errors import InvalidArgument
from pallet.runtime.container_fs import ContainerFS
from pallet.runtime.container_paths import base_of, open_parent

IdMap = Callable[[int, int], tuple[int, int]]


def _clean_name(name: str) -> list[str]:
    """A member's path as components; ``..`` or an empty path is refused (hostile tar)."""
    parts = [p for p in name.split("/") if p and p != "."]
    if any(p == ".." for p in parts):
        raise InvalidArgument(f"tar member {name!r}: path leaves the destination")
    return parts


class ContainerWriter:
    """Writes members below the container directory ``dest`` (a resolved container path)."""

    def __init__(self, fs: ContainerFS, dest: str, owner: IdMap, keep_owner: bool) -> None:
        self.fs = fs
        self.dest = dest
        self.owner = owner  # container (uid, gid) -> host (uid, gid)
        self.keep_owner = keep_owner
        self.dirs: list[tuple[str, tarfile.TarInfo]] = []  # metadata once content is in

    def _open_parent(self, cpath: str) -> tuple[int, str | None]:
        return open_parent(self.fs, cpath, create=self.owner(0, 0))

    # -- members ------------------------------------------------------------------------

    def member(self, tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        parts = _clean_name(info.name)
        cpath = posixpath.join(self.dest, *parts) if parts else self.dest
        if info.isdir():
            self._directory(cpath, info)
            return
        if not parts:
            raise InvalidArgument(f"tar member {info.name!r}: not a directory")
        fd, leaf = self._open_parent(cpath)
        try:
            if leaf is None:  # a mount point: only a file bind-mounted there takes a file
                self._into_mounted_file(cpath, tar, info)
                return
            self._make_room(fd, leaf, cpath)
            if info.isreg():
                self._regular(fd, leaf, tar, info)
            elif info.issym():
                os.symlink(info.linkname, leaf, dir_fd=fd)
            elif info.islnk():
                self._hardlink(fd, leaf, info)
            elif info.isfifo():
                os.mkfifo(leaf, stat.S_IMODE(info.mode), dir_fd=fd)
            elif info.ischr() or info.isblk():
                kind = stat.S_IFCHR if info.ischr() else stat.S_IFBLK
                device = os.makedev(info.devmajor, info.devminor)
                os.mknod(leaf, kind | stat.S_IMODE(info.mode), device, dir_fd=fd)
            else:
                return  # sparse/unknown kinds: nothing docker would copy either
            self._metadata(fd, leaf, info)
        finally:
            os.close(fd)

    def _directory(self, cpath: str, info: tarfile.TarInfo) -> None:
        fd, leaf = self._open_parent(cpath)
        try:
            if leaf is not None:
                try:
                    st = os.lstat(leaf, dir_fd=fd)
                except FileNotFoundError:
                    st = None
                if st is not None and not stat.S_ISDIR(st.st_mode):
                    os.unlink(leaf, dir_fd=fd)  # a symlink or file where the directory goes
                    st = None
                if st is None:
                    os.mkdir(leaf, 0o700, dir_fd=fd)
        finally:
            os.close(fd)
        self.dirs.append((cpath, info))

    def _make_room(self, fd: int, leaf: str, cpath: str) -> None:
        try:
            st = os.lstat(leaf, dir_fd=fd)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise InvalidArgument(f"cannot overwrite directory {cpath} with non-directory")
        os.unlink(leaf, dir_fd=fd)  # replaced, never written through

    def _regular(self, fd: int, leaf: str, tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        out_fd = os.open(
            leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
            dir_fd=fd,
        )  # fmt: skip
        src = tar.extractfile(info)
        with os.fdopen(out_fd, "wb") as out:
            if src is not None:
                while chunk := src.read(1 << 20):
                    out.write(chunk)

    def _hardlink(self, fd: int, leaf: str, info: tarfile.TarInfo) -> None:
        target_parts = _clean_name(info.linkname)
        target = posixpath.join(self.dest, *target_parts)
        tfd, tleaf = self._open_parent(target)
        try:
            if tleaf is None:
                raise InvalidArgument(f"tar member {info.name!r}: cannot link to a mount point")
            os.link(tleaf, leaf, src_dir_fd=tfd, dst_dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(tfd)

    def _into_mounted_file(self, cpath: str, tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        """A file bind-mounted into the container (/etc/hosts, -v /host/f:/ctr/f) is
        written in place, since a new file there would not be the one it sees."""
        base, _ = base_of(self.fs, cpath)
        if not info.isreg() or base.is_dir():
            raise InvalidArgument(
                f"cannot copy {info.name} to {cpath} of container {self.fs.name}: "
                "a mount point there"
            )
        src = tar.extractfile(info)
        out_fd = os.open(base, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(out_fd, "wb") as out:
            if src is not None:
                while chunk := src.read(1 << 20):
                    out.write(chunk)

    def _metadata(self, fd: int, leaf: str | None, info: tarfile.TarInfo) -> None:
        uid, gid = self.owner(info.uid, info.gid) if self.keep_owner else self.owner(0, 0)
        if leaf is None:
            return  # a mount point keeps what its source has
        os.chown(leaf, uid, gid, dir_fd=fd, follow_symlinks=False)
        if not info.issym():
            try:  # never through a symlink swapped in meanwhile (Python: ValueError then)
                os.chmod(leaf, stat.S_IMODE(info.mode), dir_fd=fd, follow_symlinks=False)
            except ValueError:
                raise InvalidArgument(
                    f"cannot copy {info.name} into container {self.fs.name}: it was replaced "
                    "by a symlink during the copy"
                ) from None
        with contextlib.suppress(OSError):  # a symlink's time, where the kernel allows it
            os.utime(leaf, (info.mtime, info.mtime), dir_fd=fd, follow_symlinks=False)

    def finish(self) -> None:
        for cpath, info in reversed(self.dirs):
            fd, leaf = self._open_parent(cpath)
            try:
                self._metadata(fd, leaf, info)
            finally:
                os.close(fd)


def unpack_into(
    fs: ContainerFS, dest: str, stream: BinaryIO, owner: IdMap, *, keep_owner: bool, what: str
) -> None:
    """Unpack the tar ``stream`` into the container directory ``dest`` (resolved)."""
    writer = ContainerWriter(fs, dest, owner, keep_owner)
    current = "the archive"
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for info in tar:
                current = f"tar member {info.name!r}"
                writer.member(tar, info)
        writer.finish()
    except tarfile.TarError as exc:
        raise InvalidArgument(f"{what}: {current}: {exc}") from exc
    except OSError as exc:
        raise InvalidArgument(f"{what}: {current}: {exc.strerror or exc}") from exc
