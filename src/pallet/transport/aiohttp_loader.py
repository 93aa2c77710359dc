"""Import aiohttp without paying twice for the system CA bundle.

aiohttp builds two default SSL contexts when it is imported, and each reads and parses
the whole CA bundle file: on these machines that is about 90 ms, a third of a no-op
``pallet push``, spent even when the registry is plain http on localhost. pallet never
uses those two contexts for registries (``registry_tls.tls_context`` makes its own), so
while aiohttp is imported the bundle *file* is hidden from OpenSSL; the contexts keep
the CA *directory*, whose hashed entries OpenSSL reads on demand when it verifies, so
they still trust the same authorities. Done only when that directory holds hashed
certificates (Debian's update-ca-certificates makes both from one source) and
SSL_CERT_FILE is unset or names the system bundle anyway.
"""

from __future__ import annotations

import os
import ssl
import sys


def _hashed_ca_dir(path: str) -> bool:
    try:
        with os.scandir(path) as entries:
            return any(e.name.endswith(".0") for e in entries)
    except OSError:
        return False


def load() -> None:
    """Import aiohttp (a no-op once it is imported)."""
    if "aiohttp" in sys.modules:
        return
    defaults = ssl.get_default_verify_paths()
    chosen = os.environ.get("SSL_CERT_FILE")
    system_bundle = chosen is None or (
        os.path.realpath(chosen) == os.path.realpath(defaults.openssl_cafile)
    )
    hide = system_bundle and _hashed_ca_dir(os.environ.get("SSL_CERT_DIR", defaults.openssl_capath))
    if hide:
        os.environ["SSL_CERT_FILE"] = os.devnull
    try:
        import aiohttp  # noqa: F401
    finally:
        if hide:
            if chosen is None:
                del os.environ["SSL_CERT_FILE"]
            else:
                os.environ["SSL_CERT_FILE"] = chosen


load()
