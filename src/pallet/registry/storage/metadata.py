"""Registry metadata: repositories, tags, manifests and what they reference, uploads.

``MetadataStore`` is the interface; :mod:`pallet.registry.storage.sqlite` implements it.
A PostgreSQL implementation would keep the same transactions: every method that changes
state is atomic, and the ones taking an ``install`` callback run it while holding the
write lock, so moving blob bytes and recording them cannot interleave with a GC sweep.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pallet.oci.digest import Digest


@dataclass(frozen=True)
class ManifestRecord:
    repo: str
    digest: Digest
    media_type: str
    size: int
    subject: str | None = None
    artifact_type: str = ""
    annotations: str = ""  # JSON object text, or empty
    pushed: float = 0.0


@dataclass(frozen=True)
class TagRecord:
    repo: str
    tag: str
    digest: Digest
    pushed: float


@dataclass(frozen=True)
class UploadRecord:
    upload_id: str
    repo: str
    started: float
    updated: float


@dataclass(frozen=True)
class MissingReferences:
    """What a manifest refers to that its repository does not hold."""

    digests: tuple[str, ...]


class MetadataStore(Protocol):
    def data_version(self) -> int: ...
    def close(self) -> None: ...

    # blobs
    def add_blob(
        self, repo: str, digest: Digest, size: int, install: Callable[[], None]
    ) -> None: ...
    def blob_size(self, repo: str, digest: Digest, touch: bool = False) -> int | None: ...
    def repos_with_blob(self, digest: Digest) -> list[str]: ...
    def link_blob(self, repo: str, digest: Digest) -> int | None: ...
    def unlink_blob(self, repo: str, digest: Digest) -> bool: ...

    # manifests and tags
    def put_manifest(
        self,
        record: ManifestRecord,
        blob_refs: Sequence[Digest],
        manifest_refs: Sequence[Digest],
        tags: Sequence[str],
        install: Callable[[], None],
    ) -> MissingReferences | None: ...
    def get_manifest(self, repo: str, digest: Digest) -> ManifestRecord | None: ...
    def resolve_tag(self, repo: str, tag: str) -> ManifestRecord | None: ...
    def delete_manifest(self, repo: str, digest: Digest) -> list[str] | None: ...
    def delete_tag(self, repo: str, tag: str, expected: Digest | None = None) -> Digest | None: ...
    def delete_untagged_manifest(self, repo: str, digest: Digest, pushed_before: float) -> bool: ...
    def repo_exists(self, repo: str) -> bool: ...
    def list_tags(self, repo: str, last: str, limit: int) -> list[str]: ...
    def tag_records(self, repo: str) -> list[TagRecord]: ...
    def manifests(self, repo: str) -> list[ManifestRecord]: ...
    def manifest_children(self, digest: Digest) -> list[Digest]: ...
    def list_repositories(self, last: str, limit: int) -> list[str]: ...
    def referrers(self, repo: str, subject: Digest) -> list[ManifestRecord]: ...

    # upload sessions
    def add_upload(self, upload_id: str, repo: str) -> None: ...
    def get_upload(self, upload_id: str) -> UploadRecord | None: ...
    def touch_upload(self, upload_id: str) -> None: ...
    def remove_upload(self, upload_id: str) -> None: ...
    def uploads_before(self, cutoff: float) -> list[UploadRecord]: ...

    # garbage collection
    def gc_stale_links(self, cutoff: float, dry_run: bool) -> list[tuple[str, Digest]]: ...
    def gc_candidates(self, fresh_after: float | None = None) -> list[Digest]: ...
    def blob_record_size(self, digest: Digest) -> int | None: ...
    def gc_remove_blob(self, digest: Digest, remove: Callable[[], None]) -> bool: ...
    def has_blob(self, digest: Digest) -> bool: ...
