"""Transport names as skopeo spells them, and opening the place they name.

``docker://REF``, ``oci:DIR[:REF]``, ``oci-archive:FILE[:REF]``,
``docker-archive:FILE[:REF|@N]`` and ``pallet:REF`` (the local store). As in skopeo, the
path ends at the first ``:`` after the transport name; the rest is the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pallet.errors import InvalidArgument, PalletError
from pallet.oci.reference import Reference
from pallet.transport.base import ImageDestination, ImageSource

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
    ``docker.io/library/busybox:latest``); InvalidReference if it is not one."""
    return str(Reference.parse(name))


def familiar_name(name: str) -> str:
    """The short form Docker shows and writes in ``RepoTags`` (``busybox:latest``)."""
    return Reference.parse(name).familiar()


def same_name(a: str, b: str) -> bool:
    """Whether two names mean the same image (plain comparison if one is no reference)."""
    try:
        return normalize_name(a) == normalize_name(b)
    except PalletError:
        return a == b


def open_source(spec: TransportSpec, store_root: Path) -> ImageSource:
    """The image ``spec`` names, ready to be read (close it when done)."""
    if spec.transport == "docker":
        from pallet.transport import registry  # imported on use: it brings in aiohttp

        return registry.open_source(str(spec.ref))
    if spec.transport == "pallet":
        from pallet.transport.store import StoreSource  # store.py imports this module

        return StoreSource.open(store_root, spec.ref)
    # The file transports (tarfile, compression) are imported by the commands using them:
    # pull and push only need the names.
    from pallet.transport.docker_archive import DockerArchive
    from pallet.transport.layout import DirFiles, LayoutSource
    from pallet.transport.oci_archive import open_oci_archive_source

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
        from pallet.transport import registry

        return registry.open_destination(str(spec.ref))
    if spec.transport == "pallet":
        from pallet.transport.store import StoreDestination

        return StoreDestination.open(store_root, spec.ref)
    from pallet.transport.docker_archive import DockerArchiveWriter, SingleImageDockerArchive
    from pallet.transport.layout import LayoutDestination
    from pallet.transport.oci_archive import OciArchiveWriter, SingleImageArchive

    path = Path(spec.path)
    if spec.transport == "oci":
        return LayoutDestination(path, spec.ref)
    if spec.transport == "oci-archive":
        return SingleImageArchive(OciArchiveWriter(path), spec.ref)
    if spec.ref is not None and spec.ref.startswith("@"):
        raise InvalidArgument(f"{spec}: an image index (@N) names a source, not a destination")
    tags = (familiar_name(spec.ref),) if spec.ref else ()
    return SingleImageDockerArchive(DockerArchiveWriter(path), tags)
