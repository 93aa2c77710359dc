"""Garbage collection: keep what index.json and live leases reach, remove the rest.

gc holds the store's gc lock exclusively from marking to the end of sweeping; every
writer takes it shared just to create an ingest file, commit a blob or add to a lease,
so nothing can become reachable behind gc's back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pallet.oci.digest import Digest
from pallet.store.blobs import BlobStore
from pallet.store.fsutil import remove_tree
from pallet.store.leases import LeaseManager
from pallet.store.locks import is_in_use
from pallet.store.reach import mark
from pallet.store.refs import IndexFile
from pallet.store.snapshots import SnapshotStore


@dataclass(frozen=True)
class GCReport:
    removed_blobs: tuple[Digest, ...]
    removed_snapshots: tuple[Digest, ...]
    #: ingest files, snapshot temp dirs and index.json temp files of crashed writers
    removed_leftovers: tuple[Path, ...]
    #: bytes of the removed blobs
    freed_bytes: int
    dry_run: bool


def stale_ingest_files(blobs: BlobStore) -> list[Path]:
    if not blobs.ingest_dir.is_dir():
        return []
    return [p for p in sorted(blobs.ingest_dir.iterdir()) if not is_in_use(p)]


def collect(
    blobs: BlobStore,
    index: IndexFile,
    leases: LeaseManager,
    snapshots: SnapshotStore,
    *,
    dry_run: bool = False,
) -> GCReport:
    """Mark and sweep; the caller holds the gc lock exclusively."""
    if not dry_run:
        leases.delete_expired()
    leased = leases.live_digests()
    roots = [d.digest for d in index.descriptors()]
    reach = mark(blobs, [*roots, *leased])
    keep_snapshots = reach.snapshots | leased

    removed_blobs: list[Digest] = []
    freed = 0
    for digest in blobs.iter_digests():
        if digest in reach.blobs or digest in leased:
            continue
        path = blobs.path(digest)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        if not dry_run:
            path.unlink(missing_ok=True)
        removed_blobs.append(digest)
        freed += size

    removed_snapshots = [c for c in snapshots.chain_ids() if c not in keep_snapshots]
    leftovers = [*stale_ingest_files(blobs), *snapshots.leftovers()]
    stale_index = index.stale_temp_files(remove=not dry_run)
    if not dry_run:
        for chain_id in removed_snapshots:
            snapshots.remove(chain_id)
        for path in leftovers:
            if path.is_dir():
                remove_tree(path)
            else:
                path.unlink(missing_ok=True)
    return GCReport(
        tuple(removed_blobs),
        tuple(removed_snapshots),
        (*leftovers, *stale_index),
        freed,
        dry_run,
    )
