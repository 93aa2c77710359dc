"""Registry credentials in Docker's ``config.json`` (``$DOCKER_CONFIG``, else
``~/.docker``): ``auths`` entries, and ``credHelpers`` / ``credsStore`` through the
``docker-credential-NAME get|store|erase`` helper protocol.

Secrets never appear in messages or ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pallet.errors import TransportError
from pallet.transport.registry_config import DOCKER_HUB

if TYPE_CHECKING:
    import subprocess

#: the key Docker files docker.io credentials under
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
#: what a helper's Username says when its Secret is an identity (refresh) token
IDENTITY_TOKEN_USER = "<token>"
HELPER_TIMEOUT = 30


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = field(default="", repr=False)
    #: an OAuth2 refresh token that replaces the password with token auth
    identity_token: str = field(default="", repr=False)

    def __bool__(self) -> bool:
        return bool(self.username or self.identity_token)


def config_key(registry: str) -> str:
    return DOCKER_HUB_KEY if registry == DOCKER_HUB else registry


def _bare(key: str) -> str:
    # auths keys may be URLs ("https://host:5000/v1/"); compare their host part
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    key = key.split("/", 1)[0]
    return DOCKER_HUB if key in ("index.docker.io", "registry-1.docker.io") else key


class DockerConfig:
    """One ``config.json``; unknown keys are kept as they are when it is rewritten."""

    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            base = os.environ.get("DOCKER_CONFIG") or os.path.join(
                os.path.expanduser("~"), ".docker"
            )
            path = Path(base) / "config.json"
        self.path = path

    def _load(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_bytes() or b"{}")
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise TransportError(f"{self.path}: cannot read: {exc}") from None
        if not isinstance(doc, dict):
            raise TransportError(f"{self.path}: not a JSON object")
        return doc

    def _save(self, doc: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        import tempfile

        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".config.json.")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f, indent="\t")
                f.write("\n")
            os.chmod(tmp, 0o600)  # it holds passwords
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def helper_for(self, registry: str, doc: dict[str, Any] | None = None) -> str | None:
        doc = self._load() if doc is None else doc
        helpers = doc.get("credHelpers")
        if isinstance(helpers, dict):
            for key, name in helpers.items():
                if isinstance(name, str) and name and _bare(key) == registry:
                    return name
        store = doc.get("credsStore")
        return store if isinstance(store, str) and store else None

    def get(self, registry: str) -> Credentials:
        """Credentials for ``registry`` (a reference's domain); empty if there are none."""
        doc = self._load()
        helper = self.helper_for(registry, doc)
        if helper is not None:
            creds = CredentialHelper(helper).get(config_key(registry))
            if creds:
                return creds
        auths = doc.get("auths")
        if not isinstance(auths, dict):
            return Credentials()
        for key, entry in auths.items():
            if _bare(key) == registry and isinstance(entry, dict):
                return self._decode_entry(key, entry)
        return Credentials()

    def _decode_entry(self, key: str, entry: dict[str, Any]) -> Credentials:
        username, password = entry.get("username", ""), entry.get("password", "")
        auth = entry.get("auth")
        if isinstance(auth, str) and auth:
            try:
                username, _, password = base64.b64decode(auth).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise TransportError(f"{self.path}: invalid 'auth' for {key}") from None
        token = entry.get("identitytoken", "")
        if not all(isinstance(v, str) for v in (username, password, token)):
            raise TransportError(f"{self.path}: invalid entry for {key}")
        return Credentials(username, password, token)

    def store(self, registry: str, creds: Credentials) -> None:
        doc = self._load()
        helper = self.helper_for(registry, doc)
        key = config_key(registry)
        if helper is not None:
            CredentialHelper(helper).store(key, creds)
            return
        auths = doc.setdefault("auths", {})
        if not isinstance(auths, dict):
            raise TransportError(f"{self.path}: 'auths' is not an object")
        for old in [k for k in auths if _bare(k) == registry]:
            del auths[old]
        entry: dict[str, str] = {}
        if creds.identity_token:
            entry["identitytoken"] = creds.identity_token
            entry["auth"] = base64.b64encode(f"{creds.username}:".encode()).decode()
        else:
            entry["auth"] = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        auths[key] = entry
        self._save(doc)

    def erase(self, registry: str) -> bool:
        """Forget ``registry``'s credentials; False if there were none."""
        doc = self._load()
        found = False
        helper = self.helper_for(registry, doc)
        if helper is not None:
            found = CredentialHelper(helper).erase(config_key(registry))
        auths = doc.get("auths")
        if isinstance(auths, dict):
            stale = [k for k in auths if _bare(k) == registry]
            for key in stale:
                del auths[key]
            if stale:
                found = True
                self._save(doc)
        return found


class CredentialHelper:
    """``docker-credential-NAME``, spoken to over stdin/stdout as Docker does."""

    def __init__(self, name: str) -> None:
        self.program = f"docker-credential-{name}"

    def _run(self, action: str, payload: str) -> subprocess.CompletedProcess[str]:
        import subprocess  # only for credential helpers

        try:
            return subprocess.run(
                [self.program, action],
                input=payload,
                capture_output=True,
                text=True,
                timeout=HELPER_TIMEOUT,
                check=False,
            )
        except FileNotFoundError:
            raise TransportError(f"credential helper {self.program} not found in PATH") from None
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TransportError(f"credential helper {self.program} failed: {exc}") from None

    def _fail(self, action: str, proc: subprocess.CompletedProcess[str]) -> TransportError:
        # a helper's own message (stdout) names the problem; it never holds the secret
        message = (proc.stdout.strip() or proc.stderr.strip())[:200]
        return TransportError(f"credential helper {self.program} {action} failed: {message}")

    def get(self, server: str) -> Credentials:
        proc = self._run("get", server)
        if proc.returncode != 0:
            if "credentials not found" in (proc.stdout + proc.stderr).lower():
                return Credentials()
            raise self._fail("get", proc)
        try:
            doc = json.loads(proc.stdout)
            username, secret = doc.get("Username", ""), doc["Secret"]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise TransportError(
                f"credential helper {self.program} gave malformed output"
            ) from None
        if not isinstance(username, str) or not isinstance(secret, str):
            raise TransportError(f"credential helper {self.program} gave malformed output")
        if username == IDENTITY_TOKEN_USER:
            return Credentials(identity_token=secret)
        return Credentials(username, secret)

    def store(self, server: str, creds: Credentials) -> None:
        if creds.identity_token:
            user, secret = IDENTITY_TOKEN_USER, creds.identity_token
        else:
            user, secret = creds.username, creds.password
        payload = json.dumps({"ServerURL": server, "Username": user, "Secret": secret})
        proc = self._run("store", payload)
        if proc.returncode != 0:
            raise self._fail("store", proc)

    def erase(self, server: str) -> bool:
        proc = self._run("erase", server)
        if proc.returncode != 0:
            if "credentials not found" in (proc.stdout + proc.stderr).lower():
                return False
            raise self._fail("erase", proc)
        return True


def credentials_loader(
    registry: str,
    *,
    credentials: Credentials | None = None,
    docker_config: DockerConfig | None = None,
) -> Callable[[], Credentials]:
    """What gives a client ``registry``'s credentials when it first needs them: the ones
    given, else the user's (``config.json``, a credential helper)."""
    if credentials is not None:
        fixed = credentials
        return lambda: fixed
    store = docker_config or DockerConfig()
    return lambda: store.get(registry)
