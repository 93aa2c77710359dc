"""Reading a blob from a registry as a plain stream.

The stream never reads past the blob's announced size, and survives dropped connections:
it reopens the blob with ``Range: bytes=N-`` from the first byte it does not have yet
(a registry that ignores ranges sends it all again, and the bytes already had are skipped).
Whoever consumes the stream verifies the digest.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable
from typing import Any, BinaryIO, cast

from pallet.transport import aiohttp_loader  # noqa: F401  (before aiohttp: see there)

# isort: split
import aiohttp
from yarl import URL

from pallet.errors import TransportError
from pallet.oci.descriptor import Descriptor
from pallet.transport.registry_endpoint import describe_exc
from pallet.transport.registry_http import (
    ATTEMPTS,
    NETWORK_ERRORS,
    Cancelled,
    RegistryHttp,
    backoff,
)

MAX_REDIRECTS = 5
RECV_MAX = 1 << 20
REDIRECTS = (301, 302, 303, 307, 308)


class RemoteBlob(io.RawIOBase):
    def __init__(
        self,
        http: RegistryHttp,
        repository: str,
        desc: Descriptor,
        *,
        on_bytes: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.http = http
        self.repository = repository
        self.desc = desc
        self.pos = 0
        #: how many times the download was resumed after a dropped connection
        self.resumes = 0
        self._resp: aiohttp.ClientResponse | None = None
        self._leftover = b""  # received past the last read, not yet returned
        self._on_bytes = on_bytes
        self._cancel = cancel
        self._what = f"{http.registry}/{repository}: blob {desc.digest}"

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def read(self, n: int | None = -1) -> bytes:
        remaining = self.desc.size - self.pos
        want = remaining if n is None or n < 0 else min(n, remaining)
        # joining a single piece returns it as is, without a copy
        return b"".join(self.read_chunks(want))

    def read_chunks(self, n: int) -> list[bytes]:
        """The next ``n`` bytes (fewer only at the blob's end) as the pieces the
        connection received them in: no bytes are copied to join them, and one call
        into the event loop fetches many pieces."""
        if self._cancel is not None and self._cancel.is_set():
            raise Cancelled(f"{self._what}: interrupted")
        want = min(n, self.desc.size - self.pos)
        if want <= 0:
            return []
        chunks = self.http.runner.run(self._read(want), self._cancel)
        if self._on_bytes is not None:
            self._on_bytes(sum(len(c) for c in chunks))
        return chunks

    def close(self) -> None:
        if self._resp is not None:
            resp, self._resp = self._resp, None
            self.http.runner.run(_release(resp))
        super().close()

    def as_stream(self) -> BinaryIO:
        return cast(BinaryIO, self)

    async def _read(self, want: int) -> list[bytes]:
        """``want`` bytes (at least one piece, fewer only when the connection broke
        after some arrived: the next call resumes from there)."""
        out: list[bytes] = []
        got = 0
        failures = 0
        while got < want:
            if self._leftover:
                chunk, self._leftover = self._leftover, b""
            else:
                try:
                    if self._resp is None:
                        self._resp = await self._open()
                    chunk, boundary = await self._resp.content.readchunk()
                    if not chunk:
                        if boundary:  # the end of an HTTP chunk, not of the body
                            continue
                        raise aiohttp.ClientPayloadError("connection closed before the blob's end")
                except NETWORK_ERRORS as exc:
                    await self._drop()
                    self.resumes += 1
                    if out:
                        return out  # what arrived is good; the next read resumes
                    failures += 1
                    if failures >= ATTEMPTS:
                        raise TransportError(
                            f"{self._what}: download failed at byte {self.pos}: {describe_exc(exc)}"
                        ) from None
                    await asyncio.sleep(backoff(failures - 1))
                    continue
            take = want - got
            if len(chunk) > take:
                # keep the rest for the next read (past the blob's size it is never read)
                self._leftover = chunk[take:]
                chunk = chunk[:take]
            out.append(chunk)
            got += len(chunk)
            self.pos += len(chunk)
        return out

    async def _drop(self) -> None:
        self._leftover = b""  # bytes past ``pos`` are asked for again with the next Range
        if self._resp is not None:
            resp, self._resp = self._resp, None
            await _release(resp)

    async def _open(self) -> aiohttp.ClientResponse:
        headers = {"Range": f"bytes={self.pos}-"} if self.pos else {}
        resp = await self.http.open(
            "GET",
            f"/v2/{self.repository}/blobs/{self.desc.digest}",
            scopes=[f"repository:{self.repository}:pull"],
            headers=headers,
        )
        hops = 0
        while resp.status in REDIRECTS and hops < MAX_REDIRECTS:
            # Storage redirects (S3 and the like) go to another host: no Authorization.
            location = resp.headers.get("Location", "")
            target = str(resp.url.join(URL(location)))
            resp.release()
            session = self.http.session()
            resp = await session.get(target, headers=headers, allow_redirects=False)
            hops += 1
        _read_more_per_wakeup(resp)
        if resp.status == 206 and self.pos:
            start = _range_start(resp.headers.get("Content-Range", ""))
            if start != self.pos:
                resp.release()
                raise TransportError(
                    f"{self._what}: asked for bytes from {self.pos}, got a range from {start}"
                )
            return resp
        if resp.status == 200:
            await _skip(resp, self.pos)
            return resp
        body = await resp.content.read(64 << 10)
        resp.release()
        if resp.status == 404:
            raise TransportError(f"{self._what}: blob unknown to the registry")
        message = body.decode("utf-8", "replace")[:200] if body else ""
        raise TransportError(f"{self._what}: HTTP {resp.status} {message}".rstrip())


def _read_more_per_wakeup(resp: aiohttp.ClientResponse) -> None:
    """asyncio's socket transport receives at most 256 KiB per wakeup, and each piece
    costs a pass through the event loop and aiohttp's parser; a blob stream takes up to
    ``RECV_MAX`` at a time instead (about a tenth of the pull's CPU time). Transports
    without this attribute (another event loop, TLS) are left as they are."""
    transport = resp.connection.transport if resp.connection is not None else None
    if isinstance(getattr(transport, "max_size", None), int):
        transport.max_size = max(transport.max_size, RECV_MAX)  # type: ignore[union-attr]


def _range_start(content_range: str) -> int:
    # "bytes 100-199/200"
    try:
        return int(content_range.split(" ", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return -1


async def _skip(resp: aiohttp.ClientResponse, count: int) -> None:
    while count > 0:
        chunk = await resp.content.read(min(count, 1 << 20))
        if not chunk:
            raise aiohttp.ClientPayloadError("connection closed while skipping")
        count -= len(chunk)


async def _release(resp: aiohttp.ClientResponse) -> None:
    resp.close()
