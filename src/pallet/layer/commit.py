"""Tar, compress and hash a layer in one streaming pass, with no temporary copy.

The uncompressed stream is cut into fixed blocks (``GZIP_BLOCK``). The caller's thread
fills a block (tar headers, file contents read straight into it) and hashes it for the
diffID; for gzip each block is then deflated on a worker thread (ISA-L releases the
GIL), so compression uses every core; a single writer thread takes the results in
order, hashes the compressed stream (hashlib also releases the GIL) and writes it out.
Bounded queues keep memory flat: a few blocks in flight, whatever the layer size. zstd compresses on one worker
thread, in order, beside the hashing and tar threads.

With one usable core (``os.sched_getaffinity``) threads only add hand-offs and GIL
switches, so the same steps run inline on the caller's thread, block by block. The
bytes written are the same either way: a block's output depends only on its data.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from pallet.errors import InvalidArgument, LayerError
from pallet.layer import compression as comp
from pallet.layer.blocks import STORED_MAX, FramedBlock
from pallet.layer.compression import Compression
from pallet.layer.writer import TarSink, write_tar
from pallet.oci.digest import Digest

_BLOCK = comp.GZIP_BLOCK
# the writer thread hashes the blob at ~1.5 GB/s at best; more deflate workers than
# this would only hold more blocks in memory
_MAX_WORKERS = 4


@dataclass(frozen=True)
class LayerInfo:
    """What a committed layer is: its two digests, sizes and media type."""

    diff_id: Digest  # sha256 of the uncompressed tar
    digest: Digest  # sha256 of the blob as written to ``out``
    size: int  # compressed size
    uncompressed_size: int
    media_type: str


# a finished block: compressed bytes and crc32 of the uncompressed block (gzip only)
_Result = tuple[bytes | bytearray | memoryview, int]


class _Pipeline(TarSink):
    """A TarSink that compresses and hashes what it is given and writes it to ``out``."""

    def __init__(self, out: BinaryIO, kind: str, level: int | None, threads: int | None) -> None:
        self._kind = comp.parse_kind(kind)
        self._level = comp.resolve_level(self._kind, level)
        self._out = out
        if threads is None:
            threads = _usable_cores()
        elif threads < 1:
            raise InvalidArgument(f"layer commit needs at least 1 thread, not {threads}")
        self._inline = threads == 1
        # blocks come back from the writer thread once written, so the few buffers in
        # flight are reused instead of churning the allocator (which grew RSS by ~40 MB)
        self._free: queue.SimpleQueue[FramedBlock] = queue.SimpleQueue()
        self._block = FramedBlock(_BLOCK)
        self._zdict: bytes | None = None
        # gzip blocks are independent jobs; zstd state must see blocks in order: 1 worker
        workers = min(_MAX_WORKERS, threads) if self._kind is Compression.GZIP else 1
        self._pool: ThreadPoolExecutor | None = None
        if not self._inline:
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="layer-compress")
        # zstd keeps state across blocks; it runs on the single pool worker, in order
        self._stream = comp.compressor(self._kind, self._level)
        self._queue: queue.Queue[tuple[FramedBlock, Future[_Result]] | None] = queue.Queue(
            maxsize=2 * workers + 2
        )
        self._diff = hashlib.sha256()
        self._blob = hashlib.sha256()
        self._size = 0
        self._uncompressed = 0
        self._crc = 0
        self._error: BaseException | None = None
        self._closed = False
        if self._kind is Compression.GZIP:
            self._emit(comp.gzip_header())
        self._writer: threading.Thread | None = None
        if not self._inline:
            self._writer = threading.Thread(target=self._drain, name="layer-write", daemon=True)
            self._writer.start()

    # -- producer side (caller's thread) ---------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview, /) -> None:
        if type(data) is bytes and self._block.try_append(data):
            return  # tar headers and padding: two per file, kept cheap
        view = memoryview(data).cast("B")
        while view:
            view = view[self._block.append(view) :]
            if not self._block.room():
                self._submit(final=False)

    def copy_from(self, fd: int, size: int) -> int:
        done = 0
        while done < size:
            got = self._block.read_fd(fd, size - done)
            if got == 0:
                break
            done += got
            if not self._block.room():
                self._submit(final=False)
        return done

    def read_from(self, src: BinaryIO) -> None:
        """Take the whole of an uncompressed stream (``compress_stream``)."""
        readinto: Callable[[memoryview], int | None] | None = getattr(src, "readinto", None)
        while True:
            block = self._block
            view = block.views(block.fill, block.fill + min(block.room(), STORED_MAX))[0]
            if readinto is not None:
                got = readinto(view) or 0
            else:
                chunk = src.read(len(view))
                got = len(chunk)
                view[:got] = chunk
            if got == 0:
                return
            block.fill += got
            if not block.room():
                self._submit(final=False)

    def _submit(self, final: bool) -> None:
        if self._error is not None:
            raise self._error
        block = self._block
        # the diffID is hashed here, the blob on the writer thread: the two sha256 passes,
        # the bulk of the work on incompressible data, run on two cores when there are two
        for segment in block.segments():
            self._diff.update(segment)
        self._uncompressed += block.fill
        if self._inline:
            self._run_inline(block, final)
            return
        assert self._pool is not None
        future: Future[_Result]
        if self._kind is Compression.GZIP:
            future = self._pool.submit(comp.deflate_framed, block, self._zdict, self._level, final)
            self._zdict = block.tail(comp.DICT_SIZE)
        elif self._kind is Compression.ZSTD:
            future = self._pool.submit(self._stream_block, block, final)
        else:
            future = Future()
            future.set_result((block.data(), 0))
        self._block = self._new_block()
        self._put((block, future))

    def _run_inline(self, block: FramedBlock, final: bool) -> None:
        """One core: compress, hash and write the block now; its buffer is reused."""
        try:
            result = self._compress(block, final)
            self._consume(block, *result)
        except LayerError as e:
            self._error = e
            raise
        except Exception as e:
            self._error = _write_error(e)
            raise self._error from e
        if self._kind is Compression.GZIP:
            self._zdict = block.tail(comp.DICT_SIZE)
        block.clear()

    def _compress(self, block: FramedBlock, final: bool) -> _Result:
        if self._kind is Compression.GZIP:
            return comp.deflate_framed(block, self._zdict, self._level, final)
        if self._kind is Compression.ZSTD:
            return self._stream_block(block, final)
        return block.data(), 0

    def _new_block(self) -> FramedBlock:
        try:
            return self._free.get_nowait()
        except queue.Empty:
            return FramedBlock(_BLOCK)

    def _stream_block(self, block: FramedBlock, final: bool) -> _Result:
        data = self._stream.compress(block.data())
        if final:
            data += self._stream.flush()
        return data, 0

    def _put(self, item: tuple[FramedBlock, Future[_Result]] | None) -> None:
        # the writer thread drains even after an error, so this never blocks forever
        self._queue.put(item)

    def finish(self) -> LayerInfo:
        self._submit(final=True)
        self._shutdown()
        if self._error is not None:
            raise self._error
        if self._kind is Compression.GZIP:
            self._emit(comp.gzip_trailer(self._crc, self._uncompressed))
        return LayerInfo(
            diff_id=Digest.from_hasher(self._diff),
            digest=Digest.from_hasher(self._diff if self._kind is Compression.NONE else self._blob),
            size=self._size,
            uncompressed_size=self._uncompressed,
            media_type=comp.media_type(self._kind),
        )

    def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._put(None)
            self._writer.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> _Pipeline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._shutdown()

    # -- writer thread ---------------------------------------------------------------------

    def _emit(self, data: bytes | bytearray | memoryview) -> None:
        if self._kind is not Compression.NONE:  # uncompressed: the blob is the tar
            self._blob.update(data)
        self._out.write(data)
        self._size += len(data)

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # keep draining so the producer is never blocked on a full queue
            block, future = item
            try:
                self._consume(block, *future.result())
                # written out, so its buffer (maybe the stored output itself) is free
                block.clear()
                self._free.put(block)
            except BaseException as e:
                self._error = e if isinstance(e, LayerError) else _write_error(e)

    def _consume(self, block: FramedBlock, data: bytes | bytearray | memoryview, crc: int) -> None:
        """Write one finished block and hash what was written (in stream order)."""
        if self._kind is Compression.GZIP:
            self._crc = comp.crc32_combine(self._crc, crc, block.fill)
        self._emit(data)


def _usable_cores() -> int:
    """The cores this process may run on (taskset / cgroup cpusets), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _write_error(e: BaseException) -> LayerError:
    if isinstance(e, OSError):
        err = LayerError(f"cannot write layer: {e.strerror or e}")
    else:
        err = LayerError(f"cannot write layer: {e}")
    err.__cause__ = e
    return err


def commit_layer(
    root: Path,
    out: BinaryIO,
    *,
    compression: str = "gzip",
    level: int | None = None,
    overlay: bool = False,
    source_date_epoch: int | None = None,
    paths: Iterable[str | os.PathLike[str]] | None = None,
    threads: int | None = None,
) -> LayerInfo:
    """Write the tree under ``root`` as a compressed layer blob to ``out``, in one pass.

    ``overlay=True`` reads ``root`` as an overlay upper dir / pallet snapshot and
    ``paths`` limits the entries (see ``write_tar``). Returns both digests and sizes;
    ``out`` receives exactly the blob bytes, partly as views of buffers that are reused
    once ``write`` returns (a file's ``write`` copies them out, as it must anyway).
    ``threads`` defaults to the usable cores; the blob is the same whatever it is.
    """
    with _Pipeline(out, compression, level, threads) as pipe:
        write_tar(root, pipe, overlay=overlay, source_date_epoch=source_date_epoch, paths=paths)
        return pipe.finish()


def compress_stream(
    src: BinaryIO,
    out: BinaryIO,
    *,
    compression: str = "gzip",
    level: int | None = None,
    threads: int | None = None,
) -> LayerInfo:
    """Compress an existing uncompressed tar stream (``pallet import``), hashing both sides."""
    with _Pipeline(out, compression, level, threads) as pipe:
        pipe.read_from(src)
        return pipe.finish()
