"""Content-addressed blob bytes on the local filesystem.

Layout under the data directory::

    blobs/<algorithm>/<first two hex>/<hex>   committed blobs, shared by every repository
    uploads/<uuid>                            upload sessions in progress (survive restarts)

A blob only ever appears under ``blobs/`` by an atomic rename of a file whose bytes were
hashed and found equal to its digest, so a reader never sees a partial or wrong blob.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from pallet.errors import InvalidDigest
from pallet.oci.digest import Digest


class BlobStore(Protocol):
    """Bytes by digest; the interface an S3-compatible store would also implement."""

    def path(self, digest: Digest) -> Path: ...
    def exists(self, digest: Digest) -> bool: ...
    def size(self, digest: Digest) -> int | None: ...
    def install(self, temp: Path, digest: Digest) -> None: ...
    def read(self, digest: Digest) -> bytes: ...
    def remove(self, digest: Digest) -> None: ...
    def walk(self) -> Iterator[tuple[Digest, float]]: ...


class FilesystemBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.uploads = root / "uploads"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.uploads.mkdir(parents=True, exist_ok=True)

    def path(self, digest: Digest) -> Path:
        # Digest is validated: algorithm and hex only, so this cannot escape the root.
        hexpart = digest.encoded
        return self.blobs / digest.algorithm / hexpart[:2] / hexpart

    def exists(self, digest: Digest) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: Digest) -> int | None:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def install(self, temp: Path, digest: Digest) -> None:
        """Move a verified temp file into place (atomic; an existing copy is replaced)."""
        final = self.path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        # Fresh mtime: the GC's orphan sweep must not take a just-installed file for an
        # old one (an upload may have been written long before it was committed).
        os.utime(temp)
        os.replace(temp, final)

    def write_bytes(self, data: bytes, digest: Digest) -> Path:
        """Write small verified content (a manifest) into a temp file; install it later."""
        temp = self.new_upload_path(".tmp")
        with open(temp, "wb") as fh:
            fh.write(data)
        return temp

    def read(self, digest: Digest) -> bytes:
        return self.path(digest).read_bytes()

    def remove(self, digest: Digest) -> None:
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            pass

    def walk(self) -> Iterator[tuple[Digest, float]]:
        """Every committed blob with its modification time (for the GC's orphan sweep)."""
        for alg_dir in self.blobs.iterdir():
            if not alg_dir.is_dir():
                continue
            for fan in alg_dir.iterdir():
                if not fan.is_dir():
                    continue
                for entry in os.scandir(fan):
                    try:
                        digest = Digest(f"{alg_dir.name}:{entry.name}")
                        yield digest, entry.stat().st_mtime
                    except (InvalidDigest, OSError):
                        continue

    def upload_path(self, upload_id: str) -> Path:
        return self.uploads / upload_id

    def new_upload_path(self, suffix: str = "") -> Path:
        return self.uploads / f"{uuid.uuid4()}{suffix}"
