"""A compression block that can become stored deflate blocks without a copy.

Deflate frames incompressible data as stored blocks: 5 bytes (BFINAL/BTYPE byte, LEN,
NLEN) before every run of at most 65535 bytes. A ``FramedBlock`` keeps those 5 bytes
free in front of every 65535-byte segment of its data, so when the block does not
compress, filling in the frames turns the buffer itself into the deflate output: the
megabyte is never copied again. Everything else sees the data as a list of segments.
"""

from __future__ import annotations

import os
import struct

STORED_MAX = 0xFFFF  # data bytes in one stored deflate block
FRAME = 5
_HEADER = struct.Struct("<BHH")


def _physical(offset: int) -> int:
    """Where data byte ``offset`` lives in the buffer."""
    return offset + FRAME * (offset // STORED_MAX + 1)


class FramedBlock:
    """Up to ``capacity`` data bytes, appended in order, read back as segments."""

    __slots__ = ("_mem", "buf", "capacity", "fill")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.buf = bytearray(_physical(capacity - 1) + 1 if capacity else 0)
        self._mem = memoryview(self.buf)
        self.fill = 0

    def room(self) -> int:
        return self.capacity - self.fill

    def views(self, start: int, stop: int) -> list[memoryview]:
        """Writable views of data bytes [start, stop), one per segment touched."""
        mem = self._mem
        seg = start // STORED_MAX
        if seg == (stop - 1) // STORED_MAX:  # within one segment: most reads of a file
            at = start + FRAME * (seg + 1)
            return [mem[at : at + stop - start]]
        out = []
        while start < stop:
            end = min(stop, (start // STORED_MAX + 1) * STORED_MAX)
            at = _physical(start)
            out.append(mem[at : at + end - start])
            start = end
        return out

    def segments(self) -> list[memoryview]:
        return self.views(0, self.fill)

    def append(self, data: bytes | bytearray | memoryview) -> int:
        """Copy as much of ``data`` as fits; returns how much that was."""
        start = self.fill
        n = min(len(data), self.capacity - start)
        seg = start // STORED_MAX
        if seg == (start + n - 1) // STORED_MAX:  # within one segment: the common case
            at = start + FRAME * (seg + 1)
            self.buf[at : at + n] = data if n == len(data) else data[:n]
        else:
            done = 0
            for view in self.views(start, start + n):
                view[:] = data[done : done + len(view)]
                done += len(view)
        self.fill = start + n
        return n

    def try_append(self, data: bytes) -> bool:
        """Append all of ``data`` if it stays inside the current segment and leaves room:
        the cheap case (tar headers, padding), as few steps as possible."""
        start = self.fill
        end = start + len(data)
        seg = start // STORED_MAX
        if end // STORED_MAX != seg or end >= self.capacity:
            return False
        at = start + FRAME * (seg + 1)
        self.buf[at : at + len(data)] = data
        self.fill = end
        return True

    def read_fd(self, fd: int, size: int) -> int:
        """Read up to ``size`` bytes (as room allows) from ``fd`` straight into the block."""
        start = self.fill
        stop = start + min(size, self.capacity - start)
        seg = start // STORED_MAX
        if seg == (stop - 1) // STORED_MAX:
            at = start + FRAME * (seg + 1)
            got = os.readv(fd, [self._mem[at : at + stop - start]])
        else:
            got = os.readv(fd, self.views(start, stop))
        self.fill = start + got
        return got

    def data(self) -> bytes:
        """The data as one contiguous bytes object (a copy)."""
        return b"".join(self.segments())

    def sample(self, start: int, size: int) -> bytes | memoryview:
        """``size`` data bytes from ``start``: a view unless they cross a frame gap."""
        views = self.views(start, min(start + size, self.fill))
        return views[0] if len(views) == 1 else b"".join(views)

    def tail(self, size: int) -> bytes:
        return b"".join(self.views(max(0, self.fill - size), self.fill))

    def stored(self, final: bool) -> memoryview:
        """Fill in the frames and return the block as stored deflate blocks (a view).

        Byte-identical to framing the contiguous data from its start; valid until the
        block is written to again.
        """
        n = self.fill
        segments = (n + STORED_MAX - 1) // STORED_MAX
        for i in range(segments):
            size = min(STORED_MAX, n - i * STORED_MAX)
            last = final and i == segments - 1
            # BFINAL bit, BTYPE=00 (stored), padding to the byte boundary; LEN and NLEN
            _HEADER.pack_into(self.buf, i * (STORED_MAX + FRAME), last, size, size ^ 0xFFFF)
        return memoryview(self.buf)[: _physical(n - 1) + 1 if n else 0]

    def clear(self) -> None:
        self.fill = 0
