"""Images as the commands see them, found the way docker finds them (the store decides:
full or familiar name, manifest digest, image ID or unique prefix)."""

from __future__ import annotations

from dataclasses import dataclass

from pallet.errors import InvalidReference, NotFound, PalletError
from pallet.oci.config import ImageConfig
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.oci.manifest import Manifest
from pallet.oci.reference import Reference
from pallet.store import Store, StoredImage


@dataclass(frozen=True)
class LocalImage:
    """A stored image plus what the commands show of it."""

    stored: StoredImage

    @property
    def descriptor(self) -> Descriptor:
        """The index.json entry: the manifest, or the index of a multi-platform image."""
        return self.stored.index or self.stored.descriptor

    @property
    def manifest(self) -> Manifest:
        return self.stored.manifest

    @property
    def config(self) -> ImageConfig:
        return self.stored.config

    @property
    def names(self) -> tuple[str, ...]:
        return self.stored.names

    @property
    def id(self) -> Digest:
        """Docker's image ID: the config digest."""
        return self.stored.id

    @property
    def size(self) -> int:
        """Bytes the image's blobs take (compressed layers plus config)."""
        return self.manifest.config.size + sum(layer.size for layer in self.manifest.layers)

    @property
    def dangling(self) -> bool:
        return not self.names


def find_image(store: Store, text: str) -> LocalImage:
    """What a user typed, resolved as docker resolves it; ``No such image: X`` if absent."""
    try:
        entry = store.find(text)
    except NotFound:
        shown = text
        try:
            ref = Reference.parse(text)
            shown = ref.familiar() if ref.digest is None else text
        except InvalidReference:
            pass
        raise NotFound(f"No such image: {shown}") from None
    return LocalImage(store.image(str(entry.digest)))


def all_images(store: Store, *, skip_broken: bool = True) -> list[LocalImage]:
    """Every image of the store, one per index.json entry digest, with all its names."""
    seen: set[Digest] = set()
    out = []
    for entry in store.images():
        if entry.digest in seen:
            continue
        seen.add(entry.digest)
        try:
            out.append(LocalImage(store.image(str(entry.digest))))
        except PalletError:
            if not skip_broken:
                raise
    return out
