"""Content descriptors: media type, digest, size and optional extras."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pallet.errors import OCIError
from pallet.oci.digest import Digest
from pallet.oci.platform import Platform

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CREATED = "org.opencontainers.image.created"
# containerd / nerdctl / podman put the full reference here in OCI archives.
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"

_MEDIA_TYPE_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&-^_.+/"
)


def _check_media_type(value: Any, what: str) -> str:
    if not isinstance(value, str) or "/" not in value or not set(value) <= _MEDIA_TYPE_CHARS:
        raise OCIError(f"invalid {what} {value!r}")
    return value


def _string_map(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise OCIError(f"{what} must be an object of strings")
    return dict(value)


@dataclass(frozen=True, eq=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    urls: tuple[str, ...] = ()
    platform: Platform | None = None
    artifact_type: str = ""
    data: bytes | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise OCIError(f"invalid descriptor size {self.size!r}")
        object.__setattr__(self, "digest", Digest(self.digest))

    @classmethod
    def from_json(cls, data: Any) -> Descriptor:
        """Parse and validate a descriptor object (hostile input: check every field)."""
        if not isinstance(data, dict):
            raise OCIError("descriptor must be a JSON object")
        media_type = _check_media_type(data.get("mediaType"), "descriptor mediaType")
        raw_digest = data.get("digest")
        if not isinstance(raw_digest, str):
            raise OCIError("descriptor is missing its digest")
        digest = Digest(raw_digest)
        size = data.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise OCIError(f"descriptor {digest} has an invalid size {size!r}")
        annotations = _string_map(data.get("annotations", {}), "descriptor annotations")
        urls = data.get("urls", [])
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise OCIError("descriptor urls must be a list of strings")
        platform = Platform.from_json(data["platform"]) if "platform" in data else None
        artifact_type = data.get("artifactType", "")
        if artifact_type:
            _check_media_type(artifact_type, "descriptor artifactType")
        blob: bytes | None = None
        if "data" in data:
            if not isinstance(data["data"], str):
                raise OCIError("descriptor data must be base64 text")
            try:
                blob = base64.b64decode(data["data"], validate=True)
            except ValueError as exc:
                raise OCIError(f"descriptor {digest} has invalid base64 data") from exc
            if len(blob) != size or Digest.from_bytes(blob, digest.algorithm) != digest:
                raise OCIError(f"descriptor {digest} embedded data does not match it")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            annotations=annotations,
            urls=tuple(urls),
            platform=platform,
            artifact_type=artifact_type,
            data=blob,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.data is not None:
            out["data"] = base64.b64encode(self.data).decode()
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    def with_annotations(self, annotations: Mapping[str, str]) -> Descriptor:
        return Descriptor(
            self.media_type,
            self.digest,
            self.size,
            dict(annotations),
            self.urls,
            self.platform,
            self.artifact_type,
            self.data,
        )

    @classmethod
    def of_bytes(cls, media_type: str, data: bytes) -> Descriptor:
        return cls(media_type, Digest.from_bytes(data), len(data))
