"""Registry authentication: Basic, and the Docker token flow.

A 401 carries ``WWW-Authenticate: Bearer realm=...,service=...,scope=...``; the client asks
the realm for a token for the scopes it needs (anonymously, with Basic credentials, or
with a refresh token as an OAuth2 form POST), then retries with ``Authorization: Bearer``.
Tokens are kept per scope set until shortly before they expire.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from pallet.errors import AuthenticationError, TransportError
from pallet.transport.registry_credentials import Credentials

#: token lifetime assumed when the server does not say (the spec's minimum)
DEFAULT_TOKEN_TTL = 60
#: renew a token this long before it expires, so requests in flight do not race it
EXPIRY_MARGIN = 10
MAX_TOKEN_RESPONSE = 1 << 20
CLIENT_ID = "pallet"

_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "bearer" or "basic"
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")


def parse_challenge(header: str) -> Challenge | None:
    """The first challenge of a ``WWW-Authenticate`` value; None if unreadable."""
    header = header.strip()
    scheme, _, rest = header.partition(" ")
    if not scheme:
        return None
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            break
        value = m.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[m.group(1).lower()] = value
        pos = m.end()
    return Challenge(scheme.lower(), params)


def repository_scope(repository: str, actions: str) -> str:
    return f"repository:{repository}:{actions}"


def basic_header(creds: Credentials) -> str:
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True)
class TokenReply:
    """What a token endpoint answered: status, body (bounded) and its own error text."""

    status: int
    body: bytes


#: ``fetch(method, url, headers, form)`` -> reply; provided by the HTTP layer
TokenFetcher = Callable[[str, str, dict[str, str], dict[str, str] | None], Awaitable[TokenReply]]


@dataclass
class _Token:
    value: str
    expires: float


class Authenticator:
    """Auth state for one registry: its challenge, its tokens, its credentials."""

    def __init__(self, registry: str, credentials: Callable[[], Credentials]) -> None:
        self.registry = registry
        self._load_credentials = credentials
        self._creds: Credentials | None = None
        self.challenge: Challenge | None = None
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._refresh_token: str | None = None
        #: ask the token server for a refresh token too (what ``login`` stores)
        self.offline = False

    @property
    def credentials(self) -> Credentials:
        if self._creds is None:
            self._creds = self._load_credentials()
            if self._creds.identity_token:
                self._refresh_token = self._creds.identity_token
        return self._creds

    def use_credentials(self, creds: Credentials) -> None:
        """Replace the stored credentials (``login`` checks new ones this way)."""
        self._creds = creds
        self._refresh_token = creds.identity_token or None
        self._tokens.clear()

    def learn(self, www_authenticate: str | None) -> None:
        if www_authenticate:
            challenge = parse_challenge(www_authenticate)
            if challenge is not None and challenge.scheme in ("bearer", "basic"):
                self.challenge = challenge

    def forget(self, scopes: Iterable[str]) -> None:
        self._tokens.pop(tuple(sorted(scopes)), None)

    def challenged(self, status: int, www_authenticate: str | None, scopes: Iterable[str]) -> bool:
        """Whether a request answered ``status`` deserves one more try with fresh auth:
        a 401's challenge may ask for another scope or scheme, so it is learned and the
        token for ``scopes`` dropped."""
        if status != 401 or not www_authenticate:
            return False
        self.learn(www_authenticate)
        self.forget(scopes)
        return True

    async def header(self, scopes: Iterable[str], fetch: TokenFetcher) -> str | None:
        """The ``Authorization`` value for a request needing ``scopes``; None when the
        registry has not asked for auth (yet)."""
        challenge = self.challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            creds = self.credentials
            if not creds.username:
                raise AuthenticationError(
                    f"{self.registry}: unauthorized: the registry requires a login "
                    f"(pallet login {self.registry})"
                )
            return basic_header(creds)
        key = tuple(sorted(scopes))
        token = self._tokens.get(key)
        if token is None or token.expires <= time.monotonic():
            token = await self._fetch_token(challenge, key, fetch)
            self._tokens[key] = token
        return "Bearer " + token.value

    async def _fetch_token(
        self, challenge: Challenge, scopes: tuple[str, ...], fetch: TokenFetcher
    ) -> _Token:
        realm = challenge.realm
        if not realm.startswith(("https://", "http://")):
            raise TransportError(f"{self.registry}: token realm {realm!r} is not an http(s) URL")
        creds = self.credentials
        if self._refresh_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": self._refresh_token,
                "service": challenge.service,
                "client_id": CLIENT_ID,
                "scope": " ".join(scopes),
            }
            reply = await fetch("POST", realm, {}, form)
        else:
            query: list[tuple[str, str]] = [("service", challenge.service)]
            query += [("scope", s) for s in scopes]
            headers: dict[str, str] = {}
            if creds.username:
                headers["Authorization"] = basic_header(creds)
                query += [("account", creds.username)]
                if self.offline:
                    query += [("offline_token", "true"), ("client_id", CLIENT_ID)]
            url = realm + ("&" if "?" in realm else "?") + urlencode(query)
            reply = await fetch("GET", url, headers, None)
        return self._parse_token(reply)

    def _parse_token(self, reply: TokenReply) -> _Token:
        if reply.status in (401, 403):
            raise AuthenticationError(
                f"{self.registry}: unauthorized: {token_error_message(reply.body)}"
            )
        if reply.status != 200:
            raise TransportError(
                f"{self.registry}: token server answered {reply.status}: "
                f"{token_error_message(reply.body)}"
            )
        try:
            doc: Any = json.loads(reply.body)
            value = doc.get("token") or doc.get("access_token")
            ttl = int(doc.get("expires_in") or DEFAULT_TOKEN_TTL)
            refresh = doc.get("refresh_token")
        except (ValueError, AttributeError, TypeError):
            raise TransportError(f"{self.registry}: token server sent a malformed reply") from None
        if not isinstance(value, str) or not value:
            raise TransportError(f"{self.registry}: token server sent no token")
        if isinstance(refresh, str) and refresh:
            self._refresh_token = refresh
        ttl = max(ttl, DEFAULT_TOKEN_TTL)
        return _Token(value, time.monotonic() + ttl - EXPIRY_MARGIN)

    @property
    def refresh_token(self) -> str | None:
        return self._refresh_token


def token_error_message(body: bytes) -> str:
    """The human part of a token server's or registry's error body, bounded."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text = body[:200].decode("utf-8", "replace").strip()
        return text or "no details"
    if isinstance(doc, dict):
        errors = doc.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            code = str(first.get("code", "")).lower().replace("_", " ")
            message = str(first.get("message", ""))
            if code and message and message.lower() != code:
                return f"{code}: {message}"[:300]
            return (message or code or "no details")[:300]
        for key in ("details", "error_description", "message", "error"):
            if isinstance(doc.get(key), str) and doc[key]:
                return str(doc[key])[:300]
    return "no details"
