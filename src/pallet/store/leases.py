"""Leases: blobs and snapshots an operation in flight depends on, kept safe from gc.

A pull leases each blob before checking whether it is already there, so gc (which holds
the store's gc lock exclusively while it marks and sweeps, and takes the lease table as
it finds it) either sees the lease or has finished before the blob is looked at. A lease
of a manifest also protects what the manifest references. Leases expire, so a process
that dies without releasing its lease does not pin content forever.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from types import TracebackType

from pallet.oci.digest import Digest
from pallet.store.state import StateDB


class Lease:
    """A lease row; a context manager that deletes the lease on exit."""

    def __init__(
        self,
        db: StateDB,
        guard: Callable[[], AbstractContextManager[None]],
        lease_id: str,
    ) -> None:
        self._db = db
        self._guard = guard
        self.id = lease_id

    def add(self, digest: Digest) -> None:
        """Protect a blob digest or snapshot chain id for the life of the lease."""
        self.add_all((digest,))

    def add_all(self, digests: Iterable[Digest]) -> None:
        rows = [(self.id, str(Digest(d))) for d in digests]
        with self._guard(), self._db.connect() as db:
            db.executemany(
                "INSERT OR IGNORE INTO lease_resources (lease_id, digest) VALUES (?, ?)", rows
            )

    def release(self) -> None:
        with self._db.connect() as db:
            db.execute("DELETE FROM leases WHERE id = ?", (self.id,))

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class LeaseManager:
    def __init__(self, db: StateDB, guard: Callable[[], AbstractContextManager[None]]) -> None:
        self._db = db
        self._guard = guard

    def create(self, digests: Iterable[Digest] = (), ttl: float | None = 3600) -> Lease:
        """A new lease; ``ttl=None`` lasts until released (e.g. a container's image)."""
        now = time.time()
        lease_id = os.urandom(16).hex()  # secrets.token_hex, without its imports
        expires = None if ttl is None else now + ttl
        with self._db.connect() as db:
            db.execute(
                "INSERT INTO leases (id, created, expires) VALUES (?, ?, ?)",
                (lease_id, now, expires),
            )
        lease = Lease(self._db, self._guard, lease_id)
        lease.add_all(digests)
        return lease

    def get(self, lease_id: str) -> Lease:
        return Lease(self._db, self._guard, lease_id)

    def live_digests(self, now: float | None = None) -> set[Digest]:
        """Everything protected by an unexpired lease."""
        when = time.time() if now is None else now
        with self._db.connect() as db:
            rows = db.execute(
                "SELECT r.digest FROM lease_resources r JOIN leases l ON l.id = r.lease_id"
                " WHERE l.expires IS NULL OR l.expires > ?",
                (when,),
            ).fetchall()
        return {Digest(r[0]) for r in rows}

    def delete_expired(self, now: float | None = None) -> int:
        when = time.time() if now is None else now
        with self._db.connect() as db:
            cur = db.execute(
                "DELETE FROM leases WHERE expires IS NOT NULL AND expires <= ?", (when,)
            )
            return cur.rowcount
