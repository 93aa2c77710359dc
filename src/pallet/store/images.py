"""High-level reads every command needs: an image by name, ID or digest, with its
manifest and config parsed.

Names resolve as docker's do: an exact full reference first, then the familiar form
(``busybox`` is ``docker.io/library/busybox:latest``), then a manifest digest, then an
image ID (the config digest) or a unique prefix of one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pallet.errors import Conflict, NotFound, OCIError, PalletError, StoreError
from pallet.oci import mediatypes as mt
from pallet.oci.chainid import chain_ids
from pallet.oci.config import ImageConfig
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.oci.index import Index, select_platform
from pallet.oci.manifest import Manifest
from pallet.oci.platform import Platform, host_platform
from pallet.oci.reference import Reference
from pallet.store.refs import IndexEntry

_ID_PREFIX = re.compile(r"(?:sha256:)?([0-9a-f]{1,64})")
#: registries refuse manifests over 4 MiB; configs can carry long histories
MAX_MANIFEST_SIZE = 4 << 20
MAX_CONFIG_SIZE = 16 << 20

ReadBlob = Callable[[Digest, int], bytes]


@dataclass(frozen=True)
class StoredImage:
    """An image of the store: the descriptor of its (platform) manifest, the manifest,
    the config, and every name pointing at it (or at the index holding it)."""

    descriptor: Descriptor
    manifest: Manifest
    config: ImageConfig
    names: tuple[str, ...]
    #: the index entry the image was found through, when it is a multi-platform image
    index: Descriptor | None = None

    @property
    def id(self) -> Digest:
        """The image ID, as docker shows it: the config digest."""
        return self.manifest.config.digest

    @property
    def digest(self) -> Digest:
        return self.descriptor.digest

    @property
    def diff_ids(self) -> tuple[Digest, ...]:
        return self.config.diff_ids

    @property
    def chain_ids(self) -> list[Digest]:
        return chain_ids(self.config.diff_ids)


def load_manifest(read: ReadBlob, desc: Descriptor) -> Manifest:
    try:
        raw = read(desc.digest, MAX_MANIFEST_SIZE)
        return Manifest.from_bytes(
            raw, desc.media_type if mt.is_manifest(desc.media_type) else None
        )
    except OCIError as exc:
        raise StoreError(f"manifest {desc.digest}: {exc}") from None


def load_config(read: ReadBlob, manifest: Manifest) -> ImageConfig:
    digest = manifest.config.digest
    try:
        return ImageConfig.from_bytes(read(digest, MAX_CONFIG_SIZE))
    except OCIError as exc:
        raise StoreError(f"image config {digest}: {exc}") from None


def platform_manifest(
    read: ReadBlob, desc: Descriptor, platform: Platform | None = None
) -> Descriptor:
    """The manifest to use for ``desc``: itself, or its index's child for ``platform``."""
    seen = 0
    while mt.is_index(desc.media_type):
        seen += 1
        if seen > 8:
            raise StoreError(f"index {desc.digest} nests indexes too deeply")
        try:
            index = Index.from_bytes(read(desc.digest, MAX_MANIFEST_SIZE), desc.media_type)
            desc = select_platform(index, platform or host_platform())
        except OCIError as exc:
            raise StoreError(f"index {desc.digest}: {exc}") from None
    return desc


def _names_of(entries: Sequence[IndexEntry], digest: Digest) -> tuple[str, ...]:
    return tuple(sorted({e.name for e in entries if e.digest == digest and e.name}))


def _familiar(name: str) -> str | None:
    try:
        return str(Reference.parse(name))
    except PalletError:
        return None


def find_entry(read: ReadBlob, entries: Sequence[IndexEntry], name: str) -> IndexEntry:
    """The index entry ``name`` designates (see the module doc for the order)."""
    for entry in entries:
        if entry.name == name:
            return entry
    full = _familiar(name)
    if full is not None:
        for entry in entries:
            if entry.name == full:
                return entry
    if "@" in name:  # repo@digest: the digest decides
        name = name.rsplit("@", 1)[1]
    match = _ID_PREFIX.fullmatch(name)
    if match is None:
        raise NotFound(f"no image named {name!r} in the store")
    prefix = match.group(1)
    for entry in entries:
        if entry.digest.encoded == prefix:
            return entry
    by_id: dict[Digest, IndexEntry] = {}
    for entry in entries:
        image_id = _image_id(read, entry.descriptor)
        if image_id is not None and image_id.encoded.startswith(prefix):
            by_id.setdefault(image_id, entry)
    if len(by_id) > 1:
        shown = ", ".join(sorted(d.short() for d in by_id))
        raise Conflict(f"image ID prefix {name!r} is ambiguous: it matches {shown}")
    if by_id:
        return next(iter(by_id.values()))
    raise NotFound(f"no image named {name!r} in the store")


def _image_id(read: ReadBlob, desc: Descriptor) -> Digest | None:
    """An entry's image ID, or None where it has none locally (index child absent)."""
    try:
        manifest_desc = platform_manifest(read, desc)
        return load_manifest(read, manifest_desc).config.digest
    except PalletError:
        return None


def stored_image(
    read: ReadBlob,
    entries: Sequence[IndexEntry],
    entry: IndexEntry,
    platform: Platform | None = None,
) -> StoredImage:
    top = entry.descriptor
    desc = platform_manifest(read, top, platform)
    try:
        manifest = load_manifest(read, desc)
    except NotFound:
        if desc.digest == top.digest:
            raise
        want = platform or host_platform()
        raise NotFound(
            f"image {entry.name or top.digest} has no {want} manifest in the store ({desc.digest})"
        ) from None
    config = load_config(read, manifest)
    index = top if desc.digest != top.digest else None
    return StoredImage(desc, manifest, config, _names_of(entries, top.digest), index)
