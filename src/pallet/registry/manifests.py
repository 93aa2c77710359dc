"""What the registry needs to know about a pushed manifest, read from hostile bytes.

Parsing and validation are pallet.oci's (``Manifest`` / ``Index``); the registry stores the
exact bytes it was given and keeps only what it acts on: the media type, the digests the
manifest points at (the push is refused when the repository lacks one), its subject (for
the referrers API) and its artifact type.
"""

from __future__ import annotations

from dataclasses import dataclass

from pallet.errors import OCIError
from pallet.oci import mediatypes as mt
from pallet.oci.digest import Digest
from pallet.oci.index import Index
from pallet.oci.jsonutil import load_object
from pallet.oci.manifest import Manifest, check_schema_version, resolve_media_type
from pallet.registry.apierrors import ApiError


@dataclass(frozen=True)
class ManifestFacts:
    media_type: str
    blobs: tuple[Digest, ...]  # config and layers that must be in the repository
    manifests: tuple[Digest, ...]  # children of an index that must be in the repository
    subject: Digest | None
    artifact_type: str  # for the referrers API: artifactType, else the config's media type
    annotations: dict[str, str]


def parse_manifest(body: bytes, content_type: str) -> ManifestFacts:
    """Validate a pushed manifest or index; MANIFEST_INVALID names what is wrong."""
    try:
        # The size limit is the registry's own (checked while reading the body).
        doc = load_object(body, "manifest", max_size=max(len(body), 1))
        check_schema_version(doc, "manifest")
        media_type = resolve_media_type(doc, content_type or None, "manifest")
        parsed: Manifest | Index = (
            Index.from_doc(body, doc, media_type)
            if media_type in mt.INDEX_TYPES
            else Manifest.from_doc(body, doc, media_type)
        )
    except OCIError as exc:
        raise ApiError("MANIFEST_INVALID", str(exc)) from None
    subject = parsed.subject.digest if parsed.subject is not None else None
    if isinstance(parsed, Index):
        return ManifestFacts(
            media_type=parsed.media_type,
            blobs=(),
            manifests=tuple(dict.fromkeys(d.digest for d in parsed.manifests)),
            subject=subject,
            artifact_type=parsed.artifact_type,
            annotations=dict(parsed.annotations),
        )
    # Non-distributable layers (with urls) live elsewhere; the registry needn't hold them.
    needed = [parsed.config.digest, *(d.digest for d in parsed.layers if not d.urls)]
    return ManifestFacts(
        media_type=parsed.media_type,
        blobs=tuple(dict.fromkeys(needed)),
        manifests=(),
        subject=subject,
        artifact_type=parsed.artifact_type or parsed.config.media_type,
        annotations=dict(parsed.annotations),
    )
