"""OCI data model: pure data, no I/O.

Digests, descriptors, manifests, indexes, image configs, platforms, media types, chain IDs
and image references. Manifests, indexes and configs keep the exact bytes they were parsed
from, because their digests are computed over those bytes.
"""

from pallet.oci.chainid import chain_id, chain_ids
from pallet.oci.config import ContainerConfig, History, ImageConfig
from pallet.oci.descriptor import ANNOTATION_REF_NAME, Descriptor
from pallet.oci.digest import Digest, new_hasher
from pallet.oci.index import Index, NoMatchingPlatform, parse_manifest_or_index, select_platform
from pallet.oci.manifest import Manifest
from pallet.oci.platform import Platform, host_platform
from pallet.oci.reference import Reference, is_valid_tag, parse_any, parse_repository_name

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
