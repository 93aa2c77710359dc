"""An upload body that is a range of a regular file, sent with ``sendfile``.

The kernel moves the bytes from the page cache to the socket: no reads into Python
objects and no copies through the event loop, which leaves the CPU to the registry that
has to hash and store them (on one machine the two share it). Over TLS asyncio falls back
to reading and writing. The file is read with ``pread``, so its own position does not
matter and the stream can be read elsewhere meanwhile.
"""

from __future__ import annotations

import asyncio
import os
from typing import IO, Any, cast

from pallet.transport import aiohttp_loader  # noqa: F401  (before aiohttp: see there)

# isort: split
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload

#: bytes per sendfile call (each waits for the socket to drain first)
SLICE = 64 << 20


class _PreadFile:
    """What ``loop.sendfile`` needs of a file: ``fileno``, ``seek``, ``readinto``."""

    mode = "rb"

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pos = 0

    def fileno(self) -> int:
        return self._fd

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        if whence != os.SEEK_SET:
            raise OSError("only absolute seeks")
        self._pos = pos
        return pos

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf)
        data = os.pread(self._fd, len(view), self._pos)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


class FileRangePayload(Payload):
    """``length`` bytes of the file ``fd`` from ``start``."""

    def __init__(self, fd: int, start: int, length: int) -> None:
        super().__init__(None, content_type="application/octet-stream")
        self._fd = fd
        self._start = start
        self._size = length

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a file range is not text")

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        length = self._size or 0
        if content_length is not None:
            length = min(length, content_length)
        send_headers = getattr(writer, "send_headers", None)
        if send_headers is not None:
            send_headers()  # aiohttp holds them back to join them with the first chunk
        await writer.drain()
        transport = getattr(writer, "transport", None)
        if transport is None or transport.is_closing():
            raise ConnectionResetError("connection closed before the upload body")
        loop = asyncio.get_running_loop()
        file = cast(IO[bytes], _PreadFile(self._fd))
        sent = 0
        while sent < length:
            n = await loop.sendfile(transport, file, self._start + sent, min(SLICE, length - sent))
            if n <= 0:
                raise ConnectionResetError(f"file ended at byte {self._start + sent}")
            sent += n
