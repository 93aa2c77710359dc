"""The local store: blobs, images and tags (an OCI image layout), snapshots, leases, gc."""

from pallet.store.blobs import BlobWriter
from pallet.store.check import CheckReport, Problem
from pallet.store.gc import GCReport
from pallet.store.images import StoredImage
from pallet.store.leases import Lease
from pallet.store.refs import IndexEntry
from pallet.store.snapshots import SnapshotInfo, SnapshotStore
from pallet.store.store import Store

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
