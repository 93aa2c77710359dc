"""Faults while pulling and pushing: dropped connections, corrupted bytes, oversized
manifests, concurrent pulls, chunked uploads, and platform choice from an index."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("registry_fixtures")
pytest_plugins = ["registry_fixtures"]

from registry_fixtures import (  # noqa: E402
    OCI_INDEX,
    OCI_MANIFEST,
    FaultyProxy,
    Image,
    Registry,
    load_into_store,
    make_image,
    sha256,
    store_blob_files,
    write_layout,
)

from pallet.errors import DigestMismatch, ManifestUnknown, NotFound, TransportError  # noqa: E402
from pallet.oci.platform import Platform, host_platform  # noqa: E402
from pallet.store import Store  # noqa: E402
from pallet.transport import registry_upload  # noqa: E402
from pallet.transport.registry import open_source  # noqa: E402
from pallet.transport.registry_pull import pull  # noqa: E402
from pallet.transport.registry_push import push  # noqa: E402

pytestmark = pytest.mark.peer

BIG = 2 << 20


def pushed_image(tmp_path: Path, registry: Registry, repo: str, image: Image) -> str:
    layout = tmp_path / f"layout-{repo}"
    write_layout(layout, {"img": image})
    name = f"{registry.host}/{repo}:v1"
    root = tmp_path / f"seed-{repo}"
    load_into_store(root, layout, "img", name)
    push(name, root)
    return name


def test_pull_resumes_after_a_dropped_connection(tmp_path: Path, registry: Registry) -> None:
    image = make_image((1000, BIG))
    pushed_image(tmp_path, registry, "app", image)
    proxy = FaultyProxy(registry.host, after=BIG // 3, mode="cut", min_size=BIG // 2)
    try:
        result = pull(f"{proxy.host}/app:v1", tmp_path / "dest")
    finally:
        proxy.stop()
    assert proxy.faults == 1
    assert result.resumed >= 1
    assert result.digest == image.digest
    store = Store.open(tmp_path / "dest")
    assert store.read_blob(sha256(image.layers[1]), max_size=2 * BIG) == image.layers[1]


def test_corrupted_byte_fails_the_pull_and_leaves_the_store_empty(
    tmp_path: Path, registry: Registry
) -> None:
    image = make_image((1000, 5000, BIG))
    pushed_image(tmp_path, registry, "app", image)
    proxy = FaultyProxy(registry.host, after=BIG // 2, mode="corrupt", min_size=BIG // 2)
    root = tmp_path / "dest"
    try:
        with pytest.raises(DigestMismatch, match=sha256(image.layers[2])):
            pull(f"{proxy.host}/app:v1", root)
    finally:
        proxy.stop()
    assert proxy.faults == 1
    assert store_blob_files(root) == set()
    with pytest.raises(NotFound):
        Store.open(root).resolve(f"{proxy.host}/app:v1")
    assert not any((root / "ingest").iterdir())


def test_ctrl_c_leaves_the_store_as_it_was(
    tmp_path: Path, registry: Registry, isolated_home: Path
) -> None:
    image = make_image((1000, 300_000, BIG))
    pushed_image(tmp_path, registry, "app", image)
    proxy = FaultyProxy(registry.host, after=BIG // 2, mode="stall", min_size=BIG // 2)
    root = tmp_path / "dest"
    Store.open(root)
    before = store_blob_files(root)
    env = {**os.environ, "HOME": str(isolated_home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pallet", "--root", str(root), "pull", "-q", f"{proxy.host}/app:v1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while proxy.faults == 0 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proxy.faults == 1, "the big layer never started"
        time.sleep(0.3)  # the other blobs are in by now
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proxy.stop()
    assert proc.returncode == 130, err
    assert b"interrupted" in err
    assert store_blob_files(root) == before
    assert list((root / "ingest").iterdir()) == []
    with pytest.raises(NotFound):
        Store.open(root).resolve(f"{proxy.host}/app:v1")


def test_concurrent_pulls_of_one_image_into_one_store(tmp_path: Path, registry: Registry) -> None:
    image = make_image((1000, 400_000, 300_000))
    name = pushed_image(tmp_path, registry, "app", image)
    root = tmp_path / "dest"
    Store.open(root)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            assert pull(name, root).digest == image.digest
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = Store.open(root)
    assert store.resolve(name).digest == image.digest
    for blob in (image.manifest, *image.blobs):
        assert store.has_blob(sha256(blob))


class FakeRegistry:
    """Answers ``GET /v2/`` and serves fixed manifest bodies, whatever they are."""

    def __init__(self, manifests: dict[str, bytes], unavailable: int = 0) -> None:
        #: how many manifest requests answer 503 before the real answer
        self.unavailable = unavailable
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = b"{}" if self.path == "/v2/" else manifests.get(self.path, b"")
                if self.path != "/v2/":
                    owner.requests += 1
                    if owner.requests <= owner.unavailable:
                        self.send_response(503)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                self.send_response(200 if data else 404)
                self.send_header("Content-Type", OCI_MANIFEST)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_5xx_answers_are_retried(tmp_path: Path, isolated_home: Path) -> None:
    image = make_image()
    fake = FakeRegistry({f"/v2/app/manifests/{image.digest}": image.manifest}, unavailable=2)
    try:
        source = open_source(f"{fake.host}/app@{image.digest}")
        try:
            assert source.get_manifest().raw == image.manifest
        finally:
            source.close()
    finally:
        fake.stop()
    assert fake.requests == 3


def test_manifest_over_4_mib_is_refused(tmp_path: Path, isolated_home: Path) -> None:
    # distribution itself refuses to store such a manifest: a fake registry serves one
    big = json.dumps({"schemaVersion": 2, "pad": "x" * (4 << 20)}).encode()
    fake = FakeRegistry({"/v2/app/manifests/big": big})
    try:
        with pytest.raises(TransportError, match="larger than"):
            pull(f"{fake.host}/app:big", tmp_path / "dest")
    finally:
        fake.stop()
    assert store_blob_files(tmp_path / "dest") == set()


def test_manifest_not_matching_the_digest_asked_is_refused(
    tmp_path: Path, isolated_home: Path
) -> None:
    image = make_image()
    wrong = make_image()
    fake = FakeRegistry({f"/v2/app/manifests/{image.digest}": wrong.manifest})
    try:
        with pytest.raises(DigestMismatch, match=image.digest):
            pull(f"{fake.host}/app@{image.digest}", tmp_path / "dest")
    finally:
        fake.stop()
    assert store_blob_files(tmp_path / "dest") == set()


def test_large_blobs_upload_in_chunks(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_upload, "MONOLITHIC_MAX", 10_000)
    monkeypatch.setattr(registry_upload, "CHUNK_SEEKABLE", 100_000)
    image = make_image((1000, 350_000))
    name = pushed_image(tmp_path, registry, "app", image)
    patches = registry.log_text().count('"PATCH /v2/app/blobs/uploads/')
    assert patches >= 4  # 350 kB in 100 kB chunks
    result = pull(name, tmp_path / "dest")
    assert result.digest == image.digest
    store = Store.open(tmp_path / "dest")
    assert store.read_blob(sha256(image.layers[1]), max_size=2 * BIG) == image.layers[1]


def test_a_small_remainder_rides_with_the_last_chunk(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each PATCH costs the registry a commit of the upload's state: no tiny last one
    monkeypatch.setattr(registry_upload, "MONOLITHIC_MAX", 10_000)
    monkeypatch.setattr(registry_upload, "CHUNK_SEEKABLE", 100_000)
    image = make_image((1000, 210_000))
    name = pushed_image(tmp_path, registry, "app", image)
    assert registry.log_text().count('"PATCH /v2/app/blobs/uploads/') == 2
    assert pull(name, tmp_path / "dest").digest == image.digest


def test_push_resumes_after_a_dropped_upload(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_upload, "MONOLITHIC_MAX", 10_000)
    monkeypatch.setattr(registry_upload, "CHUNK_SEEKABLE", 400_000)
    image = make_image((1000, BIG))
    proxy = FaultyProxy(registry.host, after=BIG // 2, mode="cut-upload")
    layout = tmp_path / "layout"
    write_layout(layout, {"img": image})
    name = f"{proxy.host}/app:v1"
    load_into_store(tmp_path / "src", layout, "img", name)
    try:
        assert push(name, tmp_path / "src").digest == image.digest
    finally:
        proxy.stop()
    assert proxy.faults == 1
    result = pull(f"{registry.host}/app:v1", tmp_path / "dest")
    assert result.digest == image.digest
    store = Store.open(tmp_path / "dest")
    assert store.read_blob(sha256(image.layers[1]), max_size=2 * BIG) == image.layers[1]


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
def test_a_corrupt_blob_in_the_store_fails_the_push_and_sets_no_tag(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch, chunked: bool
) -> None:
    # push sends store blobs without hashing them again: the registry's digest check at
    # the final PUT is what refuses a blob damaged on our disk.
    if chunked:
        monkeypatch.setattr(registry_upload, "MONOLITHIC_MAX", 10_000)
        monkeypatch.setattr(registry_upload, "CHUNK_SEEKABLE", 100_000)
    image = make_image((1000, 250_000))
    layout = tmp_path / "layout"
    write_layout(layout, {"img": image})
    name = f"{registry.host}/app:v1"
    root = tmp_path / "src"
    load_into_store(root, layout, "img", name)
    blob = Store.open(root).blob_path(sha256(image.layers[1]))
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(TransportError, match=sha256(image.layers[1])):
        push(name, root)
    with pytest.raises(ManifestUnknown):
        pull(name, tmp_path / "dest")


def index_layout(tmp_path: Path) -> tuple[Path, bytes, Image, Image]:
    host = make_image((1000,))
    other_arch = "s390x" if host_platform().architecture != "s390x" else "amd64"
    other = make_image((2000,), arch=other_arch)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": img.digest,
                    "size": len(img.manifest),
                    "platform": {"os": "linux", "architecture": arch},
                }
                for img, arch in ((other, other_arch), (host, host_platform().architecture))
            ],
        }
    ).encode()
    layout = tmp_path / "index-layout"
    write_layout(layout, {"host": host, "other": other}, extra=(index,))
    entries = json.loads((layout / "index.json").read_text())
    entries["manifests"].append(
        {
            "mediaType": OCI_INDEX,
            "digest": sha256(index),
            "size": len(index),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }
    )
    (layout / "index.json").write_text(json.dumps(entries))
    return layout, index, host, other


def test_index_resolves_to_the_host_platform_or_the_one_asked(
    tmp_path: Path, registry: Registry
) -> None:
    layout, index, host, other = index_layout(tmp_path)
    name = f"{registry.host}/multi:v1"
    seed = tmp_path / "seed"
    load_into_store(seed, layout, "multi", name)
    assert push(name, seed).digest == sha256(index)

    mine = tmp_path / "mine"
    assert pull(name, mine).digest == host.digest
    assert not Store.open(mine).has_blob(sha256(other.layers[0]))

    arch = json.loads(other.config)["architecture"]
    theirs = tmp_path / "theirs"
    assert pull(name, theirs, platform=Platform("linux", arch)).digest == other.digest

    everything = tmp_path / "all"
    assert pull(name, everything, all_platforms=True).digest == sha256(index)
    store = Store.open(everything)
    assert store.has_blob(sha256(other.layers[0])) and store.has_blob(sha256(host.layers[0]))
