"""The blob half of the store: ``blobs/<alg>/<hex>``, written through ``ingest/``.

A blob becomes visible under its digest only once it is whole, verified and on disk:
bytes go to a private ingest file (hashed as they arrive), which is fsynced and renamed
into place. A crash at any point leaves at most an ingest file, which gc removes.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType

from pallet.errors import DigestMismatch, InvalidDigest, NotFound, StoreError
from pallet.oci.digest import Digest, new_hasher
from pallet.store.fsutil import fsync_dir
from pallet.store.locks import lock_fd

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import BinaryIO

#: what :meth:`BlobStore.read_blob` reads into memory at most (manifests, configs)
DEFAULT_MAX_READ = 16 << 20
#: written bytes after which the kernel is asked to start writing them to disk, so the
#: fsync at commit finds most of a large blob already there instead of all of it
WRITEBACK_EVERY = 8 << 20
_SYNC_FILE_RANGE_WRITE = 2
_sync_file_range: Callable[[int, int, int, int], int] | None = None
_sync_file_range_loaded = False


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start (not wait for) writing a range of a file to disk: Linux's
    ``sync_file_range(SYNC_FILE_RANGE_WRITE)``; elsewhere nothing, the fsync does it all."""
    global _sync_file_range, _sync_file_range_loaded
    if not _sync_file_range_loaded:
        _sync_file_range_loaded = True
        try:
            import ctypes

            fn = ctypes.CDLL(None, use_errno=True).sync_file_range
            fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
            fn.restype = ctypes.c_int
            _sync_file_range = fn
        except (OSError, AttributeError):
            _sync_file_range = None
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # a hint: errors ignored


class BlobStore:
    """Content-addressed files under ``root/blobs``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs_dir = root / "blobs"
        self.ingest_dir = root / "ingest"

    def path(self, digest: Digest) -> Path:
        d = Digest(digest)  # validated, so the path cannot escape blobs/
        return self.blobs_dir / d.algorithm / d.encoded

    def has(self, digest: Digest) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: Digest) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the store") from None

    def open(self, digest: Digest) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the store") from None
        except OSError as exc:
            raise StoreError(f"blob {digest}: {exc.strerror}") from exc

    def read(self, digest: Digest, max_size: int = DEFAULT_MAX_READ) -> bytes:
        d = Digest(digest)
        with self.open(d) as f:
            data = f.read(max_size + 1)
        if len(data) > max_size:
            raise StoreError(f"blob {d} is larger than {max_size} bytes")
        if Digest.from_bytes(data, d.algorithm) != d:
            raise DigestMismatch(
                f"blob {d} in the store is corrupt (its content hashes differently)"
            )
        return data

    def iter_digests(self) -> list[Digest]:
        """Every blob file whose name is a digest (other files are not ours to judge)."""
        out: list[Digest] = []
        if not self.blobs_dir.is_dir():
            return out
        for alg_dir in sorted(self.blobs_dir.iterdir()):
            if not alg_dir.is_dir():
                continue
            for entry in sorted(alg_dir.iterdir()):
                try:
                    out.append(Digest(f"{alg_dir.name}:{entry.name}"))
                except InvalidDigest:
                    continue
        return out


class BlobWriter:
    """One blob being written: ``write`` chunks, then ``commit``; else it vanishes.

    Each writer has its own ingest file, locked while the writer lives so gc can tell a
    live write from a crashed one. Two writers of the same blob do not interfere: the
    first to commit places it, the other just drops its file.
    """

    def __init__(
        self,
        blobs: BlobStore,
        guard: Callable[[], AbstractContextManager[None]],
        expected: Digest | None = None,
        expected_size: int | None = None,
        algorithm: str = "sha256",
        *,
        hashed_by_caller: bool = False,
    ) -> None:
        self._blobs = blobs
        # The layer pipeline already hashes exactly the bytes it writes here; hashing them
        # again would cost a second sha256 pass over every layer. Such a caller hands the
        # digest to commit().
        self._hashed_by_caller = hashed_by_caller
        self._guard = guard
        self.expected = Digest(expected) if expected is not None else None
        self.expected_size = expected_size
        alg = self.expected.algorithm if self.expected is not None else algorithm
        self._hasher = new_hasher(alg)
        self._size = 0
        self._flushed = 0  # bytes handed to start_writeback
        self._done = False
        hint = self.expected.encoded[:12] if self.expected is not None else "new"
        self.ingest_path = blobs.ingest_dir / f"{hint}-{os.urandom(8).hex()}"
        try:
            blobs.ingest_dir.mkdir(parents=True, exist_ok=True)
            with guard():  # gc must not see the file before it is locked
                fd = os.open(
                    self.ingest_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644
                )
                lock_fd(fd)
        except OSError as exc:
            raise StoreError(f"{self.ingest_path}: cannot create: {exc.strerror}") from exc
        self._file = os.fdopen(fd, "wb")

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._done:
            raise StoreError(f"{self.ingest_path}: write after commit or abort")
        n = len(data)
        if self.expected_size is not None and self._size + n > self.expected_size:
            what = self.expected or "blob"
            self.abort()
            raise DigestMismatch(f"{what} is larger than its expected {self.expected_size} bytes")
        if not self._hashed_by_caller:
            self._hasher.update(data)
        try:
            self._file.write(data)
            self._size += n
            if self._size - self._flushed >= WRITEBACK_EVERY:
                self._file.flush()
                start_writeback(self._file.fileno(), self._flushed, self._size - self._flushed)
                self._flushed = self._size
        except OSError as exc:
            self.abort()
            raise StoreError(f"{self.ingest_path}: cannot write: {exc.strerror}") from exc
        return n

    def copy_from(self, stream: BinaryIO, chunk: int = 1 << 20) -> None:
        while block := stream.read(chunk):
            self.write(block)

    def commit(self, digest: Digest | None = None) -> tuple[Digest, int]:
        """Verify, fsync and move the blob into place; returns its digest and size.

        ``digest`` is required (and only accepted) from a writer made with
        ``hashed_by_caller``: the digest the caller computed over the bytes it wrote."""
        if self._done:
            raise StoreError(f"{self.ingest_path}: already committed or aborted")
        if self._hashed_by_caller != (digest is not None):
            self.abort()
            raise StoreError(
                f"{self.ingest_path}: commit needs the caller's digest exactly when the "
                "caller hashes the blob"
            )
        digest = Digest(digest) if digest is not None else Digest.from_hasher(self._hasher)
        try:
            if self.expected is not None and digest != self.expected:
                raise DigestMismatch(f"blob {self.expected} does not match its content ({digest})")
            if self.expected_size is not None and self._size != self.expected_size:
                raise DigestMismatch(
                    f"blob {digest} has {self._size} bytes, expected {self.expected_size}"
                )
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
            except OSError as exc:
                raise StoreError(f"{self.ingest_path}: cannot write: {exc.strerror}") from exc
            target = self._blobs.path(digest)
            with self._guard():
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists():
                    # Already there (dedup, or a concurrent writer won): keep the first.
                    self.ingest_path.unlink(missing_ok=True)
                else:
                    try:
                        os.rename(self.ingest_path, target)
                    except OSError as exc:
                        if exc.errno == errno.ENOENT:
                            raise StoreError(f"{self.ingest_path}: ingest file vanished") from exc
                        raise StoreError(f"blob {digest}: {exc.strerror}") from exc
                    fsync_dir(target.parent)
        except BaseException:
            self.abort()
            raise
        self._done = True
        self._file.close()
        return digest, self._size

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._file.close()
        self.ingest_path.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()  # a no-op after commit
