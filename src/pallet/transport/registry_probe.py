"""A small blocking HTTP/1.1 client on the standard library, for the few requests of a
push whose image the registry may already hold: the ``/v2/`` ping, a token, a HEAD of
the manifest, and at most a PUT of it under the tag.

A push that finds everything in place makes only those requests, and importing aiohttp
and asyncio for them would be most of its time. This client keeps one connection per
origin alive and reaches and authenticates a registry exactly as the aiohttp client
does, through the same decisions (:mod:`registry_endpoint`) and the same
:class:`Authenticator`. It does not retry: a dropped connection or a 5xx answer raises
:class:`Unsure`, and the caller goes on with the aiohttp client (which retries), handing
it the endpoint, TLS context and tokens found (:meth:`RegistryHttp.take_over`).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from pallet.errors import TransportError
from pallet.transport.registry_auth import Authenticator, TokenReply
from pallet.transport.registry_config import RegistriesConfig, api_host
from pallet.transport.registry_credentials import Credentials, credentials_loader
from pallet.transport.registry_endpoint import (
    MAX_ERROR_BODY,
    MAX_TOKEN_BODY,
    USER_AGENT,
    Unreachable,
    describe_exc,
    find_base,
    run_now,
    token_tls,
)

if TYPE_CHECKING:
    import ssl

CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 120.0
#: status line and headers of one answer, at most
MAX_HEAD = 64 << 10


class Unsure(Exception):
    """The blocking client cannot tell (the connection broke, the registry answered 5xx,
    something it does not speak): the aiohttp client, which retries, takes over."""


class _Broken(OSError):
    """The answer was not well-formed HTTP/1.1."""


@dataclass(frozen=True)
class SmallReply:
    """A small, fully read answer; header names in lower case."""

    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class _Url:
    scheme: str
    host: str  # without brackets
    port: int
    netloc: str  # as given, for the Host header
    target: str  # path and query


def _split(url: str) -> _Url:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise Unsure(f"{url}: not an http(s) URL")
    netloc, slash, path = rest.partition("/")
    if "@" in netloc or not netloc:
        raise Unsure(f"{url}: unusual URL")
    if netloc.startswith("["):
        host, _, after = netloc[1:].partition("]")
        port_text = after[1:] if after.startswith(":") else ""
    else:
        host, _, port_text = netloc.partition(":")
    port = int(port_text) if port_text.isdigit() else 443 if scheme == "https" else 80
    target = slash + path or "/"
    if (port_text and not port_text.isdigit()) or port > 65535:
        raise Unsure(f"{url}: bad port")
    if not all(" " < c < "\x7f" for c in target):
        raise Unsure(f"{url}: characters aiohttp would quote")
    return _Url(scheme, host, port, netloc, target)


def _wire_host(host: str) -> Any:
    """``host`` as getaddrinfo and TLS take it: bytes when it is ASCII, because a str goes
    through the idna codec, whose import is ~2 ms of a no-op push; else the str."""
    return host.encode("ascii") if host.isascii() else host


class _Connection:
    """One keep-alive connection to one origin."""

    def __init__(self, url: _Url, tls: ssl.SSLContext | bool) -> None:
        host = _wire_host(url.host)
        sock = socket.create_connection((host, url.port), timeout=CONNECT_TIMEOUT)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if url.scheme == "https":
                if isinstance(tls, bool):  # https always gets a context (registry_endpoint)
                    raise Unsure(f"{url.netloc}: no TLS context")
                sock = tls.wrap_socket(sock, server_hostname=host)
            sock.settimeout(READ_TIMEOUT)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.reader = sock.makefile("rb")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def exchange(
        self, method: str, url: _Url, headers: dict[str, str], body: bytes, limit: int
    ) -> tuple[SmallReply, bool]:
        """Send one request; returns the answer (body cut at ``limit`` + 1 bytes) and
        whether the connection can carry another."""
        lines = [f"{method} {url.target} HTTP/1.1", f"Host: {url.netloc}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method in ("PUT", "POST", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        if any("\r" in line or "\n" in line for line in lines):
            raise Unsure("a header or URL spans lines")  # aiohttp refuses it with its words
        text = "\r\n".join(lines) + "\r\n\r\n"
        try:
            self.sock.sendall(text.encode("latin-1") + body)
        except UnicodeEncodeError:
            raise Unsure("a header value is not latin-1") from None
        status, fields = self._head()
        while 100 <= status < 200:
            status, fields = self._head()
        reusable = "close" not in fields.get("connection", "").lower()
        if method == "HEAD" or status in (204, 304):
            data = b""
        elif "chunked" in fields.get("transfer-encoding", "").lower():
            data, whole = self._chunked(limit)
            reusable = reusable and whole
        elif "content-length" in fields:
            length = fields["content-length"]
            if not length.isdigit():
                raise _Broken(f"bad Content-Length {length[:40]!r}")
            data = self._exact(min(int(length), limit + 1))
            reusable = reusable and int(length) <= limit + 1
        else:
            data = self.reader.read(limit + 1)  # the body ends when the connection does
            reusable = False
        return SmallReply(status, fields, data), reusable

    def _head(self) -> tuple[int, dict[str, str]]:
        line = self.reader.readline(MAX_HEAD)
        if not line:
            raise ConnectionResetError("connection closed before an answer")
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise _Broken(f"not an HTTP/1.1 answer: {line[:60]!r}")
        fields: dict[str, str] = {}
        total = len(line)
        while True:
            line = self.reader.readline(MAX_HEAD)
            total += len(line)
            if total > MAX_HEAD or not line.endswith(b"\n"):
                raise _Broken("headers too long or cut short")
            if line in (b"\r\n", b"\n"):
                return int(parts[1]), fields
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon:
                raise _Broken(f"malformed header line {line[:60]!r}")
            fields.setdefault(name.strip().lower(), value.strip())  # the first, as aiohttp

    def _exact(self, n: int) -> bytes:
        data = self.reader.read(n)
        if len(data) < n:
            raise ConnectionResetError("connection closed inside an answer")
        return data

    def _chunked(self, limit: int) -> tuple[bytes, bool]:
        out = bytearray()
        while True:
            line = self.reader.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _Broken(f"bad chunk size {line[:40]!r}") from None
            if size == 0:
                while self.reader.readline(MAX_HEAD) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(out), True
            if len(out) + size > limit + 1:
                out += self._exact(limit + 1 - len(out))
                return bytes(out), False
            out += self._exact(size)
            self._exact(2)  # CRLF after the chunk


#: what a broken connection raises here (ssl.SSLError and timeouts are OSErrors)
_NETWORK = (OSError,)


class BlockingRegistryHttp:
    """The blocking twin of :class:`registry_http.RegistryHttp` for small requests."""

    def __init__(
        self,
        registry: str,
        *,
        config: RegistriesConfig,
        credentials: Callable[[], Credentials],
        endpoint: str | None = None,
    ) -> None:
        self.registry = registry
        self.endpoint = endpoint or registry
        self.config = config
        self.auth = Authenticator(registry, credentials)
        self.base: str | None = None
        self.tls: ssl.SSLContext | bool = False
        self._connections: dict[tuple[str, str, int], _Connection] = {}
        self._ping_failures: list[BaseException] = []

    def connect(self) -> str:
        """The endpoint's ``scheme://host``, pinged once as the aiohttp client does."""
        if self.base is None:
            try:
                self.base, self.tls = run_now(
                    find_base(self.endpoint, self.config, None, self._ping, self.auth)
                )
            except TransportError:
                if any(not isinstance(e, TimeoutError) for e in self._ping_failures):
                    # the aiohttp client words connection failures its own way: it says
                    raise Unsure("cannot connect") from None
                raise
        return self.base

    async def _ping(self, url: str, tls: ssl.SSLContext | bool) -> tuple[int, str | None]:
        try:
            reply = self._send("GET", url, {}, b"", tls, MAX_ERROR_BODY)
        except _NETWORK as exc:
            self._ping_failures.append(exc)
            raise Unreachable(describe_exc(exc)) from None
        return reply.status, reply.header("WWW-Authenticate")

    def request(
        self,
        method: str,
        path: str,
        *,
        scopes: Iterable[str],
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> SmallReply:
        """Send a request to a path under the endpoint, authenticated as the aiohttp
        client would; raises :class:`Unsure` where that client would retry."""
        scopes = tuple(scopes)
        url = self.connect() + path
        reauthed = False
        while True:
            send = dict(headers or {})
            auth = run_now(self.auth.header(scopes, self._token_fetch))
            if auth is not None:
                send["Authorization"] = auth
            try:
                reply = self._send(method, url, send, body, self.tls, MAX_ERROR_BODY)
            except _NETWORK as exc:
                raise Unsure(describe_exc(exc)) from None
            if not reauthed and self.auth.challenged(
                reply.status, reply.header("WWW-Authenticate"), scopes
            ):
                reauthed = True
                continue
            if reply.status >= 500:
                raise Unsure(f"answered {reply.status}")
            return reply

    async def _token_fetch(
        self, method: str, url: str, headers: dict[str, str], form: dict[str, str] | None
    ) -> TokenReply:
        send = dict(headers)
        body = b""
        if form is not None:
            body = urlencode(form).encode()
            send["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            reply = self._send(method, url, send, body, token_tls(url, self.config), MAX_TOKEN_BODY)
        except _NETWORK as exc:
            raise Unsure(describe_exc(exc)) from None
        if reply.status >= 500:
            raise Unsure(f"token server answered {reply.status}")
        return TokenReply(reply.status, reply.body)

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes,
        tls: ssl.SSLContext | bool,
        limit: int,
    ) -> SmallReply:
        where = _split(url)
        key = (where.scheme, where.host, where.port)
        send = {"User-Agent": USER_AGENT, "Accept": "*/*", "Accept-Encoding": "identity"}
        send.update(headers)
        connection = self._connections.pop(key, None)
        if connection is not None:
            try:
                reply, reusable = connection.exchange(method, where, send, body, limit)
            except _NETWORK:
                # the server may have closed the idle connection: once more on a new one
                connection.close()
                connection = None
        if connection is None:
            connection = _Connection(where, tls)
            try:
                reply, reusable = connection.exchange(method, where, send, body, limit)
            except BaseException:
                connection.close()
                raise
        if reusable:
            self._connections[key] = connection
        else:
            connection.close()
        return reply

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()


def connect_blocking(registry: str, *, config: RegistriesConfig) -> BlockingRegistryHttp:
    """A blocking client for ``registry`` (a reference's domain) with the user's
    credentials, as :func:`registry.connect` makes an aiohttp one."""
    return BlockingRegistryHttp(
        registry,
        config=config,
        credentials=credentials_loader(registry),
        endpoint=api_host(registry),
    )
