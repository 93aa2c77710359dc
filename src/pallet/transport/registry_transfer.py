"""Running blob transfers concurrently, all or nothing.

Each blob runs in a worker thread (the HTTP itself runs on the shared event loop); the
first failure, or Ctrl-C, stops the others at their next read, and the caller undoes
what had been done.

A transfer ends with a commit that waits for a disk: our fsync of a pulled blob, or the
registry's fsync behind the final PUT of a pushed one. Only the streaming part holds one
of the ``concurrency`` slots (:class:`StreamSlots`), so the next blob streams while the
last one is flushed, instead of the network idling behind the disk.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from types import TracebackType

from pallet.oci.descriptor import Descriptor
from pallet.transport.registry_http import Cancelled

#: how often a transfer waiting for a slot looks at the cancel flag
SLOT_POLL = 0.2


class Slot:
    """One held streaming slot; released once, by ``release`` or on leaving ``with``."""

    def __init__(self, semaphore: threading.Semaphore) -> None:
        self._semaphore = semaphore
        self._held = True
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if not self._held:
                return
            self._held = False
        self._semaphore.release()

    def __enter__(self) -> Slot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class StreamSlots:
    """At most ``limit`` blobs stream at once."""

    def __init__(self, limit: int, cancel: threading.Event) -> None:
        self.limit = max(1, limit)
        self._semaphore = threading.Semaphore(self.limit)
        self._cancel = cancel

    def acquire(self, what: str) -> Slot:
        while not self._semaphore.acquire(timeout=SLOT_POLL):
            if self._cancel.is_set():
                raise Cancelled(f"{what}: interrupted")
        if self._cancel.is_set():
            self._semaphore.release()
            raise Cancelled(f"{what}: interrupted")
        return Slot(self._semaphore)


def workers_for(blobs: Sequence[Descriptor], concurrency: int) -> int:
    """Threads for ``concurrency`` streaming transfers plus as many finishing commits."""
    return max(1, min(len(blobs), 2 * max(1, concurrency)))


def run_all(
    blobs: Sequence[Descriptor],
    work: Callable[[Descriptor], None],
    *,
    concurrency: int,
    cancel: threading.Event,
) -> None:
    """``work(blob)`` for every blob, ``concurrency`` at a time. Raises the first error
    (after every worker has stopped); sets ``cancel`` on error or interrupt."""
    if not blobs:
        return
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="pallet-blob")
    futures: list[Future[None]] = []
    try:
        futures = [pool.submit(_guarded, work, blob, cancel) for blob in blobs]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            error = future.exception()
            if error is not None:
                cancel.set()
                raise error
    except BaseException:
        cancel.set()
        for future in futures:
            future.cancel()
        raise
    finally:
        pool.shutdown(wait=True)
    for future in futures:
        future.result()


def _guarded(work: Callable[[Descriptor], None], blob: Descriptor, cancel: threading.Event) -> None:
    if cancel.is_set():
        return
    work(blob)
