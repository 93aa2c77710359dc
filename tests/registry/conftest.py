"""Fixtures for the registry tests: a server on 127.0.0.1 and a small HTTP client."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import json
import ssl
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from pallet.registry.config import RegistryConfig
from pallet.registry.server import ThreadedRegistry


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def error_codes(self) -> list[str]:
        return [e["code"] for e in self.json()["errors"]]


@dataclass
class Client:
    base: str
    auth: str | None = None
    default_headers: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        parts = urlsplit(self.base)
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=30, context=ssl._create_unverified_context()
            )
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        all_headers = dict(self.default_headers)
        if self.auth:
            all_headers["Authorization"] = self.auth
        all_headers.update(headers or {})
        if body is not None and "Content-Length" not in all_headers:
            all_headers["Content-Length"] = str(len(body))
        try:
            conn.request(method, path, body=body, headers=all_headers)
            resp = conn.getresponse()
            data = resp.read()
            return Reply(resp.status, resp.headers, data)
        finally:
            conn.close()

    # conveniences over the raw API ----------------------------------------------------

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r = self.request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data)
        assert r.status == 201, (r.status, r.body)
        return digest

    def push_manifest(
        self, repo: str, ref: str, manifest: dict[str, Any] | bytes, media_type: str | None = None
    ) -> Reply:
        body = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
        mt = media_type or (
            manifest.get("mediaType", OCI_MANIFEST) if isinstance(manifest, dict) else OCI_MANIFEST
        )
        return self.request("PUT", f"/v2/{repo}/manifests/{ref}", body, {"Content-Type": mt})

    sha256 = staticmethod(lambda data: "sha256:" + hashlib.sha256(data).hexdigest())

    @staticmethod
    def image_manifest(
        layers: list[tuple[str, int]],
        config: tuple[str, int],
        *,
        config_type: str = "application/vnd.oci.image.config.v1+json",
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return image_manifest(layers, config, config_type=config_type, extra=extra)

    def push_image(
        self, repo: str, tag: str, layers: list[bytes], config: bytes | None = None
    ) -> str:
        """Push an OCI image; returns the manifest digest."""
        config = config or json.dumps({"architecture": "amd64", "os": "linux", "n": tag}).encode()
        manifest = image_manifest(
            [(self.push_blob(repo, blob), len(blob)) for blob in layers],
            (self.push_blob(repo, config), len(config)),
        )
        r = self.push_manifest(repo, tag, manifest)
        assert r.status == 201, (r.status, r.body)
        return str(r.header("Docker-Content-Digest"))


OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_manifest(
    layers: list[tuple[str, int]],
    config: tuple[str, int],
    *,
    config_type: str = OCI_CONFIG,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_type, "digest": config[0], "size": config[1]},
        "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": s} for d, s in layers],
        **(extra or {}),
    }


def start_registry(tmp_path: Path, **changes: Any) -> ThreadedRegistry:
    config = RegistryConfig(addr="127.0.0.1:0", data=tmp_path / "data", access_log=False)
    return ThreadedRegistry(config.replace(**changes)).start()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[ThreadedRegistry]:
    reg = start_registry(tmp_path)
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def make_registry(tmp_path: Path) -> Iterator[Any]:
    """Start registries with config changes: ``make_registry(read_only=True)``."""
    started: list[ThreadedRegistry] = []

    def make(**changes: Any) -> ThreadedRegistry:
        reg = start_registry(tmp_path / f"r{len(started)}", **changes)
        started.append(reg)
        return reg

    yield make
    for reg in started:
        reg.stop()


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, input: str = "") -> CliResult:
    """``pallet ARGS`` in this process (a subprocess per call would cost seconds)."""
    from pallet.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    saved_stdin = sys.stdin
    sys.stdin = io.StringIO(input)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdin = saved_stdin
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli() -> Any:
    return run_cli


@pytest.fixture
def client(registry: ThreadedRegistry) -> Client:
    return Client(registry.url)


@pytest.fixture
def make_client() -> type[Client]:
    return Client
