"""Tiny images for the store tests, built from raw JSON, tar and gzip of the standard
library, so the store is not tested with inputs made by its own code."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.store import Store

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> Digest:
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


def layer_tar(members: dict[str, bytes | str]) -> bytes:
    """A layer tar: bytes are file contents, "dir" makes a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if content == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                assert isinstance(content, bytes)
                info.size = len(content)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


@dataclass(frozen=True)
class RawImage:
    manifest: bytes
    config: bytes
    layers: tuple[bytes, ...]  # gzip, as stored
    tars: tuple[bytes, ...]

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(OCI_MANIFEST, sha256(self.manifest), len(self.manifest))

    @property
    def config_digest(self) -> Digest:
        return sha256(self.config)

    @property
    def layer_digests(self) -> list[Digest]:
        return [sha256(b) for b in self.layers]

    @property
    def diff_ids(self) -> list[Digest]:
        return [sha256(t) for t in self.tars]

    @property
    def layer_descriptors(self) -> list[Descriptor]:
        return [Descriptor(OCI_LAYER_GZIP, sha256(b), len(b)) for b in self.layers]

    @property
    def blobs(self) -> list[bytes]:
        return [self.manifest, self.config, *self.layers]


def raw_image(tars: list[bytes], label: str = "test") -> RawImage:
    layers = tuple(gzip.compress(t, mtime=0) for t in tars)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"label": label}},
            "rootfs": {"type": "layers", "diff_ids": [sha256(t) for t in tars]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [
                {"mediaType": OCI_LAYER_GZIP, "digest": sha256(b), "size": len(b)} for b in layers
            ],
        }
    ).encode()
    return RawImage(manifest, config, layers, tuple(tars))


def simple_image(label: str, nlayers: int = 2) -> RawImage:
    tars = [layer_tar({f"{label}-{i}.txt": f"{label} {i}\n".encode()}) for i in range(nlayers)]
    return raw_image(tars, label)


def put_image(store: Store, image: RawImage) -> Descriptor:
    for blob in image.blobs:
        store.write_blob(blob)
    return image.descriptor


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "root")


def blob_files(store: Store) -> set[str]:
    return {p.name for p in (store.root / "blobs" / "sha256").iterdir()}


def ingest_files(store: Store) -> list[Path]:
    return sorted((store.root / "ingest").iterdir())


class Kit:
    """The helpers above, handed to tests as the ``kit`` fixture (importlib mode keeps
    test modules from importing conftest)."""

    sha256 = staticmethod(sha256)
    layer_tar = staticmethod(layer_tar)
    raw_image = staticmethod(raw_image)
    simple_image = staticmethod(simple_image)
    put_image = staticmethod(put_image)
    blob_files = staticmethod(blob_files)
    ingest_files = staticmethod(ingest_files)
    OCI_MANIFEST = OCI_MANIFEST
    OCI_INDEX = OCI_INDEX
    OCI_LAYER_GZIP = OCI_LAYER_GZIP


@pytest.fixture
def kit() -> type[Kit]:
    return Kit
