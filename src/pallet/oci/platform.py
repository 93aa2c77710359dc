"""Platforms (os/architecture/variant) and matching the host."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from pallet.errors import OCIError

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import Any

_MACHINE_TO_ARCH = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}


_COMPONENT = re.compile(r"[a-z0-9_.-]+")
_KNOWN_OS = frozenset(
    {"linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos"}
)
_KNOWN_ARCH = frozenset(
    {
        "386",
        "amd64",
        "arm",
        "arm64",
        "ppc64",
        "ppc64le",
        "s390x",
        "riscv64",
        "mips64",
        "mips64le",
        "loong64",
        "wasm",
    }
)
# Newest first: a host with a newer variant also runs every older one.
_VARIANT_LADDERS = {
    "arm": ("v8", "v7", "v6", "v5"),
    "amd64": ("v4", "v3", "v2", ""),
}


@dataclass(frozen=True)
class Platform:
    """An OCI platform: os, architecture and the optional rest."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os/arch[/variant]`` as docker's ``--platform`` does.

        Like containerd, a lone OS (``linux``) means this machine's architecture and a
        lone architecture (``arm64``) means Linux on it.
        """
        parts = text.strip().lower().split("/")
        if len(parts) > 3 or not all(parts) or not all(_COMPONENT.fullmatch(p) for p in parts):
            raise OCIError(f"invalid platform {text!r}: expected os/arch[/variant]")
        if len(parts) == 1:
            (word,) = parts
            if word in _KNOWN_OS:
                host = host_platform()
                return cls(os=word, architecture=host.architecture, variant=host.variant)
            arch, variant = normalize_arch(word)
            if arch not in _KNOWN_ARCH:
                raise OCIError(f"invalid platform {text!r}: unknown OS or architecture")
            return cls(os="linux", architecture=arch, variant=variant)
        os_, arch = parts[0], parts[1]
        variant = parts[2] if len(parts) == 3 else ""
        arch, variant = normalize_arch(arch, variant)
        return cls(os=os_, architecture=arch, variant=variant)

    def normalized(self) -> Platform:
        """Lower-case OS and containerd's canonical architecture/variant names."""
        arch, variant = normalize_arch(self.architecture, self.variant)
        return Platform(self.os.lower(), arch, variant, self.os_version, self.os_features)

    def rank(self, candidate: Platform) -> int | None:
        """How well an image for ``candidate`` suits a host that wants ``self``.

        0 is an exact match, higher numbers are older but compatible variants (arm/v6 on an
        arm/v7 host, amd64 baseline on an amd64/v3 host), None is incompatible. This is the
        order containerd's platform matcher prefers.
        """
        want, have = self.normalized(), candidate.normalized()
        if want.os != have.os or want.architecture != have.architecture:
            return None
        if not want.variant and want.architecture not in _VARIANT_LADDERS:
            # Nothing asked for: any variant runs, the plain one preferred.
            return 0 if not have.variant else 1
        ladder = _VARIANT_LADDERS.get(want.architecture)
        if ladder is None or want.variant not in ladder:
            return 0 if have.variant == want.variant else None
        acceptable = ladder[ladder.index(want.variant) :]
        if have.variant not in acceptable:
            return None
        return acceptable.index(have.variant)

    @classmethod
    def from_json(cls, data: Any) -> Platform:
        if not isinstance(data, dict):
            raise OCIError("platform must be a JSON object")
        os_, arch = data.get("os"), data.get("architecture")
        if not isinstance(os_, str) or not isinstance(arch, str):
            raise OCIError("platform needs string 'os' and 'architecture'")
        variant = data.get("variant", "")
        os_version = data.get("os.version", "")
        features = data.get("os.features", [])
        if not isinstance(variant, str) or not isinstance(os_version, str):
            raise OCIError("platform 'variant' and 'os.version' must be strings")
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise OCIError("platform 'os.features' must be a list of strings")
        return cls(os_, arch, variant, os_version, tuple(features))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        return out

    def matches(self, other: Platform) -> bool:
        """True if an image for ``other`` runs where ``self`` is wanted."""
        a1, v1 = normalize_arch(self.architecture, self.variant)
        a2, v2 = normalize_arch(other.architecture, other.variant)
        if self.os != other.os or a1 != a2:
            return False
        return not v1 or not v2 or v1 == v2

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base


def normalize_arch(arch: str, variant: str = "") -> tuple[str, str]:
    """Normalize architecture names the way containerd's platforms package does."""
    arch = arch.lower()
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant in ("", "v1") else variant
    if arch in ("aarch64", "arm64"):
        return "arm64", "" if variant in ("", "v8", "8") else variant
    if arch in ("i386", "i686", "386"):
        return "386", ""
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        return "arm", variant or "v7"
    return arch, variant


def host_platform() -> Platform:
    """The platform of this machine, as docker reports it."""
    machine = os.uname().machine  # what platform.machine() reads, without its imports
    arch, variant = _MACHINE_TO_ARCH.get(machine, (machine.lower(), ""))
    if arch == "arm64":
        variant = ""
    return Platform(os="linux", architecture=arch, variant=variant)
