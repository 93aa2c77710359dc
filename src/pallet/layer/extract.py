"""Safe extraction of an untrusted layer tar into a directory.

Policy (hostile input is refused with UnsafeLayer naming the member; nothing is written
outside ``dest``):

* Names are relative. Absolute names and ``..`` components are refused rather than
  rewritten: Docker and containerd strip or clean them, but a layer pallet or any
  Docker-compatible builder wrote never contains one, so such a tar is treated as an
  attack. ``./`` prefixes are accepted; the root entry itself is skipped.
* Parent directories are opened one component at a time relative to ``dest`` with
  ``O_NOFOLLOW`` (openat-style), so a symlink is never followed, whether it points inside
  or outside: a member below a symlink is refused. Missing parents are created 0755.
* An existing entry is replaced, never written through: it is unlinked (a directory is
  removed recursively, fd-based) before the new one is created with ``O_EXCL``. Existing
  directories are kept and get the member's metadata.
* Hardlink targets are resolved the same way and must already exist inside ``dest``.
* Device nodes need ``same_owner`` (root); sparse files, unknown types, absurd sizes,
  NUL in names, over-long names and overlayfs' own xattrs (``trusted.overlay.*``,
  ``user.overlay.*``) are refused.

Whiteouts: ``"overlay"`` turns ``.wh.NAME`` into a 0:0 character device and
``.wh..wh..opq`` into ``trusted.overlay.opaque=y`` (both need root: without it the
extraction fails naming the member; use ``"apply"``), producing a snapshot usable as an
overlay lowerdir; ``dest`` should be empty. ``"apply"`` deletes from ``dest``, which holds
the lower layers; whiteouts only hide what lower layers put there (OCI image spec).

Metadata: owner (lchown) before mode (so setuid bits survive), xattrs, then mtime;
directory modes and mtimes are applied after all their children are written.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from pallet.errors import InvalidArgument, LayerError, UnsafeLayer
from pallet.layer import tarformat as tf
from pallet.layer.reader import Member, TarReader
from pallet.oci.digest import Digest

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
_RESERVED_XATTRS = ("trusted.overlay.", "user.overlay.")
NAME_MAX = 255
PATH_MAX = 4095

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_Parts = tuple[str, ...]


@dataclass(frozen=True)
class ExtractResult:
    diff_id: Digest  # sha256 of the uncompressed tar stream as read
    size: int  # its length in bytes


def member_parts(name: str, what: str) -> _Parts:
    """The validated components of a member (or hardlink target) name."""
    if "\x00" in name:
        raise UnsafeLayer(f"{what}: name contains a NUL byte")
    if name.startswith("/"):
        raise UnsafeLayer(f"{what}: absolute path")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafeLayer(f"{what}: path contains '..'")
    if len(os.fsencode(name)) > PATH_MAX:
        raise UnsafeLayer(f"{what}: path longer than {PATH_MAX} bytes")
    for part in parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise UnsafeLayer(f"{what}: path component longer than {NAME_MAX} bytes")
    return parts


def _describe(member: Member) -> str:
    return f"layer member {member.name!r}"


class _Extractor:
    def __init__(self, root_fd: int, whiteouts: str, same_owner: bool) -> None:
        self._root = root_fd
        self._overlay = whiteouts == "overlay"
        self._same_owner = same_owner
        self._cache: tuple[_Parts, int] | None = None  # last parent dir opened
        self._stale = False  # a directory was removed: the cached fd may be inside it
        self._dirs: list[tuple[_Parts, int, int]] = []  # (parts, mode, mtime) set last
        # "apply" mode: what this layer put in place, which its whiteouts must not hide
        self._unpacked: set[_Parts] = set()

    # -- directory walking -------------------------------------------------------------

    def _open_dir(self, parts: _Parts, what: str, *, create: bool) -> int:
        """A new fd for the directory ``parts`` below the root, following no symlink."""
        fd = os.dup(self._root)
        try:
            for i, comp in enumerate(parts):
                try:
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(comp, 0o755, dir_fd=fd)
                    os.chmod(comp, 0o755, dir_fd=fd)  # the umask must not decide
                    if not self._overlay:
                        self._unpacked.add(parts[: i + 1])
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    sub = "/".join(parts[: i + 1])
                    st = os.stat(comp, dir_fd=fd, follow_symlinks=False)
                    if stat.S_ISLNK(st.st_mode):
                        raise UnsafeLayer(
                            f"{what}: parent {sub!r} is a symlink; refusing to write through it"
                        ) from None
                    raise LayerError(f"{what}: parent {sub!r} is not a directory") from None
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _parent(self, parts: _Parts, what: str) -> int:
        """The (cached) fd of the directory holding ``parts``; owned by the cache."""
        dirparts = parts[:-1]
        if self._stale:
            self._stale = False
            self.close()
        if self._cache is not None and self._cache[0] == dirparts:
            return self._cache[1]
        fd = self._open_dir(dirparts, what, create=True)
        self.close()
        self._cache = (dirparts, fd)
        return fd

    def close(self) -> None:
        """Release the cached directory fd."""
        if self._cache is not None:
            os.close(self._cache[1])
            self._cache = None

    def _clear(self, parent: int, name: str, *, keep_dir: bool) -> bool:
        """Remove what is at ``name`` (True if a directory was kept instead)."""
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            shutil.rmtree(name, dir_fd=parent)
            # the cached parent may have been inside; it is still open (and may be the
            # caller's ``parent``), so it is dropped before the next lookup, not now
            self._stale = True
        else:
            os.unlink(name, dir_fd=parent)
        return False

    # -- metadata ----------------------------------------------------------------------

    def _chown(self, member: Member, *, fd: int | None, parent: int, name: str) -> None:
        if not self._same_owner:
            return
        if fd is not None:
            os.fchown(fd, member.uid, member.gid)
        else:
            os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)

    def _xattrs(self, member: Member, target: int | str) -> None:
        for key, value in member.xattrs:
            try:
                if isinstance(target, int):
                    os.setxattr(target, key, value)
                else:
                    os.setxattr(target, key, value, follow_symlinks=False)
            except OSError as e:
                if self._same_owner or key.startswith("user."):
                    raise LayerError(
                        f"{_describe(member)}: cannot set xattr {key!r}: {e.strerror}"
                    ) from None
                # trusted.* / security.* need privileges this extraction does not have

    def _times(self, member: Member, *, fd: int | None, parent: int, name: str) -> None:
        ns = member.mtime * 1_000_000_000
        if fd is not None:
            os.utime(fd, ns=(ns, ns))
        else:
            os.utime(name, ns=(ns, ns), dir_fd=parent, follow_symlinks=False)

    # -- members -----------------------------------------------------------------------

    def member(self, member: Member, reader: TarReader) -> None:
        what = _describe(member)
        parts = member_parts(member.name, what)
        if not parts:
            return  # the root entry: dest's own metadata is the caller's
        for key, _ in member.xattrs:
            if key.startswith(_RESERVED_XATTRS):
                raise UnsafeLayer(f"{what}: xattr {key!r} is reserved for overlayfs")
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(member, parts, what)
            return
        parent = self._parent(parts, what)
        kind = member.type
        if kind == tf.REG:
            self._regular(member, reader, parent, base)
        elif kind == tf.DIR:
            self._directory(member, parts, parent, base)
        elif kind == tf.SYM:
            self._clear(parent, base, keep_dir=False)
            os.symlink(member.linkname, base, dir_fd=parent)
            self._chown(member, fd=None, parent=parent, name=base)
            self._xattrs(member, f"/proc/self/fd/{parent}/{base}")
            self._times(member, fd=None, parent=parent, name=base)
        elif kind == tf.LNK:
            self._hardlink(member, parts, parent, base, what)
        elif kind in (tf.CHR, tf.BLK, tf.FIFO):
            self._special(member, parent, base, what)
        if not self._overlay:
            self._unpacked.add(parts)

    def _regular(self, member: Member, reader: TarReader, parent: int, base: str) -> None:
        self._clear(parent, base, keep_dir=False)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(base, flags, 0o600, dir_fd=parent)
        try:
            for chunk in reader.data():
                while chunk:
                    written = os.write(fd, chunk)
                    chunk = chunk[written:]
            self._chown(member, fd=fd, parent=parent, name=base)
            os.fchmod(fd, member.mode)
            self._xattrs(member, fd)
            self._times(member, fd=fd, parent=parent, name=base)
        finally:
            os.close(fd)

    def _directory(self, member: Member, parts: _Parts, parent: int, base: str) -> None:
        if not self._clear(parent, base, keep_dir=True):
            os.mkdir(base, 0o700, dir_fd=parent)
        fd = os.open(base, _DIR_FLAGS, dir_fd=parent)
        try:
            self._chown(member, fd=fd, parent=parent, name=base)
            self._xattrs(member, fd)
        finally:
            os.close(fd)
        # mode and mtime last: children change the mtime, and 0555 would block them
        self._dirs.append((parts, member.mode, member.mtime))

    def _hardlink(self, member: Member, parts: _Parts, parent: int, base: str, what: str) -> None:
        target = member_parts(member.linkname, f"{what}: hardlink target {member.linkname!r}")
        if not target:
            raise UnsafeLayer(f"{what}: hardlink to the layer root")
        if target == parts:
            return  # a link to itself: nothing to do
        try:
            tparent = self._open_dir(target[:-1], what, create=False)
        except FileNotFoundError:
            raise LayerError(
                f"{what}: hardlink target {member.linkname!r} does not exist"
            ) from None
        try:
            try:
                st = os.stat(target[-1], dir_fd=tparent, follow_symlinks=False)
            except FileNotFoundError:
                raise LayerError(
                    f"{what}: hardlink target {member.linkname!r} does not exist"
                ) from None
            if stat.S_ISDIR(st.st_mode):
                raise UnsafeLayer(f"{what}: hardlink to directory {member.linkname!r}")
            self._clear(parent, base, keep_dir=False)
            os.link(target[-1], base, src_dir_fd=tparent, dst_dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(tparent)

    def _special(self, member: Member, parent: int, base: str, what: str) -> None:
        if member.type == tf.FIFO:
            self._clear(parent, base, keep_dir=False)
            os.mkfifo(base, 0o600, dir_fd=parent)
        else:
            if not self._same_owner:
                raise UnsafeLayer(f"{what}: device nodes are only created when running as root")
            self._clear(parent, base, keep_dir=False)
            kind = stat.S_IFCHR if member.type == tf.CHR else stat.S_IFBLK
            dev = os.makedev(member.devmajor, member.devminor)
            os.mknod(base, kind | 0o600, dev, dir_fd=parent)
        self._chown(member, fd=None, parent=parent, name=base)
        # just created by us and not a symlink, so following is harmless here
        os.chmod(base, member.mode, dir_fd=parent)
        self._xattrs(member, f"/proc/self/fd/{parent}/{base}")
        self._times(member, fd=None, parent=parent, name=base)

    # -- whiteouts ---------------------------------------------------------------------

    def _whiteout(self, member: Member, parts: _Parts, what: str) -> None:
        base = parts[-1]
        dirparts = parts[:-1]
        if base == OPAQUE_MARKER:
            self._opaque(dirparts, what)
            return
        if base.startswith(WHITEOUT_PREFIX * 2):
            return  # AUFS bookkeeping (.wh..wh.plnk etc.): not content
        name = base[len(WHITEOUT_PREFIX) :]
        if name in ("", ".", ".."):
            raise UnsafeLayer(f"{what}: invalid whiteout")
        if self._overlay:
            self._overlay_whiteout(member, dirparts, name, what)
            return
        hidden = (*dirparts, name)
        if hidden in self._unpacked:
            return  # a whiteout never hides its own layer's files
        try:
            parent = self._open_dir(dirparts, what, create=False)
        except FileNotFoundError:
            return  # nothing below to hide
        try:
            self._clear(parent, name, keep_dir=False)
        finally:
            os.close(parent)

    def _overlay_whiteout(self, member: Member, dirparts: _Parts, name: str, what: str) -> None:
        parent = self._parent((*dirparts, name), what)
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            if not (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0):
                return  # the layer has the file itself: its own whiteout cannot hide it
            os.unlink(name, dir_fd=parent)
        if not self._same_owner:
            raise UnsafeLayer(
                f"{what}: overlay whiteouts are 0:0 device nodes and need root "
                "(extract with whiteouts='apply' instead)"
            )
        os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent)
        # owner and mtime come back out when the snapshot is written as a tar again
        self._chown(member, fd=None, parent=parent, name=name)
        self._times(member, fd=None, parent=parent, name=name)

    def _opaque(self, dirparts: _Parts, what: str) -> None:
        fd = self._open_dir(dirparts, what, create=True)
        try:
            if self._overlay:
                try:
                    os.setxattr(fd, OVERLAY_OPAQUE_XATTR, b"y")
                except OSError as e:
                    raise LayerError(
                        f"{what}: cannot mark the directory opaque ({e.strerror}); "
                        "overlay snapshots need root (use whiteouts='apply')"
                    ) from None
            else:
                self._remove_lower(fd, dirparts)
        finally:
            os.close(fd)

    def _remove_lower(self, fd: int, parts: _Parts) -> None:
        """Delete what lower layers left under the directory ``fd`` (an opaque marker)."""
        for name in os.listdir(fd):
            child = (*parts, name)
            if child not in self._unpacked:
                self._clear(fd, name, keep_dir=False)
                continue
            try:
                sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                continue  # not a directory: this layer's file stays
            try:
                self._remove_lower(sub, child)
            finally:
                os.close(sub)

    # -- end ---------------------------------------------------------------------------

    def finish(self) -> None:
        self.close()
        for parts, mode, mtime in reversed(self._dirs):
            try:
                fd = self._open_dir(parts, "directory", create=False)
            except (OSError, LayerError):
                continue  # removed or replaced by a later member
            try:
                os.fchmod(fd, mode)
                ns = mtime * 1_000_000_000
                os.utime(fd, ns=(ns, ns))
            finally:
                os.close(fd)


def extract_layer(
    stream: BinaryIO,
    dest: Path,
    *,
    whiteouts: Literal["overlay", "apply"] = "overlay",
    same_owner: bool | None = None,
) -> ExtractResult:
    """Extract the uncompressed layer tar ``stream`` into ``dest`` (see module docs).

    ``same_owner`` (default: running as root) applies the members' uid/gid and allows
    device nodes. Returns the diffID computed over the stream while reading it.
    """
    if whiteouts not in ("overlay", "apply"):
        raise InvalidArgument(f"whiteouts must be 'overlay' or 'apply', not {whiteouts!r}")
    if same_owner is None:
        same_owner = os.geteuid() == 0
    os.makedirs(dest, exist_ok=True)
    root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    reader = TarReader(stream)
    extractor = _Extractor(root_fd, whiteouts, same_owner)
    try:
        for member in reader:
            try:
                extractor.member(member, reader)
            except OSError as e:
                raise LayerError(f"{_describe(member)}: {e.strerror or e} while extracting") from e
            except OverflowError:
                raise LayerError(f"{_describe(member)}: a numeric field is out of range") from None
        reader.finish()
        extractor.finish()
    finally:
        extractor.close()
        os.close(root_fd)
    return ExtractResult(diff_id=reader.diff_id, size=reader.size)
