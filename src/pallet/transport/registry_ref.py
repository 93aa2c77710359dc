"""Image references as the registry client needs them: registry domain, repository path,
and the tag or digest to resolve. Parsing and normalization are the OCI reference
module's (``busybox`` -> ``docker.io/library/busybox:latest``)."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

from pallet.errors import InvalidReference
from pallet.oci.digest import Digest

DEFAULT_TAG = "latest"
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")


@dataclass(frozen=True)
class ImageRef:
    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        parsed = _parse(text)
        tag = parsed.tag if parsed.tag or parsed.digest else DEFAULT_TAG
        digest = Digest(str(parsed.digest)) if parsed.digest else None
        return cls(parsed.domain, parsed.path, tag, digest)

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


@dataclass(frozen=True)
class _Parsed:
    domain: str
    path: str
    tag: str | None
    digest: str | None


def _parse(text: str) -> Any:
    try:
        module = importlib.import_module("pallet.oci.reference")
    except ImportError:
        return _parse_docker(text)
    return module.Reference.parse(text)


def _parse_docker(text: str) -> _Parsed:
    """Docker's normalization, used only while pallet.oci.reference is absent."""
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        Digest(digest)
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise InvalidReference(f"invalid reference {text!r}: bad tag {tag!r}")
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, remainder
    else:
        domain, path = "docker.io", rest
    if domain == "docker.io" and "/" not in path:
        path = "library/" + path
    if not path or not all(_COMPONENT.fullmatch(c) for c in path.split("/")):
        raise InvalidReference(f"invalid reference {text!r}")
    return _Parsed(domain, path, tag, digest)
