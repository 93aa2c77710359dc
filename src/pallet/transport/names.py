"""Transport names as skopeo spells them, and opening the place they name.

``docker://REF``, ``oci:DIR[:REF]``, ``oci-archive:FILE[:REF]``,
``docker-archive:FILE[:REF|@N]`` and ``pallet:REF`` (the local store). As in skopeo, the
path ends at the first ``:`` after the transport name; the rest is the reference.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pallet.errors import InvalidArgument, PalletError, TransportError
from pallet.transport.base import ImageDestination, ImageSource
from pallet.transport.docker_archive import (
    DockerArchive,
    DockerArchiveWriter,
    SingleImageDockerArchive,
)
from pallet.transport.layout import DirFiles, LayoutDestination, LayoutSource
from pallet.transport.oci_archive import (
    OciArchiveWriter,
    SingleImageArchive,
    open_oci_archive_source,
)

PATH_TRANSPORTS = ("oci", "oci-archive", "docker-archive")
TRANSPORTS = ("docker", "pallet", *PATH_TRANSPORTS)


@dataclass(frozen=True)
class TransportSpec:
    """A parsed transport name: which transport, its path (file or directory) if it has
    one, and the reference part (None when left out)."""

    transport: str
    path: str = ""
    ref: str | None = None

    def __str__(self) -> str:
        if self.transport == "docker":
            return f"docker://{self.ref}"
        if self.transport == "pallet":
            return f"pallet:{self.ref}"
        return f"{self.transport}:{self.path}" + (f":{self.ref}" if self.ref else "")


def parse_spec(text: str) -> TransportSpec:
    """Parse ``TRANSPORT:DETAILS`` as skopeo does."""
    name, sep, rest = text.partition(":")
    if not sep or name not in TRANSPORTS:
        raise InvalidArgument(
            f"invalid image name {text!r}: expected one of docker://REF, oci:DIR[:REF], "
            "oci-archive:FILE[:REF], docker-archive:FILE[:REF], pallet:REF"
        )
    if name == "docker":
        if not rest.startswith("//") or not rest[2:]:
            raise InvalidArgument(f"invalid image name {text!r}: expected docker://REF")
        return TransportSpec("docker", ref=rest[2:])
    if name == "pallet":
        if not rest:
            raise InvalidArgument(f"invalid image name {text!r}: expected pallet:REF")
        return TransportSpec("pallet", ref=rest)
    path, _, ref = rest.partition(":")
    if not path:
        raise InvalidArgument(f"invalid image name {text!r}: the {name} path is empty")
    return TransportSpec(name, path, ref or None)


def normalize_name(name: str) -> str:
    """The full reference ``name`` stands for (``busybox`` ->
    ``docker.io/library/busybox:latest``); ``name`` itself if it is not a reference."""
    try:
        return str(_reference().Reference.parse(name))
    except PalletError:
        return name


def familiar_name(name: str) -> str:
    """The short form Docker shows and writes in ``RepoTags`` (``busybox:latest``)."""
    try:
        return str(_reference().Reference.parse(name).familiar())
    except PalletError:
        return name


def same_name(a: str, b: str) -> bool:
    return normalize_name(a) == normalize_name(b)


def _reference() -> Any:
    # pallet.oci.reference is imported by name so this module works (with plain string
    # comparison) in a checkout where it is still missing.
    return importlib.import_module("pallet.oci.reference")


def _registry() -> Any:
    try:
        return importlib.import_module("pallet.transport.registry")
    except ImportError as exc:
        raise TransportError(f"the docker:// transport is not available: {exc}") from None


def _store() -> Any:
    return importlib.import_module("pallet.transport.store")


def open_source(spec: TransportSpec, store_root: Path) -> ImageSource:
    """The image ``spec`` names, ready to be read (close it when done)."""
    if spec.transport == "docker":
        source: ImageSource = _registry().open_source(spec.ref)
        return source
    if spec.transport == "pallet":
        store_source: ImageSource = _store().StoreSource.open(store_root, spec.ref)
        return store_source
    path = Path(spec.path)
    if spec.transport == "oci":
        return LayoutSource.open(DirFiles(path), spec.ref, str(spec))
    if spec.transport == "oci-archive":
        return open_oci_archive_source(path, spec.ref)
    archive = DockerArchive.open_path(path)
    try:
        return archive.source(archive.select(spec.ref, same_name), owns_archive=True)
    except BaseException:
        archive.close()
        raise


def open_destination(spec: TransportSpec, store_root: Path) -> ImageDestination:
    """Where ``spec`` says to write an image. Archive destinations are complete when the
    image is committed; closing one that was never committed removes the partial file."""
    if spec.transport == "docker":
        dest: ImageDestination = _registry().open_destination(spec.ref)
        return dest
    if spec.transport == "pallet":
        store_dest: ImageDestination = _store().StoreDestination.open(store_root, spec.ref)
        return store_dest
    path = Path(spec.path)
    if spec.transport == "oci":
        return LayoutDestination(path, spec.ref)
    if spec.transport == "oci-archive":
        return SingleImageArchive(OciArchiveWriter(path), spec.ref)
    if spec.ref is not None and spec.ref.startswith("@"):
        raise InvalidArgument(f"{spec}: an image index (@N) names a source, not a destination")
    tags = (familiar_name(spec.ref),) if spec.ref else ()
    return SingleImageDockerArchive(DockerArchiveWriter(path), tags)
