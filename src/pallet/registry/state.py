"""Everything a running registry holds: storage, uploads, auth, caches and side channels."""

from __future__ import annotations

from dataclasses import dataclass

from pallet.errors import RegistryError
from pallet.oci.digest import Digest
from pallet.registry.audit import AuditLog
from pallet.registry.auth.authn import Authenticator
from pallet.registry.config import RegistryConfig
from pallet.registry.metrics import Metrics
from pallet.registry.notify import Notifier
from pallet.registry.storage.blobs import FilesystemBlobStore
from pallet.registry.storage.metadata import MetadataStore
from pallet.registry.storage.sqlite import SQLiteMetadata
from pallet.registry.uploads import Uploads

_CACHE_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CachedManifest:
    digest: Digest
    media_type: str
    body: bytes
    headers: dict[str, str]


class ManifestCache:
    """Manifests by (repository, reference), so a GET is a dict lookup.

    Dropped per repository on every write here, and entirely when another connection
    (a GC thread, a CLI in another process) changed the database, which SQLite's
    ``data_version`` tells in one cheap call.
    """

    def __init__(self, meta: MetadataStore) -> None:
        self._meta = meta
        self._repos: dict[str, dict[str, CachedManifest]] = {}
        self._version = meta.data_version()
        self._bytes = 0

    def get(self, repo: str, ref: str) -> CachedManifest | None:
        version = self._meta.data_version()
        if version != self._version:
            self.clear()
            self._version = version
        entries = self._repos.get(repo)
        return None if entries is None else entries.get(ref)

    def put(self, repo: str, ref: str, entry: CachedManifest) -> None:
        if self._bytes + len(entry.body) > _CACHE_MAX_BYTES:
            self.clear()
        self._repos.setdefault(repo, {})[ref] = entry
        self._bytes += len(entry.body)

    def invalidate(self, repo: str) -> None:
        self._repos.pop(repo, None)

    def clear(self) -> None:
        self._repos.clear()
        self._bytes = 0


class RegistryState:
    def __init__(self, config: RegistryConfig, *, notifier: Notifier | None = None) -> None:
        self.config = config
        try:
            config.data.mkdir(parents=True, exist_ok=True)
            self.blobs = FilesystemBlobStore(config.data)
        except OSError as exc:
            raise RegistryError(
                f"cannot use data directory {config.data}: {exc.strerror}"
            ) from None
        self.meta: MetadataStore = SQLiteMetadata(config.data / "metadata.db")
        self.uploads = Uploads(self.blobs, self.meta, config.limits.max_blob_bytes)
        self.auth = Authenticator(config)
        self.audit = AuditLog(config.audit_path)
        self.metrics = Metrics()
        self.notifier = notifier or Notifier(config.notifications)
        self.cache = ManifestCache(self.meta)

    def close(self) -> None:
        self.meta.close()
        self.audit.close()
