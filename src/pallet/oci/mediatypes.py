"""Media types of the OCI image spec and of Docker's schema2."""

from __future__ import annotations

import re

OCI_LAYOUT_VERSION = "1.0.0"

OCI_DESCRIPTOR = "application/vnd.oci.descriptor.v1+json"
OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"

#: The empty JSON object ``{}`` that OCI artifacts use as a placeholder config.
EMPTY_JSON = b"{}"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
SCHEMA1_TYPES = frozenset({DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED})
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
LAYER_TYPES = frozenset(
    {
        OCI_LAYER,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        OCI_LAYER_NONDIST,
        OCI_LAYER_NONDIST_GZIP,
        OCI_LAYER_NONDIST_ZSTD,
        DOCKER_LAYER,
        DOCKER_LAYER_GZIP,
        DOCKER_LAYER_FOREIGN,
    }
)
GZIP_LAYER_TYPES = frozenset(
    {OCI_LAYER_GZIP, OCI_LAYER_NONDIST_GZIP, DOCKER_LAYER_GZIP, DOCKER_LAYER_FOREIGN}
)
ZSTD_LAYER_TYPES = frozenset({OCI_LAYER_ZSTD, OCI_LAYER_NONDIST_ZSTD})
NONDISTRIBUTABLE_LAYER_TYPES = frozenset(
    {OCI_LAYER_NONDIST, OCI_LAYER_NONDIST_GZIP, OCI_LAYER_NONDIST_ZSTD, DOCKER_LAYER_FOREIGN}
)

# RFC 6838 restricted names, as the image spec's JSON schema writes them.
_MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)

# One layer media type per (family, compression); Docker has no zstd type.
_OCI_LAYERS = {"none": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}
_OCI_NONDIST = {
    "none": OCI_LAYER_NONDIST,
    "gzip": OCI_LAYER_NONDIST_GZIP,
    "zstd": OCI_LAYER_NONDIST_ZSTD,
}
_DOCKER_LAYERS = {"none": DOCKER_LAYER, "gzip": DOCKER_LAYER_GZIP}


def is_valid_media_type(value: object) -> bool:
    """True for a syntactically valid ``type/subtype`` (parameters not allowed)."""
    return isinstance(value, str) and _MEDIA_TYPE.fullmatch(value) is not None


def is_manifest(media_type: str) -> bool:
    return media_type in MANIFEST_TYPES


def is_index(media_type: str) -> bool:
    return media_type in INDEX_TYPES


def is_config(media_type: str) -> bool:
    return media_type in CONFIG_TYPES


def is_layer(media_type: str) -> bool:
    return media_type in LAYER_TYPES


def is_docker(media_type: str) -> bool:
    """True for Docker's own (non-OCI) media types."""
    return media_type.startswith("application/vnd.docker.")


def is_nondistributable(media_type: str) -> bool:
    """Layers that registries do not host (Windows base layers); they carry ``urls``."""
    return media_type in NONDISTRIBUTABLE_LAYER_TYPES


def layer_compression(media_type: str) -> str:
    """'gzip', 'zstd' or 'none' for a layer media type."""
    if media_type in GZIP_LAYER_TYPES:
        return "gzip"
    if media_type in ZSTD_LAYER_TYPES:
        return "zstd"
    return "none"


def layer_media_type(compression: str, *, docker: bool = False, nondist: bool = False) -> str:
    """The layer media type for ``compression`` ('none', 'gzip', 'zstd') in a family."""
    if compression not in _OCI_LAYERS:
        raise ValueError(f"unknown layer compression {compression!r}")
    if docker:
        if nondist:
            if compression != "gzip":
                raise ValueError("Docker foreign layers are gzip only")
            return DOCKER_LAYER_FOREIGN
        if compression not in _DOCKER_LAYERS:
            raise ValueError(f"Docker has no media type for {compression} layers")
        return _DOCKER_LAYERS[compression]
    return (_OCI_NONDIST if nondist else _OCI_LAYERS)[compression]


def to_oci(media_type: str) -> str:
    """The OCI equivalent of a Docker schema2 media type (others unchanged)."""
    if media_type == DOCKER_MANIFEST:
        return OCI_MANIFEST
    if media_type == DOCKER_MANIFEST_LIST:
        return OCI_INDEX
    if media_type == DOCKER_CONFIG:
        return OCI_CONFIG
    if media_type in LAYER_TYPES and is_docker(media_type):
        return layer_media_type(
            layer_compression(media_type), nondist=is_nondistributable(media_type)
        )
    return media_type


def to_docker(media_type: str) -> str:
    """The Docker schema2 equivalent of an OCI media type (others unchanged).

    Raises ``ValueError`` for zstd layers, which Docker's schema2 cannot describe.
    """
    if media_type == OCI_MANIFEST:
        return DOCKER_MANIFEST
    if media_type == OCI_INDEX:
        return DOCKER_MANIFEST_LIST
    if media_type == OCI_CONFIG:
        return DOCKER_CONFIG
    if media_type in LAYER_TYPES and not is_docker(media_type):
        return layer_media_type(
            layer_compression(media_type), docker=True, nondist=is_nondistributable(media_type)
        )
    return media_type


def base_type(content_type: str) -> str:
    """A Content-Type header without parameters (``; charset=utf-8``), lower-cased."""
    return content_type.split(";", 1)[0].strip().lower()
