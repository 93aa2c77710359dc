"""``pallet tag``: another name for an image."""

from __future__ import annotations

from pallet.errors import InvalidArgument
from pallet.images.lookup import find_image
from pallet.oci.descriptor import Descriptor
from pallet.oci.reference import Reference
from pallet.store import Store


def tag_image(store: Store, source: str, target: str) -> Descriptor:
    """Point ``target`` at the image ``source`` names; returns the tagged descriptor."""
    ref = Reference.parse(target)
    if ref.digest is not None:
        raise InvalidArgument(f"refusing to create a tag with a digest reference: {target}")
    image = find_image(store, source)
    store.tag(str(ref.normalized()), image.descriptor)
    return image.descriptor
