"""``login`` / ``logout``: check credentials against a registry, then keep them in (or
remove them from) Docker's ``config.json`` or its credential helper."""

from __future__ import annotations

from pallet.errors import InvalidArgument
from pallet.transport.registry_config import DOCKER_HUB, RegistriesConfig, api_host
from pallet.transport.registry_credentials import Credentials, DockerConfig
from pallet.transport.registry_http import RegistryHttp

_HUB_ALIASES = frozenset({"index.docker.io", "registry-1.docker.io", "docker.io"})


def registry_name(text: str | None) -> str:
    """The registry a ``login``/``logout`` argument names (default Docker Hub);
    accepts URLs as Docker does (``https://index.docker.io/v1/``)."""
    if not text:
        return DOCKER_HUB
    name = text
    for prefix in ("https://", "http://"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    name = name.split("/", 1)[0].lower()
    if not name:
        raise InvalidArgument(f"invalid registry {text!r}")
    return DOCKER_HUB if name in _HUB_ALIASES else name


def check_credentials(
    registry: str, creds: Credentials, *, config: RegistriesConfig | None = None
) -> Credentials:
    """Prove ``creds`` against ``registry`` (raises AuthenticationError with the registry's
    message if refused). Returns what to store: with token auth, a refresh token the
    token server issued replaces the password, as Docker does."""
    http = RegistryHttp(
        registry,
        config=config or RegistriesConfig.load(),
        credentials=lambda: creds,
        endpoint=api_host(registry),
    )
    http.auth.offline = True
    try:
        reply = http.runner.run(http.reply("GET", "/v2/", scopes=[]))
        if reply.status != 200:
            raise http.error(registry, reply)
        refresh = http.auth.refresh_token
    finally:
        http.close()
    if refresh and refresh != creds.identity_token:
        return Credentials(creds.username, identity_token=refresh)
    return creds


def login(
    registry: str,
    creds: Credentials,
    *,
    config: RegistriesConfig | None = None,
    docker_config: DockerConfig | None = None,
) -> None:
    stored = check_credentials(registry, creds, config=config)
    (docker_config or DockerConfig()).store(registry, stored)


def logout(registry: str, *, docker_config: DockerConfig | None = None) -> bool:
    """Forget ``registry``'s credentials; False if there were none."""
    return (docker_config or DockerConfig()).erase(registry)
