"""``index.json``: the images of the store and their names, as an OCI image layout has them.

Each entry is a manifest (or index) descriptor; a tag is the entry's
``org.opencontainers.image.ref.name`` annotation holding the full normalized reference,
and an entry without one is an untagged (dangling) image kept until pruned.

Every change is a transaction: exclusive lock, read, change, write a new file, fsync,
rename. Readers need no lock because the file is only ever replaced whole. Entries are
kept as the JSON objects they were read as, so fields and annotations pallet does not know
(written by skopeo, umoci, ...) survive a rewrite untouched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from pallet.errors import NotFound, OCIError, StoreError
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import ANNOTATION_REF_NAME, Descriptor
from pallet.oci.digest import Digest
from pallet.oci.layout import INDEX_FILE as INDEX_FILE
from pallet.store.fsutil import atomic_write

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import Any

#: index.json is read whole; refuse absurd sizes rather than exhausting memory
MAX_INDEX_SIZE = 64 << 20


@dataclass(frozen=True)
class IndexEntry:
    """One image of the store: its descriptor and tag (``None`` for a dangling image)."""

    descriptor: Descriptor
    name: str | None

    @property
    def digest(self) -> Digest:
        return self.descriptor.digest


def ref_name(desc: Descriptor) -> str | None:
    name = desc.annotations.get(ANNOTATION_REF_NAME)
    return name or None


def _key(desc: Descriptor) -> str:
    return json.dumps(desc.to_json(), sort_keys=True)


def index_document(entries: Sequence[dict[str, Any]]) -> bytes:
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": list(entries)}
    return json.dumps(doc, indent=2).encode() + b"\n"


def parse_index_entries(data: bytes, what: str) -> list[dict[str, Any]]:
    """The entries of an ``index.json`` (``what`` names it in errors) as JSON objects;
    each is validated only when used, so one malformed entry does not hide the others."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StoreError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise StoreError(f"{what} is not a JSON object")
    entries = doc.get("manifests") or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise StoreError(f"{what}: 'manifests' is not a list of objects")
    return entries


class IndexFile:
    """``root/index.json`` and the lock that serialises its writers."""

    def __init__(self, root: Path, lock: Callable[[], AbstractContextManager[None]]) -> None:
        self.path = root / INDEX_FILE
        self._lock = lock

    def create_if_missing(self) -> None:
        if not self.path.exists():
            with self._lock():
                if not self.path.exists():
                    self._write([])

    def read_raw(self) -> list[dict[str, Any]]:
        """The entries as JSON objects; a malformed file is an error naming it."""
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_INDEX_SIZE + 1)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"{self.path}: {exc.strerror}") from exc
        if len(data) > MAX_INDEX_SIZE:
            raise StoreError(f"{self.path} is larger than {MAX_INDEX_SIZE} bytes")
        return parse_index_entries(data, str(self.path))

    def descriptors(self) -> list[Descriptor]:
        """Every well-formed entry (a malformed one is skipped here; check reports it)."""
        out = []
        for raw in self.read_raw():
            try:
                out.append(Descriptor.from_json(raw))
            except OCIError:
                continue
        return out

    def entries(self) -> list[IndexEntry]:
        return [IndexEntry(d, ref_name(d)) for d in self.descriptors()]

    def update(self, fn: Callable[[list[Descriptor]], list[Descriptor]]) -> None:
        """Apply ``fn`` to the entries as one transaction.

        Entries ``fn`` returns unchanged are written back as the exact JSON they were read
        as; entries pallet cannot parse are passed through untouched.
        """
        with self._lock():
            raw_entries = self.read_raw()
            parsed: list[Descriptor] = []
            originals: dict[str, list[dict[str, Any]]] = {}
            opaque: list[dict[str, Any]] = []
            for raw in raw_entries:
                try:
                    desc = Descriptor.from_json(raw)
                except OCIError:
                    opaque.append(raw)
                    continue
                parsed.append(desc)
                originals.setdefault(_key(desc), []).append(raw)
            result = fn(list(parsed))
            out: list[dict[str, Any]] = []
            for desc in result:
                same = originals.get(_key(desc))
                out.append(same.pop(0) if same else desc.to_json())
            out.extend(opaque)
            self._write(out)

    def _write(self, entries: list[dict[str, Any]]) -> None:
        try:
            atomic_write(self.path, index_document(entries))
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot write: {exc.strerror}") from exc

    def stale_temp_files(self, *, remove: bool) -> list[Path]:
        """Temp files of index.json writers that died before their rename; taken under
        the lock, so no live writer's file is among them."""
        with self._lock():
            found = sorted(self.path.parent.glob(f".{INDEX_FILE}.*.tmp"))
            if remove:
                for path in found:
                    path.unlink(missing_ok=True)
        return found

    # -- the operations commands use --------------------------------------------------

    def tag(self, name: str, desc: Descriptor) -> None:
        """Point ``name`` at ``desc``. An image that loses its last name stays, dangling."""
        if not name:
            raise StoreError("an image name cannot be empty")
        tagged = desc.with_annotations({**desc.annotations, ANNOTATION_REF_NAME: name})

        def change(entries: list[Descriptor]) -> list[Descriptor]:
            out: list[Descriptor] = []
            displaced: Descriptor | None = None
            for e in entries:
                if ref_name(e) == name:
                    displaced = e
                elif ref_name(e) is None and e.digest == desc.digest:
                    continue  # the dangling entry of this image is now named
                else:
                    out.append(e)
            out.append(tagged)
            if displaced is not None and not any(e.digest == displaced.digest for e in out):
                out.append(_untagged(displaced))
            return out

        self.update(change)

    def untag(self, name: str) -> Descriptor:
        found: list[Descriptor] = []

        def change(entries: list[Descriptor]) -> list[Descriptor]:
            found.clear()
            found.extend(e for e in entries if ref_name(e) == name)
            return [e for e in entries if ref_name(e) != name]

        self.update(change)
        if not found:
            raise NotFound(f"no image named {name!r} in the store")
        return found[0]

    def add_image(self, desc: Descriptor) -> None:
        """Record an image without a name, unless an entry for it already exists."""
        untagged = _untagged(desc)

        def change(entries: list[Descriptor]) -> list[Descriptor]:
            if any(e.digest == desc.digest for e in entries):
                return entries
            return [*entries, untagged]

        self.update(change)

    def remove_image(self, digest: Digest) -> list[Descriptor]:
        """Drop every entry (tagged or not) of the image; returns what was removed."""
        removed: list[Descriptor] = []

        def change(entries: list[Descriptor]) -> list[Descriptor]:
            removed.clear()
            removed.extend(e for e in entries if e.digest == digest)
            return [e for e in entries if e.digest != digest]

        self.update(change)
        if not removed:
            raise NotFound(f"image {digest} is not in the store")
        return removed


def _untagged(desc: Descriptor) -> Descriptor:
    rest = {k: v for k, v in desc.annotations.items() if k != ANNOTATION_REF_NAME}
    return desc.with_annotations(rest)
