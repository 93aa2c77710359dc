"""SQLite implementation of :class:`MetadataStore` (the default).

WAL mode lets readers proceed while one writer commits. Methods that change blobs take
SQLite's write lock first (``BEGIN IMMEDIATE``) and run the file operation inside the
transaction, so a GC in another process or thread serializes with pushes.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pallet.errors import RegistryError
from pallet.oci.digest import Digest
from pallet.registry.storage.metadata import (
    ManifestRecord,
    MissingReferences,
    TagRecord,
    UploadRecord,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs(
    digest TEXT PRIMARY KEY, size INTEGER NOT NULL, created REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS repo_blobs(
    repo TEXT NOT NULL, digest TEXT NOT NULL, linked REAL NOT NULL,
    PRIMARY KEY(repo, digest)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS repo_blobs_digest ON repo_blobs(digest);
CREATE TABLE IF NOT EXISTS manifests(
    repo TEXT NOT NULL, digest TEXT NOT NULL, media_type TEXT NOT NULL, size INTEGER NOT NULL,
    subject TEXT, artifact_type TEXT NOT NULL, annotations TEXT NOT NULL, pushed REAL NOT NULL,
    PRIMARY KEY(repo, digest)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS manifests_digest ON manifests(digest);
CREATE INDEX IF NOT EXISTS manifests_subject ON manifests(repo, subject);
CREATE TABLE IF NOT EXISTS manifest_refs(
    digest TEXT NOT NULL, child TEXT NOT NULL, PRIMARY KEY(digest, child)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS manifest_refs_child ON manifest_refs(child);
CREATE TABLE IF NOT EXISTS tags(
    repo TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, pushed REAL NOT NULL,
    PRIMARY KEY(repo, tag)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_digest ON tags(repo, digest);
CREATE TABLE IF NOT EXISTS repositories(name TEXT PRIMARY KEY, created REAL NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads(
    id TEXT PRIMARY KEY, repo TEXT NOT NULL, started REAL NOT NULL, updated REAL NOT NULL)
    WITHOUT ROWID;
"""

_MANIFEST_COLS = "repo, digest, media_type, size, subject, artifact_type, annotations, pushed"

# A blob is still wanted while a repository links it or a live manifest is it or names it.
_WANTED = """(
    EXISTS (SELECT 1 FROM repo_blobs l WHERE l.digest = b.digest)
    OR EXISTS (SELECT 1 FROM manifests m WHERE m.digest = b.digest)
    OR EXISTS (SELECT 1 FROM manifest_refs r JOIN manifests m ON m.digest = r.digest
               WHERE r.child = b.digest))"""


def _manifest(row: tuple[object, ...]) -> ManifestRecord:
    repo, digest, media_type, size, subject, artifact_type, annotations, pushed = row
    return ManifestRecord(
        repo=str(repo),
        digest=Digest(str(digest)),
        media_type=str(media_type),
        size=int(size),  # type: ignore[call-overload]
        subject=None if subject is None else str(subject),
        artifact_type=str(artifact_type),
        annotations=str(annotations),
        pushed=float(pushed),  # type: ignore[arg-type]
    )


class SQLiteMetadata:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot open registry database {path}: {exc}") from None

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def data_version(self) -> int:
        row = self._db.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def _ensure_repo(self, db: sqlite3.Connection, repo: str, now: float) -> None:
        db.execute("INSERT OR IGNORE INTO repositories VALUES (?, ?)", (repo, now))

    # blobs -----------------------------------------------------------------------------

    def add_blob(self, repo: str, digest: Digest, size: int, install: Callable[[], None]) -> None:
        now = time.time()
        with self._write() as db:
            install()
            db.execute("INSERT OR IGNORE INTO blobs VALUES (?, ?, ?)", (digest, size, now))
            db.execute("INSERT OR REPLACE INTO repo_blobs VALUES (?, ?, ?)", (repo, digest, now))
            self._ensure_repo(db, repo, now)

    def blob_size(self, repo: str, digest: Digest, touch: bool = False) -> int | None:
        if touch:
            # A client that saw the blob may rely on it for its next manifest: keep it out
            # of the GC's reach for another grace period. Refreshed before the lookup, in
            # one atomic statement, so a GC cannot remove the link between the two.
            self._db.execute(
                "UPDATE repo_blobs SET linked = ? WHERE repo = ? AND digest = ?",
                (time.time(), repo, digest),
            )
        row = self._db.execute(
            "SELECT size FROM blobs b WHERE digest = ? AND ("
            " EXISTS (SELECT 1 FROM repo_blobs WHERE repo = ? AND digest = b.digest)"
            " OR EXISTS (SELECT 1 FROM manifests WHERE repo = ? AND digest = b.digest))",
            (digest, repo, repo),
        ).fetchone()
        if row is None:
            return None
        return int(row[0])

    def repos_with_blob(self, digest: Digest) -> list[str]:
        rows = self._db.execute(
            "SELECT repo FROM repo_blobs WHERE digest = ?"
            " UNION SELECT repo FROM manifests WHERE digest = ?",
            (digest, digest),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def link_blob(self, repo: str, digest: Digest) -> int | None:
        now = time.time()
        with self._write() as db:
            row = db.execute("SELECT size FROM blobs WHERE digest = ?", (digest,)).fetchone()
            if row is None:
                return None
            db.execute("INSERT OR REPLACE INTO repo_blobs VALUES (?, ?, ?)", (repo, digest, now))
            self._ensure_repo(db, repo, now)
            return int(row[0])

    def unlink_blob(self, repo: str, digest: Digest) -> bool:
        with self._write() as db:
            cur = db.execute("DELETE FROM repo_blobs WHERE repo = ? AND digest = ?", (repo, digest))
            return cur.rowcount > 0

    def has_blob(self, digest: Digest) -> bool:
        row = self._db.execute("SELECT 1 FROM blobs WHERE digest = ?", (digest,)).fetchone()
        return row is not None

    # manifests -------------------------------------------------------------------------

    def put_manifest(
        self,
        record: ManifestRecord,
        blob_refs: Sequence[Digest],
        manifest_refs: Sequence[Digest],
        tags: Sequence[str],
        install: Callable[[], None],
    ) -> MissingReferences | None:
        repo = record.repo
        now = time.time()
        with self._write() as db:
            missing: list[str] = []
            for d in blob_refs:
                if (
                    db.execute(
                        "SELECT 1 FROM repo_blobs WHERE repo = ? AND digest = ?"
                        " UNION ALL SELECT 1 FROM manifests WHERE repo = ? AND digest = ?",
                        (repo, d, repo, d),
                    ).fetchone()
                    is None
                ):
                    missing.append(d)
            for d in manifest_refs:
                if (
                    db.execute(
                        "SELECT 1 FROM manifests WHERE repo = ? AND digest = ?", (repo, d)
                    ).fetchone()
                    is None
                ):
                    missing.append(d)
            if missing:
                return MissingReferences(tuple(missing))
            install()
            db.execute(
                "INSERT OR IGNORE INTO blobs VALUES (?, ?, ?)", (record.digest, record.size, now)
            )
            db.execute(
                f"INSERT OR REPLACE INTO manifests ({_MANIFEST_COLS}) VALUES (?,?,?,?,?,?,?,?)",
                (
                    repo,
                    record.digest,
                    record.media_type,
                    record.size,
                    record.subject,
                    record.artifact_type,
                    record.annotations,
                    now,
                ),
            )
            db.executemany(
                "INSERT OR IGNORE INTO manifest_refs VALUES (?, ?)",
                [(record.digest, d) for d in (*blob_refs, *manifest_refs)],
            )
            db.executemany(
                "UPDATE repo_blobs SET linked = ? WHERE repo = ? AND digest = ?",
                [(now, repo, d) for d in blob_refs],
            )
            db.executemany(
                "INSERT OR REPLACE INTO tags VALUES (?, ?, ?, ?)",
                [(repo, t, record.digest, now) for t in tags],
            )
            self._ensure_repo(db, repo, now)
        return None

    def get_manifest(self, repo: str, digest: Digest) -> ManifestRecord | None:
        row = self._db.execute(
            f"SELECT {_MANIFEST_COLS} FROM manifests WHERE repo = ? AND digest = ?",
            (repo, digest),
        ).fetchone()
        return None if row is None else _manifest(row)

    def resolve_tag(self, repo: str, tag: str) -> ManifestRecord | None:
        row = self._db.execute(
            f"SELECT {', '.join('m.' + c.strip() for c in _MANIFEST_COLS.split(','))}"
            " FROM tags t JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest"
            " WHERE t.repo = ? AND t.tag = ?",
            (repo, tag),
        ).fetchone()
        return None if row is None else _manifest(row)

    def delete_manifest(self, repo: str, digest: Digest) -> list[str] | None:
        with self._write() as db:
            cur = db.execute("DELETE FROM manifests WHERE repo = ? AND digest = ?", (repo, digest))
            if cur.rowcount == 0:
                return None
            tags = [
                str(r[0])
                for r in db.execute(
                    "SELECT tag FROM tags WHERE repo = ? AND digest = ?", (repo, digest)
                )
            ]
            db.execute("DELETE FROM tags WHERE repo = ? AND digest = ?", (repo, digest))
            return tags

    def delete_tag(self, repo: str, tag: str, expected: Digest | None = None) -> Digest | None:
        with self._write() as db:
            row = db.execute(
                "SELECT digest FROM tags WHERE repo = ? AND tag = ?", (repo, tag)
            ).fetchone()
            if row is None or (expected is not None and row[0] != expected):
                return None
            db.execute("DELETE FROM tags WHERE repo = ? AND tag = ?", (repo, tag))
            return Digest(str(row[0]))

    def delete_untagged_manifest(self, repo: str, digest: Digest, pushed_before: float) -> bool:
        """Delete a manifest only if, under the write lock, nothing in the repo needs it."""
        with self._write() as db:
            row = db.execute(
                "SELECT 1 FROM manifests m WHERE repo = ? AND digest = ? AND pushed < ?"
                " AND NOT EXISTS (SELECT 1 FROM tags WHERE repo = m.repo AND digest = m.digest)"
                " AND NOT EXISTS (SELECT 1 FROM manifest_refs r JOIN manifests p"
                "   ON p.digest = r.digest WHERE r.child = m.digest AND p.repo = m.repo)",
                (repo, digest, pushed_before),
            ).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM manifests WHERE repo = ? AND digest = ?", (repo, digest))
            return True

    def repo_exists(self, repo: str) -> bool:
        row = self._db.execute("SELECT 1 FROM repositories WHERE name = ?", (repo,)).fetchone()
        return row is not None

    def list_tags(self, repo: str, last: str, limit: int) -> list[str]:
        rows = self._db.execute(
            "SELECT tag FROM tags WHERE repo = ? AND tag > ? ORDER BY tag LIMIT ?",
            (repo, last, limit),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def tag_records(self, repo: str) -> list[TagRecord]:
        rows = self._db.execute(
            "SELECT repo, tag, digest, pushed FROM tags WHERE repo = ?", (repo,)
        ).fetchall()
        return [TagRecord(str(r[0]), str(r[1]), Digest(str(r[2])), float(r[3])) for r in rows]

    def manifests(self, repo: str) -> list[ManifestRecord]:
        rows = self._db.execute(
            f"SELECT {_MANIFEST_COLS} FROM manifests WHERE repo = ?", (repo,)
        ).fetchall()
        return [_manifest(r) for r in rows]

    def manifest_children(self, digest: Digest) -> list[Digest]:
        rows = self._db.execute(
            "SELECT child FROM manifest_refs WHERE digest = ?", (digest,)
        ).fetchall()
        return [Digest(str(r[0])) for r in rows]

    def list_repositories(self, last: str, limit: int) -> list[str]:
        rows = self._db.execute(
            "SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?", (last, limit)
        ).fetchall()
        return [str(r[0]) for r in rows]

    def referrers(self, repo: str, subject: Digest) -> list[ManifestRecord]:
        rows = self._db.execute(
            f"SELECT {_MANIFEST_COLS} FROM manifests WHERE repo = ? AND subject = ?"
            " ORDER BY digest",
            (repo, subject),
        ).fetchall()
        return [_manifest(r) for r in rows]

    # uploads ---------------------------------------------------------------------------

    def add_upload(self, upload_id: str, repo: str) -> None:
        now = time.time()
        self._db.execute("INSERT INTO uploads VALUES (?, ?, ?, ?)", (upload_id, repo, now, now))

    def get_upload(self, upload_id: str) -> UploadRecord | None:
        row = self._db.execute(
            "SELECT id, repo, started, updated FROM uploads WHERE id = ?", (upload_id,)
        ).fetchone()
        return None if row is None else UploadRecord(str(row[0]), str(row[1]), row[2], row[3])

    def touch_upload(self, upload_id: str) -> None:
        self._db.execute("UPDATE uploads SET updated = ? WHERE id = ?", (time.time(), upload_id))

    def remove_upload(self, upload_id: str) -> None:
        self._db.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))

    def uploads_before(self, cutoff: float) -> list[UploadRecord]:
        rows = self._db.execute(
            "SELECT id, repo, started, updated FROM uploads WHERE updated < ?", (cutoff,)
        ).fetchall()
        return [UploadRecord(str(r[0]), str(r[1]), r[2], r[3]) for r in rows]

    # garbage collection ----------------------------------------------------------------

    def gc_stale_links(self, cutoff: float, dry_run: bool) -> list[tuple[str, Digest]]:
        """Links older than ``cutoff`` that no manifest of their repository needs."""
        query = (
            "SELECT l.repo, l.digest FROM repo_blobs l WHERE l.linked < ? AND NOT EXISTS ("
            " SELECT 1 FROM manifest_refs r JOIN manifests m ON m.digest = r.digest"
            " WHERE r.child = l.digest AND m.repo = l.repo)"
        )
        if dry_run:
            rows = self._db.execute(query, (cutoff,)).fetchall()
            return [(str(r[0]), Digest(str(r[1]))) for r in rows]
        with self._write() as db:
            rows = db.execute(query, (cutoff,)).fetchall()
            db.executemany(
                "DELETE FROM repo_blobs WHERE repo = ? AND digest = ?", [(r[0], r[1]) for r in rows]
            )
        return [(str(r[0]), Digest(str(r[1]))) for r in rows]

    def gc_candidates(self, fresh_after: float | None = None) -> list[Digest]:
        """Blobs nothing wants; with ``fresh_after``, as if links older than it were gone."""
        if fresh_after is None:
            rows = self._db.execute(f"SELECT digest FROM blobs b WHERE NOT {_WANTED}").fetchall()
        else:
            wanted = _WANTED.replace(
                "WHERE l.digest = b.digest)", "WHERE l.digest = b.digest AND l.linked >= ?)"
            )
            rows = self._db.execute(
                f"SELECT digest FROM blobs b WHERE NOT {wanted}", (fresh_after,)
            ).fetchall()
        return [Digest(str(r[0])) for r in rows]

    def blob_record_size(self, digest: Digest) -> int | None:
        row = self._db.execute("SELECT size FROM blobs WHERE digest = ?", (digest,)).fetchone()
        return None if row is None else int(row[0])

    def gc_remove_blob(self, digest: Digest, remove: Callable[[], None]) -> bool:
        """Delete an unwanted blob's row and bytes; re-checked under the write lock."""
        with self._write() as db:
            row = db.execute(
                f"SELECT 1 FROM blobs b WHERE b.digest = ? AND NOT {_WANTED}", (digest,)
            ).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM blobs WHERE digest = ?", (digest,))
            db.execute(
                "DELETE FROM manifest_refs WHERE digest = ?"
                " AND NOT EXISTS (SELECT 1 FROM manifests WHERE digest = ?)",
                (digest, digest),
            )
            remove()
            return True
