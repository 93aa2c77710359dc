"""One image interface, many places: what every transport (store, registry, OCI layout,
oci-archive, docker-archive) implements, so ``copy(src, dst)`` can move images between any two.

Manifests travel as their exact bytes (a digest is always over the bytes stored or sent);
blobs travel as streams and are verified by whoever writes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest


@dataclass(frozen=True)
class ManifestBlob:
    """A manifest or index exactly as stored: its bytes and the media type it was served as."""

    raw: bytes
    media_type: str

    @property
    def digest(self) -> Digest:
        return Digest.from_bytes(self.raw)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))


class ImageSource(Protocol):
    """A place images are read from."""

    def describe(self) -> str:
        """Human name of the place, for messages (``docker://host/repo:tag``)."""
        ...

    def get_manifest(self, digest: Digest | None = None) -> ManifestBlob:
        """The top-level manifest or index (``digest=None``), or a child one by digest."""
        ...

    def open_blob(self, desc: Descriptor) -> AbstractContextManager[BinaryIO]:
        """A stream of the blob's bytes; the caller verifies them against ``desc``."""
        ...

    def close(self) -> None: ...


class ImageDestination(Protocol):
    """A place images are written to. ``commit`` is called last, after every blob and
    manifest is in, so a reference never points at an image with missing blobs."""

    def describe(self) -> str: ...

    def has_blob(self, desc: Descriptor) -> bool: ...

    def put_blob(self, desc: Descriptor, stream: BinaryIO) -> None:
        """Store a blob, verifying size and digest while it streams."""
        ...

    def put_manifest(self, manifest: ManifestBlob) -> None:
        """Store a manifest or index blob (exact bytes), children before parents."""
        ...

    def commit(self, top: ManifestBlob) -> None:
        """Point the destination's reference (tag) at ``top``; the final step."""
        ...

    def close(self) -> None: ...


def iter_blob_chunks(stream: BinaryIO, chunk: int = 1 << 20) -> Iterator[bytes]:
    while True:
        data = stream.read(chunk)
        if not data:
            return
        yield data
