"""Raw OCI building blocks for tests (JSON, tar and gzip of the standard library), shared
by the store and transport fixtures so the code under test never makes its own inputs."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

from pallet.oci.digest import Digest

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


def gzip_layers(tars: Sequence[bytes]) -> tuple[bytes, ...]:
    return tuple(gzip.compress(t, mtime=0) for t in tars)


def config_json(
    tars: Sequence[bytes],
    arch: str,
    config: dict[str, Any],
    indent: int | None = None,
    **extra: Any,
) -> bytes:
    """An image config whose diff_ids are those of ``tars``; ``extra`` fields follow rootfs."""
    doc = {
        "architecture": arch,
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [sha256(t) for t in tars]},
        **extra,
    }
    return json.dumps(doc, indent=indent).encode()


def manifest_json(config: bytes, layers: Sequence[bytes]) -> bytes:
    """An OCI manifest for ``config`` and the gzip ``layers``."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [
                {"mediaType": OCI_LAYER_GZIP, "digest": sha256(b), "size": len(b)} for b in layers
            ],
        }
    ).encode()


@dataclass(frozen=True)
class ImageBlobs:
    """A single-platform image as its blobs: manifest, config, gzip layers, and the
    uncompressed tars those layers hold."""

    manifest: bytes
    config: bytes
    layers: tuple[bytes, ...]  # gzip, as stored
    tars: tuple[bytes, ...]

    @classmethod
    def of(cls, tars: Sequence[bytes], config: bytes) -> Self:
        """The image of ``tars`` (gzipped as layers) and ``config``, with its manifest."""
        layers = gzip_layers(tars)
        return cls(manifest_json(config, layers), config, layers, tuple(tars))

    @property
    def diff_ids(self) -> list[Digest]:
        return [sha256(t) for t in self.tars]

    @property
    def blobs(self) -> list[bytes]:
        return [self.manifest, self.config, *self.layers]
