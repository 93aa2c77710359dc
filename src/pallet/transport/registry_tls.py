"""TLS contexts per registry: the system CAs plus the registry's own ``certs.d`` directory
(CA certificates ``*.crt``, client certificate pairs ``NAME.cert`` + ``NAME.key``)."""

from __future__ import annotations

import ssl
from pathlib import Path

from pallet.errors import TransportError
from pallet.transport.registry_config import RegistriesConfig


def tls_context(registry: str, config: RegistriesConfig, *, verify: bool = True) -> ssl.SSLContext:
    """The context to reach ``registry`` with. ``verify=False`` is only ever asked for
    registries the user listed as insecure (or loopback ones)."""
    if verify:
        ctx = ssl.create_default_context()
    else:
        # Nothing is verified, so the system CAs are not loaded: that takes a tenth of
        # a second, paid on every push and pull to a loopback registry.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    for directory in config.host_cert_dirs(registry):
        _load_dir(ctx, directory)
    return ctx


def _load_dir(ctx: ssl.SSLContext, directory: Path) -> None:
    for path in sorted(directory.iterdir()):
        try:
            if path.suffix == ".crt":
                ctx.load_verify_locations(cafile=str(path))
            elif path.suffix == ".cert":
                key = path.with_suffix(".key")
                if not key.is_file():
                    raise TransportError(f"{path}: client certificate without {key.name}")
                ctx.load_cert_chain(str(path), str(key))
            elif path.suffix == ".key" and not path.with_suffix(".cert").is_file():
                raise TransportError(f"{path}: client key without {path.stem}.cert")
        except (ssl.SSLError, OSError) as exc:
            raise TransportError(f"{path}: cannot load certificate: {exc}") from None
