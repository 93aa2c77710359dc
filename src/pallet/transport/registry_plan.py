"""What an image transfer moves: the blobs (configs and layers) below a top manifest,
for one platform or all of them, each once. Foreign layers are left out, as copy does."""

from __future__ import annotations

from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor
from pallet.oci.platform import Platform, host_platform
from pallet.transport.base import ImageSource, ManifestBlob
from pallet.transport.copy import parse_image_manifest, parse_index_children, select_child

MAX_DEPTH = 4


def _foreign(desc: Descriptor) -> bool:
    return bool(desc.urls) and (
        desc.media_type == mt.DOCKER_LAYER_FOREIGN or "nondistributable" in desc.media_type
    )


def plan_blobs(
    source: ImageSource,
    top: ManifestBlob,
    *,
    platform: Platform | None = None,
    all_platforms: bool = False,
) -> list[Descriptor]:
    """Blobs under ``top``, configs first, in manifest order, without duplicates."""
    out: dict[str, Descriptor] = {}
    _walk(source, top, platform, all_platforms, out, 0)
    return list(out.values())


def _walk(
    source: ImageSource,
    blob: ManifestBlob,
    platform: Platform | None,
    all_platforms: bool,
    out: dict[str, Descriptor],
    depth: int,
) -> None:
    if depth > MAX_DEPTH:
        return
    if mt.is_index(blob.media_type):
        _, children = parse_index_children(blob)
        if not all_platforms:
            children = [select_child(children, platform or host_platform(), source.describe())]
        for child in children:
            if mt.is_index(child.media_type) or mt.is_manifest(child.media_type):
                _walk(
                    source,
                    source.get_manifest(child.digest),
                    platform,
                    all_platforms,
                    out,
                    depth + 1,
                )
            elif not _foreign(child):
                out.setdefault(child.digest, child)
        return
    if mt.is_manifest(blob.media_type):
        manifest = parse_image_manifest(blob)
        out.setdefault(manifest.config.digest, manifest.config)
        for layer in manifest.layers:
            if not _foreign(layer):
                out.setdefault(layer.digest, layer)
