"""Streaming tar reader for untrusted layers: one pass, bounded memory, diffID as it reads.

Understands USTAR, POSIX PAX (local ``x`` headers; global ``g`` headers are read and
ignored, as Docker and containerd do) and GNU long names/links (``L``/``K``). Refuses GNU
sparse files (``S`` or ``GNU.sparse.*`` records), unknown member types, bad checksums,
member sizes over ``MAX_MEMBER_SIZE``, extended headers over ``MAX_EXTENDED_HEADER`` and
more than ``MAX_MEMBERS`` members. Every byte of the stream, trailing padding included,
goes through sha256, so ``diff_id`` is the digest of exactly what was read.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from pallet.errors import LayerError, UnsafeLayer
from pallet.layer import tarformat as tf
from pallet.oci.digest import Digest

MAX_MEMBER_SIZE = 1 << 36  # 64 GiB: larger is not a file, it is an attack
MAX_EXTENDED_HEADER = 1 << 20  # a PAX / GNU long-name header (Go's limit too)
MAX_MEMBERS = 5_000_000
_CHUNK = 1 << 20

_REGULAR = (tf.REG, tf.AREG, tf.CONT)
_HEADER_ONLY = (tf.LNK, tf.SYM, tf.CHR, tf.BLK, tf.DIR, tf.FIFO)


@dataclass(frozen=True)
class Member:
    """A member's metadata after PAX/GNU overrides. ``size`` is its data length."""

    name: str
    type: bytes  # normalized: regular files are REG, old-style "name/" files are DIR
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    linkname: str
    devmajor: int
    devminor: int
    xattrs: tuple[tuple[str, bytes], ...]


class _Source:
    """The stream, hashed as it is pulled, with a small buffer for header parsing."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._hasher = hashlib.sha256()
        self.consumed = 0
        self._buf = memoryview(b"")

    def _fill(self) -> bool:
        data = self._stream.read(_CHUNK)
        if not data:
            return False
        self._hasher.update(data)
        self.consumed += len(data)
        self._buf = memoryview(bytes(self._buf) + data) if self._buf else memoryview(data)
        return True

    def chunk(self, n: int, what: str) -> memoryview:
        """Up to ``n`` (> 0) bytes; raises when the stream ends first."""
        if not self._buf and not self._fill():
            raise LayerError(f"truncated layer: {what}")
        take = self._buf[:n]
        self._buf = self._buf[len(take) :]
        return take

    def chunks(self, n: int, what: str) -> Iterator[memoryview]:
        while n > 0:
            take = self.chunk(n, what)
            n -= len(take)
            yield take

    def read(self, n: int, what: str) -> bytes:
        return b"".join(self.chunks(n, what))

    def at_eof(self) -> bool:
        return not self._buf and not self._fill()

    def drain(self) -> None:
        self._buf = memoryview(b"")
        while self._fill():
            self._buf = memoryview(b"")

    def digest(self) -> Digest:
        return Digest.from_hasher(self._hasher)


def _text(raw: bytes) -> str:
    return os.fsdecode(raw)


def _number(records: dict[bytes, bytes], key: bytes, header_value: int, name: str) -> int:
    """A numeric field, the PAX record overriding the header; only mtime may be negative."""
    raw = records.get(key)
    value = header_value
    if raw:
        try:
            if key == b"mtime":
                value = int(float(raw.decode("ascii")) // 1)
            else:
                value = int(raw.decode("ascii"), 10)
        except (ValueError, UnicodeDecodeError, OverflowError):
            raise LayerError(f"layer member {name!r}: invalid PAX {key.decode()} {raw!r}") from None
    if value < 0 and key != b"mtime":
        raise LayerError(f"layer member {name!r}: negative {key.decode()} {value}")
    return value


class TarReader:
    """Iterate members; read a member's data with ``data()`` before asking for the next."""

    def __init__(self, stream: BinaryIO) -> None:
        self._src = _Source(stream)
        self._pending = 0  # unread data + padding of the current member
        self._data_left = 0
        self._extended_total = 0
        self._current = ""
        self._count = 0

    @property
    def diff_id(self) -> Digest:
        return self._src.digest()

    @property
    def size(self) -> int:
        return self._src.consumed

    def data(self) -> Iterator[memoryview]:
        """The current member's data, in chunks."""
        while self._data_left > 0:
            chunk = self._src.chunk(self._data_left, f"data of {self._current!r}")
            self._data_left -= len(chunk)
            self._pending -= len(chunk)
            yield chunk

    def finish(self) -> None:
        """Read the rest of the stream so the diffID covers every byte."""
        self._src.drain()

    def _skip_pending(self) -> None:
        for _ in self._src.chunks(self._pending, f"data of {self._current!r}"):
            pass
        self._pending = 0
        self._data_left = 0

    def _extended(self, size: int, kind: str) -> bytes:
        if size < 0:
            raise LayerError(f"{kind} header after {self._current!r} has a negative size")
        # consecutive extended headers add up: their total is what memory must hold
        self._extended_total += size
        if size > MAX_EXTENDED_HEADER:
            raise UnsafeLayer(
                f"{kind} header of {size} bytes after {self._current!r} exceeds the "
                f"{MAX_EXTENDED_HEADER}-byte limit"
            )
        if self._extended_total > MAX_EXTENDED_HEADER:
            raise UnsafeLayer(
                f"extended headers after {self._current!r} exceed "
                f"{MAX_EXTENDED_HEADER} bytes in all"
            )
        data = self._src.read(size, f"{kind} header")
        self._src.read(tf.padding(size), f"{kind} header")
        return data

    def __iter__(self) -> Iterator[Member]:
        pax: dict[bytes, bytes] = {}
        long_name: bytes | None = None
        long_link: bytes | None = None
        while True:
            self._skip_pending()
            if self._src.at_eof():
                return  # no end-of-archive marker: accepted, as Go's reader does
            block = self._src.read(tf.BLOCK, "header")
            if block == tf.ZERO_BLOCK:
                if self._src.at_eof() or self._src.read(tf.BLOCK, "end") == tf.ZERO_BLOCK:
                    return
                raise LayerError(f"invalid tar: lone zero block after {self._current!r}")
            try:
                raw = tf.decode_header(block)
            except LayerError as e:
                raise LayerError(f"{e} after member {self._current!r}") from None
            kind = raw.type
            if kind == tf.PAX_LOCAL:
                pax.update(tf.parse_pax(self._extended(raw.size, "PAX")))
                continue
            if kind == tf.PAX_GLOBAL:
                tf.parse_pax(self._extended(raw.size, "PAX global"))
                continue
            if kind == tf.GNU_LONGNAME:
                long_name = self._extended(raw.size, "GNU long name").rstrip(b"\x00")
                continue
            if kind == tf.GNU_LONGLINK:
                long_link = self._extended(raw.size, "GNU long link").rstrip(b"\x00")
                continue
            member = self._member(raw, pax, long_name, long_link)
            pax, long_name, long_link = {}, None, None
            self._extended_total = 0
            yield member

    def _member(
        self,
        raw: tf.RawHeader,
        pax: dict[bytes, bytes],
        long_name: bytes | None,
        long_link: bytes | None,
    ) -> Member:
        name_b = pax.get(b"path") or long_name or raw.name
        link_b = pax.get(b"linkpath") or long_link or raw.linkname
        name = _text(name_b)
        self._current = name
        self._count += 1
        if self._count > MAX_MEMBERS:
            raise UnsafeLayer(f"layer has more than {MAX_MEMBERS} members")
        kind = raw.type
        if kind == tf.GNU_SPARSE or any(k.startswith(b"GNU.sparse.") for k in pax):
            raise LayerError(f"layer member {name!r}: sparse files are not supported")
        if kind == tf.AREG and name.endswith("/"):
            kind = tf.DIR
        elif kind in _REGULAR:
            kind = tf.REG
        elif kind not in _HEADER_ONLY:
            raise LayerError(f"layer member {name!r}: unsupported tar member type {kind!r}")
        size = _number(pax, b"size", raw.size, name)
        if size > MAX_MEMBER_SIZE:
            raise UnsafeLayer(
                f"layer member {name!r}: size {size} exceeds the {MAX_MEMBER_SIZE}-byte limit"
            )
        # header-only types carry no data whatever their size field says (as in Go)
        data_size = size if kind == tf.REG else 0
        self._data_left = data_size
        self._pending = data_size + tf.padding(data_size)
        xattrs = tuple(
            sorted(
                (k[len(tf.XATTR_PREFIX) :].decode("utf-8", "surrogateescape"), v)
                for k, v in pax.items()
                if k.startswith(tf.XATTR_PREFIX.encode())
            )
        )
        return Member(
            name=name,
            type=kind,
            mode=raw.mode & 0o7777,
            uid=_number(pax, b"uid", raw.uid, name),
            gid=_number(pax, b"gid", raw.gid, name),
            size=data_size,
            mtime=_number(pax, b"mtime", raw.mtime, name),
            linkname=_text(link_b),
            devmajor=raw.devmajor,
            devminor=raw.devminor,
            xattrs=xattrs,
        )
