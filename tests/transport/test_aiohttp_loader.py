"""aiohttp imported through pallet's loader skips reading the CA bundle file, yet its
default contexts still verify servers against the system CA directory (and refuse what
that directory does not vouch for)."""

from __future__ import annotations

import http.server
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

sys.path.insert(0, str(Path(__file__).parent))
from test_registry_client_tls import make_ca, make_server_cert, pem

_CLIENT = """
import asyncio, json, sys
from pallet.transport import aiohttp_loader
import aiohttp, aiohttp.connector as connector

async def get(url):
    async with aiohttp.ClientSession() as session:  # default ssl: aiohttp's own context
        async with session.get(url) as reply:
            return reply.status, await reply.text()

loaded = connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509"]
try:
    status, text = asyncio.run(get(sys.argv[1]))
    print(json.dumps({"loaded": loaded, "status": status, "text": text}))
except aiohttp.ClientConnectorCertificateError as exc:
    print(json.dumps({"loaded": loaded, "error": "certificate", "detail": str(exc)}))
"""


def _hashed_ca_dir(directory: Path, ca_pem: bytes) -> Path:
    directory.mkdir()
    (directory / "ca.pem").write_bytes(ca_pem)
    subprocess.run(["openssl", "rehash", str(directory)], check=True)
    assert any(p.name.endswith(".0") for p in directory.iterdir())
    return directory


@pytest.fixture()
def tls_server(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    """An https server on 127.0.0.1 with a certificate of a fresh CA: (url, CA pem)."""
    ca_key, ca = make_ca("loader test CA")
    key, cert = make_server_cert(ca_key, ca)
    (tmp_path / "server.crt").write_bytes(pem(cert))
    (tmp_path / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"hello over tls"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/", pem(ca)
    finally:
        server.shutdown()
        server.server_close()


def _client(url: str, ca_dir: Path) -> dict[str, object]:
    import json

    env = {k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"}
    env["SSL_CERT_DIR"] = str(ca_dir)
    proc = subprocess.run(
        [sys.executable, "-c", _CLIENT, url], capture_output=True, text=True, env=env, check=True
    )
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def test_default_context_verifies_through_the_ca_directory(
    tls_server: tuple[str, bytes], tmp_path: Path
) -> None:
    url, ca_pem = tls_server
    result = _client(url, _hashed_ca_dir(tmp_path / "cas", ca_pem))
    assert result["loaded"] == 0, "the bundle file should not have been read at import"
    assert result["status"] == 200
    assert result["text"] == "hello over tls"


def test_default_context_still_refuses_an_unknown_ca(
    tls_server: tuple[str, bytes], tmp_path: Path
) -> None:
    url, _ = tls_server
    _, other = make_ca("an unrelated CA")
    result = _client(url, _hashed_ca_dir(tmp_path / "other", pem(other)))
    assert result.get("error") == "certificate", result


def test_a_user_chosen_bundle_is_left_alone(tmp_path: Path) -> None:
    """SSL_CERT_FILE naming a bundle of the user's own is honoured, not hidden."""
    _, ca = make_ca("user bundle CA")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pem(ca))
    env = dict(os.environ, SSL_CERT_FILE=str(bundle))
    script = (
        "from pallet.transport import aiohttp_loader; import aiohttp.connector as c, os;"
        "print(c._SSL_CONTEXT_VERIFIED.cert_store_stats()['x509'], os.environ['SSL_CERT_FILE'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    assert out == ["1", str(bundle)]
