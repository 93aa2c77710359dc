"""How to reach a registry endpoint: the decisions both HTTP backends share.

pallet speaks to registries through two backends: aiohttp (:mod:`registry_http`), for
transfers, and a small blocking client on the standard library (:mod:`registry_probe`),
for the few requests of a push that finds its image already in place, so that such a
push never imports aiohttp and asyncio (about half of its time). What they must agree on
is decided here, once: which schemes are tried and in which order, which TLS context an
endpoint or a token server gets (system CAs, ``certs.d``, insecure registries), what the
``/v2/`` ping's answer means, and what an error answer says. Authentication
(:class:`registry_auth.Authenticator`) is shared the same way.

The shared steps are coroutines; the blocking backend's awaits never suspend, so it
runs them to completion with :func:`run_now`, without an event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from pallet.errors import AuthenticationError, TransportError
from pallet.oci import mediatypes as mt
from pallet.transport.registry_auth import Authenticator, token_error_message
from pallet.transport.registry_config import RegistriesConfig, is_loopback

if TYPE_CHECKING:
    import ssl

T = TypeVar("T")

USER_AGENT = "pallet/0.1"
#: how much of an answer's body is read when only its error message matters
MAX_ERROR_BODY = 64 << 10
MAX_TOKEN_BODY = 1 << 20
#: every manifest media type, for manifest requests
ACCEPT_MANIFESTS = ", ".join(
    [mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST]
)


class Unreachable(Exception):
    """A backend could not get an answer (connection refused or dropped, TLS failure,
    timeout); the message says why."""


#: ``get(url, tls)``: GET ``url``; returns (status, ``WWW-Authenticate`` value or None);
#: raises :class:`Unreachable`
PingGet = Callable[[str, "ssl.SSLContext | bool"], Awaitable[tuple[int, str | None]]]


def endpoint_tls(endpoint: str, config: RegistriesConfig) -> ssl.SSLContext:
    """The TLS context for ``https://endpoint``. Loopback registries are trusted as Docker
    trusts them, unless the user gave CA certificates for them in certs.d; registries
    listed as insecure are not verified."""
    from pallet.transport.registry_tls import tls_context

    verify = not config.is_insecure(endpoint) and (
        not is_loopback(endpoint) or bool(config.host_cert_dirs(endpoint))
    )
    return tls_context(endpoint, config, verify=verify)


def token_tls(url: str, config: RegistriesConfig) -> ssl.SSLContext | bool:
    """The TLS context for a token server's ``url`` (False for plain http)."""
    if not url.startswith("https://"):
        return False
    from pallet.transport.registry_tls import tls_context

    host = url.split("/", 3)[2]
    return tls_context(host, config, verify=not config.is_insecure(host))


async def find_base(
    endpoint: str,
    config: RegistriesConfig,
    forced_scheme: str | None,
    get: PingGet,
    auth: Authenticator,
) -> tuple[str, ssl.SSLContext | bool]:
    """``(scheme://endpoint, TLS)`` of the endpoint, found by pinging ``/v2/``: https
    first, then plain http where allowed (loopback and insecure registries). A 401
    teaches ``auth`` the registry's challenge."""
    http_ok = config.allows_http(endpoint)
    schemes = [forced_scheme] if forced_scheme else ["https"]
    if http_ok and not forced_scheme:
        schemes.append("http")
    last = "unknown error"
    for scheme in schemes:
        if scheme == "http" and not http_ok:
            raise TransportError(
                f"{endpoint}: plain http is only used for localhost and registries "
                "listed as insecure in registries.toml"
            )
        tls = endpoint_tls(endpoint, config) if scheme == "https" else False
        base = f"{scheme}://{endpoint}"
        try:
            status, challenge = await get(base + "/v2/", tls)
        except Unreachable as exc:
            last = str(exc)
            continue
        if status == 401:
            auth.learn(challenge)
        elif status >= 500:
            last = f"answered {status}"
            continue
        elif status != 200:
            raise TransportError(f"{endpoint}: not a registry (GET /v2/ answered {status})")
        return base, tls
    raise TransportError(f"{endpoint}: cannot connect: {last}")


def reply_error(what: str, status: int, body: bytes) -> TransportError:
    """The error for an unexpected answer about ``what``, with the registry's words."""
    message = token_error_message(body) if body else f"HTTP {status}"
    if status == 401:
        return AuthenticationError(f"{what}: unauthorized: {message}")
    if status == 403:
        return AuthenticationError(f"{what}: denied: {message}")
    return TransportError(f"{what}: {message} (HTTP {status})")


def describe_exc(exc: BaseException | None) -> str:
    """One short line saying what went wrong with a connection."""
    if exc is None:
        return "unknown error"
    if isinstance(exc, TimeoutError):  # asyncio's and socket's timeouts alike
        return "timed out"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def path_of(url: str) -> str:
    """The path of ``url`` (or of a path with a query), for error messages."""
    if url.startswith(("http://", "https://")):
        rest = url.split("/", 3)
        return "/" + rest[3].split("?", 1)[0] if len(rest) > 3 else "/"
    return url.split("?", 1)[0]


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine whose awaits all complete at once (the blocking backend's)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a blocking registry request suspended")
