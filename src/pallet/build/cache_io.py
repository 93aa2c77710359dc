"""``--cache-to type=local,dest=DIR`` and ``--cache-from type=local,src=DIR``: a
build's step cache carried to another store as an OCI image layout.

The layout holds one artifact manifest (``index.json`` names it
``pallet-build-cache``): its config is a JSON list of cache entries (step key, layer
descriptor or none, diff ID, history time) and its layers are the entries' layer
blobs. Every step this build ran or found cached is exported (BuildKit's
``mode=max``). An imported entry is used only on a local miss; its blob is copied into
the store, verified against its digest and size, and a wrong diff ID is caught when the
layer is unpacked. The cache keys are the ones the local cache uses, so a step is
reused exactly when it would have been in the store that exported it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pallet.build.cache import CacheEntry
from pallet.errors import BuildError, InvalidArgument, PalletError
from pallet.oci import mediatypes
from pallet.oci.descriptor import ANNOTATION_REF_NAME, Descriptor
from pallet.oci.digest import Digest
from pallet.store import Store

CACHE_CONFIG = "application/vnd.pallet.build.cache.v1+json"
REF_NAME = "pallet-build-cache"
_MAX_JSON = 64 << 20


@dataclass(frozen=True)
class CacheSpec:
    """``type=local,dest=DIR`` (``--cache-to``) or ``type=local,src=DIR``
    (``--cache-from``); ``mode`` is accepted, every step is exported either way."""

    path: Path

    @classmethod
    def parse(cls, text: str, flag: str) -> CacheSpec:
        fields: dict[str, str] = {}
        for part in text.split(","):
            key, eq, value = part.partition("=")
            if not eq:
                raise InvalidArgument(f"{flag} {text}: {part!r} is not key=value")
            fields[key.strip().lower()] = value
        kind = fields.pop("type", "local")
        if kind != "local":
            raise InvalidArgument(f"{flag} {text}: only type=local is supported")
        where = "dest" if flag == "--cache-to" else "src"
        path = fields.pop(where, "")
        fields.pop("mode", None)
        if fields:
            raise InvalidArgument(f"{flag} {text}: unsupported option {next(iter(fields))!r}")
        if not path:
            raise InvalidArgument(f"{flag} {text}: type=local needs {where}=DIR")
        return cls(Path(path))


def _blob_path(layout: Path, digest: Digest) -> Path:
    return layout / "blobs" / digest.algorithm / digest.encoded


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def export_cache(store: Store, entries: dict[str, CacheEntry], dest: Path) -> None:
    """Write ``entries`` and their layer blobs as an OCI layout at ``dest`` (blobs of
    an earlier export there are kept; ``index.json`` is replaced last)."""
    dest.mkdir(parents=True, exist_ok=True)
    layers: dict[Digest, Descriptor] = {}
    records: list[dict[str, Any]] = []
    for key in sorted(entries):
        entry = entries[key]
        records.append(
            {
                "key": key,
                "layer": entry.layer.to_json() if entry.layer is not None else None,
                "diff_id": str(entry.diff_id) if entry.diff_id is not None else None,
                "created": entry.created,
            }
        )
        if entry.layer is not None:
            layers[entry.layer.digest] = entry.layer
    for digest in layers:
        target = _blob_path(dest, digest)
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        with store.open_blob(digest) as src, open(partial, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        os.replace(partial, target)
    config = json.dumps({"entries": records}, sort_keys=True).encode()
    config_desc = Descriptor.of_bytes(CACHE_CONFIG, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "artifactType": CACHE_CONFIG,
            "config": config_desc.to_json(),
            "layers": [layers[d].to_json() for d in sorted(layers)],
        },
        sort_keys=True,
    ).encode()
    manifest_desc = Descriptor.of_bytes(mediatypes.OCI_MANIFEST, manifest).with_annotations(
        {ANNOTATION_REF_NAME: REF_NAME}
    )
    for desc, data in ((config_desc, config), (manifest_desc, manifest)):
        path = _blob_path(dest, desc.digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, data)
    _write_atomic(dest / "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    index = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_INDEX,
        "manifests": [manifest_desc.to_json()],
    }
    _write_atomic(dest / "index.json", json.dumps(index).encode())


def _read_json(layout: Path, path: Path, expected: Digest | None = None) -> Any:
    where = f"--cache-from {layout}: {path.relative_to(layout)}"
    try:
        if path.stat().st_size > _MAX_JSON:
            raise BuildError(f"{where}: larger than {_MAX_JSON} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise BuildError(f"{where}: {exc.strerror}") from None
    if expected is not None and Digest.from_bytes(data) != expected:
        raise BuildError(f"{where}: content does not match its digest")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BuildError(f"{where}: not JSON: {exc}") from None


class ImportedCache:
    """Entries read from a ``--cache-from`` layout, fetched into the store on use."""

    def __init__(self, layout: Path, entries: dict[str, CacheEntry]) -> None:
        self.layout = layout
        self.entries = entries

    @classmethod
    def load(cls, spec: CacheSpec) -> ImportedCache | None:
        """The layout's entries; None when there is no layout there (yet)."""
        layout = spec.path
        if not (layout / "index.json").exists():
            return None
        where = f"--cache-from {layout}"
        try:
            index = _read_json(layout, layout / "index.json")
            manifests = [Descriptor.from_json(m) for m in index["manifests"]]
            ours = [m for m in manifests if m.annotations.get(ANNOTATION_REF_NAME) == REF_NAME]
            if not ours:
                raise BuildError(f"{where}: index.json names no {REF_NAME} manifest")
            manifest = _read_json(layout, _blob_path(layout, ours[0].digest), ours[0].digest)
            config_desc = Descriptor.from_json(manifest["config"])
            if config_desc.media_type != CACHE_CONFIG:
                raise BuildError(f"{where}: not a pallet build cache ({config_desc.media_type})")
            config = _read_json(layout, _blob_path(layout, config_desc.digest), config_desc.digest)
            entries: dict[str, CacheEntry] = {}
            for record in config["entries"]:
                layer = record.get("layer")
                diff_id = record.get("diff_id")
                created = record.get("created")
                entries[str(record["key"])] = CacheEntry(
                    Descriptor.from_json(layer) if layer is not None else None,
                    Digest(diff_id) if diff_id is not None else None,
                    str(created) if created is not None else None,
                )
        except BuildError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError, PalletError) as exc:
            raise BuildError(f"{where}: malformed cache layout: {exc}") from None
        return cls(layout, entries)

    def get(self, store: Store, key: str) -> CacheEntry | None:
        """The entry for ``key`` with its blob in the store, or None (a miss)."""
        entry = self.entries.get(key)
        if entry is None or entry.layer is None or store.has_blob(entry.layer.digest):
            return entry
        layer = entry.layer
        try:
            with (
                open(_blob_path(self.layout, layer.digest), "rb") as src,
                store.ingest(layer.digest, layer.size) as writer,
            ):
                writer.copy_from(src)
                writer.commit()
        except (OSError, PalletError):
            return None  # a missing or corrupt blob: run the step instead
        return entry
