"""Running blob transfers concurrently, all or nothing.

Each blob runs in a worker thread (the HTTP itself runs on the shared event loop); the
first failure, or Ctrl-C, stops the others at their next read, and the caller undoes
what had been done.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait

from pallet.oci.descriptor import Descriptor


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
