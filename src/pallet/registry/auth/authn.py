"""Authenticating requests and answering them with the right challenge.

``mode = "none"``: everyone is anonymous and may do everything (loopback default).
``mode = "htpasswd"``: HTTP Basic against the htpasswd file; 401 ``Basic`` challenges.
``mode = "token"``: Docker token auth. ``/token`` trades Basic credentials for a JWT that
lists the granted scopes; the API accepts ``Bearer`` JWTs (and Basic, for simple clients).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pallet.errors import RegistryError
from pallet.registry.apierrors import ApiError
from pallet.registry.auth import jwt
from pallet.registry.auth.acl import AccessControl
from pallet.registry.auth.htpasswd import Htpasswd
from pallet.registry.config import RegistryConfig
from pallet.registry.names import is_valid_name


@dataclass(frozen=True)
class Identity:
    user: str | None  # None: anonymous
    # Scopes a bearer token grants, repository -> actions; None when not token-based.
    token_access: dict[str, frozenset[str]] | None = field(default=None, hash=False)


ANONYMOUS = Identity(None)


def load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The token signing key; generated (P-256, mode 0600) on first use."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise RegistryError(f"token key {path} is not an EC private key")
        return key
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return key


def parse_scope(scope: str) -> tuple[str, set[str]] | None:
    """``repository:<name>:<action,...>`` -> (name, actions); other scopes -> None."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    if kind != "repository" or not is_valid_name(name):
        return None
    wanted = {a for a in actions.split(",") if a}
    if "*" in wanted:
        wanted = {"pull", "push", "delete"}
    return name, wanted


class Authenticator:
    def __init__(self, config: RegistryConfig) -> None:
        self.config = config
        self.mode = config.auth.mode
        self.acl = AccessControl(config.auth)
        self.htpasswd = Htpasswd(config.htpasswd_path)
        self._key: ec.EllipticCurvePrivateKey | None = None
        if self.mode == "token":
            self._key = load_or_create_key(config.token_key_path)

    @property
    def open(self) -> bool:
        return self.mode == "none"

    # --- challenges -------------------------------------------------------------------

    def token_realm(self, scheme: str, host: str) -> str:
        return self.config.auth.token_realm or f"{scheme}://{host}/token"

    def challenge(self, scheme: str, host: str, scope: str | None, error: str = "") -> str:
        if self.mode == "token":
            parts = [
                f'realm="{self.token_realm(scheme, host)}"',
                f'service="{self.config.auth.token_service}"',
            ]
            if scope:
                parts.append(f'scope="{scope}"')
            if error:
                parts.append(f'error="{error}"')
            return "Bearer " + ",".join(parts)
        return f'Basic realm="{self.config.auth.realm}",charset="UTF-8"'

    # --- identifying the caller -------------------------------------------------------

    async def check_basic(self, header: str) -> str | None:
        """The user a Basic header proves, or None when it proves nothing."""
        try:
            raw = base64.b64decode(header.split(" ", 1)[1].strip(), validate=True).decode()
        except (IndexError, ValueError, binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = raw.partition(":")
        if not sep or not user:
            return None
        # bcrypt is slow on purpose: only a first check goes to a worker thread.
        ok = self.htpasswd.known_good(user, password) or await asyncio.to_thread(
            self.htpasswd.verify, user, password
        )
        return user if ok else None

    async def identify(self, authorization: str) -> Identity | None:
        """The caller, ANONYMOUS without credentials, None when credentials are wrong."""
        if not authorization:
            return ANONYMOUS
        scheme = authorization.split(" ", 1)[0].lower()
        if scheme == "basic":
            user = await self.check_basic(authorization)
            return None if user is None else Identity(user)
        if scheme == "bearer" and self.mode == "token":
            return self._check_bearer(authorization.split(" ", 1)[1].strip())
        return None

    def _check_bearer(self, token: str) -> Identity | None:
        assert self._key is not None
        try:
            claims = jwt.decode(token, self._key.public_key())
        except jwt.InvalidToken:
            return None
        now = time.time()
        auth = self.config.auth
        exp, nbf = claims.get("exp"), claims.get("nbf", 0)
        if not isinstance(exp, int | float) or exp < now or not isinstance(nbf, int | float):
            return None
        if nbf > now + 60 or claims.get("iss") != auth.token_issuer:
            return None
        if claims.get("aud") != auth.token_service:
            return None
        sub = claims.get("sub")
        access: dict[str, frozenset[str]] = {}
        for entry in claims.get("access") or []:
            if isinstance(entry, dict) and entry.get("type") == "repository":
                name, actions = entry.get("name"), entry.get("actions")
                if isinstance(name, str) and isinstance(actions, list):
                    access[name] = frozenset(a for a in actions if isinstance(a, str))
        return Identity(sub if isinstance(sub, str) and sub else None, access)

    # --- deciding ---------------------------------------------------------------------

    def authorize(
        self, identity: Identity, repo: str, actions: tuple[str, ...], scheme: str, host: str
    ) -> None:
        """Raise 401 (may succeed with other credentials) or 403 (never will)."""
        if self.open:
            return
        allowed = self.acl.allowed_actions(identity.user, repo)
        scope = f"repository:{repo}:{','.join(actions)}"
        if not set(actions) <= allowed:
            if identity.user is None:
                raise self.unauthorized(scheme, host, scope)
            raise ApiError(
                "DENIED",
                f"user {identity.user!r} may not {'/'.join(actions)} {repo!r}",
                detail=[{"Type": "repository", "Name": repo, "Action": a} for a in actions],
            )
        if identity.token_access is not None:
            granted = identity.token_access.get(repo, frozenset())
            if not set(actions) <= granted:
                raise self.unauthorized(scheme, host, scope, error="insufficient_scope")

    def unauthorized(self, scheme: str, host: str, scope: str | None, error: str = "") -> ApiError:
        return ApiError(
            "UNAUTHORIZED",
            "authentication required",
            headers={"WWW-Authenticate": self.challenge(scheme, host, scope, error)},
        )

    # --- token endpoint ---------------------------------------------------------------

    def issue_token(self, user: str | None, scopes: list[str]) -> dict[str, object]:
        assert self._key is not None
        auth = self.config.auth
        access = []
        for scope in scopes:
            parsed = parse_scope(scope)
            if parsed is None:
                continue
            name, wanted = parsed
            granted = wanted & self.acl.allowed_actions(user, name)
            access.append(
                {"type": "repository", "name": name, "actions": sorted(granted)},
            )
        now = int(time.time())
        claims = {
            "iss": auth.token_issuer,
            "sub": user or "",
            "aud": auth.token_service,
            "exp": now + auth.token_ttl,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        token = jwt.encode(claims, self._key)
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return {
            "token": token,
            "access_token": token,
            "expires_in": auth.token_ttl,
            "issued_at": issued,
        }
