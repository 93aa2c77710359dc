"""pallet's public Python API: what the ``pallet`` command does, as functions.

Every function takes the store (``open_store(root)``) or its root, raises a
``pallet.errors.PalletError`` subclass with a one-line message on failure, and leaves the
store as it was when it fails. Heavy modules (the registry client, the builder, the
runtime) are imported only by the functions that need them.

    from pallet import api
    store = api.open_store("/var/lib/pallet")
    api.bootstrap_busybox(store)
    result = api.build(store, api.BuildOptions(context=Path("examples/hello"), tags=("hello",)))
    code = api.run(store, api.RunOptions(image="hello", auto_remove=True))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pallet.images.bootstrap import bootstrap_busybox, bootstrap_debian
from pallet.images.describe import history_rows, inspect_document
from pallet.images.importer import import_rootfs
from pallet.images.lookup import LocalImage, all_images, find_image
from pallet.images.remove import RemovalEvent, prune_images, remove_images
from pallet.oci.descriptor import Descriptor
from pallet.oci.platform import Platform
from pallet.oci.reference import Reference
from pallet.paths import default_root
from pallet.store import Store

if TYPE_CHECKING:
    from pallet.build import BuildOptions, BuildResult, Progress
    from pallet.runtime.container import RunOptions
    from pallet.transport.base import ManifestBlob
    from pallet.transport.registry_pull import PullResult
    from pallet.transport.registry_push import PushResult
    from pallet.transport.store import LoadedImage

__all__ = [
    "LocalImage",
    "RemovalEvent",
    "all_images",
    "bootstrap_busybox",
    "bootstrap_debian",
    "build",
    "copy",
    "find_image",
    "history_rows",
    "import_rootfs",
    "inspect_document",
    "load",
    "open_store",
    "prune_images",
    "pull",
    "push",
    "remove_images",
    "run",
    "save",
    "tag",
]


def open_store(root: Path | str | None = None) -> Store:
    """The store at ``root`` (default: $PALLET_ROOT, /var/lib/pallet as root, else
    ~/.local/share/pallet), created if missing."""
    return Store.open(Path(root) if root is not None else default_root())


def tag(store: Store, source: str, target: str) -> Descriptor:
    """``pallet tag``: name ``target`` the image ``source`` designates."""
    from pallet.images.tagging import tag_image

    return tag_image(store, source, target)


def build(store: Store, options: BuildOptions, progress: Progress | None = None) -> BuildResult:
    """``pallet build``: the image a Dockerfile describes (see ``pallet.build.BuildOptions``)."""
    from pallet.build import build as _build

    return _build(store, options, progress)


def run(
    store: Store,
    options: RunOptions,
    *,
    stdin: int | IO[Any] | None = None,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
) -> int:
    """``pallet run`` in the foreground: the container's exit code (125/126/127 raised as
    ``ContainerError`` when it cannot start). Removed afterwards if ``options.auto_remove``."""
    import subprocess

    from pallet.runtime.container import Containers

    containers = Containers(store)
    record = containers.create(options)
    try:
        return containers.run_monitored(
            record,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    finally:
        if options.auto_remove:
            containers.remove(record.id, force=True)


def pull(store: Store, ref: str, *, platform: Platform | None = None, **kwargs: Any) -> PullResult:
    """``pallet pull``: fetch ``ref`` from its registry into the store (tag written last)."""
    from pallet.transport.registry_pull import pull as _pull

    return _pull(ref, store.root, platform=platform, **kwargs)


def push(store: Store, ref: str, **kwargs: Any) -> PushResult:
    """``pallet push``: send ``ref`` from the store to its registry (manifest last)."""
    from pallet.transport.registry_push import push as _push

    return _push(ref, store.root, **kwargs)


def save(store: Store, refs: Sequence[str], output: Path, *, fmt: str = "docker-archive") -> None:
    """``pallet save``: a docker-archive (``docker load`` reads it) or an OCI archive."""
    from pallet.transport.store import save_images

    save_images(store.root, list(refs), output, fmt)


def load(store: Store, archive: Path, *, compression_level: int | None = None) -> list[LoadedImage]:
    """``pallet load``: every image of a docker-archive or OCI archive, all or nothing."""
    from pallet.transport.oci_archive import ArchiveIndex
    from pallet.transport.store import load_archive

    index = ArchiveIndex.open_path(archive)
    try:
        return load_archive(store.root, index, compression_level=compression_level)
    finally:
        index.close()


def copy(
    src: str,
    dst: str,
    *,
    store_root: Path | None = None,
    all_platforms: bool = False,
    platform: Platform | None = None,
    dest_compression: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> ManifestBlob:
    """``pallet copy``: between skopeo-style names (docker://, oci:, oci-archive:,
    docker-archive:, pallet:)."""
    from pallet.transport.copy import copy as _copy
    from pallet.transport.names import open_destination, open_source, parse_spec

    root = store_root if store_root is not None else default_root()
    source = open_source(parse_spec(src), root)
    try:
        destination = open_destination(parse_spec(dst), root)
        try:
            return _copy(
                source,
                destination,
                all_platforms=all_platforms,
                platform=platform,
                dest_compression=dest_compression,
                **dict(options or {}),
            )
        finally:
            destination.close()
    finally:
        source.close()


def normalize(name: str) -> str:
    """The full normalized form of an image reference (``busybox`` ->
    ``docker.io/library/busybox:latest``)."""
    return str(Reference.parse(name).normalized())
