"""A digest of a directory tree's content, to tell later whether a snapshot changed.

Covers what a container would see (names, types, modes, owners, file contents, link
targets, device numbers, xattrs such as the overlay opaque marker) and leaves out what
changes without harm (timestamps, inode numbers).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pallet.oci.digest import Digest

_SKIPPED_XATTRS = frozenset({"security.selinux"})


def _xattrs(path: str) -> list[str]:
    try:
        names = sorted(os.listxattr(path, follow_symlinks=False))
    except OSError:
        return []
    out = []
    for name in names:
        if name in _SKIPPED_XATTRS:
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        out.append(f"{name}={value.hex()}")
    return out


def _file_digest(path: str) -> str:
    import hashlib  # here: loading OpenSSL is 4 ms of every command that opens the store

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def tree_digest(root: Path) -> Digest:
    """sha256 over a canonical listing of everything below ``root`` (root included)."""
    import hashlib

    h = hashlib.sha256()
    base = str(root)
    pending = [""]
    while pending:
        rel = pending.pop()
        path = os.path.join(base, rel) if rel else base
        st = os.lstat(path)
        kind = stat.S_IFMT(st.st_mode)
        fields = [rel, oct(st.st_mode), str(st.st_uid), str(st.st_gid)]
        if stat.S_ISREG(st.st_mode):
            fields += [str(st.st_size), _file_digest(path)]
        elif stat.S_ISLNK(st.st_mode):
            fields.append(os.readlink(path))
        elif kind in (stat.S_IFCHR, stat.S_IFBLK):
            fields.append(f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}")
        fields += _xattrs(path)
        h.update("\0".join(fields).encode("utf-8", "surrogateescape") + b"\n")
        if stat.S_ISDIR(st.st_mode):
            names = sorted(os.listdir(path), reverse=True)  # popped in ascending order
            pending.extend(os.path.join(rel, n) if rel else n for n in names)
    return Digest.from_hasher(h)
