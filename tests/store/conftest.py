"""Tiny images for the store tests, built from raw JSON, tar and gzip of the standard
library, so the store is not tested with inputs made by its own code."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from oci_fixtures import (
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    ImageBlobs,
    config_json,
    layer_tar,
    sha256,
)
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.store import Store
from pallet.store import overlay as overlay_mod


class RawImage(ImageBlobs):
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
    def layer_descriptors(self) -> list[Descriptor]:
        return [Descriptor(OCI_LAYER_GZIP, sha256(b), len(b)) for b in self.layers]


def raw_image(tars: list[bytes], label: str = "test") -> RawImage:
    return RawImage.of(tars, config_json(tars, "amd64", {"Labels": {"label": label}}))


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


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Path]:
    """An empty mount point, unmounted after the test if it was left mounted."""
    target = tmp_path / "mnt"
    target.mkdir()
    yield target
    if os.path.ismount(target):
        overlay_mod.unmount(target, lazy=True)


def view(root: Path) -> dict[str, str]:
    """A tree as {relative path: "dir" or file text}."""
    return {
        str(p.relative_to(root)): ("dir" if p.is_dir() else p.read_text())
        for p in sorted(root.rglob("*"))
    }


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
    view = staticmethod(view)
    OCI_MANIFEST = OCI_MANIFEST
    OCI_INDEX = OCI_INDEX
    OCI_LAYER_GZIP = OCI_LAYER_GZIP


@pytest.fixture
def kit() -> type[Kit]:
    return Kit
