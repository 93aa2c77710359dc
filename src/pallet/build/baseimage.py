"""Base images of a build: from the store, or pulled when missing (always with --pull)."""

from __future__ import annotations

from pallet.errors import BuildError, NotFound, PalletError
from pallet.images.lookup import LocalImage, find_image
from pallet.oci.platform import Platform
from pallet.store import Store


def image_for(store: Store, ref: str, platform: Platform, pull: bool) -> LocalImage:
    """A base image from the store, pulled when missing (or always, with ``pull``)."""
    if not pull:
        try:
            return find_image(store, ref)
        except NotFound:
            pass
    try:
        from pallet.transport.registry_pull import pull as pull_image

        pull_image(ref, store.root, platform=platform)
    except PalletError as exc:
        if not pull:
            raise BuildError(
                f"image {ref} is not in the store (pull it or bootstrap it); pulling it failed: "
                f"{exc}"
            ) from None
        raise BuildError(f"cannot pull {ref}: {exc}") from None
    except Exception as exc:  # the registry client can fail in many ways offline
        raise BuildError(
            f"image {ref} is not in the store (pull it or bootstrap it); pulling it failed: {exc}"
        ) from None
    return find_image(store, ref)
