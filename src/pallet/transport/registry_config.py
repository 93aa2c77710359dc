"""Per-registry settings: which hosts may use plain HTTP, docker.io mirrors, and where
CA certificates and client certificates live.

``~/.config/pallet/registries.toml`` (``$XDG_CONFIG_HOME/pallet``)::

    insecure = ["myregistry.lan:5000"]     # plain HTTP / unverified TLS allowed

    [mirrors]
    "docker.io" = ["https://mirror.example.com", "127.0.0.1:5001"]

Certificates are looked up as Docker does, in ``/etc/docker/certs.d/HOST[:PORT]/`` and then
``~/.config/pallet/certs.d/HOST[:PORT]/``: ``*.crt`` are CA certificates, ``NAME.cert`` with
``NAME.key`` a client certificate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pallet.errors import InvalidArgument

DOCKER_HUB = "docker.io"
#: where docker.io's API lives (``docker.io`` itself only redirects)
DOCKER_HUB_API = "registry-1.docker.io"
SYSTEM_CERTS_D = Path("/etc/docker/certs.d")
#: hosts that may use plain HTTP without configuration, as Docker allows
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "pallet"


def host_of(registry: str) -> str:
    """``registry`` without its port (``[::1]:5000`` -> ``[::1]``)."""
    if registry.startswith("["):
        return registry.split("]", 1)[0] + "]"
    return registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry


def is_loopback(registry: str) -> bool:
    return host_of(registry) in LOOPBACK_HOSTS


@dataclass(frozen=True)
class Mirror:
    """A pull-through mirror endpoint: scheme (None: try https, then http if allowed) and
    ``host[:port]``."""

    host: str
    scheme: str | None = None

    @classmethod
    def parse(cls, text: str) -> Mirror:
        scheme: str | None = None
        rest = text
        for prefix in ("https://", "http://"):
            if text.startswith(prefix):
                scheme, rest = prefix[:-3], text[len(prefix) :]
        rest = rest.rstrip("/")
        if not rest or "/" in rest:
            raise InvalidArgument(f"registries.toml: invalid mirror {text!r} (host[:port] only)")
        return cls(rest, scheme)


@dataclass(frozen=True)
class RegistriesConfig:
    insecure: frozenset[str] = frozenset()
    mirrors: dict[str, tuple[Mirror, ...]] = field(default_factory=dict)
    cert_dirs: tuple[Path, ...] = (SYSTEM_CERTS_D,)

    @classmethod
    def load(cls, directory: Path | None = None) -> RegistriesConfig:
        directory = directory or config_dir()
        cert_dirs = (SYSTEM_CERTS_D, directory / "certs.d")
        path = directory / "registries.toml"
        try:
            text = path.read_text()
        except FileNotFoundError:
            return cls(cert_dirs=cert_dirs)
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"{path}: {exc}") from None
        import tomllib  # only when there is a file (most commands have none)

        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidArgument(f"{path}: {exc}") from None
        insecure = doc.get("insecure", [])
        mirrors = doc.get("mirrors", {})
        if not isinstance(insecure, list) or not all(isinstance(h, str) for h in insecure):
            raise InvalidArgument(f"{path}: 'insecure' must be a list of host[:port] strings")
        if not isinstance(mirrors, dict):
            raise InvalidArgument(f"{path}: [mirrors] must map a registry to a list of mirrors")
        parsed: dict[str, tuple[Mirror, ...]] = {}
        for registry, hosts in mirrors.items():
            if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
                raise InvalidArgument(f"{path}: mirrors of {registry!r} must be a list of strings")
            parsed[registry] = tuple(Mirror.parse(h) for h in hosts)
        return cls(frozenset(insecure), parsed, cert_dirs)

    def is_insecure(self, registry: str) -> bool:
        return registry in self.insecure or host_of(registry) in self.insecure

    def allows_http(self, registry: str) -> bool:
        return is_loopback(registry) or self.is_insecure(registry)

    def mirrors_of(self, registry: str) -> tuple[Mirror, ...]:
        return self.mirrors.get(registry, ())

    def host_cert_dirs(self, registry: str) -> list[Path]:
        return [d / registry for d in self.cert_dirs if (d / registry).is_dir()]


def api_host(registry: str) -> str:
    """The host that serves the registry API of ``registry`` (a reference's domain)."""
    return DOCKER_HUB_API if registry == DOCKER_HUB else registry
