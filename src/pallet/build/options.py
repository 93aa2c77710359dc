"""What a build is asked to do: the Python form of ``pallet build``'s flags."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pallet.errors import InvalidArgument

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import Literal

    from pallet.build.cache_io import CacheSpec
    from pallet.build.ssh_forward import SshAgent

    OutputType = Literal["image", "oci", "docker", "local", "tar"]
    ProgressMode = Literal["plain", "tty", "quiet", "auto"]


@dataclass(frozen=True)
class Output:
    """``-o type=...,dest=...``."""

    type: OutputType = "image"
    dest: Path | None = None

    @classmethod
    def parse(cls, text: str) -> Output:
        fields: dict[str, str] = {}
        for part in text.split(","):
            key, eq, value = part.partition("=")
            if not eq:
                if len(text.split(",")) == 1:  # a bare path: docker's local shorthand
                    return cls("local", Path(text))
                raise InvalidArgument(f"-o {text}: {part!r} is not key=value")
            fields[key.strip().lower()] = value
        kind = fields.pop("type", "image")
        if kind not in ("image", "oci", "docker", "local", "tar"):
            raise InvalidArgument(f"-o {text}: unknown output type {kind!r}")
        dest = fields.pop("dest", None)
        fields.pop("name", None)
        if fields:
            raise InvalidArgument(f"-o {text}: unsupported option {next(iter(fields))!r}")
        if kind != "image" and not dest:
            raise InvalidArgument(f"-o {text}: type={kind} needs dest=PATH")
        return cls(kind, Path(dest) if dest else None)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Secret:
    """``--secret id=ID,src=FILE`` (or ``env=VAR``): never stored in a layer or a key."""

    id: str
    path: Path | None = None
    env: str | None = None

    @classmethod
    def parse(cls, text: str) -> Secret:
        fields: dict[str, str] = {}
        for part in text.split(","):
            key, eq, value = part.partition("=")
            if not eq:
                raise InvalidArgument(f"--secret {text}: {part!r} is not key=value")
            fields[key.strip().lower()] = value
        sid = fields.pop("id", "")
        src = fields.pop("src", None) or fields.pop("source", None)
        env = fields.pop("env", None)
        fields.pop("type", None)
        if fields:
            raise InvalidArgument(f"--secret {text}: unknown option {next(iter(fields))!r}")
        if not sid:
            sid = Path(src).name if src else (env or "")
        if not sid:
            raise InvalidArgument(f"--secret {text}: an id is required")
        if src is None and env is None:
            env = sid
        return cls(sid, Path(src) if src else None, env)


@dataclass(frozen=True)
class BuildOptions:
    context: Path
    #: the Dockerfile path (default: ``Dockerfile`` in the context)
    dockerfile: Path | None = None
    #: the Dockerfile's text, for ``-f -``
    dockerfile_text: str | None = None
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    platform: str | None = None
    no_cache: bool = False
    no_cache_filter: tuple[str, ...] = ()
    pull: bool = False
    secrets: tuple[Secret, ...] = ()
    compression: str = "gzip"
    compression_level: int | None = None
    reproducible: bool = False
    outputs: tuple[Output, ...] = ()
    iidfile: Path | None = None
    #: push every tag to its registry once the image is stored (``--push``)
    push: bool = False
    #: ``--ssh`` agents for ``RUN --mount=type=ssh``
    ssh: tuple[SshAgent, ...] = ()
    #: ``--allow`` entitlements (BuildKit's): ``security.insecure`` lets
    #: ``RUN --security=insecure`` run privileged; ``network.host`` is always granted
    allow: frozenset[str] = frozenset()
    #: ``--cache-from`` / ``--cache-to`` OCI layouts of the step cache
    cache_from: tuple[CacheSpec, ...] = ()
    cache_to: tuple[CacheSpec, ...] = ()


ENTITLEMENTS = ("network.host", "security.insecure")


def parse_entitlements(values: tuple[str, ...]) -> frozenset[str]:
    """``--allow`` values, refused unless BuildKit knows them."""
    for value in values:
        if value not in ENTITLEMENTS:
            raise InvalidArgument(
                f"invalid entitlement {value!r} for --allow: expected one of "
                + ", ".join(ENTITLEMENTS)
            )
    return frozenset(values)
