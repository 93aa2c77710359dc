"""``state.db``: the store's SQLite database (leases now; build cache and containers later).

Each use opens its own connection, so it is safe across threads and forked processes;
WAL mode lets readers proceed while one process writes.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pallet.errors import StoreError

STATE_FILE = "state.db"
#: how long a writer waits for another process's transaction before giving up
BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    expires REAL            -- NULL: until deleted
);
CREATE TABLE IF NOT EXISTS lease_resources (
    lease_id TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
    digest TEXT NOT NULL,   -- a blob digest or a snapshot chain id
    PRIMARY KEY (lease_id, digest)
);
"""


class StateDB:
    def __init__(self, root: Path) -> None:
        self.path = root / STATE_FILE

    def initialize(self) -> None:
        # Switching a new file to WAL needs an exclusive lock, and SQLite may answer
        # "database is locked" at once (no busy handler there) while other processes
        # create the same store: retry for a while before giving up.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
                try:
                    # WAL is a property of the file, set once outside any transaction.
                    db.execute("PRAGMA journal_mode=WAL")
                    db.executescript(_SCHEMA)
                finally:
                    db.close()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise StoreError(f"{self.path}: {exc}") from exc
                if time.monotonic() > deadline:
                    raise StoreError(f"{self.path}: {exc}") from exc
                time.sleep(0.02)
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {exc}") from exc

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in one transaction: committed on success, rolled back on error."""
        try:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc
        try:
            db.execute("PRAGMA foreign_keys=ON")
            # With WAL, NORMAL keeps the database consistent across a crash (a power loss
            # may drop the last transactions, never corrupt) at a fraction of the fsyncs.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc
        finally:
            db.close()
