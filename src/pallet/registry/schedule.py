"""Background work of a running server: GC, retention and stale-upload expiry on timers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from pallet.registry.state import RegistryState

log = logging.getLogger("pallet.registry")


async def _every(minutes: int, job: Callable[[], Awaitable[object]], name: str) -> None:
    while True:
        await asyncio.sleep(minutes * 60)
        try:
            await job()
        except Exception:  # a failed run is logged and retried next period
            log.exception("scheduled %s failed", name)


def scheduled_tasks(state: RegistryState) -> list[asyncio.Task[None]]:
    return []
