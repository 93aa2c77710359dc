"""The registry client against a real CNCF distribution registry on 127.0.0.1."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("registry_fixtures")
pytest_plugins = ["registry_fixtures"]

from registry_fixtures import (  # noqa: E402
    Image,
    Registry,
    load_into_store,
    make_image,
    sha256,
    store_blob_files,
    write_layout,
)

from pallet.errors import ManifestUnknown  # noqa: E402
from pallet.oci.descriptor import Descriptor  # noqa: E402
from pallet.oci.digest import Digest  # noqa: E402
from pallet.oci.mediatypes import OCI_LAYER_GZIP  # noqa: E402
from pallet.store import Store, blobs  # noqa: E402
from pallet.transport.registry import open_source  # noqa: E402
from pallet.transport.registry_pull import pull  # noqa: E402
from pallet.transport.registry_push import push  # noqa: E402

pytestmark = pytest.mark.peer


def seed_store(tmp_path: Path, name: str, image: Image) -> Path:
    """A store holding ``image`` tagged ``name`` (full reference)."""
    layout = tmp_path / f"layout-{sha256(image.manifest)[7:19]}"
    write_layout(layout, {"img": image})
    root = tmp_path / f"store-{sha256(image.manifest)[7:19]}"
    load_into_store(root, layout, "img", name)
    return root


def test_push_then_pull_keeps_every_digest(tmp_path: Path, registry: Registry) -> None:
    image = make_image()
    name = f"{registry.host}/team/app:v1"
    source_root = seed_store(tmp_path, name, image)

    pushed = push(name, source_root)
    assert pushed.digest == image.digest
    assert pushed.uploaded == len(image.blobs)

    dest_root = tmp_path / "dest"
    pulled = pull(name, dest_root)
    assert pulled.digest == image.digest
    assert pulled.downloaded == len(image.blobs)
    store = Store.open(dest_root)
    assert store.resolve(name).digest == image.digest
    for blob in (image.manifest, *image.blobs):
        assert store.read_blob(sha256(blob), max_size=1 << 30) == blob


def test_docker_schema2_images_keep_their_media_type(tmp_path: Path, registry: Registry) -> None:
    image = make_image(docker=True)
    name = f"{registry.host}/docker/app:v1"
    assert push(name, seed_store(tmp_path, name, image)).digest == image.digest
    root = tmp_path / "dest"
    assert pull(name, root).digest == image.digest
    desc = Store.open(root).resolve(name)
    assert desc.media_type == "application/vnd.docker.distribution.manifest.v2+json"


def test_second_pull_downloads_nothing(tmp_path: Path, registry: Registry) -> None:
    image = make_image()
    name = f"{registry.host}/app:v1"
    push(name, seed_store(tmp_path, name, image))
    root = tmp_path / "dest"
    assert pull(name, root).downloaded == len(image.blobs)
    again = pull(name, root)
    assert again.downloaded == 0
    assert again.digest == image.digest


def test_pull_by_digest(tmp_path: Path, registry: Registry) -> None:
    image = make_image()
    name = f"{registry.host}/app:v1"
    push(name, seed_store(tmp_path, name, image))
    result = pull(f"{registry.host}/app@{image.digest}", tmp_path / "dest")
    assert result.digest == image.digest


def test_unknown_tag_says_manifest_unknown(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(ManifestUnknown, match="manifest unknown"):
        pull(f"{registry.host}/nothing:here", tmp_path / "dest")
    assert store_blob_files(tmp_path / "dest") == set()


def test_second_push_uploads_nothing(tmp_path: Path, registry: Registry) -> None:
    image = make_image()
    name = f"{registry.host}/app:v1"
    root = seed_store(tmp_path, name, image)
    push(name, root)
    again = push(name, root)
    assert again.uploaded == 0 and again.mounted == 0
    assert again.digest == image.digest


def test_push_to_another_repository_mounts_the_blobs(tmp_path: Path, registry: Registry) -> None:
    image = make_image()
    first = f"{registry.host}/one/app:v1"
    root = seed_store(tmp_path, first, image)
    push(first, root)
    second = f"{registry.host}/two/app:v1"
    Store.open(root).tag(second, Store.open(root).resolve(first))
    result = push(second, root)
    assert result.mounted == len(image.blobs)
    assert result.uploaded == 0
    assert pull(second, tmp_path / "dest").digest == image.digest


def registry_requests(registry: Registry) -> list[tuple[str, str]]:
    """(method, path) of every request the registry answered, in order."""
    out = []
    for line in registry.log_text().splitlines():
        if 'msg="response completed' not in line:
            continue
        method = re.search(r"http\.request\.method=(\w+)", line)
        uri = re.search(r'http\.request\.uri="?([^" ]+)', line)
        if method and uri:
            out.append((method.group(1), uri.group(1)))
    return out


def test_push_of_a_manifest_the_registry_holds_only_sets_the_tag(
    tmp_path: Path, registry: Registry
) -> None:
    image = make_image()
    first = f"{registry.host}/app:v1"
    root = seed_store(tmp_path, first, image)
    push(first, root)
    store = Store.open(root)
    second = f"{registry.host}/app:v2"
    store.tag(second, store.resolve(first))
    seen = len(registry_requests(registry))

    result = push(second, root)

    assert (result.uploaded, result.mounted, result.digest) == (0, 0, image.digest)
    assert result.size == len(image.manifest)
    after = registry_requests(registry)[seen:]
    assert not [r for r in after if "/blobs/" in r[1]]
    assert ("PUT", "/v2/app/manifests/v2") in after
    assert pull(second, tmp_path / "dest").digest == image.digest


def test_push_of_an_image_the_tag_already_names_sends_nothing(
    tmp_path: Path, registry: Registry
) -> None:
    image = make_image()
    name = f"{registry.host}/app:v1"
    root = seed_store(tmp_path, name, image)
    push(name, root)
    seen = len(registry_requests(registry))

    again = push(name, root)

    assert (again.uploaded, again.mounted, again.digest) == (0, 0, image.digest)
    assert again.size == len(image.manifest)
    after = registry_requests(registry)[seen:]
    assert [method for method, _ in after if method not in ("GET", "HEAD")] == []
    assert ("HEAD", "/v2/app/manifests/v1") in after
    assert not [r for r in after if "/blobs/" in r[1]]


def test_push_of_an_image_in_place_does_not_load_aiohttp(
    tmp_path: Path, registry: Registry
) -> None:
    # what keeps a no-op push short: its few requests go through the blocking client
    image = make_image()
    name = f"{registry.host}/app:v1"
    root = seed_store(tmp_path, name, image)
    push(name, root)
    code = (
        "import sys; from pathlib import Path; "
        "from pallet.transport.registry_push import push; "
        "r = push(sys.argv[1], Path(sys.argv[2])); "
        "print(r.digest, r.uploaded, sorted(m for m in ('aiohttp', 'asyncio') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, name, str(root)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert out == [image.digest, "0", "[]"]


def test_blob_reads_return_exactly_what_was_asked(tmp_path: Path, registry: Registry) -> None:
    image = make_image((3 << 20,))
    name = f"{registry.host}/app:v1"
    push(name, seed_store(tmp_path, name, image))
    layer = image.layers[0]
    source = open_source(name)
    try:
        source.get_manifest()
        desc = Descriptor(OCI_LAYER_GZIP, Digest(sha256(layer)), len(layer))
        blob = source.remote_blob(desc)
        got = bytearray()
        sizes = [1, 7, 65_537, 1 << 20, 3, 300_001]
        for size in sizes:
            piece = blob.read(size)
            assert len(piece) == size
            got += piece
        while chunks := blob.read_chunks(1_000_003):
            assert sum(len(c) for c in chunks) <= 1_000_003
            got += b"".join(chunks)
        assert blob.read(10) == b""
        blob.close()
    finally:
        source.close()
    assert bytes(got) == layer


def test_pull_starting_writeback_early_stores_whole_blobs(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    ranges: list[tuple[int, int]] = []
    real = blobs.start_writeback

    def spy(fd: int, offset: int, length: int) -> None:
        ranges.append((offset, length))
        real(fd, offset, length)

    monkeypatch.setattr(blobs, "WRITEBACK_EVERY", 100_000)
    monkeypatch.setattr(blobs, "start_writeback", spy)
    image = make_image((1 << 20, 5000))
    name = f"{registry.host}/app:v1"
    push(name, seed_store(tmp_path, name, image))
    root = tmp_path / "dest"
    assert pull(name, root).digest == image.digest
    assert ranges and all(length >= 100_000 for _, length in ranges)
    store = Store.open(root)
    for blob in image.blobs:
        assert store.read_blob(sha256(blob), max_size=1 << 30) == blob
