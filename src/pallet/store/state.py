"""``state.db``: the store's SQLite database (leases now; build cache and containers later).

Each thread of each process keeps one connection (a forked child opens its own), so it
is safe across threads and processes; WAL mode lets readers proceed while one process
writes. Reusing the connection matters: SQLite checkpoints the WAL, with two fsyncs,
whenever the last connection to the file closes, and a short command such as
``pallet run`` would otherwise pay that on every one of its transactions.
"""

from __future__ import annotations

import os
import sqlite3
import time
from _thread import _local as thread_local  # threading.local, without threading's import
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
        self._local = thread_local()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=True
        )
        db.execute("PRAGMA foreign_keys=ON")
        # With WAL, NORMAL keeps the database consistent across a crash (a power loss
        # may drop the last transactions, never corrupt) at a fraction of the fsyncs.
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _connection(self) -> tuple[sqlite3.Connection, bool]:
        """This thread's connection (``shared``=True), or a fresh one when this thread's is
        in a transaction already or belongs to the process this one was forked from."""
        local = self._local
        db: sqlite3.Connection | None = getattr(local, "db", None)
        if db is not None and local.pid == os.getpid():
            if not db.in_transaction:
                return db, True
            return self._open(), False
        db = self._open()
        local.db, local.pid = db, os.getpid()
        return db, True

    def initialize(self) -> None:
        # Switching a new file to WAL needs an exclusive lock, and SQLite may answer
        # "database is locked" at once (no busy handler there) while other processes
        # create the same store: retry for a while before giving up.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                db, _ = self._connection()
                # WAL is a property of the file, set once outside any transaction.
                if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode=WAL")
                present = {
                    row[0]
                    for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
                if not {"leases", "lease_resources"} <= present:
                    db.executescript(_SCHEMA)
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
            db, shared = self._connection()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc
        try:
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
            if not shared:
                db.close()
