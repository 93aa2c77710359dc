"""Small images for the local-transport tests, written as raw OCI layouts (JSON + tar
+ gzip from the standard library), so the code under test does not build its own inputs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from oci_fixtures import (
    OCI_INDEX,
    OCI_MANIFEST,
    ImageBlobs,
    config_json,
    layer_tar,
    sha256,
)
from pallet.oci.platform import host_platform


class TinyImage(ImageBlobs):
    """What a test needs to know about an image it wrote."""

    @property
    def manifest_digest(self) -> str:
        return sha256(self.manifest)

    @property
    def image_id(self) -> str:
        return sha256(self.config)

    def descriptor(self, platform: dict[str, str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": OCI_MANIFEST,
            "digest": self.manifest_digest,
            "size": len(self.manifest),
        }
        if platform:
            out["platform"] = platform
        return out


def make_image(tag: str, arch: str | None = None, nlayers: int = 2) -> TinyImage:
    arch = arch or host_platform().architecture
    tars = tuple(
        layer_tar({f"etc/{tag}-{i}.txt": f"{tag} layer {i}\n".encode() * (i + 1)})
        for i in range(nlayers)
    )
    config = config_json(
        tars,
        arch,
        {"Cmd": ["/bin/sh"], "Labels": {"tag": tag}},
        indent=1,  # unusual formatting: copies must keep these bytes as they are
        history=[{"created_by": f"layer {i}"} for i in range(nlayers)],
    )
    return TinyImage.of(tars, config)


def write_blob(root: Path, data: bytes) -> None:
    path = root / "blobs" / "sha256" / sha256(data).split(":")[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_layout(root: Path, entries: list[tuple[str | None, dict[str, Any]]]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    manifests = []
    for name, desc in entries:
        if name is not None:
            desc = {**desc, "annotations": {"org.opencontainers.image.ref.name": name}}
        manifests.append(desc)
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": manifests}))


def store_image(root: Path, image: TinyImage) -> None:
    for blob in image.blobs:
        write_blob(root, blob)


@dataclass(frozen=True)
class MultiArch:
    index: bytes
    host: TinyImage
    other: TinyImage

    @property
    def digest(self) -> str:
        return sha256(self.index)


def make_index(root: Path) -> MultiArch:
    """An index for the host's platform and one other, stored in layout ``root``."""
    host = make_image("host")
    other_arch = "s390x" if host_platform().architecture != "s390x" else "amd64"
    other = make_image("other", arch=other_arch)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                other.descriptor({"os": "linux", "architecture": other_arch}),
                host.descriptor({"os": "linux", "architecture": host_platform().architecture}),
            ],
        }
    ).encode()
    for image in (host, other):
        store_image(root, image)
    write_blob(root, index)
    return MultiArch(index, host, other)


@pytest.fixture
def tiny_layout(tmp_path: Path) -> Callable[..., tuple[Path, TinyImage]]:
    """``tiny_layout(name="v1")`` writes an OCI layout holding one small image."""

    def build(name: str | None = "v1", tag: str = "tiny") -> tuple[Path, TinyImage]:
        root = tmp_path / f"layout-{tag}"
        image = make_image(tag)
        store_image(root, image)
        write_layout(root, [(name, image.descriptor())])
        return root, image

    return build


def blob_files(root: Path) -> set[str]:
    """Names of the blobs under a layout or store root."""
    return {p.name for p in (root / "blobs").rglob("*") if p.is_file()}


class Kit:
    """The builders above, handed to tests as the ``kit`` fixture (test modules cannot
    import conftest under ``--import-mode=importlib``)."""

    sha256 = staticmethod(sha256)
    layer_tar = staticmethod(layer_tar)
    make_image = staticmethod(make_image)
    make_index = staticmethod(make_index)
    write_blob = staticmethod(write_blob)
    write_layout = staticmethod(write_layout)
    store_image = staticmethod(store_image)
    blob_files = staticmethod(blob_files)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit
