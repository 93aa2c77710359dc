"""Webhook notifications on push and delete, delivered in the background with retries.

Events are queued in memory and POSTed as distribution-style envelopes
(``{"events": [...]}``); a failed delivery is retried with exponential backoff. A full
queue drops the oldest event rather than slowing requests down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

import aiohttp

from pallet.registry.config import Webhook

log = logging.getLogger("pallet.registry.notify")
ENVELOPE = "application/vnd.docker.distribution.events.v1+json"


class Notifier:
    def __init__(self, hooks: tuple[Webhook, ...], queue_size: int = 10000) -> None:
        self.hooks = hooks
        self._queue: asyncio.Queue[tuple[Webhook, dict[str, Any]]] = asyncio.Queue(queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self.delivered = 0
        self.failed = 0
        self.dropped = 0

    def event(
        self,
        action: str,
        repository: str,
        *,
        digest: str = "",
        media_type: str = "",
        size: int = 0,
        tag: str = "",
        user: str = "",
        address: str = "",
    ) -> None:
        if not self.hooks:
            return
        body = {
            "id": str(uuid.uuid4()),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "action": action,
            "target": {
                "mediaType": media_type,
                "digest": digest,
                "size": size,
                "repository": repository,
                "tag": tag,
            },
            "request": {"addr": address},
            "actor": {"name": user},
        }
        for hook in self.hooks:
            if action in hook.events:
                if self._queue.full():
                    self._queue.get_nowait()  # drop the oldest
                    self._queue.task_done()
                    self.dropped += 1
                self._queue.put_nowait((hook, body))

    async def start(self, workers: int = 2) -> None:
        if self.hooks:
            self._session = aiohttp.ClientSession()
            self._tasks = [asyncio.create_task(self._worker()) for _ in range(workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def drain(self) -> None:
        await self._queue.join()

    async def _worker(self) -> None:
        while True:
            hook, body = await self._queue.get()
            try:
                await self._deliver(hook, body)
            finally:
                self._queue.task_done()

    async def _deliver(self, hook: Webhook, body: dict[str, Any]) -> None:
        assert self._session is not None
        payload = json.dumps({"events": [body]}).encode()
        headers = {"Content-Type": ENVELOPE, **hook.headers}
        delay = hook.backoff
        for attempt in range(hook.retries + 1):
            try:
                async with self._session.post(
                    hook.url,
                    data=payload,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=hook.timeout),
                ) as resp:
                    if resp.status < 400:
                        self.delivered += 1
                        return
                    reason = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = str(exc) or type(exc).__name__
            if attempt < hook.retries:
                await asyncio.sleep(delay)
                delay *= 2
        self.failed += 1
        log.warning(
            "webhook %s: gave up after %d attempts (%s)", hook.url, hook.retries + 1, reason
        )
