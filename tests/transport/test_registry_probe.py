"""The blocking client a push asks first (``registry_probe``): HTTP/1.1 framing against
scripted servers, and the hand-over to the aiohttp client when it cannot tell."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("registry_fixtures")
pytest_plugins = ["registry_fixtures"]

from registry_fixtures import OCI_MANIFEST, load_into_store, make_image, write_layout  # noqa: E402

from pallet.transport.registry_config import RegistriesConfig  # noqa: E402
from pallet.transport.registry_credentials import Credentials  # noqa: E402
from pallet.transport.registry_probe import BlockingRegistryHttp, Unsure  # noqa: E402
from pallet.transport.registry_push import push  # noqa: E402

PING = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


class Scripted:
    """A server on 127.0.0.1 that answers each request read with the next canned
    answer; ``close_after`` answers on a connection, it closes that connection."""

    def __init__(self, answers: list[bytes], close_after: int = 0) -> None:
        self.answers = list(answers)
        self.close_after = close_after
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        served = 0
        with conn:
            data = b""
            while self.answers:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk or chunk.startswith(b"\x16"):
                        return  # closed, or a TLS hello (the https attempt): hang up
                    data += chunk
                head, _, data = data.partition(b"\r\n\r\n")
                self.requests.append(head)
                conn.sendall(self.answers.pop(0))
                served += 1
                if served == self.close_after:
                    return

    def stop(self) -> None:
        self.sock.close()


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    servers: list[Scripted] = []

    def make(answers: list[bytes], close_after: int = 0) -> Scripted:
        servers.append(Scripted(answers, close_after))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


def client(host: str) -> BlockingRegistryHttp:
    # the https attempt fails against a plain server, then plain http (loopback) answers
    return BlockingRegistryHttp(host, config=RegistriesConfig(), credentials=Credentials)


def test_chunked_answers_are_joined_and_the_connection_kept(
    scripted: Callable[..., Scripted],
) -> None:
    chunked = (
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n"
    )
    server = scripted([PING, chunked, chunked])
    http = client(server.host)
    try:
        first = http.request("GET", "/v2/x/tags/list", scopes=[])
        second = http.request("GET", "/v2/x/tags/list", scopes=[])
    finally:
        http.close()
    assert (first.status, first.body) == (404, b"hello, world")
    assert second.body == b"hello, world"
    assert server.connections == 2  # the https attempt, then one kept-alive connection


def test_a_connection_the_server_closed_is_replaced(scripted: Callable[..., Scripted]) -> None:
    head = b"HTTP/1.1 200 OK\r\nDocker-Content-Digest: sha256:ab\r\nContent-Length: 10\r\n\r\n"
    server = scripted([PING, head], close_after=1)  # closes the kept connection
    http = client(server.host)
    try:
        http.connect()
        reply = http.request("HEAD", "/v2/x/manifests/v1", scopes=[])
    finally:
        http.close()
    assert (reply.status, reply.header("docker-content-digest"), reply.body) == (
        200,
        "sha256:ab",
        b"",
    )
    assert server.connections == 3


@pytest.mark.parametrize(
    "answer",
    [
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\ncut short",
    ],
)
def test_answers_it_cannot_use_leave_the_decision_to_aiohttp(
    scripted: Callable[..., Scripted], answer: bytes
) -> None:
    server = scripted([PING, answer])
    http = client(server.host)
    try:
        with pytest.raises(Unsure):
            http.request("GET", "/v2/x/manifests/v1", scopes=[])
    finally:
        http.close()


class FlakyRegistry:
    """A registry of one manifest whose first ``unavailable`` manifest requests answer
    503; it accepts manifest PUTs."""

    def __init__(self, manifest: bytes, digest: str, unavailable: int) -> None:
        self.methods: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("Content-Type", OCI_MANIFEST)
                self.send_header("Docker-Content-Digest", digest)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _manifest(self) -> bool:
                if self.path == "/v2/":
                    self._answer(200, b"{}")
                    return False
                owner.methods.append(self.command)
                if len(owner.methods) <= unavailable:
                    self._answer(503)
                    return False
                return True

            def do_GET(self) -> None:
                if self._manifest():
                    self._answer(200, manifest)

            def do_HEAD(self) -> None:
                if self._manifest():
                    self._answer(200 if self.path.endswith(digest) else 404)

            def do_PUT(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                if self._manifest():
                    self._answer(201)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_5xx_during_the_first_look_hands_the_push_to_the_retrying_client(
    tmp_path: Path, isolated_home: Path
) -> None:
    image = make_image()
    fake = FlakyRegistry(image.manifest, image.digest, unavailable=2)
    try:
        name = f"{fake.host}/app:v2"
        layout = tmp_path / "layout"
        write_layout(layout, {"img": image})
        load_into_store(tmp_path / "store", layout, "img", name)
        result = push(name, tmp_path / "store")
    finally:
        fake.stop()
    assert (result.digest, result.uploaded) == (image.digest, 0)
    # the blocking client's HEAD met a 503 and stopped; aiohttp retried (503, then the
    # manifest by digest is there) and put the tag
    assert fake.methods == ["HEAD", "HEAD", "HEAD", "PUT"]


@pytest.mark.parametrize("path", ["/v2/x y/manifests/v1", "/v2/caf\u00e9/tags/list"])
def test_paths_it_would_send_unquoted_leave_the_decision_to_aiohttp(
    scripted: Callable[..., Scripted], path: str
) -> None:
    server = scripted([PING])
    http = client(server.host)
    try:
        with pytest.raises(Unsure):
            http.request("GET", path, scopes=[])
    finally:
        http.close()
    assert len(server.requests) == 1  # the ping only: nothing malformed was sent
