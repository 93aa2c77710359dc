"""Content digests of build-context files, with a persistent stat cache.

A rebuild of a large unchanged context should only stat its files: each file's sha256 is
remembered in SQLite keyed by (path, size, mtime, inode, mode, ctime), and recomputed only
when one of those changed. Cache misses are hashed in parallel (hashlib releases the GIL).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pallet.oci.digest import Digest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS context_hash (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    digest TEXT NOT NULL
)
"""
_CHUNK = 1 << 20
_WORKERS = max(2, min(8, (os.cpu_count() or 2) * 2))


def _key(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)


def hash_file(path: str) -> Digest:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return Digest("sha256:" + h.hexdigest())


class ContextHasher:
    """Digests of regular files, cached in the store's state database."""

    def __init__(self, db_path: Path) -> None:
        self._db_path = db_path

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._db_path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(_SCHEMA)
        return conn

    def digests(self, files: Iterable[tuple[str, os.stat_result]]) -> dict[str, str]:
        """Map each absolute path of a regular file to the sha256 of its content
        (``sha256:<hex>``; plain strings: a large context would spend more on building
        thousands of validated Digest objects than on its stat calls)."""
        wanted = [(p, st) for p, st in files if stat.S_ISREG(st.st_mode)]
        result: dict[str, str] = {}
        conn = self._connect()
        try:
            cached: dict[str, tuple[tuple[int, int, int, int, int], str]] = {}
            paths = [p for p, _ in wanted]
            for i in range(0, len(paths), 500):
                batch = paths[i : i + 500]
                rows = conn.execute(
                    "SELECT path, size, mtime_ns, ctime_ns, ino, mode, digest FROM context_hash"
                    f" WHERE path IN ({','.join('?' * len(batch))})",
                    batch,
                )
                for path, size, mtime, ctime, ino, mode, digest in rows:
                    cached[path] = ((size, mtime, ctime, ino, mode), digest)
            misses: list[tuple[str, os.stat_result]] = []
            for path, st in wanted:
                hit = cached.get(path)
                if hit is not None and hit[0] == _key(st):
                    result[path] = hit[1]
                else:
                    misses.append((path, st))
            if misses:
                with ThreadPoolExecutor(_WORKERS) as pool:
                    computed = list(pool.map(lambda item: hash_file(item[0]), misses))
                rows_out = []
                for (path, st), digest in zip(misses, computed, strict=True):
                    result[path] = digest
                    rows_out.append((path, *_key(st), str(digest)))
                with conn:
                    conn.executemany(
                        "INSERT OR REPLACE INTO context_hash"
                        " (path, size, mtime_ns, ctime_ns, ino, mode, digest)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [(p, s, m, c, i, mo, d) for p, s, m, c, i, mo, d in rows_out],
                    )
        finally:
            conn.close()
        return result
