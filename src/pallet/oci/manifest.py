"""Image manifests (OCI and Docker schema2), kept as the exact bytes they came in.

A manifest's digest is computed over its bytes, so a parsed manifest never re-serializes:
``raw`` is the truth and the fields are a validated view of it. ``Manifest.build`` is the one
place pallet writes a manifest: deterministic JSON laid out as containerd and BuildKit write
it (Go's ``MarshalIndent`` with two spaces, fields in the spec's order), which skopeo, umoci,
docker and podman all read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from pallet.errors import OCIError
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor, check_media_type
from pallet.oci.digest import Digest
from pallet.oci.jsonutil import (
    MAX_MANIFEST_BYTES,
    dump_bytes,
    expect_int,
    expect_str_map,
    load_object,
    sorted_map,
    type_name,
)
from pallet.oci.platform import Platform

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import Any


def check_schema_version(doc: dict[str, Any], what: str) -> None:
    if "schemaVersion" not in doc:
        raise OCIError(f"{what} has no schemaVersion")
    version = expect_int(doc["schemaVersion"], f"{what} schemaVersion")
    if version == 1:
        raise OCIError(f"{what} is Docker schema 1, which pallet does not support")
    if version != 2:
        raise OCIError(f"{what} has unsupported schemaVersion {version} (expected 2)")


def _kind(media_type: str) -> str:
    if media_type in mt.INDEX_TYPES:
        return "index"
    if media_type in mt.MANIFEST_TYPES:
        return "manifest"
    return media_type


def resolve_media_type(doc: dict[str, Any], given: str | None, what: str) -> str:
    """The media type of a manifest or index document.

    ``given`` is what the transport said (a Content-Type header or the descriptor that
    pointed here). The document's own ``mediaType`` wins; it must be of the same kind
    (manifest, index) as ``given``, but an OCI/Docker flavour mismatch within a kind is
    tolerated, as containerd and go-containerregistry tolerate it (real layouts have OCI
    descriptors pointing at Docker manifests). Without either, the structure decides, as
    containers/image does for documents that omit the optional field: ``manifests`` makes
    an index, a Docker config makes a Docker manifest.
    """
    declared: str | None = None
    if "mediaType" in doc:
        declared = check_media_type(doc["mediaType"], f"{what} mediaType")
    hint = mt.base_type(given) if given else None
    known = mt.MANIFEST_TYPES | mt.INDEX_TYPES | mt.SCHEMA1_TYPES
    if hint is not None and hint not in known:
        hint = None  # application/json, application/octet-stream: says nothing
    if declared is not None and hint is not None and _kind(declared) != _kind(hint):
        raise OCIError(f"{what} has mediaType {declared!r} but was announced as {hint!r}")
    if declared is not None:
        return declared
    if hint is not None:
        return hint
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc:
        config = doc["config"]
        if isinstance(config, dict) and config.get("mediaType") == mt.DOCKER_CONFIG:
            return mt.DOCKER_MANIFEST
        return mt.OCI_MANIFEST
    if doc.get("schemaVersion") == 1:
        return mt.DOCKER_MANIFEST_V1
    raise OCIError(f"{what} is neither an image manifest nor an index")


def optional_descriptor(doc: dict[str, Any], key: str, what: str) -> Descriptor | None:
    if key not in doc:
        return None
    return Descriptor.from_json(doc[key], f"{what} {key}")


def optional_artifact_type(doc: dict[str, Any], what: str) -> str:
    if "artifactType" not in doc:
        return ""
    return check_media_type(doc["artifactType"], f"{what} artifactType")


def optional_annotations(doc: dict[str, Any], what: str) -> dict[str, str]:
    if "annotations" not in doc:
        return {}
    return expect_str_map(doc["annotations"], f"{what} annotations")


def descriptor_list(doc: dict[str, Any], key: str, what: str) -> tuple[Descriptor, ...]:
    """The required array of descriptors ``doc[key]`` (a manifest's layers, an index's manifests)."""
    if key not in doc:
        raise OCIError(f"{what} has no {key}")
    entries = doc[key]
    if not isinstance(entries, list):
        raise OCIError(f"{what} {key} must be an array, not {type_name(entries)}")
    return tuple(
        Descriptor.from_json(entry, f"{what} {key}[{i}]") for i, entry in enumerate(entries)
    )


def document_bytes(
    media_type: str,
    body: dict[str, Any],
    *,
    annotations: Mapping[str, str] | None,
    subject: Descriptor | None,
    artifact_type: str,
    what: str,
) -> bytes:
    """The deterministic bytes of a manifest or index: ``body`` (its own fields) framed by
    the fields both share, in the spec's order."""
    if artifact_type:
        check_media_type(artifact_type, f"{what} artifactType")
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc.update(body)
    if subject is not None:
        doc["subject"] = subject.to_json()
    if annotations:
        doc["annotations"] = sorted_map(annotations)
    return dump_bytes(doc, indent=2)


class RawDocument:
    """What a manifest and an index share: they are their exact bytes."""

    raw: bytes

    @cached_property
    def digest(self) -> Digest:
        return Digest.from_bytes(self.raw)

    @property
    def size(self) -> int:
        return len(self.raw)


@dataclass(frozen=True, eq=True)
class Manifest(RawDocument):
    """A validated image manifest. Create with ``from_bytes`` or ``build``, not directly."""

    raw: bytes = field(repr=False)
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    artifact_type: str = ""

    def __hash__(self) -> int:
        return hash(self.raw)

    @classmethod
    def from_bytes(cls, data: bytes, media_type: str | None = None) -> Manifest:
        """Parse and validate ``data``; ``media_type`` is what the transport announced."""
        doc = load_object(data, "manifest", MAX_MANIFEST_BYTES)
        return cls.from_doc(bytes(data), doc, media_type)

    @classmethod
    def from_doc(cls, raw: bytes, doc: dict[str, Any], media_type: str | None = None) -> Manifest:
        """Validate an already decoded ``doc`` whose exact bytes are ``raw``."""
        what = "manifest"
        check_schema_version(doc, what)
        resolved = resolve_media_type(doc, media_type, what)
        if resolved in mt.INDEX_TYPES:
            raise OCIError(f"{what} is an image index ({resolved}), not a manifest")
        if resolved in mt.SCHEMA1_TYPES:
            raise OCIError(f"{what} is Docker schema 1 ({resolved}), which pallet does not support")
        if resolved not in mt.MANIFEST_TYPES:
            raise OCIError(f"unsupported manifest media type {resolved!r}")
        if "manifests" in doc:
            raise OCIError(f"{what} has both config and manifests: ambiguous, refused")
        if "config" not in doc:
            raise OCIError(f"{what} has no config")
        config = Descriptor.from_json(doc["config"], f"{what} config")
        # An empty list is accepted although the JSON schema says minItems 1: the prose
        # spec only says SHOULD, Docker writes layer-less images (FROM scratch + CMD) and
        # registries must take them.
        layers = descriptor_list(doc, "layers", what)
        return cls(
            raw=raw,
            media_type=resolved,
            config=config,
            layers=layers,
            subject=optional_descriptor(doc, "subject", what),
            annotations=optional_annotations(doc, what),
            artifact_type=optional_artifact_type(doc, what),
        )

    @classmethod
    def build(
        cls,
        config: Descriptor,
        layers: Sequence[Descriptor],
        *,
        media_type: str = mt.OCI_MANIFEST,
        annotations: Mapping[str, str] | None = None,
        subject: Descriptor | None = None,
        artifact_type: str = "",
    ) -> Manifest:
        """A new manifest with deterministic bytes (same inputs, same digest)."""
        if media_type not in mt.MANIFEST_TYPES:
            raise OCIError(f"cannot build a manifest of media type {media_type!r}")
        if media_type == mt.DOCKER_MANIFEST and (annotations or subject or artifact_type):
            raise OCIError("Docker schema2 manifests have no annotations, subject or artifactType")
        body = {"config": config.to_json(), "layers": [layer.to_json() for layer in layers]}
        raw = document_bytes(
            media_type,
            body,
            annotations=annotations,
            subject=subject,
            artifact_type=artifact_type,
            what="manifest",
        )
        return cls(
            raw=raw,
            media_type=media_type,
            config=config,
            layers=tuple(layers),
            subject=subject,
            annotations=dict(annotations or {}),
            artifact_type=artifact_type,
        )

    @property
    def is_docker(self) -> bool:
        return self.media_type == mt.DOCKER_MANIFEST

    def descriptor(
        self,
        platform: Platform | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> Descriptor:
        """The descriptor that points at this manifest (for an index or a tag)."""
        return Descriptor(
            media_type=self.media_type,
            digest=self.digest,
            size=self.size,
            annotations=dict(annotations or {}),
            platform=platform,
            artifact_type=self.artifact_type,
        )

    def blobs(self) -> tuple[Descriptor, ...]:
        """Every blob this manifest needs: the config, then the layers."""
        return (self.config, *self.layers)
