"""Container records in the store's state.db, so every pallet process sees every container."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, fields, replace

from pallet.errors import Conflict, ContainerError, NotFound, StoreError
from pallet.store import Store

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    record TEXT NOT NULL
)
"""

_ADJECTIVES = (
    "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "merry",
    "nifty", "proud", "quirky", "sharp", "tender", "upbeat", "vivid", "witty", "zealous", "bold",
)  # fmt: skip
_NAMES = (
    "turing", "hopper", "lovelace", "knuth", "ritchie", "thompson", "liskov", "dijkstra",
    "hamilton", "babbage", "shannon", "torvalds", "wirth", "mccarthy", "backus", "allen",
)  # fmt: skip


@dataclass(frozen=True)
class ContainerRecord:
    """A container as every pallet process sees it (a row of state.db)."""

    id: str
    name: str
    image: str  # what the user asked for, as docker shows it
    image_id: str
    created: float
    argv: tuple[str, ...]
    spec_path: str = ""
    state: str = "created"  # created, running, exited
    exit_code: int | None = None
    pid: int = 0  # the container's init pid as the runtime reported it
    monitor_pid: int = 0
    started: float = 0.0
    finished: float = 0.0
    auto_remove: bool = False
    lease_id: str = ""
    chain_ids: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # the image config's container config
    restart_policy: str = "no"  # no, always, unless-stopped, on-failure[:N]
    restart_count: int = 0
    stop_requested: bool = False  # set by stop/kill so a restart policy lets it rest
    tty: bool = False
    interactive: bool = False
    network: str = "private"
    volumes: tuple[str, ...] = ()  # named and anonymous volumes this container mounts
    anonymous_volumes: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()  # published: "127.0.0.1:8080->80/tcp"
    host_config: dict[str, Any] = field(default_factory=dict)  # what inspect shows
    runtime: str = ""  # the OCI runtime that runs it (crun, runc); "" in older records

    def to_json(self) -> str:
        # every field is plain JSON data: no deep copy (asdict's) needed to serialize it
        return json.dumps({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_json(cls, text: str) -> ContainerRecord:
        doc = json.loads(text)
        doc["argv"] = tuple(doc.get("argv", ()))
        for key in ("chain_ids", "volumes", "anonymous_volumes", "ports"):
            doc[key] = tuple(doc.get(key, ()))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in doc.items() if k in known})


def _free_name(taken: set[str]) -> str:
    for _ in range(100):
        name = generated_name()
        if name not in taken:
            return name
    return f"{generated_name()}_{os.urandom(3).hex()}"


def new_id() -> str:
    return os.urandom(32).hex()  # secrets.token_hex, without its imports (4 ms)


def _pick(words: tuple[str, ...] | list[str]) -> str:
    """A random word (names need not be unguessable, only varied)."""
    return words[int.from_bytes(os.urandom(4), "big") % len(words)]


def generated_name() -> str:
    return f"{_pick(_ADJECTIVES)}_{_pick(_NAMES)}"


class ContainerRecords:
    """Each state.db write transaction costs fsyncs: callers keep them few (the table is
    made by the first ``add``, a name is chosen in the same transaction that takes it)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, record: ContainerRecord, *, generate_name: bool = False) -> ContainerRecord:
        with self.store.state.connect() as db:
            db.execute(_SCHEMA)
            if generate_name:
                taken = {r[0] for r in db.execute("SELECT name FROM containers").fetchall()}
                record = replace(record, name=_free_name(taken))
            elif db.execute("SELECT 1 FROM containers WHERE name = ?", (record.name,)).fetchone():
                raise Conflict(f'Conflict. The container name "/{record.name}" is already in use')
            db.execute(
                "INSERT INTO containers (id, name, created, record) VALUES (?, ?, ?, ?)",
                (record.id, record.name, record.created, record.to_json()),
            )
        return record

    def update(self, record: ContainerRecord) -> None:
        with self.store.state.connect() as db:
            db.execute(
                "UPDATE containers SET name = ?, record = ? WHERE id = ?",
                (record.name, record.to_json(), record.id),
            )

    def remove(self, container_id: str) -> None:
        with self.store.state.connect() as db:
            db.execute("DELETE FROM containers WHERE id = ?", (container_id,))

    def all(self) -> list[ContainerRecord]:
        try:
            with self.store.state.connect() as db:
                rows = db.execute("SELECT record FROM containers ORDER BY created DESC").fetchall()
        except StoreError as exc:
            if "no such table" in str(exc):
                return []  # no container was ever created in this store
            raise
        return [ContainerRecord.from_json(r[0]) for r in rows]

    def get(self, name_or_id: str) -> ContainerRecord:
        """By full name, full ID or unique ID prefix, as docker resolves containers."""
        key = name_or_id.lstrip("/")
        records = self.all()
        for r in records:
            if r.name == key or r.id == key:
                return r
        hits = [r for r in records if key and r.id.startswith(key)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ContainerError(f"multiple containers match {name_or_id!r}: be more specific")
        raise NotFound(f"No such container: {name_or_id}")

    def set_state(self, record: ContainerRecord, **changes: Any) -> ContainerRecord:
        """Change fields of the stored record (re-read in the same transaction, so a rename
        or stop request made by another process is not overwritten by a stale copy)."""
        with self.store.state.connect() as db:
            row = db.execute("SELECT record FROM containers WHERE id = ?", (record.id,)).fetchone()
            current = ContainerRecord.from_json(row[0]) if row else record
            updated = replace(current, **changes)
            if row:
                db.execute(
                    "UPDATE containers SET name = ?, record = ? WHERE id = ?",
                    (updated.name, updated.to_json(), updated.id),
                )
        return updated

    def rename(self, name_or_id: str, new_name: str) -> ContainerRecord:
        record = self.get(name_or_id)
        with self.store.state.connect() as db:
            taken = db.execute("SELECT id FROM containers WHERE name = ?", (new_name,)).fetchone()
            if taken:
                raise Conflict(
                    f'Conflict. The container name "/{new_name}" is already in use by '
                    f'container "{taken[0]}". You have to remove (or rename) that container '
                    "to be able to reuse that name."
                )
        return self.set_state(record, name=new_name)


def now() -> float:
    return time.time()
