"""Container records in the store's state.db, so every pallet process sees every container."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from pallet.errors import Conflict, ContainerError, NotFound
from pallet.store import Store

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

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ContainerRecord:
        doc = json.loads(text)
        doc["argv"] = tuple(doc.get("argv", ()))
        doc["chain_ids"] = tuple(doc.get("chain_ids", ()))
        return cls(**doc)


def new_id() -> str:
    return secrets.token_hex(32)


def generated_name() -> str:
    return f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NAMES)}"


class ContainerRecords:
    def __init__(self, store: Store) -> None:
        self.store = store
        with store.state.connect() as db:
            db.execute(_SCHEMA)

    def add(self, record: ContainerRecord) -> None:
        with self.store.state.connect() as db:
            if db.execute("SELECT 1 FROM containers WHERE name = ?", (record.name,)).fetchone():
                raise Conflict(f'Conflict. The container name "/{record.name}" is already in use')
            db.execute(
                "INSERT INTO containers (id, name, created, record) VALUES (?, ?, ?, ?)",
                (record.id, record.name, record.created, record.to_json()),
            )

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
        with self.store.state.connect() as db:
            rows = db.execute("SELECT record FROM containers ORDER BY created DESC").fetchall()
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

    def unique_name(self) -> str:
        taken = {r.name for r in self.all()}
        for _ in range(100):
            name = generated_name()
            if name not in taken:
                return name
        return f"{generated_name()}_{secrets.token_hex(3)}"

    def set_state(self, record: ContainerRecord, **changes: Any) -> ContainerRecord:
        updated = replace(record, **changes)
        self.update(updated)
        return updated


def now() -> float:
    return time.time()
