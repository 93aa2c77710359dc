"""Real registries for the registry-client tests: the CNCF distribution registry
(/usr/bin/docker-registry) on 127.0.0.1, anonymous, with htpasswd Basic auth, or with
token auth from a small token server here; plus TCP proxies that cut or corrupt a
connection. Imported by the test modules (``sys.path`` gets this directory)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import bcrypt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

REGISTRY_BIN = "/usr/bin/docker-registry"
SERVICE = "pallet-test-registry"
ISSUER = "pallet-test-issuer"
USER, PASSWORD = "alice", "s3cret-pw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need_registry() -> None:
    if not os.access(REGISTRY_BIN, os.X_OK):
        pytest.skip(f"LOUD SKIP: {REGISTRY_BIN} (Debian docker-registry) is not installed")


@dataclass
class Registry:
    """A running docker-registry; ``host`` is ``127.0.0.1:PORT``."""

    host: str
    root: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_registry(
    workdir: Path,
    auth: dict[str, Any] | None = None,
    *,
    tls: dict[str, str] | None = None,
    port: int | None = None,
) -> Registry:
    need_registry()
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text"},
        "storage": {"filesystem": {"rootdirectory": str(workdir / "data")}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "pallet-test-secret"},
    }
    if auth:
        config["auth"] = auth
    if tls:
        config["http"]["tls"] = tls
    cfg = workdir / "config.yml"
    cfg.write_text(json.dumps(config))  # JSON is YAML
    log = workdir / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(cfg)], stdout=out, stderr=out)
    reg = Registry(f"127.0.0.1:{port}", workdir, log, proc)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {reg.log_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return reg
        except OSError:
            time.sleep(0.05)
    reg.stop()
    raise RuntimeError(f"docker-registry did not start: {reg.log_text()}")


# -- token server -------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """Issues ES256 JWTs (x5c header) the registry verifies against ``cert_path``."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    cert_path: Path
    users: dict[str, str]
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def sign(self, subject: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()],
        }
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": os.urandom(8).hex(),
            "access": access,
        }
        signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input + "." + _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def handle(
        self, method: str, path: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        query = parse_qs(urlsplit(path).query)
        form = parse_qs(body.decode()) if body else {}
        record = {
            "method": method,
            "query": query,
            "form": form,
            "authorization": headers.get("Authorization"),
        }
        self.requests.append(record)
        subject = ""
        if method == "POST":
            params = form
            grant = params.get("grant_type", [""])[0]
            if grant == "refresh_token":
                subject = self.refresh_tokens.get(params.get("refresh_token", [""])[0], "")
                if not subject:
                    return 401, {"details": "invalid refresh token"}
            elif grant == "password":
                user, pw = params.get("username", [""])[0], params.get("password", [""])[0]
                if self.users.get(user) != pw:
                    return 401, {"details": "incorrect username or password"}
                subject = user
            scopes = " ".join(params.get("scope", [])).split()
        else:
            auth = headers.get("Authorization") or ""
            if auth.startswith("Basic "):
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                if self.users.get(user) != pw:
                    return 401, {"details": "incorrect username or password"}
                subject = user
            scopes = query.get("scope", [])
        if not subject:
            # anonymous: pull only
            scopes = [s.rsplit(":", 1)[0] + ":pull" for s in scopes]
        reply: dict[str, Any] = {"token": self.sign(subject, scopes), "expires_in": 300}
        if subject and (query.get("offline_token") == ["true"] or method == "POST"):
            refresh = os.urandom(12).hex()
            self.refresh_tokens[refresh] = subject
            reply["refresh_token"] = refresh
        return 200, reply

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, doc = owner.handle(method, self.path, self.headers, body)
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def make_token_server(workdir: Path) -> TokenServer:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pallet test token issuer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    workdir.mkdir(parents=True, exist_ok=True)
    cert_path = workdir / "token-cert.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    server = TokenServer(key, cert, cert_path, {USER: PASSWORD})
    server.start()
    return server


def write_htpasswd(path: Path, users: dict[str, str]) -> None:
    lines = [
        f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()}" for u, p in users.items()
    ]
    path.write_text("\n".join(lines) + "\n")


# -- proxies -----------------------------------------------------------------------


class FaultyProxy:
    """A TCP proxy on 127.0.0.1 in front of ``target`` that, once, either cuts the
    server-to-client stream after ``after`` bytes ("cut") or flips the byte at that
    offset ("corrupt") of a response larger than ``min_size``, or stops sending there
    and holds the connection open ("stall"), or cuts the connection
    after ``after`` bytes of an upload request ("cut-upload")."""

    def __init__(self, target: str, *, after: int, mode: str = "cut", min_size: int = 0) -> None:
        self.target_host, port = target.rsplit(":", 1)
        self.target_port = int(port)
        self.after = after
        self.mode = mode
        self.min_size = min_size
        self.faults = 0
        self.port = 0
        self._uploaded = -1  # upload request bytes seen, once the first upload starts
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.close()
            return

        async def pump_up() -> None:
            try:
                while data := await reader.read(65536):
                    if self.mode == "cut-upload" and self.faults == 0:
                        if data.startswith((b"PATCH ", b"PUT ")) and self._uploaded < 0:
                            self._uploaded = 0
                        if self._uploaded >= 0:
                            # counted over every connection: the client may spread
                            # its requests over several kept-alive ones
                            self._uploaded += len(data)
                            if self._uploaded > self.after:
                                # drop the upload mid-body: both directions go
                                self.faults += 1
                                writer.transport.abort()
                                up_w.transport.abort()
                                return
                    up_w.write(data)
                    await up_w.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                up_w.close()

        async def pump_down() -> None:
            count = 0
            armed = False
            try:
                while data := await up_r.read(65536):
                    if not armed and self.faults == 0 and data.startswith(b"HTTP/1."):
                        # each response on a kept-alive connection is judged anew
                        armed, count = self._big_response(data), 0
                    if armed and self.faults == 0 and count + len(data) > self.after:
                        cut = self.after - count
                        if self.mode in ("cut", "stall"):
                            self.faults += 1
                            writer.write(data[:cut])
                            await writer.drain()
                            if self.mode == "stall":
                                await asyncio.sleep(3600)  # until the proxy stops
                            writer.transport.abort()
                            return
                        self.faults += 1
                        data = data[:cut] + bytes([data[cut] ^ 0xFF]) + data[cut + 1 :]
                    count += len(data)
                    writer.write(data)
                    await writer.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        up = asyncio.ensure_future(pump_up())
        await pump_down()
        up.cancel()

    def _big_response(self, head: bytes) -> bool:
        text = head[:4096].decode("latin-1").lower()
        if not text.startswith("http/1.1 200") and not text.startswith("http/1.1 206"):
            return False
        for line in text.split("\r\n"):
            if line.startswith("content-length:"):
                return int(line.split(":", 1)[1]) > self.min_size
        return False

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


# -- fixtures ----------------------------------------------------------------------


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME, DOCKER_CONFIG and XDG_CONFIG_HOME in tmp, so no real credentials are used."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DOCKER_CONFIG", str(home / ".docker"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    return home


@pytest.fixture
def registry(tmp_path: Path, isolated_home: Path) -> Iterator[Registry]:
    reg = start_registry(tmp_path / "registry")
    yield reg
    reg.stop()


@pytest.fixture
def basic_registry(tmp_path: Path, isolated_home: Path) -> Iterator[Registry]:
    htpasswd = tmp_path / "htpasswd"
    write_htpasswd(htpasswd, {USER: PASSWORD})
    reg = start_registry(
        tmp_path / "basic-registry", {"htpasswd": {"realm": "pallet-test", "path": str(htpasswd)}}
    )
    yield reg
    reg.stop()


@pytest.fixture
def token_registry(tmp_path: Path, isolated_home: Path) -> Iterator[tuple[Registry, TokenServer]]:
    tokens = make_token_server(tmp_path / "tokens")
    reg = start_registry(
        tmp_path / "token-registry",
        {
            "token": {
                "realm": tokens.realm,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(tokens.cert_path),
            }
        },
    )
    yield reg, tokens
    reg.stop()
    tokens.stop()


def skopeo() -> str:
    path = shutil.which("skopeo")
    if path is None:
        pytest.skip("LOUD SKIP: skopeo is not installed")
    return path


# -- images ------------------------------------------------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Image:
    manifest: bytes
    config: bytes
    layers: tuple[bytes, ...]

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def blobs(self) -> tuple[bytes, ...]:
        return (self.config, *self.layers)


DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def make_image(
    layer_sizes: tuple[int, ...] = (1000, 300_000), arch: str | None = None, docker: bool = False
) -> Image:
    """An image whose layers are gzip streams of random bytes (incompressible, and real
    gzip so peers that sniff compression leave them as they are)."""
    import gzip

    from pallet.oci.platform import host_platform

    layers = tuple(gzip.compress(os.urandom(n), compresslevel=1, mtime=0) for n in layer_sizes)
    config = json.dumps(
        {
            "architecture": arch or host_platform().architecture,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256(b) for b in layers]},
            "config": {"Labels": {"nonce": os.urandom(4).hex()}},
        }
    ).encode()
    types = (
        (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER_GZIP)
        if docker
        else (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_GZIP)
    )
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": types[0],
            "config": {"mediaType": types[1], "digest": sha256(config), "size": len(config)},
            "layers": [
                {"mediaType": types[2], "digest": sha256(b), "size": len(b)} for b in layers
            ],
        }
    ).encode()
    return Image(manifest, config, layers)


def write_layout(root: Path, images: dict[str, Image], extra: tuple[bytes, ...] = ()) -> None:
    """An OCI layout holding ``images`` under their ref names."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, image in images.items():
        for data in (image.manifest, *image.blobs):
            (blobs / sha256(data).split(":")[1]).write_bytes(data)
        entries.append(
            {
                "mediaType": json.loads(image.manifest)["mediaType"],
                "digest": image.digest,
                "size": len(image.manifest),
                "annotations": {"org.opencontainers.image.ref.name": name},
            }
        )
    for data in extra:
        (blobs / sha256(data).split(":")[1]).write_bytes(data)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))


def load_into_store(store_root: Path, layout: Path, layout_ref: str, name: str) -> None:
    """Put an image of an OCI layout into the store with pallet's own copy (the local
    transports are tested elsewhere)."""
    from pallet.transport.copy import copy
    from pallet.transport.names import open_source, parse_spec
    from pallet.transport.store import StoreWriter

    src = open_source(parse_spec(f"oci:{layout}:{layout_ref}"), store_root)
    writer = StoreWriter.open(store_root)
    try:
        copy(src, writer.image([name]), all_platforms=True)
        writer.finish()
    finally:
        src.close()


def store_blob_files(store_root: Path) -> set[str]:
    blobs = store_root / "blobs"
    return {p.name for p in blobs.rglob("*") if p.is_file()} if blobs.exists() else set()


def run_skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [skopeo(), "--insecure-policy", *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc
