"""The local store: one directory that is at once pallet's image store and a valid OCI
image layout (``skopeo inspect oci:ROOT:REF`` and umoci read it).

```
oci-layout, index.json   the layout; tags are ref.name annotations (full references)
blobs/<alg>/<hex>        content-addressed blobs, shared by every image
ingest/                  blobs being written (same filesystem: commit is a rename)
snapshots/<chain-hex>/   extracted layers in overlay form
state.db                 SQLite: leases (later build cache, containers)
locks/                   flock files: index.json writers, gc
containers/, volumes/    owned by the runtime
```
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path

from pallet.errors import StoreError
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.oci.layout import LAYOUT_FILE as LAYOUT_FILE
from pallet.oci.manifest import Manifest
from pallet.oci.platform import Platform
from pallet.store import images
from pallet.store.blobs import DEFAULT_MAX_READ, BlobStore, BlobWriter
from pallet.store.fsutil import atomic_write
from pallet.store.images import StoredImage
from pallet.store.leases import Lease, LeaseManager
from pallet.store.locks import FileLock
from pallet.store.refs import IndexEntry, IndexFile
from pallet.store.state import StateDB

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import BinaryIO

if TYPE_CHECKING:
    from pallet.store.check import CheckReport
    from pallet.store.gc import GCReport
    from pallet.store.snapshots import SnapshotStore

_LAYOUT_JSON = json.dumps({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}).encode()
_DIRS = ("blobs/sha256", "ingest", "snapshots", "containers", "volumes", "locks")
#: what may be in a directory that is not a layout yet: an empty mount point's
#: lost+found, or the start of a store another process is creating right now
_HARMLESS = frozenset(
    {"lost+found", "blobs", "index.json", "state.db", "state.db-wal", "state.db-shm", *_DIRS}
)


def _harmless(name: str) -> bool:
    return name in _HARMLESS or (name.startswith(f".{LAYOUT_FILE}.") and name.endswith(".tmp"))


def _check_layout_marker(root: Path) -> None:
    marker = root / LAYOUT_FILE
    try:
        doc = json.loads(marker.read_bytes())
    except (OSError, ValueError) as exc:
        raise StoreError(f"{marker} cannot be read: {exc}") from None
    version = doc.get("imageLayoutVersion") if isinstance(doc, dict) else None
    if not isinstance(version, str) or not version.startswith("1."):
        raise StoreError(f"{marker}: unsupported image layout version {version!r}")


def _prepare_root(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise StoreError(f"{root}: not a directory; cannot hold a store")
    if (root / LAYOUT_FILE).exists():
        _check_layout_marker(root)
    elif root.is_dir() and any(not _harmless(p.name) for p in root.iterdir()):
        raise StoreError(
            f"{root}: not a pallet store or OCI image layout (no {LAYOUT_FILE}); "
            "refusing to use a directory that holds other files"
        )
    root.mkdir(mode=0o711, parents=True, exist_ok=True)
    for name in _DIRS:
        (root / name).mkdir(parents=True, exist_ok=True)
    if not (root / LAYOUT_FILE).exists():
        atomic_write(root / LAYOUT_FILE, _LAYOUT_JSON)


class Store:
    """Open with :meth:`open`; every method is safe across threads and processes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._gc_lock = FileLock(root / "locks" / "gc.lock")
        self._index_lock = FileLock(root / "locks" / "index.lock")
        self._blobs = BlobStore(root)
        self._index = IndexFile(root, self._index_lock.exclusive)
        self.state = StateDB(root)
        self.leases = LeaseManager(self.state, self._gc_lock.shared)
        self._snapshots: SnapshotStore | None = None

    @property
    def snapshots(self) -> SnapshotStore:
        # made on first use: commands that never touch snapshots skip their imports
        if self._snapshots is None:
            from pallet.store.snapshots import SnapshotStore

            self._snapshots = SnapshotStore(self.root, self._blobs, self._gc_lock.shared)
        return self._snapshots

    @classmethod
    def open(cls, root: Path) -> Store:
        """Open the store at ``root``, creating it if missing or empty.

        A directory that holds other things and is not an OCI layout is refused, so a
        mistyped ``--root`` cannot litter (or later garbage-collect in) someone's files.
        """
        root = Path(root).absolute()
        try:
            _prepare_root(root)
        except OSError as exc:
            raise StoreError(f"{root}: cannot open the store: {exc.strerror}") from exc
        store = cls(root)
        store._index.create_if_missing()
        store.state.initialize()
        return store

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- blobs ----------------------------------------------------------------------

    def has_blob(self, digest: Digest) -> bool:
        return self._blobs.has(digest)

    def blob_path(self, digest: Digest) -> Path:
        return self._blobs.path(digest)

    def blob_size(self, digest: Digest) -> int:
        return self._blobs.size(digest)

    def open_blob(self, digest: Digest) -> BinaryIO:
        return self._blobs.open(digest)

    def read_blob(self, digest: Digest, max_size: int = DEFAULT_MAX_READ) -> bytes:
        """A small blob, whole and verified (DigestMismatch names a corrupt one)."""
        return self._blobs.read(digest, max_size)

    def ingest(
        self,
        expected: Digest | None = None,
        expected_size: int | None = None,
        *,
        hashed_by_caller: bool = False,
    ) -> BlobWriter:
        """A writer for one blob; see :class:`BlobWriter`. Lease ``expected`` first if the
        blob must survive a concurrent gc until something references it."""
        return BlobWriter(
            self._blobs,
            self._gc_lock.shared,
            expected,
            expected_size,
            hashed_by_caller=hashed_by_caller,
        )

    def write_blob(self, data: bytes, expected: Digest | None = None) -> Digest:
        with self.ingest(expected, len(data) if expected is not None else None) as w:
            w.write(data)
            digest, _ = w.commit()
        return digest

    def remove_blob(self, digest: Digest) -> None:
        """Delete one blob now (undoing a failed write); gc is the general way."""
        with self._gc_lock.shared():
            self._blobs.path(digest).unlink(missing_ok=True)

    def blobs(self) -> list[Digest]:
        return self._blobs.iter_digests()

    # -- images and tags (index.json) -----------------------------------------------

    def images(self) -> list[IndexEntry]:
        return self._index.entries()

    def resolve(self, name: str) -> Descriptor:
        """The index entry tagged exactly ``name`` (a full normalized reference); failing
        that, what :meth:`find` makes of it (familiar name, digest, image ID)."""
        # find tries the exact name first: one read of index.json serves both steps
        return self.find(name)

    def find(self, name_or_id: str) -> Descriptor:
        """The index entry for a full or familiar reference, a manifest digest, an image
        ID or a unique prefix of one (docker's rules); NotFound or Conflict (ambiguous)."""
        return images.find_entry(self._blobs.read, self._index.entries(), name_or_id).descriptor

    def load_manifest(self, desc: Descriptor) -> Manifest:
        """The image manifest ``desc`` names (an index: its host-platform child)."""
        return images.load_manifest(
            self._blobs.read, images.platform_manifest(self._blobs.read, desc)
        )

    def image(self, name_or_id: str, platform: Platform | None = None) -> StoredImage:
        """An image with its manifest and config, found as :meth:`find` finds it."""
        entries = self._index.entries()
        entry = images.find_entry(self._blobs.read, entries, name_or_id)
        return images.stored_image(self._blobs.read, entries, entry, platform)

    def tag(self, name: str, desc: Descriptor) -> None:
        self._index.tag(name, desc)

    def untag(self, name: str) -> Descriptor:
        return self._index.untag(name)

    def add_image(self, desc: Descriptor) -> None:
        self._index.add_image(desc)

    def remove_image(self, digest: Digest) -> None:
        self._index.remove_image(Digest(digest))

    def update_index(self, fn: Callable[[list[Descriptor]], list[Descriptor]]) -> None:
        self._index.update(fn)

    # -- leases, gc, check ----------------------------------------------------------

    def lease(self, digests: Iterable[Digest] = (), ttl: float | None = 3600) -> Lease:
        """Protect ``digests`` (blobs, or snapshot chain IDs) from gc until the lease is
        released (``with`` block exit) or expires."""
        return self.leases.create(digests, ttl)

    def gc(self, *, dry_run: bool = False) -> GCReport:
        from pallet.store.gc import collect

        with self._gc_lock.exclusive():
            return collect(self._blobs, self._index, self.leases, self.snapshots, dry_run=dry_run)

    def check(self) -> CheckReport:
        from pallet.store.check import run_check

        return run_check(self._blobs, self._index, self.snapshots)

    def gc_lock(self) -> AbstractContextManager[None]:
        """Hold off gc (shared) while doing several steps it must not interleave with."""
        return self._gc_lock.shared()
