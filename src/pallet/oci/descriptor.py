"""Content descriptors: media type, digest, size and optional extras."""

from __future__ import annotations

import binascii
import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pallet.errors import DigestMismatch, OCIError
from pallet.oci.digest import Digest
from pallet.oci.jsonutil import (
    expect_int,
    expect_str,
    expect_str_list,
    expect_str_map,
    sorted_map,
    type_name,
)
from pallet.oci.mediatypes import is_valid_media_type
from pallet.oci.platform import Platform

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import Any

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_BASE_NAME = "org.opencontainers.image.base.name"
ANNOTATION_BASE_DIGEST = "org.opencontainers.image.base.digest"
# containerd / nerdctl / podman put the full reference here in OCI archives.
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"

# An absolute URI (RFC 3986: scheme ":" then no spaces or delimiters that need escaping).
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]+")


def check_media_type(value: Any, what: str) -> str:
    """``value`` if it is a valid media type, else an ``OCIError`` naming ``what``."""
    if not is_valid_media_type(value):
        raise OCIError(f"invalid {what} {value!r}: expected type/subtype")
    return str(value)


@dataclass(frozen=True, eq=True)
class Descriptor:
    """What the image spec calls a content descriptor; immutable and validated."""

    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    urls: tuple[str, ...] = ()
    platform: Platform | None = None
    artifact_type: str = ""
    data: bytes | None = None

    def __post_init__(self) -> None:
        check_media_type(self.media_type, "descriptor mediaType")
        object.__setattr__(self, "digest", Digest(self.digest))
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise OCIError(f"invalid descriptor size {self.size!r} for {self.digest}")
        if self.artifact_type:
            check_media_type(self.artifact_type, "descriptor artifactType")
        object.__setattr__(self, "annotations", dict(self.annotations))
        object.__setattr__(self, "urls", tuple(self.urls))

    @classmethod
    def from_json(cls, data: Any, what: str = "descriptor") -> Descriptor:
        """Parse and validate a descriptor object (hostile input: check every field)."""
        if not isinstance(data, dict):
            raise OCIError(f"{what} must be a JSON object, not {type_name(data)}")
        if "mediaType" not in data:
            raise OCIError(f"{what} has no mediaType")
        media_type = check_media_type(data["mediaType"], f"{what} mediaType")
        if "digest" not in data:
            raise OCIError(f"{what} has no digest")
        digest = Digest(expect_str(data["digest"], f"{what} digest"))
        if "size" not in data:
            raise OCIError(f"{what} {digest} has no size")
        size = expect_int(data["size"], f"{what} {digest} size", minimum=0)
        annotations = expect_str_map(data.get("annotations", {}), f"{what} annotations")
        urls = expect_str_list(data.get("urls", []), f"{what} urls")
        for url in urls:
            if not _URI.fullmatch(url):
                raise OCIError(f"{what} {digest} has an invalid URL {url!r}")
        platform = (
            Platform.from_json(data["platform"]) if data.get("platform") is not None else None
        )
        artifact_type = ""
        if "artifactType" in data:
            artifact_type = check_media_type(data["artifactType"], f"{what} artifactType")
        blob: bytes | None = None
        if "data" in data:
            encoded = expect_str(data["data"], f"{what} data")
            import base64  # rare (embedded data): kept off every command's start-up

            try:
                blob = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise OCIError(f"{what} {digest} has invalid base64 data") from None
            if len(blob) != size or Digest.from_bytes(blob, digest.algorithm) != digest:
                raise OCIError(f"{what} {digest}: embedded data does not match its digest")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            annotations=annotations,
            urls=urls,
            platform=platform,
            artifact_type=artifact_type,
            data=blob,
        )

    def to_json(self) -> dict[str, Any]:
        """The descriptor as JSON, fields in the order Go's ocispec writes them."""
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = sorted_map(self.annotations)
        if self.data is not None:
            out["data"] = binascii.b2a_base64(self.data, newline=False).decode()
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    def with_annotations(self, annotations: Mapping[str, str]) -> Descriptor:
        return dataclasses.replace(self, annotations=dict(annotations))

    def with_annotation(self, key: str, value: str) -> Descriptor:
        return dataclasses.replace(self, annotations={**self.annotations, key: value})

    def with_platform(self, platform: Platform | None) -> Descriptor:
        return dataclasses.replace(self, platform=platform)

    def replace(self, **changes: Any) -> Descriptor:
        return dataclasses.replace(self, **changes)

    @property
    def ref_name(self) -> str | None:
        """The ``org.opencontainers.image.ref.name`` annotation (a tag in an OCI layout)."""
        return self.annotations.get(ANNOTATION_REF_NAME)

    def verify(self, data: bytes) -> None:
        """Raise ``DigestMismatch`` unless ``data`` is exactly the content described."""
        if len(data) != self.size:
            raise DigestMismatch(f"{self.digest}: expected {self.size} bytes, got {len(data)}")
        actual = Digest.from_bytes(data, self.digest.algorithm)
        if actual != self.digest:
            raise DigestMismatch(f"content does not match {self.digest} (got {actual})")

    @classmethod
    def of_bytes(
        cls, media_type: str, data: bytes, *, embed: bool = False, **extra: Any
    ) -> Descriptor:
        """The descriptor of ``data`` (sha256), with optional extra fields; ``embed`` puts
        the content itself in the descriptor's ``data`` field (small blobs only)."""
        if embed:
            extra["data"] = bytes(data)
        return cls(media_type, Digest.from_bytes(data), len(data), **extra)
