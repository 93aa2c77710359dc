"""Filesystem operations of COPY/ADD and WORKDIR, inside a root that an image controls.

Every path is resolved with :func:`secure_join`, which follows symlinks as if ``root``
were ``/``: an image's absolute symlink (``/etc -> /host``) can never lead a copy out of
the root filesystem being built.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pallet.errors import BuildError

_MAX_LINKS = 255
StrPath = str | os.PathLike[str]  # COPY's inner loop passes plain strings (no pathlib)


def secure_join(root: Path, path: str, *, follow_last: bool = True) -> Path:
    """``root``/``path`` with symlinks resolved inside ``root`` (as a chroot would)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if (parts or follow_last) and os.path.islink(candidate):
            links += 1
            if links > _MAX_LINKS:
                raise BuildError(f"{path}: too many levels of symbolic links")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int


def _lookup(rootfs: Path, db: str, name: str) -> int | None:
    path = secure_join(rootfs, f"/etc/{db}")
    try:
        if not path.is_file() or path.stat().st_size > 16 << 20:
            return None
        text = path.read_text("utf-8", "replace")
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    return None


def resolve_chown(rootfs: Path, spec: str) -> Owner:
    """``--chown=user[:group]``: names from the image's /etc/passwd and /etc/group; a user
    without a group uses the same number as the group (Docker's documented rule)."""
    user, _, group = spec.partition(":")
    if not user:
        raise BuildError(f"--chown={spec}: the user is empty")

    def number(text: str, db: str, what: str) -> int:
        if text.isdigit():
            value = int(text)
        else:
            found = _lookup(rootfs, db, text)
            if found is None:
                raise BuildError(
                    f"--chown={spec}: unable to find {what} {text!r} in the image's /etc/{db}"
                )
            value = found
        if value >= 2**32 - 1:
            raise BuildError(f"--chown={spec}: {what} id {value} is out of range")
        return value

    uid = number(user, "passwd", "user")
    gid = number(group, "group", "group") if group else uid
    return Owner(uid, gid)


_SYMBOLIC = re.compile(r"([ugoa]*)([-+=])([rwxXst]*)")


def parse_chmod(spec: str) -> Callable[[int, bool], int]:
    """``--chmod``: octal (``0755``) or symbolic (``u+x,go-w``), as a function of the
    source mode and whether the entry is a directory."""
    if re.fullmatch(r"[0-7]{1,4}", spec):
        fixed = int(spec, 8)
        return lambda mode, is_dir: fixed
    clauses = []
    for part in spec.split(","):
        m = _SYMBOLIC.fullmatch(part)
        if m is None:
            raise BuildError(f"--chmod={spec}: invalid mode (expected octal or u+x style)")
        clauses.append((m.group(1) or "a", m.group(2), m.group(3)))

    def apply(mode: int, is_dir: bool) -> int:
        mode &= 0o7777
        for who, op, perms in clauses:
            mask = 0
            bits = 0
            for w in who:
                mask |= {"u": 0o4700, "g": 0o2070, "o": 0o0007, "a": 0o6777}[w]
            for p in perms:
                if p == "r":
                    bits |= 0o444
                elif p == "w":
                    bits |= 0o222
                elif p == "x" or (p == "X" and (is_dir or mode & 0o111)):
                    bits |= 0o111
                elif p == "s":
                    bits |= 0o6000
                elif p == "t":
                    bits |= 0o1000
            bits &= mask | (0o1000 if "o" in who or "a" in who else 0)
            if op == "+":
                mode |= bits
            elif op == "-":
                mode &= ~bits
            else:
                mode = (mode & ~(mask & 0o7777)) | bits
        return mode

    return apply


@dataclass(frozen=True)
class CopyOptions:
    owner: Owner | None = None  # None: keep the source's owner
    chmod: Callable[[int, bool], int] | None = None


class TreeCopier:
    """Copies entries one at a time, preserving type, mode, owner, mtime and hardlinks
    (within one copy), as BuildKit's copy does.

    ``direct`` is (merged root, upper dir) of the overlay mount being copied into. A
    directory this copy created through the mount lives in the upper dir alone (overlay
    makes a new directory upper-only, opaque if it replaced something below), so
    nothing of the lower layers shows in it: what goes into it is written straight into
    the upper dir, where overlay would put it, without overlay's cost per file, and
    with an in-kernel ``copy_file_range`` (a copy into overlay falls back to read and
    write). Destination paths are still resolved, and their parents made or copied
    up, through the mount; nothing below such a directory is ever looked up there."""

    def __init__(self, options: CopyOptions, direct: tuple[Path, Path] | None = None) -> None:
        self.options = options
        #: hardlinked sources: the first copy's path (as given, not mapped to the upper dir)
        self._links: dict[tuple[int, int], str] = {}
        self._dirs: list[tuple[StrPath, os.stat_result]] = []
        #: directories this copy created: nothing else is in them, so an entry copied
        #: into one needs no look for what it replaces (a lookup through every layer)
        self._fresh: set[str] = set()
        self._direct = (f"{direct[0]}/", f"{direct[1]}/") if direct is not None else None

    def _in_upper(self, path: str) -> str:
        """``path`` under the merged root as the same path in the upper dir."""
        if self._direct is not None and path.startswith(self._direct[0]):
            return self._direct[1] + path[len(self._direct[0]) :]
        return path

    def _owner(self, st: os.stat_result) -> tuple[int, int]:
        o = self.options.owner
        return (o.uid, o.gid) if o is not None else (st.st_uid, st.st_gid)

    def _mode(self, st: os.stat_result) -> int:
        mode = stat.S_IMODE(st.st_mode)
        if self.options.chmod is not None:
            return self.options.chmod(mode, stat.S_ISDIR(st.st_mode))
        return mode

    def copy(self, src: StrPath, st: os.stat_result, dst: StrPath) -> None:
        """Copy one entry (not its children) from ``src`` (lstat ``st``) to ``dst``."""
        dst = os.fspath(dst)
        if os.path.dirname(dst) in self._fresh:
            real = self._in_upper(dst)
            try:
                if self._create(src, st, dst, real):
                    return
            except FileExistsError:
                pass  # another source of this COPY wrote the name already: replace it
            self._replace(src, st, dst, real)
            return
        self._replace(src, st, dst, dst)

    def _create(self, src: StrPath, st: os.stat_result, dst: str, real: str) -> bool:
        """A directory or a lone regular file at a ``dst`` known to be free (written at
        ``real``); False for the other kinds (the general path handles them)."""
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(real, 0o700)
            self._fresh.add(dst)
            self._dirs.append((real, st))
            return True
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            self._regular(src, st, real)
            return True
        return False

    def _regular(self, src: StrPath, st: os.stat_result, dst: str) -> None:
        # one open file each side: owner, mode and times set through the descriptor
        uid, gid = self._owner(st)
        fd = _copy_file(src, dst)
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, self._mode(st))
            os.utime(fd, ns=(st.st_mtime_ns, st.st_mtime_ns))
        finally:
            os.close(fd)

    def _replace(self, src: StrPath, st: os.stat_result, logical: str, dst: str) -> None:
        """Copy to ``logical`` (as the caller named it), written at ``dst`` (the same, or
        its path in the upper dir), replacing what is there."""
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            if os.path.lexists(dst) and not (os.path.isdir(dst) and not os.path.islink(dst)):
                _remove(dst)
            if not os.path.lexists(dst):
                os.mkdir(dst, 0o700)
                self._fresh.add(logical)
            self._dirs.append((dst, st))
            return
        if os.path.lexists(dst):
            _remove(dst)
        uid, gid = self._owner(st)
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            first = self._links.get(key) if st.st_nlink > 1 else None
            if first is not None:
                # both ends on one side of the mount (every file this copy made is in
                # the upper dir, whichever way it was written)
                os.link(first if dst == logical else self._in_upper(first), dst)
                return
            self._regular(src, st, dst)
            if st.st_nlink > 1:
                self._links[key] = logical
            return
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), dst)
            os.lchown(dst, uid, gid)
            os.utime(dst, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)
            return
        elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            os.mknod(dst, mode, st.st_rdev)
        else:
            return  # sockets are not copied
        os.lchown(dst, uid, gid)
        os.chmod(dst, self._mode(st))
        os.utime(dst, ns=(st.st_mtime_ns, st.st_mtime_ns))

    def write_file(self, dst: Path, data: bytes | Path, mode: int, mtime_ns: int) -> None:
        """A new file (heredoc, download) owned by the chown user (default root)."""
        if os.path.lexists(dst):
            _remove(dst)
        if isinstance(data, Path):
            os.close(_copy_file(data, dst))
        else:
            with open(dst, "wb") as f:
                f.write(data)
        o = self.options.owner
        os.lchown(dst, o.uid if o else 0, o.gid if o else 0)
        os.chmod(dst, self.options.chmod(mode, False) if self.options.chmod else mode)
        os.utime(dst, ns=(mtime_ns, mtime_ns))

    def finish(self) -> None:
        """Set directories' metadata last, so adding their children kept their mtimes."""
        for dst, st in reversed(self._dirs):
            uid, gid = self._owner(st)
            os.lchown(dst, uid, gid)
            os.chmod(dst, self._mode(st))
            os.utime(dst, ns=(st.st_mtime_ns, st.st_mtime_ns))
        self._dirs.clear()


def _copy_file(src: StrPath, dst: StrPath) -> int:
    """Copy a regular file's bytes; returns the still-open descriptor of the copy."""
    fin = os.open(src, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(fin).st_size
            done = 0
            try:
                while done < size:
                    n = os.copy_file_range(fin, fout, size - done)
                    if n == 0:
                        break
                    done += n
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                os.lseek(fin, done, os.SEEK_SET)
                while chunk := os.read(fin, 1 << 20):
                    os.write(fout, chunk)
        except BaseException:
            os.close(fout)
            raise
        return fout
    finally:
        os.close(fin)


def _remove(path: StrPath) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def make_dirs(root: Path, path: str, owner: Owner | None, mode: int = 0o755) -> Path:
    """``mkdir -p`` inside ``root``; new directories get ``owner`` (default root)."""
    current = "/"
    for part in [p for p in path.split("/") if p]:
        current = current.rstrip("/") + "/" + part
        target = secure_join(root, current)
        if os.path.isdir(target):
            continue
        if os.path.lexists(target):
            raise BuildError(f"cannot create directory {current}: a file is in the way")
        os.mkdir(target, mode)
        os.chmod(target, mode)
        if owner is not None:
            os.lchown(target, owner.uid, owner.gid)
    return secure_join(root, path)
