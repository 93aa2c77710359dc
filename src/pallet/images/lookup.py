"""Find images in the store the way docker does: by name, by ID (prefix) or by digest."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from pallet.errors import InvalidReference, NotFound, OCIError, PalletError
from pallet.oci.config import ImageConfig
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.oci.index import Index, parse_manifest_or_index, select_platform
from pallet.oci.manifest import Manifest
from pallet.oci.platform import Platform, host_platform
from pallet.oci.reference import Reference
from pallet.store import Store

_HEX_PREFIX = re.compile(r"(?:sha256:)?([a-f0-9]{1,64})")


class AmbiguousImage(NotFound):
    pass


@dataclass(frozen=True)
class LocalImage:
    """An image of the store: its index.json entry, the manifest for this platform, its config."""

    descriptor: Descriptor
    manifest: Manifest
    config: ImageConfig
    names: tuple[str, ...]

    @property
    def id(self) -> Digest:
        """Docker's image ID: the config digest."""
        return self.manifest.config.digest

    @property
    def size(self) -> int:
        """Bytes the image's blobs take (compressed layers plus config)."""
        return self.manifest.config.size + sum(layer.size for layer in self.manifest.layers)

    @property
    def dangling(self) -> bool:
        return not self.names


def load_manifest(store: Store, desc: Descriptor, platform: Platform | None = None) -> Manifest:
    """The image manifest behind ``desc``, choosing a platform when it is an index."""
    doc = parse_manifest_or_index(store.read_blob(desc.digest), desc.media_type)
    depth = 0
    while isinstance(doc, Index):
        depth += 1
        if depth > 4:
            raise OCIError(f"index {desc.digest} nests too deeply")
        child = select_platform(doc, platform or host_platform())
        doc = parse_manifest_or_index(store.read_blob(child.digest), child.media_type)
    return doc


def load_image(store: Store, desc: Descriptor, names: Iterable[str] = ()) -> LocalImage:
    manifest = load_manifest(store, desc)
    config = ImageConfig.from_bytes(store.read_blob(manifest.config.digest))
    return LocalImage(desc, manifest, config, tuple(names))


def all_images(store: Store, *, skip_broken: bool = True) -> list[LocalImage]:
    """Every image of the store, one per top-level digest, with all its names."""
    names: dict[Digest, list[str]] = {}
    descs: dict[Digest, Descriptor] = {}
    for entry in store.images():
        descs.setdefault(entry.digest, entry.descriptor)
        bucket = names.setdefault(entry.digest, [])
        if entry.name and entry.name not in bucket:
            bucket.append(entry.name)
    out = []
    for digest, desc in descs.items():
        try:
            out.append(load_image(store, desc, names[digest]))
        except PalletError:
            if not skip_broken:
                raise
    return out


def find_image(store: Store, text: str) -> LocalImage:
    """Resolve what a user typed: a reference (tag or digest), or an image ID or prefix."""
    ref: Reference | None = None
    try:
        ref = Reference.parse(text)
    except InvalidReference:
        ref = None
    images = all_images(store)
    if ref is not None:
        if ref.digest is not None:
            for image in images:
                if ref.digest in (image.descriptor.digest, image.manifest.digest) and (
                    ref.tag is None or str(ref.normalized()).split("@")[0] in image.names
                ):
                    return image
        else:
            wanted = str(ref.normalized())
            for image in images:
                if wanted in image.names:
                    return image
    match = _HEX_PREFIX.fullmatch(text)
    if match:
        prefix = match.group(1)
        hits = {
            image.id: image
            for image in images
            if image.id.encoded.startswith(prefix) or image.descriptor.digest.encoded == prefix
        }
        if len(hits) == 1:
            return next(iter(hits.values()))
        if len(hits) > 1:
            raise AmbiguousImage(
                f"image ID prefix {text!r} is ambiguous: it matches {len(hits)} images"
            )
    shown = ref.familiar() if ref is not None and ref.digest is None else text
    raise NotFound(f"No such image: {shown}")
