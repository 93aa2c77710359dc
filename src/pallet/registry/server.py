"""Running the registry: the HTTP server, TLS, and the GC / retention schedules.

``RegistryServer`` is the async object; ``serve`` runs one until interrupted (the CLI);
``ThreadedRegistry`` runs one on a background thread (tests and benchmarks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from pallet.errors import RegistryError
from pallet.registry.accesslog import JsonAccessLogger
from pallet.registry.app import build_app
from pallet.registry.config import RegistryConfig
from pallet.registry.schedule import scheduled_tasks
from pallet.registry.state import RegistryState

log = logging.getLogger("pallet.registry")
T = TypeVar("T")


def ssl_context(config: RegistryConfig) -> ssl.SSLContext | None:
    if not config.tls.enabled:
        return None
    assert config.tls.cert is not None and config.tls.key is not None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(config.tls.cert, config.tls.key)
    except (OSError, ssl.SSLError) as exc:
        raise RegistryError(f"cannot load TLS certificate {config.tls.cert}: {exc}") from None
    return ctx


class RegistryServer:
    def __init__(self, config: RegistryConfig) -> None:
        self.config = config
        self.state = RegistryState(config)
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.port = 0

    async def start(self) -> None:
        app = build_app(self.state)
        access_log = logging.getLogger("pallet.registry.access") if self.config.access_log else None
        self._runner = web.AppRunner(
            app,
            access_log=access_log,
            access_log_class=JsonAccessLogger,
            handle_signals=False,
        )
        await self._runner.setup()
        host, port = self.config.host_port
        site = web.TCPSite(
            self._runner, host, port, ssl_context=ssl_context(self.config), backlog=1024
        )
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise RegistryError(f"cannot listen on {self.config.addr}: {exc.strerror}") from None
        addresses = self._runner.addresses
        self.port = int(addresses[0][1]) if addresses else port
        self._tasks = scheduled_tasks(self.state)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        self.state.close()

    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls.enabled else "http"
        host = self.config.host_port[0]
        return f"{scheme}://{host}:{self.port}"


def serve(config: RegistryConfig, ready: threading.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM."""

    async def main() -> None:
        server = RegistryServer(config)
        await server.start()
        log.info("pallet registry listening on %s (data %s)", server.url, config.data)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        if ready is not None:
            ready.set()
        try:
            await stop.wait()
        finally:
            await server.stop()

    asyncio.run(main())


class ThreadedRegistry:
    """A registry on its own thread and event loop: ``with ThreadedRegistry(cfg) as reg:``."""

    def __init__(self, config: RegistryConfig) -> None:
        self.config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.server = RegistryServer(config)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def state(self) -> RegistryState:
        return self.server.state

    def start(self) -> ThreadedRegistry:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(30)
        return self

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop (e.g. a GC pass) and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(300)

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> ThreadedRegistry:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
