"""Layer compression: gzip (ISA-L), zstd, or none; detection, streaming decompression.

pallet's gzip output is a pure function of the uncompressed bytes and the level, so a
layer committed twice (on any machine, with any number of threads) has one digest:

* a fixed 10-byte header: no file name, mtime 0, XFL 0, OS 255 ("unknown", as Go writes);
* the deflate stream is cut into independent ``GZIP_BLOCK`` blocks of the *uncompressed*
  stream (pigz style): each block is deflated on its own, primed with the previous
  block's last 32 KiB as dictionary, and ends on a byte boundary with a sync flush. Blocks
  can therefore be compressed on several cores and still concatenate to one valid stream;
* a block whose probes show it does not compress is written as stored deflate blocks,
  which costs a copy instead of a futile deflate (see ``_incompressible``). The probes
  depend only on the block's bytes (and the bundled zstd and ISA-L versions), so the
  choice is as reproducible as the deflate output itself.

zstd runs single-threaded (see ``zstd_compressor``), so its output is fixed too.
"""

from __future__ import annotations

import enum
import io
import struct
import threading
from typing import Any, BinaryIO, Protocol

import isal.isal_zlib as isal_zlib
import zstandard

from pallet.errors import InvalidArgument, LayerError
from pallet.layer.blocks import STORED_MAX, FramedBlock
from pallet.oci import mediatypes

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

#: uncompressed bytes per independently deflated gzip block (part of the output format)
GZIP_BLOCK = 1 << 20
DICT_SIZE = 32 * 1024  # deflate's window: what the next block is primed with
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

# the stub types isal_zlib.error as an instance; it is the exception class
_IsalError: type[Exception] = getattr(isal_zlib, "error")  # noqa: B009

# ISA-L's largest buffers: about twice the speed of the default on incompressible data
_MEM_LEVEL = 9

# incompressible-block shortcut: probe size, ratio above which a block is stored as is
_SAMPLE = 8 * 1024
_SAMPLE_MIN = 16 * _SAMPLE
_STORE_RATIO = 0.97

DEFAULT_GZIP_LEVEL = 1
DEFAULT_ZSTD_LEVEL = 3

# Output produced per decompress call is bounded so a decompression bomb cannot grow memory.
_MAX_OUT = 1 << 20
_READ_SIZE = 1 << 16
# zstandard's decompressobj has no output limit; a zstd byte can expand ~32768x (RLE
# blocks), so input is fed in 1 KiB slices: one call yields at most 32 MiB, and
# throughput stays ~900 MB/s (measured).
_ZSTD_FEED = 1024


class Compression(enum.StrEnum):
    GZIP = "gzip"
    ZSTD = "zstd"
    NONE = "none"


def parse_kind(kind: str) -> Compression:
    try:
        return Compression(kind)
    except ValueError:
        raise InvalidArgument(
            f"unknown layer compression {kind!r} (expected gzip, zstd or none)"
        ) from None


def detect(head: bytes) -> str:
    """The compression of a layer from its first bytes (4 are enough)."""
    if head.startswith(GZIP_MAGIC):
        return Compression.GZIP.value
    if head.startswith(ZSTD_MAGIC):
        return Compression.ZSTD.value
    return Compression.NONE.value


def media_type(kind: str) -> str:
    """The OCI layer media type for a compression."""
    return {
        Compression.GZIP: mediatypes.OCI_LAYER_GZIP,
        Compression.ZSTD: mediatypes.OCI_LAYER_ZSTD,
        Compression.NONE: mediatypes.OCI_LAYER,
    }[parse_kind(kind)]


def resolve_level(kind: str, level: int | None) -> int:
    """The effective level, validated: gzip (ISA-L) 0-3, default 1; zstd 1-22, default 3."""
    k = parse_kind(kind)
    if k is Compression.GZIP:
        if level is None:
            return DEFAULT_GZIP_LEVEL
        if not 0 <= level <= 3:
            raise InvalidArgument(f"gzip level {level} out of range (ISA-L levels are 0-3)")
        return level
    if k is Compression.ZSTD:
        if level is None:
            return DEFAULT_ZSTD_LEVEL
        if not 1 <= level <= zstandard.MAX_COMPRESSION_LEVEL:
            raise InvalidArgument(
                f"zstd level {level} out of range (1-{zstandard.MAX_COMPRESSION_LEVEL})"
            )
        return level
    return 0


# -- compression -----------------------------------------------------------------------


class Compressor(Protocol):
    def compress(self, data: bytes | bytearray | memoryview, /) -> bytes: ...

    def flush(self) -> bytes: ...


def gzip_header() -> bytes:
    return _GZIP_HEADER


def gzip_trailer(crc: int, length: int) -> bytes:
    return struct.pack("<II", crc & 0xFFFFFFFF, length & 0xFFFFFFFF)


def deflate_block(
    block: bytes | bytearray | memoryview, zdict: bytes | None, level: int, final: bool
) -> tuple[bytes, int]:
    """One block of pallet's gzip stream and its crc32; pure, so blocks run in parallel."""
    crc = isal_zlib.crc32(block)
    view = memoryview(block)
    n = len(view)
    if n >= _SAMPLE_MIN and _incompressible([view[s : s + _SAMPLE] for s in _probes(n)]):
        return _stored(block, final), crc
    return _deflate(block, zdict, level, final), crc


def deflate_framed(
    block: FramedBlock, zdict: bytes | None, level: int, final: bool
) -> tuple[bytes | memoryview, int]:
    """``deflate_block`` of a FramedBlock's data, the same bytes; a block that does not
    compress comes back as a view of the block's own buffer (no copy)."""
    crc = 0
    for segment in block.segments():
        crc = isal_zlib.crc32(segment, crc)
    n = block.fill
    if n >= _SAMPLE_MIN and _incompressible([block.sample(s, _SAMPLE) for s in _probes(n)]):
        return block.stored(final), crc
    return _deflate(_contiguous(block), zdict, level, final), crc


def _contiguous(block: FramedBlock) -> memoryview:
    """The block's data gathered into this thread's scratch buffer: a fresh megabyte per
    block would be a fresh mmap, paid for in page faults (~1 ms a block, measured)."""
    scratch: bytearray | None = getattr(_local, "scratch", None)
    if scratch is None or len(scratch) < block.capacity:
        scratch = _local.scratch = bytearray(block.capacity)
    view = memoryview(scratch)
    at = 0
    for segment in block.segments():
        view[at : at + len(segment)] = segment
        at += len(segment)
    return view[:at]


def _deflate(
    data: bytes | bytearray | memoryview, zdict: bytes | None, level: int, final: bool
) -> bytes:
    if zdict:
        c = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15, _MEM_LEVEL, 0, zdict)
    else:
        c = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15, _MEM_LEVEL)
    flush_mode = isal_zlib.Z_FINISH if final else isal_zlib.Z_SYNC_FLUSH
    out: bytes = c.compress(data) + c.flush(flush_mode)
    return out


def _probes(n: int) -> tuple[int, ...]:
    """Where the incompressibility probes of an ``n``-byte block start."""
    return (0, n // 4, n // 2, n - _SAMPLE)


def _incompressible(samples: list[bytes | memoryview]) -> bool:
    """True when samples spread over a block, together, shrink by less than 3%.

    Already-compressed content (archives, images, model weights) would cost a full
    deflate attempt for nothing. The probes are zstd level 1, which finds repeats and
    entropy-codes literals like deflate but costs ~8 us per 8 KiB probe (ISA-L pays
    ~20 us of set-up per call): four probes cost ~3% of hashing the block. The probes
    are judged together, so a tar header caught by one probe does not force a deflate
    of a block of JPEGs, while a block a quarter text still deflates. On a 1.9 GB tar
    of /usr this stores 16 of 1866 blocks and the layer grows by 0.1% against
    deflating every block.
    """
    probe = _probe_compressor()
    packed = sum(len(probe.compress(sample)) for sample in samples)
    return packed >= sum(len(sample) for sample in samples) * _STORE_RATIO


_local = threading.local()


def _probe_compressor() -> zstandard.ZstdCompressor:
    # a compressor is not safe across threads; one per deflate worker, reused
    probe: zstandard.ZstdCompressor | None = getattr(_local, "probe", None)
    if probe is None:
        probe = zstandard.ZstdCompressor(
            level=1, write_checksum=False, write_content_size=False, write_dict_id=False
        )
        _local.probe = probe
    return probe


def _stored(block: bytes | bytearray | memoryview, final: bool) -> bytes:
    """The block as deflate stored blocks (RFC 1951 3.2.4), starting byte-aligned."""
    view = memoryview(block)
    parts: list[bytes | memoryview] = []
    for start in range(0, len(view), STORED_MAX):
        chunk = view[start : start + STORED_MAX]
        last = final and start + STORED_MAX >= len(view)
        n = len(chunk)
        # BFINAL bit, BTYPE=00, padding to the byte boundary; then LEN and NLEN
        parts.append(struct.pack("<BHH", 1 if last else 0, n, n ^ 0xFFFF))
        parts.append(chunk)
    return b"".join(parts)


def block_dict(block: bytes | bytearray) -> bytes:
    """The dictionary the block after ``block`` is primed with."""
    return bytes(block[-DICT_SIZE:])


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    return int(isal_zlib.crc32_combine(crc1, crc2, len2))


class _GzipCompressor:
    """Sequential form of pallet's block gzip; same bytes as the threaded pipeline."""

    def __init__(self, level: int) -> None:
        self._level = level
        self._buf = bytearray()
        self._zdict: bytes | None = None
        self._crc = 0
        self._length = 0
        self._started = False
        self._done = False

    def _head(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return _GZIP_HEADER

    def _block(self, block: bytes | bytearray, final: bool) -> bytes:
        data, crc = deflate_block(block, self._zdict, self._level, final)
        self._crc = crc32_combine(self._crc, crc, len(block))
        self._length += len(block)
        self._zdict = block_dict(block)
        return data

    def compress(self, data: bytes | bytearray | memoryview, /) -> bytes:
        if self._done:
            raise ValueError("compressor already flushed")
        out = [self._head()]
        self._buf += data
        while len(self._buf) >= GZIP_BLOCK:
            # full blocks go out at once; flush() writes the (maybe empty) final block
            block = bytes(self._buf[:GZIP_BLOCK])
            del self._buf[:GZIP_BLOCK]
            out.append(self._block(block, final=False))
        return b"".join(out)

    def flush(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        head = self._head()
        last = self._block(bytes(self._buf), final=True)
        self._buf = bytearray()
        return head + last + gzip_trailer(self._crc, self._length)


class _Collect:
    """A file-like target that hands back whatever was written to it."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


class _ZstdCompressor:
    def __init__(self, level: int) -> None:
        self._sink = _Collect()
        self._writer = zstd_compressor(level).stream_writer(
            self._sink,  # type: ignore[arg-type]
            closefd=False,
            write_return_read=True,
        )

    def compress(self, data: bytes | bytearray | memoryview, /) -> bytes:
        self._writer.write(data)
        return self._sink.take()

    def flush(self) -> bytes:
        self._writer.flush(zstandard.FLUSH_FRAME)
        return self._sink.take()


def zstd_compressor(level: int) -> zstandard.ZstdCompressor:
    # Single-threaded on purpose: libzstd's multi-threaded mode grew RSS with the
    # stream's length (87 -> 120 MB for 0.5 -> 1 GiB, measured) while pallet's pipeline
    # already runs compression on its own thread, beside hashing and tar reading.
    # write_checksum lets readers detect corruption.
    return zstandard.ZstdCompressor(level=level, threads=0, write_checksum=True)


class _Identity:
    def compress(self, data: bytes | bytearray | memoryview, /) -> bytes:
        return bytes(data)

    def flush(self) -> bytes:
        return b""


def compressor(kind: str, level: int | None = None) -> Compressor:
    """A streaming compressor: ``.compress(b)`` then ``.flush()`` once at the end."""
    k = parse_kind(kind)
    lvl = resolve_level(k, level)
    if k is Compression.GZIP:
        return _GzipCompressor(lvl)
    if k is Compression.ZSTD:
        return _ZstdCompressor(lvl)
    return _Identity()


# -- decompression ---------------------------------------------------------------------


class _Decompressed(io.RawIOBase):
    """Readable view of a compressed stream; memory bounded whatever the ratio."""

    def __init__(self, src: BinaryIO, head: bytes, kind: Compression) -> None:
        self._src = src
        self._kind = kind
        # compressed bytes not yet given to the decompressor (a view: slicing is free)
        self._input = memoryview(head)
        self._pending = memoryview(b"")  # decompressed bytes not yet returned
        self._src_eof = False
        self._obj = self._new_obj()
        self._finished = False  # the stream ended cleanly at a member/frame boundary

    def _new_obj(self) -> Any:
        if self._kind is Compression.GZIP:
            return isal_zlib.decompressobj(31)
        return zstandard.ZstdDecompressor().decompressobj()

    def readable(self) -> bool:
        return True

    def _fill_input(self) -> None:
        if not self._input and not self._src_eof:
            chunk = self._src.read(_READ_SIZE)
            if not chunk:
                self._src_eof = True
            else:
                self._input = memoryview(chunk)

    def _step(self) -> None:
        """Produce some decompressed bytes, or mark the end of the stream."""
        self._fill_input()
        if not self._input:
            # the source ended inside a gzip member / zstd frame
            raise LayerError(f"truncated {self._kind.value} stream")
        obj = self._obj
        try:
            if self._kind is Compression.GZIP:
                out = obj.decompress(self._input, _MAX_OUT)
                self._input = memoryview(obj.unconsumed_tail)
            else:
                feed, self._input = self._input[:_ZSTD_FEED], self._input[_ZSTD_FEED:]
                out = obj.decompress(feed)
        except (_IsalError, zstandard.ZstdError) as e:
            raise LayerError(f"corrupt {self._kind.value} stream: {e}") from None
        self._pending = memoryview(out)
        if obj.eof:
            # a member/frame ended: another one follows, or the stream ends here
            self._input = memoryview(obj.unused_data + bytes(self._input))
            self._fill_input()
            if not self._input:
                self._finished = True
                return
            magic = GZIP_MAGIC if self._kind is Compression.GZIP else ZSTD_MAGIC
            if not bytes(self._input[:4]).startswith(magic[: len(self._input)]):
                raise LayerError(f"corrupt {self._kind.value} stream: trailing garbage")
            self._obj = self._new_obj()

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(b).cast("B")
        while not self._pending:
            if self._finished:
                return 0
            self._step()
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


class _Prefixed(io.RawIOBase):
    """``head`` followed by the rest of ``src`` (the bytes detect() peeked at)."""

    def __init__(self, src: BinaryIO, head: bytes) -> None:
        self._src = src
        self._head = memoryview(head)

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(b).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        if hasattr(self._src, "readinto"):
            return int(self._src.readinto(view) or 0)
        data = self._src.read(len(view))
        view[: len(data)] = data
        return len(data)


def _read_head(stream: BinaryIO, n: int) -> bytes:
    head = b""
    while len(head) < n:
        chunk = stream.read(n - len(head))
        if not chunk:
            break
        head += chunk
    return head


def open_decompressed(stream: BinaryIO) -> BinaryIO:
    """The uncompressed bytes of a gzip, zstd or plain layer stream, detected by magic.

    Streaming with bounded memory; a truncated or corrupt stream raises LayerError when
    the bad part is read.
    """
    head = _read_head(stream, 4)
    kind = Compression(detect(head))
    raw: io.RawIOBase
    if kind is Compression.NONE:
        raw = _Prefixed(stream, head)
    else:
        raw = _Decompressed(stream, head, kind)
    return io.BufferedReader(raw, buffer_size=_MAX_OUT)
