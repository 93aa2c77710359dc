"""Which registry repositories are known to hold a blob, so a push can ask the registry
to mount it across repositories instead of uploading it again (as Docker's
``v2metadata`` does). Kept in a small SQLite file beside the store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from pallet.oci.digest import Digest

FILE_NAME = "registry-sources.db"
MAX_PER_BLOB = 8


class BlobSources:
    def __init__(self, root: Path) -> None:
        self.path = root / FILE_NAME

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute(
            "CREATE TABLE IF NOT EXISTS sources (digest TEXT, registry TEXT, repository TEXT, "
            "PRIMARY KEY (digest, registry, repository))"
        )
        return db

    def record(self, registry: str, repository: str, digests: Iterable[Digest]) -> None:
        rows = [(str(d), registry, repository) for d in digests]
        if not rows:
            return
        try:
            db = self._connect()
        except sqlite3.Error:
            return  # only a hint: losing it costs an upload, never correctness
        try:
            with db:
                db.executemany("INSERT OR IGNORE INTO sources VALUES (?, ?, ?)", rows)
        except sqlite3.Error:
            pass
        finally:
            db.close()

    def repositories(self, registry: str, digest: Digest) -> list[str]:
        """Repositories of ``registry`` that held ``digest`` when last seen."""
        if not self.path.exists():
            return []
        try:
            db = self._connect()
            try:
                rows = db.execute(
                    "SELECT repository FROM sources WHERE digest = ? AND registry = ? LIMIT ?",
                    (str(digest), registry, MAX_PER_BLOB),
                ).fetchall()
            finally:
                db.close()
        except sqlite3.Error:
            return []
        return [r[0] for r in rows]
