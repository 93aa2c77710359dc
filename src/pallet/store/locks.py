"""Advisory file locks (``flock``) that coordinate pallet processes sharing one store.

``flock`` locks belong to an open file description and vanish when the process dies, so
a crashed writer never leaves the store locked.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from pallet.errors import StoreError


class FileLock:
    """A lock file; each acquisition opens it afresh, so threads exclude each other too."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _held(self, operation: int) -> Iterator[None]:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open lock file: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, operation)
            yield
        finally:
            os.close(fd)  # closing the last descriptor releases the lock

    def shared(self) -> AbstractContextManager[None]:
        return self._held(fcntl.LOCK_SH)

    def exclusive(self) -> AbstractContextManager[None]:
        return self._held(fcntl.LOCK_EX)


def lock_fd(fd: int) -> None:
    """Mark an open file or directory as in use (see :func:`is_in_use`)."""
    fcntl.flock(fd, fcntl.LOCK_EX)


def is_in_use(path: Path) -> bool:
    """Whether some live process holds ``path`` locked (an ingest file or temp dir).

    Without a holder the file is a leftover of a crashed process.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
