"""The local store: blobs, images and tags (an OCI image layout), snapshots, leases, gc."""

from pallet.lazy_exports import lazy_getattr

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)

__all__ = [
    "BlobWriter",
    "CheckReport",
    "GCReport",
    "IndexEntry",
    "Lease",
    "Problem",
    "SnapshotInfo",
    "SnapshotStore",
    "Store",
    "StoredImage",
]

__getattr__ = lazy_getattr(
    __name__,
    {
        "BlobWriter": "blobs",
        "CheckReport": "check",
        "GCReport": "gc",
        "IndexEntry": "refs",
        "Lease": "leases",
        "Problem": "check",
        "SnapshotInfo": "snapshots",
        "SnapshotStore": "snapshots",
        "Store": "store",
        "StoredImage": "images",
    },
)

if TYPE_CHECKING:
    from pallet.store.blobs import BlobWriter
    from pallet.store.check import CheckReport, Problem
    from pallet.store.gc import GCReport
    from pallet.store.images import StoredImage
    from pallet.store.leases import Lease
    from pallet.store.refs import IndexEntry
    from pallet.store.snapshots import SnapshotInfo, SnapshotStore
    from pallet.store.store import Store
