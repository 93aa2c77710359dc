"""Image indexes (OCI) and manifest lists (Docker), and choosing a platform from one.

Like a manifest, an index keeps the exact bytes its digest was computed over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pallet.errors import OCIError
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor
from pallet.oci.jsonutil import MAX_MANIFEST_BYTES, load_object
from pallet.oci.manifest import (
    Manifest,
    RawDocument,
    check_schema_version,
    descriptor_list,
    document_bytes,
    optional_annotations,
    optional_artifact_type,
    optional_descriptor,
    resolve_media_type,
)
from pallet.oci.platform import Platform

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import Any

# BuildKit's attestation manifests sit in the index next to the images they describe.
ANNOTATION_REFERENCE_TYPE = "vnd.docker.reference.type"
ATTESTATION_MANIFEST = "attestation-manifest"


class NoMatchingPlatform(OCIError):
    """An image index has no image for the platform asked for."""


@dataclass(frozen=True, eq=True)
class Index(RawDocument):
    """A validated image index. Create with ``from_bytes`` or ``build``, not directly."""

    raw: bytes = field(repr=False)
    media_type: str
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    artifact_type: str = ""

    def __hash__(self) -> int:
        return hash(self.raw)

    @classmethod
    def from_bytes(cls, data: bytes, media_type: str | None = None) -> Index:
        """Parse and validate ``data``; ``media_type`` is what the transport announced."""
        doc = load_object(data, "image index", MAX_MANIFEST_BYTES)
        return cls.from_doc(bytes(data), doc, media_type)

    @classmethod
    def from_doc(cls, raw: bytes, doc: dict[str, Any], media_type: str | None = None) -> Index:
        what = "image index"
        check_schema_version(doc, what)
        resolved = resolve_media_type(doc, media_type, what)
        if resolved in mt.MANIFEST_TYPES:
            raise OCIError(f"{what} is an image manifest ({resolved}), not an index")
        if resolved not in mt.INDEX_TYPES:
            raise OCIError(f"unsupported image index media type {resolved!r}")
        if "config" in doc or "layers" in doc:
            raise OCIError(f"{what} has both manifests and config/layers: ambiguous, refused")
        manifests = descriptor_list(doc, "manifests", what)
        return cls(
            raw=raw,
            media_type=resolved,
            manifests=manifests,
            subject=optional_descriptor(doc, "subject", what),
            annotations=optional_annotations(doc, what),
            artifact_type=optional_artifact_type(doc, what),
        )

    @classmethod
    def build(
        cls,
        manifests: Sequence[Descriptor],
        *,
        media_type: str = mt.OCI_INDEX,
        annotations: Mapping[str, str] | None = None,
        subject: Descriptor | None = None,
        artifact_type: str = "",
    ) -> Index:
        """A new index with deterministic bytes, laid out like ``Manifest.build``."""
        if media_type not in mt.INDEX_TYPES:
            raise OCIError(f"cannot build an index of media type {media_type!r}")
        if media_type == mt.DOCKER_MANIFEST_LIST and (annotations or subject or artifact_type):
            raise OCIError("Docker manifest lists have no annotations, subject or artifactType")
        raw = document_bytes(
            media_type,
            {"manifests": [m.to_json() for m in manifests]},
            annotations=annotations,
            subject=subject,
            artifact_type=artifact_type,
            what="index",
        )
        return cls(
            raw=raw,
            media_type=media_type,
            manifests=tuple(manifests),
            subject=subject,
            annotations=dict(annotations or {}),
            artifact_type=artifact_type,
        )

    @property
    def is_docker(self) -> bool:
        return self.media_type == mt.DOCKER_MANIFEST_LIST

    def descriptor(self, annotations: Mapping[str, str] | None = None) -> Descriptor:
        """The descriptor that points at this index."""
        return Descriptor(
            media_type=self.media_type,
            digest=self.digest,
            size=self.size,
            annotations=dict(annotations or {}),
            artifact_type=self.artifact_type,
        )

    def images(self) -> tuple[Descriptor, ...]:
        """The entries that are runnable images (attestations and the like left out)."""
        return tuple(d for d in self.manifests if not is_attestation(d))

    def platforms(self) -> tuple[Platform, ...]:
        return tuple(d.platform for d in self.images() if d.platform is not None)


def is_attestation(desc: Descriptor) -> bool:
    return desc.annotations.get(ANNOTATION_REFERENCE_TYPE) == ATTESTATION_MANIFEST


def select_platform(index: Index, platform: Platform) -> Descriptor:
    """The entry of ``index`` to run on ``platform``, as containerd chooses it.

    The best-ranked compatible platform wins (exact variant first, then older compatible
    variants), the first listed among equals. When no entry names a matching platform, an
    entry without any platform is taken (the caller then checks the image config's
    platform), as containerd does. Otherwise ``NoMatchingPlatform`` names what was asked
    and what the index offers.
    """
    best: tuple[int, int, Descriptor] | None = None
    unlabelled: Descriptor | None = None
    for position, desc in enumerate(index.manifests):
        if is_attestation(desc):
            continue
        if desc.platform is None:
            if unlabelled is None and (
                mt.is_manifest(desc.media_type) or mt.is_index(desc.media_type)
            ):
                unlabelled = desc
            continue
        rank = platform.rank(desc.platform)
        if rank is not None and (best is None or (rank, position) < best[:2]):
            best = (rank, position, desc)
    if best is not None:
        return best[2]
    if unlabelled is not None:
        return unlabelled
    offered = ", ".join(sorted({str(p) for p in index.platforms()})) or "none"
    raise NoMatchingPlatform(
        f"no image for platform {platform} in index {index.digest} (it has: {offered})"
    )


def parse_manifest_or_index(data: bytes, media_type: str | None = None) -> Manifest | Index:
    """Parse a document that may be either: the media type (announced or in the document)
    decides, else the structure (``manifests`` makes an index)."""
    doc = load_object(data, "manifest", MAX_MANIFEST_BYTES)
    raw = bytes(data)
    check_schema_version(doc, "manifest")
    resolved = resolve_media_type(doc, media_type, "manifest")
    if resolved in mt.INDEX_TYPES:
        return Index.from_doc(raw, doc, resolved)
    return Manifest.from_doc(raw, doc, resolved)
