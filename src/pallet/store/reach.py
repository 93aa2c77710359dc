"""What the store must keep: blobs and snapshots reachable from its roots.

Roots are the entries of ``index.json`` and every leased digest. From a manifest we
reach its config, its layers and (for referrers) its subject, and the snapshots of its
layer chain; from an index, its child manifests. Blobs are read tolerantly: a missing or
malformed manifest just reaches nothing more (check reports it), so gc never fails on,
and never deletes because of, one bad image.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pallet.errors import PalletError
from pallet.oci import mediatypes as mt
from pallet.oci.chainid import chain_ids
from pallet.oci.digest import Digest
from pallet.store.blobs import BlobStore

_FOREIGN_LAYERS = frozenset(
    {
        mt.DOCKER_LAYER_FOREIGN,
        mt.OCI_LAYER_NONDIST,
        mt.OCI_LAYER_NONDIST_GZIP,
        mt.OCI_LAYER_NONDIST_ZSTD,
    }
)
#: manifests, indexes and configs are small; a bigger "manifest" is not walked
MAX_WALKED_SIZE = 16 << 20


@dataclass
class Reachable:
    blobs: set[Digest] = field(default_factory=set)
    snapshots: set[Digest] = field(default_factory=set)
    #: referenced blobs that are not in the store (check reports them)
    missing: set[Digest] = field(default_factory=set)
    #: manifests, indexes and configs that are present but cannot be read
    unreadable: set[Digest] = field(default_factory=set)


def _descriptors(value: Any) -> list[tuple[str, Digest, bool]]:
    """``(mediaType, digest, foreign)`` of descriptor-shaped JSON objects; the rest is
    ignored. A foreign layer (fetched from its URLs, never pushed) may well be absent."""
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        media_type, digest = item.get("mediaType", ""), item.get("digest")
        if not isinstance(digest, str):
            continue
        media_type = media_type if isinstance(media_type, str) else ""
        foreign = bool(item.get("urls")) or media_type in _FOREIGN_LAYERS
        try:
            out.append((media_type, Digest(digest), foreign))
        except PalletError:
            continue
    return out


def _read_json(blobs: BlobStore, digest: Digest, into: Reachable | None) -> Any:
    try:
        if blobs.size(digest) > MAX_WALKED_SIZE:
            return None
        return json.loads(blobs.read(digest, MAX_WALKED_SIZE))
    except (PalletError, ValueError, UnicodeDecodeError):
        if into is not None:
            into.unreadable.add(digest)
        return None


def _diff_ids(config: Any) -> list[Digest] | None:
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(ids, list):
        return None
    try:
        return [Digest(d) for d in ids]
    except PalletError:
        return None


def mark(blobs: BlobStore, roots: Iterable[Digest], *, snapshots: bool = True) -> Reachable:
    """Everything reachable from ``roots``. A root, a manifest's config and its layers
    must be present (else ``missing``); an index's children and a referrer's subject may
    be absent (a single-platform pull keeps the whole index)."""
    found = Reachable()
    # (digest, required)
    stack = [(d, True) for d in dict.fromkeys(roots)]
    while stack:
        digest, required = stack.pop()
        if digest in found.blobs or digest in found.missing:
            continue
        if not blobs.has(digest):
            if required:
                found.missing.add(digest)
            continue
        found.blobs.add(digest)
        if blobs.size(digest) > MAX_WALKED_SIZE:
            continue  # a layer leased directly: nothing below it
        doc = _read_json(blobs, digest, found) if _looks_like_json(blobs, digest) else None
        if not isinstance(doc, dict):
            continue
        stack.extend((d, False) for _, d, _ in _descriptors(doc.get("subject")))
        if "manifests" in doc or mt.is_index(doc.get("mediaType", "")):
            stack.extend((d, False) for _, d, _ in _descriptors(doc.get("manifests")))
        # "blobs": the short-lived OCI artifact manifest
        for key in ("layers", "blobs"):
            for _, d, foreign in _descriptors(doc.get(key)):
                if blobs.has(d):
                    found.blobs.add(d)
                elif not foreign:
                    found.missing.add(d)
        for media_type, d, _ in _descriptors(doc.get("config")):
            if not blobs.has(d):
                found.missing.add(d)
                continue
            found.blobs.add(d)
            if snapshots and (not media_type or media_type in mt.CONFIG_TYPES):
                # an artifact's config may be anything: not judged here
                ids = _diff_ids(_read_json(blobs, d, None))
                if ids:
                    found.snapshots.update(chain_ids(ids))
    return found


def _looks_like_json(blobs: BlobStore, digest: Digest) -> bool:
    try:
        with blobs.open(digest) as f:
            head = f.read(64).lstrip()
    except PalletError:
        return False
    return head.startswith(b"{")
