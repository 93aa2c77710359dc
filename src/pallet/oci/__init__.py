"""OCI data model: pure data, no I/O.

Digests, descriptors, manifests, indexes, image configs, platforms, media types, chain IDs
and image references. Manifests, indexes and configs keep the exact bytes they were parsed
from, because their digests are computed over those bytes.
"""

from pallet.lazy_exports import lazy_getattr

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)

__all__ = [
    "ANNOTATION_REF_NAME",
    "ContainerConfig",
    "Descriptor",
    "Digest",
    "History",
    "ImageConfig",
    "Index",
    "Manifest",
    "NoMatchingPlatform",
    "Platform",
    "Reference",
    "chain_id",
    "chain_ids",
    "host_platform",
    "is_valid_tag",
    "new_hasher",
    "parse_any",
    "parse_manifest_or_index",
    "parse_repository_name",
    "select_platform",
]

__getattr__ = lazy_getattr(
    __name__,
    {
        "ANNOTATION_REF_NAME": "descriptor",
        "ContainerConfig": "config",
        "Descriptor": "descriptor",
        "Digest": "digest",
        "History": "config",
        "ImageConfig": "config",
        "Index": "index",
        "Manifest": "manifest",
        "NoMatchingPlatform": "index",
        "Platform": "platform",
        "Reference": "reference",
        "chain_id": "chainid",
        "chain_ids": "chainid",
        "host_platform": "platform",
        "is_valid_tag": "reference",
        "new_hasher": "digest",
        "parse_any": "reference",
        "parse_manifest_or_index": "index",
        "parse_repository_name": "reference",
        "select_platform": "index",
    },
)

if TYPE_CHECKING:
    from pallet.oci.chainid import chain_id, chain_ids
    from pallet.oci.config import ContainerConfig, History, ImageConfig
    from pallet.oci.descriptor import ANNOTATION_REF_NAME, Descriptor
    from pallet.oci.digest import Digest, new_hasher
    from pallet.oci.index import Index, NoMatchingPlatform, parse_manifest_or_index, select_platform
    from pallet.oci.manifest import Manifest
    from pallet.oci.platform import Platform, host_platform
    from pallet.oci.reference import Reference, is_valid_tag, parse_any, parse_repository_name
