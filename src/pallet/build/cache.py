"""The build cache: step key -> the layer that step made (or "no layer"), in state.db.

A row is written only after its blob is committed and its snapshot published, so a
crash can lose an entry but never leave one pointing at nothing. Every cached blob and
snapshot is also held by the store lease ``build-cache`` (no expiry), so ``gc`` and
image prune keep them, as Docker's build cache survives ``image prune``;
``pallet builder prune`` (:meth:`BuildCache.prune`) drops both.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from pallet.errors import PalletError
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.store import Store

LEASE_ID = "build-cache"
#: ``last_used`` is refreshed on a hit only when older than this, so back-to-back
#: rebuilds do not write the database
LAST_USED_RESOLUTION = 3600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS build_cache (
    key TEXT PRIMARY KEY,
    layer TEXT,             -- descriptor JSON; NULL: the step made no layer
    diff_id TEXT,
    chain_id TEXT,
    created REAL NOT NULL,
    last_used REAL NOT NULL,
    history_created TEXT    -- the step's history time, reused on a hit (same image ID)
);
"""


@dataclass(frozen=True)
class CacheEntry:
    layer: Descriptor | None
    diff_id: Digest | None
    created: str | None = None  # history ``created`` of the step when it ran


class BuildCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        with store.state.connect() as db:
            db.execute(_SCHEMA)
            db.execute(
                "INSERT OR IGNORE INTO leases (id, created, expires) VALUES (?, ?, NULL)",
                (LEASE_ID, time.time()),
            )

    def get(self, key: str) -> CacheEntry | None:
        with self.store.state.connect() as db:
            row = db.execute(
                "SELECT layer, diff_id, history_created, last_used FROM build_cache WHERE key = ?",
                (key,),
            ).fetchone()
            if row is None:
                return None
            now = time.time()
            if now - row[3] > LAST_USED_RESOLUTION:  # as relatime: rebuilds write rarely
                db.execute("UPDATE build_cache SET last_used = ? WHERE key = ?", (now, key))
        if row[0] is None:
            return CacheEntry(None, None, row[2])
        try:
            layer = Descriptor.from_json(json.loads(row[0]))
            diff_id = Digest(row[1])
        except (ValueError, PalletError):
            return None
        if not self.store.has_blob(layer.digest):
            return None  # removed behind our back (builder prune racing): rebuild
        return CacheEntry(layer, diff_id, row[2])

    def put(
        self,
        key: str,
        layer: Descriptor | None,
        diff_id: Digest | None,
        chain_id: Digest | None,
        created: str | None = None,
    ) -> None:
        if layer is not None:
            # an imported layer (--cache-from) has no snapshot yet: lease the blob alone
            held = [layer.digest, chain_id] if chain_id is not None else [layer.digest]
            self.store.leases.get(LEASE_ID).add_all(held)
        now = time.time()
        with self.store.state.connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO build_cache"
                " (key, layer, diff_id, chain_id, created, last_used, history_created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    json.dumps(layer.to_json()) if layer is not None else None,
                    str(diff_id) if diff_id else None,
                    str(chain_id) if chain_id else None,
                    now,
                    now,
                    created,
                ),
            )

    def entries(self) -> int:
        with self.store.state.connect() as db:
            row = db.execute("SELECT COUNT(*) FROM build_cache").fetchone()
        return int(row[0])

    def prune(self) -> int:
        """Forget every entry and release their blobs and snapshots to gc (and the build
        records, which would only ever miss now)."""
        from pallet.build.record import forget_all

        with self.store.state.connect() as db:
            count = int(db.execute("SELECT COUNT(*) FROM build_cache").fetchone()[0])
            db.execute("DELETE FROM build_cache")
            db.execute("DELETE FROM lease_resources WHERE lease_id = ?", (LEASE_ID,))
        forget_all(self.store)
        return count
