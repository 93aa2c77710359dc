"""Online garbage collection: mark from metadata, sweep what stayed unreferenced.

A blob is kept while a live manifest is it or names it, or while a repository link to it
is younger than the grace period (links are refreshed by uploads, mounts, manifest pushes
and HEAD requests). So a push in flight, which HEADs or uploads its blobs before its
manifest arrives, never loses a blob as long as it finishes within the grace period. Each
removal is re-checked under the metadata write lock, so it cannot interleave with a push
that makes the blob wanted again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from pallet.registry.audit import AuditEvent, AuditLog
from pallet.registry.storage.blobs import FilesystemBlobStore
from pallet.registry.storage.metadata import MetadataStore


@dataclass(frozen=True)
class GCReport:
    dry_run: bool
    links_removed: list[tuple[str, str]] = field(default_factory=list)
    blobs_removed: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    orphan_files_removed: list[str] = field(default_factory=list)
    uploads_expired: list[str] = field(default_factory=list)

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return (
            f"gc {verb} {len(self.blobs_removed)} blob(s) ({self.bytes_freed} bytes), "
            f"{len(self.links_removed)} stale repository link(s), "
            f"{len(self.orphan_files_removed)} orphan file(s), "
            f"{len(self.uploads_expired)} expired upload(s)"
        )


def collect_garbage(
    meta: MetadataStore,
    blobs: FilesystemBlobStore,
    *,
    grace_seconds: float,
    upload_max_age_seconds: float,
    dry_run: bool = False,
    audit: AuditLog | None = None,
    now: float | None = None,
) -> GCReport:
    now = time.time() if now is None else now
    cutoff = now - grace_seconds
    links = meta.gc_stale_links(cutoff, dry_run=dry_run)
    removed: list[str] = []
    freed = 0
    candidates = meta.gc_candidates(cutoff if dry_run else None)
    for digest in candidates:
        size = meta.blob_record_size(digest) or 0
        if dry_run:
            removed.append(digest)
            freed += size
            continue
        if meta.gc_remove_blob(digest, lambda d=digest: blobs.remove(d)):  # type: ignore[misc]
            removed.append(digest)
            freed += size
            if audit is not None:
                audit.record(AuditEvent("gc", "", "gc.blob.delete", "", digest=digest))
    orphans = _orphans(meta, blobs, cutoff, dry_run)
    expired = _stale_uploads(meta, blobs, now - upload_max_age_seconds, dry_run)
    return GCReport(
        dry_run=dry_run,
        links_removed=[(repo, str(d)) for repo, d in links],
        blobs_removed=[str(d) for d in removed],
        bytes_freed=freed,
        orphan_files_removed=orphans,
        uploads_expired=expired,
    )


def _orphans(
    meta: MetadataStore, blobs: FilesystemBlobStore, cutoff: float, dry_run: bool
) -> list[str]:
    """Files under blobs/ with no metadata row (a crash between rename and commit)."""
    found = []
    for digest, mtime in list(blobs.walk()):
        if mtime >= cutoff or meta.has_blob(digest):
            continue
        found.append(str(digest))
        if not dry_run:
            blobs.remove(digest)
    return found


def _stale_uploads(
    meta: MetadataStore, blobs: FilesystemBlobStore, cutoff: float, dry_run: bool
) -> list[str]:
    expired = []
    for record in meta.uploads_before(cutoff):
        expired.append(record.upload_id)
        if not dry_run:
            meta.remove_upload(record.upload_id)
            blobs.upload_path(record.upload_id).unlink(missing_ok=True)
    # Temp files of monolithic uploads and manifests interrupted by a crash.
    for path in blobs.uploads.glob("*.tmp"):
        try:
            if path.stat().st_mtime < cutoff:
                expired.append(path.name)
                if not dry_run:
                    path.unlink(missing_ok=True)
        except FileNotFoundError:
            continue
    return expired


def run_gc_offline(
    data: Path,
    *,
    grace_seconds: float,
    upload_max_age_seconds: float,
    dry_run: bool,
    audit_path: Path | None,
) -> GCReport:
    """GC with a connection of its own: from the CLI, or on a server's worker thread."""
    from pallet.registry.storage.sqlite import SQLiteMetadata

    meta = SQLiteMetadata(data / "metadata.db")
    audit = AuditLog(audit_path) if audit_path is not None and not dry_run else None
    try:
        return collect_garbage(
            meta,
            FilesystemBlobStore(data),
            grace_seconds=grace_seconds,
            upload_max_age_seconds=upload_max_age_seconds,
            dry_run=dry_run,
            audit=audit,
        )
    finally:
        meta.close()
        if audit is not None:
            audit.close()
