"""Blob upload sessions: bytes stream to ``uploads/<id>`` while being hashed.

A session's only durable state is its file and its row in the metadata store, so a
restarted server picks an upload up where it stopped (it re-hashes the file once). A blob
is committed only when the bytes hash to the digest the client names; otherwise the file
is deleted and nothing is stored.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pallet.oci.digest import Digest
from pallet.registry.apierrors import ApiError
from pallet.registry.storage.blobs import FilesystemBlobStore
from pallet.registry.storage.metadata import MetadataStore

_UPLOAD_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_REHASH_CHUNK = 1 << 20


@dataclass
class _Session:
    repo: str
    hasher: Any
    size: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _hash_file(path: Path, algorithm: str) -> tuple[Any, int]:
    h = hashlib.new(algorithm)
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_REHASH_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h, size


class Uploads:
    def __init__(
        self, blobs: FilesystemBlobStore, meta: MetadataStore, max_blob_bytes: int = 0
    ) -> None:
        self._blobs = blobs
        self._meta = meta
        self._max = max_blob_bytes
        self._sessions: dict[str, _Session] = {}

    def _unknown(self, upload_id: str) -> ApiError:
        return ApiError("BLOB_UPLOAD_UNKNOWN", f"unknown upload {upload_id[:80]!r}")

    def create(self, repo: str) -> str:
        upload_id = str(uuid.uuid4())
        self._blobs.upload_path(upload_id).touch()
        self._meta.add_upload(upload_id, repo)
        self._sessions[upload_id] = _Session(repo, hashlib.sha256(), 0)
        return upload_id

    async def _session(self, repo: str, upload_id: str) -> _Session:
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise self._unknown(upload_id)
        session = self._sessions.get(upload_id)
        record = self._meta.get_upload(upload_id)
        if record is None:
            # Expired or cancelled, possibly by another process (a CLI gc).
            self._sessions.pop(upload_id, None)
            raise self._unknown(upload_id)
        if session is None:
            path = self._blobs.upload_path(upload_id)
            if not path.is_file():
                raise self._unknown(upload_id)
            # After a restart: rebuild the hash state from what is already on disk.
            hasher, size = await asyncio.to_thread(_hash_file, path, "sha256")
            session = self._sessions.setdefault(upload_id, _Session(record.repo, hasher, size))
        if session.repo != repo:
            raise self._unknown(upload_id)
        return session

    async def size(self, repo: str, upload_id: str) -> int:
        return (await self._session(repo, upload_id)).size

    async def _write(
        self,
        session: _Session,
        path: Path,
        stream: AsyncIterator[bytes],
        expected: int | None,
    ) -> None:
        """Append ``stream``; on any failure the session is left exactly as before.

        Bytes are gathered into 1 MiB blocks that a worker thread writes and hashes
        (both release the GIL) while the event loop receives the next block, so a big
        upload neither stalls other requests nor leaves the second core idle.
        """
        saved_hasher, saved_size = session.hasher.copy(), session.size
        written = 0
        try:
            # No O_CREAT: a session whose file was expired away must not silently restart.
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            raise ApiError("BLOB_UPLOAD_UNKNOWN", "upload session expired") from None
        pending: concurrent.futures.Future[None] | None = None
        block = bytearray()
        try:
            async for chunk in stream:
                written += len(chunk)
                if self._max and saved_size + written > self._max:
                    raise ApiError(
                        "SIZE_INVALID",
                        f"blob exceeds the limit of {self._max} bytes",
                        status=413,
                    )
                if expected is not None and written > expected:
                    raise ApiError("SIZE_INVALID", "body longer than its Content-Range")
                block += chunk
                if len(block) >= _BLOCK:
                    if pending is not None:
                        await asyncio.wrap_future(pending)
                    pending = _sink_pool().submit(_sink, fd, session.hasher, block)
                    block = bytearray()
            if pending is not None:
                await asyncio.wrap_future(pending)
                pending = None
            if expected is not None and written != expected:
                raise ApiError("SIZE_INVALID", "body shorter than its Content-Range")
            _sink(fd, session.hasher, block)
            session.size = saved_size + written
        except BaseException:
            if pending is not None:
                # Let the worker finish its block before the file is cut back.
                with contextlib.suppress(Exception):
                    pending.result()
            os.ftruncate(fd, saved_size)
            session.hasher, session.size = saved_hasher, saved_size
            raise
        finally:
            os.close(fd)

    async def append(
        self,
        repo: str,
        upload_id: str,
        stream: AsyncIterator[bytes],
        start: int | None,
        expected: int | None,
        on_range_error: Callable[[int], ApiError],
    ) -> int:
        session = await self._session(repo, upload_id)
        async with session.lock:
            if start is not None and start != session.size:
                raise on_range_error(session.size)
            await self._write(session, self._blobs.upload_path(upload_id), stream, expected)
            self._meta.touch_upload(upload_id)
            return session.size

    async def finish(
        self, repo: str, upload_id: str, digest: Digest, stream: AsyncIterator[bytes] | None
    ) -> int:
        session = await self._session(repo, upload_id)
        path = self._blobs.upload_path(upload_id)
        async with session.lock:
            if stream is not None:
                await self._write(session, path, stream, None)
            if digest.algorithm == "sha256":
                actual = Digest.from_hasher(session.hasher)
            else:
                actual = Digest.from_hasher(
                    (await asyncio.to_thread(_hash_file, path, digest.algorithm))[0]
                )
            size = session.size
            if actual != digest:
                self._drop(upload_id)
                raise ApiError("DIGEST_INVALID", f"upload does not match digest {digest}")
            self._meta.add_blob(repo, digest, size, lambda: self._blobs.install(path, digest))
            self._meta.remove_upload(upload_id)
            self._sessions.pop(upload_id, None)
            return size

    async def receive(self, repo: str, digest: Digest, stream: AsyncIterator[bytes]) -> int:
        """A monolithic upload (``POST ?digest=``): no session, same verification."""
        path = self._blobs.new_upload_path(".tmp")
        path.touch(0o600)
        session = _Session(repo, digest.hasher(), 0)
        try:
            await self._write(session, path, stream, None)
            if Digest.from_hasher(session.hasher) != digest:
                raise ApiError("DIGEST_INVALID", f"upload does not match digest {digest}")
            self._meta.add_blob(
                repo, digest, session.size, lambda: self._blobs.install(path, digest)
            )
        finally:
            path.unlink(missing_ok=True)
        return session.size

    async def cancel(self, repo: str, upload_id: str) -> None:
        session = await self._session(repo, upload_id)
        async with session.lock:
            self._drop(upload_id)

    def _drop(self, upload_id: str) -> None:
        self._sessions.pop(upload_id, None)
        self._meta.remove_upload(upload_id)
        self._blobs.upload_path(upload_id).unlink(missing_ok=True)

    def expire(self, cutoff: float) -> list[str]:
        """Forget sessions idle since before ``cutoff`` (the GC calls this)."""
        dropped = []
        for record in self._meta.uploads_before(cutoff):
            session = self._sessions.get(record.upload_id)
            if session is not None and session.lock.locked():
                continue
            self._drop(record.upload_id)
            dropped.append(record.upload_id)
        return dropped


_BLOCK = 1 << 20
_POOL: concurrent.futures.ThreadPoolExecutor | None = None


def _sink_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="registry-upload")
    return _POOL


def _sink(fd: int, hasher: Any, data: bytes | bytearray) -> None:
    _write_all(fd, data)
    hasher.update(data)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
