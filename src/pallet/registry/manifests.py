"""What the registry needs to know about a pushed manifest, read from hostile bytes.

The registry stores the exact bytes it was given; parsing only finds the media type and
the digests the manifest points at (so the push can be refused when the repository lacks
one), its subject (for the referrers API) and its artifact type.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pallet.errors import PalletError
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.registry.apierrors import ApiError

SUPPORTED = frozenset({mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST})


@dataclass(frozen=True)
class ManifestFacts:
    media_type: str
    blobs: tuple[Digest, ...]  # config and layers that must be in the repository
    manifests: tuple[Digest, ...]  # children of an index that must be in the repository
    subject: Digest | None
    artifact_type: str  # for the referrers API: artifactType, else the config's media type
    annotations: dict[str, str]


def _invalid(message: str) -> ApiError:
    return ApiError("MANIFEST_INVALID", message)


def _descriptor(value: Any, where: str) -> Descriptor:
    try:
        return Descriptor.from_json(value)
    except PalletError as exc:
        raise _invalid(f"{where}: {exc}") from None


def _descriptors(doc: dict[str, Any], key: str) -> list[Descriptor]:
    value = doc.get(key)
    if not isinstance(value, list):
        raise _invalid(f"manifest {key} must be a list")
    return [_descriptor(v, f"{key}[{i}]") for i, v in enumerate(value)]


def _media_type(doc: dict[str, Any], content_type: str) -> str:
    declared = doc.get("mediaType")
    content_type = content_type.split(";", 1)[0].strip()
    if declared is not None:
        if not isinstance(declared, str):
            raise _invalid("manifest mediaType must be a string")
        if content_type and content_type != declared and content_type in SUPPORTED:
            raise _invalid(
                f"Content-Type {content_type!r} does not match the manifest's mediaType {declared!r}"
            )
        return declared
    if content_type in SUPPORTED:
        return content_type
    # Neither says: the spec lets an OCI manifest or index omit mediaType.
    return mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST


def parse_manifest(body: bytes, content_type: str) -> ManifestFacts:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _invalid("manifest is not valid JSON") from None
    if not isinstance(doc, dict):
        raise _invalid("manifest must be a JSON object")
    if doc.get("schemaVersion") != 2:
        raise _invalid("manifest schemaVersion must be 2 (schema 1 is not supported)")
    media_type = _media_type(doc, content_type)
    if media_type not in SUPPORTED:
        raise _invalid(f"unsupported manifest media type {media_type!r}")
    annotations = doc.get("annotations", {})
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise _invalid("manifest annotations must be an object of strings")
    subject = None
    if doc.get("subject") is not None:
        subject = _descriptor(doc["subject"], "subject").digest
    artifact_type = doc.get("artifactType", "")
    if not isinstance(artifact_type, str):
        raise _invalid("manifest artifactType must be a string")
    blobs: list[Digest] = []
    children: list[Digest] = []
    if media_type in mt.INDEX_TYPES:
        children = [d.digest for d in _descriptors(doc, "manifests")]
    else:
        if "config" not in doc:
            raise _invalid("image manifest has no config")
        config = _descriptor(doc["config"], "config")
        layers = _descriptors(doc, "layers") if "layers" in doc else []
        blobs.append(config.digest)
        # Non-distributable layers (with urls) live elsewhere; the registry needn't hold them.
        blobs.extend(d.digest for d in layers if not d.urls)
        if not artifact_type:
            artifact_type = config.media_type
    return ManifestFacts(
        media_type=media_type,
        blobs=tuple(dict.fromkeys(blobs)),
        manifests=tuple(dict.fromkeys(children)),
        subject=subject,
        artifact_type=artifact_type,
        annotations=dict(annotations),
    )
