"""Image references as the registry client needs them: registry domain, repository path,
and the tag or digest to resolve. Parsing and normalization are the OCI reference
module's (``busybox`` -> ``docker.io/library/busybox:latest``)."""

from __future__ import annotations

from dataclasses import dataclass

from pallet.oci.digest import Digest
from pallet.oci.reference import DEFAULT_TAG, Reference


@dataclass(frozen=True)
class ImageRef:
    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        parsed = Reference.parse(text)
        return cls(parsed.domain, parsed.path, parsed.effective_tag, parsed.digest)

    @property
    def name(self) -> str:
        """``registry/repository``."""
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest when there is one, else the tag."""
        return str(self.digest) if self.digest else (self.tag or DEFAULT_TAG)

    def with_tag(self, tag: str) -> ImageRef:
        return ImageRef(self.registry, self.repository, tag, None)

    def with_digest(self, digest: Digest) -> ImageRef:
        return ImageRef(self.registry, self.repository, None, digest)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out
