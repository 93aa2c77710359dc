"""The HTTP layer of the registry client: one aiohttp session per registry endpoint, run
on a background event loop so the synchronous transport interface can use it.

It reaches the endpoint and authenticates as :mod:`registry_endpoint` and
:mod:`registry_auth` decide (decisions the blocking client, :mod:`registry_probe`,
shares), and retries with backoff on 5xx answers and dropped connections when the
request body can be sent again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pallet.transport import aiohttp_loader  # noqa: F401  (before aiohttp: see there)

# isort: split
import aiohttp
from multidict import CIMultiDictProxy

from pallet.errors import TransportError
from pallet.transport.registry_auth import Authenticator, TokenReply
from pallet.transport.registry_config import RegistriesConfig
from pallet.transport.registry_credentials import Credentials
from pallet.transport.registry_endpoint import (
    MAX_ERROR_BODY,
    MAX_TOKEN_BODY,
    USER_AGENT,
    Unreachable,
    describe_exc,
    find_base,
    path_of,
    reply_error,
    token_tls,
)

T = TypeVar("T")

ATTEMPTS = 5
BACKOFF_START = 0.1
BACKOFF_MAX = 2.0
READ_BUFFER = 4 << 20
CANCEL_POLL = 0.2
#: errors that mean the connection broke, worth a retry
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientError,  # dropped connections, truncated or malformed responses
    asyncio.TimeoutError,
    ConnectionError,
)

PING_ERRORS: tuple[type[BaseException], ...] = (*NETWORK_ERRORS, ssl.SSLError)


class Cancelled(TransportError):
    """The operation was stopped (Ctrl-C, or another part of it failed)."""


class LoopThread:
    """A daemon thread running one event loop for every registry conversation."""

    _instance: LoopThread | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="pallet-http", daemon=True
        )
        self._thread.start()

    @classmethod
    def get(cls) -> LoopThread:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def run(self, coro: Coroutine[Any, Any, T], cancel: threading.Event | None = None) -> T:
        """Run ``coro`` on the loop and wait for it; an interrupt, or ``cancel`` being
        set (checked a few times a second), cancels it."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("LoopThread.run called from the loop thread")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            if cancel is None:
                return future.result()
            while True:
                try:
                    return future.result(timeout=CANCEL_POLL)
                except concurrent.futures.TimeoutError:
                    if cancel.is_set():
                        raise Cancelled("cancelled") from None
        except BaseException:
            future.cancel()
            raise


def backoff(attempt: int) -> float:
    return float(min(BACKOFF_START * (2**attempt), BACKOFF_MAX))


@dataclass(frozen=True)
class Reply:
    """A small, fully read response."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


#: a request body: bytes, or a factory of fresh async byte iterators or payloads (so it
#: can be resent)
Body = bytes | Callable[[], AsyncIterator[bytes] | aiohttp.payload.Payload] | None


class RegistryHttp:
    """HTTP to one registry endpoint (``host[:port]``), authenticated as ``registry``."""

    def __init__(
        self,
        registry: str,
        *,
        config: RegistriesConfig,
        credentials: Callable[[], Credentials],
        endpoint: str | None = None,
        scheme: str | None = None,
    ) -> None:
        self.registry = registry
        self.endpoint = endpoint or registry
        self.config = config
        self.auth = Authenticator(registry, credentials)
        self._forced_scheme = scheme
        self._base: str | None = None
        self._ssl: ssl.SSLContext | bool = True
        self._session: aiohttp.ClientSession | None = None
        self._ping_lock: asyncio.Lock | None = None
        self.runner = LoopThread.get()

    # -- lifecycle --------------------------------------------------------------------

    def session(self) -> aiohttp.ClientSession:
        """The pooled session (created on first use; call only on the loop)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=32, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                # room to keep receiving while a worker hashes and writes the last chunk
                read_bufsize=READ_BUFFER,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120),
                headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def close(self) -> None:
        self.runner.run(self.aclose())

    # -- endpoint discovery -------------------------------------------------------------

    async def base(self) -> str:
        """``scheme://host`` of the endpoint, found by pinging ``/v2/`` once."""
        if self._base is not None:
            return self._base
        if self._ping_lock is None:
            self._ping_lock = asyncio.Lock()
        async with self._ping_lock:
            if self._base is None:
                await self._ping()
        assert self._base is not None
        return self._base

    async def _ping(self) -> None:
        async def get(url: str, tls: ssl.SSLContext | bool) -> tuple[int, str | None]:
            try:
                reply = await self._raw_reply("GET", url, {}, None, tls)
            except PING_ERRORS as exc:
                raise Unreachable(describe_exc(exc)) from None
            return reply.status, reply.header("WWW-Authenticate")

        self._base, self._ssl = await find_base(
            self.endpoint, self.config, self._forced_scheme, get, self.auth
        )

    def take_over(self, base: str, tls: ssl.SSLContext | bool, auth: Authenticator) -> None:
        """Continue where the blocking client (:mod:`registry_probe`) left off: its
        endpoint, TLS context and authentication state (challenge, tokens)."""
        self._base, self._ssl, self.auth = base, tls, auth

    # -- requests -----------------------------------------------------------------------

    async def _raw_reply(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        data: Any,
        ssl_ctx: ssl.SSLContext | bool,
        limit: int = MAX_ERROR_BODY,
    ) -> Reply:
        session = self.session()
        async with session.request(
            method, url, headers=headers, data=data, ssl=ssl_ctx, allow_redirects=False
        ) as resp:
            body = await resp.content.read(limit + 1)
            return Reply(resp.status, resp.headers, body[: limit + 1], str(resp.url))

    async def _token_fetch(
        self, method: str, url: str, headers: dict[str, str], form: dict[str, str] | None
    ) -> TokenReply:
        ctx = token_tls(url, self.config)
        for attempt in range(ATTEMPTS):
            try:
                reply = await self._raw_reply(method, url, headers, form, ctx, MAX_TOKEN_BODY)
            except NETWORK_ERRORS as exc:
                if attempt + 1 == ATTEMPTS:
                    raise TransportError(
                        f"{self.registry}: token server unreachable: {describe_exc(exc)}"
                    ) from None
                await asyncio.sleep(backoff(attempt))
                continue
            if reply.status < 500 or attempt + 1 == ATTEMPTS:
                return TokenReply(reply.status, reply.body)
            await asyncio.sleep(backoff(attempt))
        raise AssertionError("unreachable")

    async def open(
        self,
        method: str,
        path: str,
        *,
        scopes: Iterable[str],
        headers: dict[str, str] | None = None,
        body: Body = None,
        retry: bool = True,
    ) -> aiohttp.ClientResponse:
        """Send a request (``path`` under the endpoint, or an absolute URL the registry
        gave, such as an upload location) and return the response, unread: the caller
        releases it. Authenticates on 401 and retries 5xx / dropped connections."""
        scopes = tuple(scopes)
        base = await self.base()
        url = path if path.startswith(("http://", "https://")) else base + path
        reauthed = False
        attempt = 0
        while True:
            send_headers = dict(headers or {})
            auth = await self.auth.header(scopes, self._token_fetch)
            if auth is not None:
                send_headers["Authorization"] = auth
            data = body() if callable(body) else body
            try:
                resp = await self.session().request(
                    method,
                    url,
                    headers=send_headers,
                    data=data,
                    ssl=self._ssl,
                    allow_redirects=False,
                )
            except NETWORK_ERRORS as exc:
                attempt += 1
                if not retry or attempt >= ATTEMPTS:
                    raise TransportError(
                        f"{self.registry}: {method} {path_of(url)}: {describe_exc(exc)}"
                    ) from None
                await asyncio.sleep(backoff(attempt - 1))
                continue
            if not reauthed and self.auth.challenged(
                resp.status, resp.headers.get("WWW-Authenticate"), scopes
            ):
                reauthed = True
                resp.release()
                continue
            if resp.status >= 500 and retry and attempt + 1 < ATTEMPTS:
                attempt += 1
                resp.release()
                await asyncio.sleep(backoff(attempt - 1))
                continue
            return resp

    async def reply(
        self,
        method: str,
        path: str,
        *,
        scopes: Iterable[str],
        headers: dict[str, str] | None = None,
        body: Body = None,
        limit: int = MAX_ERROR_BODY,
        retry: bool = True,
    ) -> Reply:
        """Like :meth:`open`, reading at most ``limit`` bytes of the body (one more byte
        is kept, so the caller can tell the body was too long)."""
        for attempt in range(ATTEMPTS):
            resp = await self.open(
                method, path, scopes=scopes, headers=headers, body=body, retry=retry
            )
            try:
                data = await resp.content.read(limit + 1) if method != "HEAD" else b""
                return Reply(resp.status, resp.headers, data, str(resp.url))
            except NETWORK_ERRORS as exc:
                if not retry or attempt + 1 == ATTEMPTS:
                    raise TransportError(
                        f"{self.registry}: {method} {path_of(path)}: {describe_exc(exc)}"
                    ) from None
                await asyncio.sleep(backoff(attempt))
            finally:
                resp.release()
        raise AssertionError("unreachable")

    def error(self, what: str, reply: Reply) -> TransportError:
        """The error for an unexpected answer about ``what``, with the registry's words."""
        return reply_error(what, reply.status, reply.body)
