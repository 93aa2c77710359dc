"""The local store (``pallet:REF``) as a copy source and destination.

Writing follows the store's rules: every blob goes through the ingest area and is
verified before it becomes visible; everything written is held by a lease until the
image is tagged, so garbage collection cannot take it in between; tags are written last.
A copy that fails removes the blobs it added, so the store is left exactly as it was.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

from pallet.errors import PalletError, TransportError
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, Descriptor
from pallet.oci.digest import Digest
from pallet.store import Lease, Store
from pallet.transport.base import ImageSource, ManifestBlob
from pallet.transport.copy import CHUNK, copy, parse_image_manifest
from pallet.transport.layout import (
    INDEX_FILE,
    MAX_MANIFEST_SIZE,
    LayoutSource,
    entry_descriptor,
    read_index,
    sniff_media_type,
)
from pallet.transport.names import familiar_name, normalize_name

if TYPE_CHECKING:
    from pallet.layer.commit import LayerInfo
    from pallet.transport.oci_archive import ArchiveIndex

_IMAGE_ID = re.compile(r"(sha256:)?[0-9a-f]{12,64}")


class StoreSource:
    """An image (or index) of the local store, named by reference or image ID."""

    def __init__(self, store: Store, top: Descriptor, label: str, name: str | None) -> None:
        self.store = store
        self.top = top
        self.label = label
        #: the full reference the image was found by; None when named by ID/digest
        self.name = name
        self._lease: Lease | None = None

    @classmethod
    def open(cls, root: Path, ref: str | None) -> StoreSource:
        """The image ``ref`` names: a reference, or an image ID (config digest, or
        manifest digest; a unique prefix of 12+ hex digits will do)."""
        if not ref:
            raise TransportError("pallet: an image reference is required")
        store = Store.open(root)
        label = f"pallet:{ref}"
        name: str | None = None
        found = _by_id(store, ref.removeprefix("sha256:")) if _IMAGE_ID.fullmatch(ref) else None
        if found is None:
            name = normalize_name(ref)
            found = store.resolve(name)
        source = cls(store, found, label, name)
        # Untagging the image while it is read must not let gc take its blobs.
        source._lease = store.lease([found.digest])
        return source

    def describe(self) -> str:
        return self.label

    def get_manifest(self, digest: Digest | None = None) -> ManifestBlob:
        want = self.top.digest if digest is None else Digest(str(digest))
        if digest is None and self.top.size > MAX_MANIFEST_SIZE:
            raise TransportError(f"{self.label}: manifest {want} is too large")
        raw = self.store.read_blob(want)
        if digest is None and (
            mt.is_manifest(self.top.media_type) or mt.is_index(self.top.media_type)
        ):
            return ManifestBlob(raw, self.top.media_type)
        return ManifestBlob(raw, sniff_media_type(raw, f"{self.label}: manifest {want}"))

    def open_blob(self, desc: Descriptor) -> AbstractContextManager[BinaryIO]:
        return self.store.open_blob(desc.digest)

    def close(self) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None


def _by_id(store: Store, prefix: str) -> Descriptor | None:
    """The image whose config (image ID) or manifest digest starts with ``prefix``."""
    matches: dict[str, Descriptor] = {}
    for entry in store.images():
        desc = entry.descriptor
        if desc.digest.encoded.startswith(prefix):
            matches[desc.digest] = desc
        elif mt.is_manifest(desc.media_type):
            try:
                config = parse_image_manifest(
                    ManifestBlob(store.read_blob(desc.digest), desc.media_type)
                ).config
            except PalletError:
                continue
            if config.digest.encoded.startswith(prefix):
                matches[desc.digest] = desc
    if len(matches) > 1:
        raise TransportError(f"image ID {prefix!r} is ambiguous: it matches {len(matches)} images")
    return next(iter(matches.values()), None)


class StoreWriter:
    """Writes one or more images into the store; nothing is tagged until :meth:`finish`,
    and :meth:`abort` removes every blob this writer added."""

    #: what copy() compresses uncompressed layers to (docker-archive loads)
    default_compression = "gzip"

    def __init__(self, store: Store) -> None:
        self.store = store
        self._added: list[Digest] = []
        self._pending: list[tuple[tuple[str, ...], ManifestBlob]] = []
        self._lease: Lease | None = None

    @classmethod
    def open(cls, root: Path) -> StoreWriter:
        return cls(Store.open(root))

    def image(self, names: Sequence[str]) -> StoreDestination:
        """A destination for one image, tagged ``names`` (full references) on finish."""
        return StoreDestination(self, tuple(names))

    def _protect(self, digest: Digest) -> None:
        # Leased before it is looked at, so gc cannot take it between check and tag.
        if self._lease is None:
            self._lease = self.store.lease()
        self._lease.add(digest)

    def _release(self) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def has(self, desc: Descriptor) -> bool:
        self._protect(desc.digest)
        return self.store.has_blob(desc.digest)

    def put(self, desc: Descriptor, stream: BinaryIO) -> None:
        self._protect(desc.digest)
        # the store's writer checks size and digest before the blob becomes visible
        with self.store.ingest(desc.digest, desc.size) as w:
            w.copy_from(stream, CHUNK)
            w.commit()
        self._added.append(desc.digest)

    def put_compressed_layer(
        self, plain: IO[bytes], compression: str, level: int | None
    ) -> LayerInfo:
        """Compress an uncompressed layer stream straight into the store (one pass, no
        scratch copy); returns what was written (digest, size, diff_id)."""
        from pallet.layer.commit import compress_stream  # isal, zstandard: only here

        with self.store.ingest(hashed_by_caller=True) as w:
            info = compress_stream(
                cast(BinaryIO, plain), cast(BinaryIO, w), compression=compression, level=level
            )
            self._protect(info.digest)  # before it becomes visible to gc
            existed = self.store.has_blob(info.digest)
            w.commit(info.digest)
        if not existed:
            self._added.append(info.digest)
        return info

    def add(self, names: tuple[str, ...], top: ManifestBlob) -> None:
        self._pending.append((names, top))

    def finish(self) -> None:
        """Tag (or, unnamed, record) every image written; the last step of a copy."""
        try:
            for names, top in self._pending:
                desc = top.descriptor()
                if not names:
                    self.store.add_image(desc)
                for name in names:
                    self.store.tag(name, desc)
        finally:
            self._release()

    def abort(self) -> None:
        """Undo: remove the blobs this writer added, except any that another operation
        in flight has leased meanwhile (a concurrent pull of the same layer)."""
        added, self._added = self._added, []
        self._release()
        if not added:
            return
        try:
            others = self.store.leases.live_digests()
        except PalletError:
            return  # cannot tell what others hold: leave the blobs to gc
        for digest in reversed(added):
            if digest in others:
                continue
            try:
                self.store.remove_blob(digest)
            except PalletError:
                pass


class StoreDestination:
    """One image going into the store through a :class:`StoreWriter`."""

    #: ``put_blob`` checks size and digest itself (copy need not hash the bytes again)
    verifies_blobs = True

    default_compression = StoreWriter.default_compression

    def __init__(self, writer: StoreWriter, names: tuple[str, ...], own: bool = False) -> None:
        self.writer = writer
        self.names = names
        self._own = own
        self._done = False

    @classmethod
    def open(cls, root: Path, ref: str | None) -> StoreDestination:
        """``pallet:REF`` as a copy destination: tagged ``REF`` on commit."""
        names = (normalize_name(ref),) if ref else ()
        return cls(StoreWriter.open(root), names, own=True)

    def describe(self) -> str:
        return "pallet:" + (self.names[0] if self.names else "(untagged)")

    def has_blob(self, desc: Descriptor) -> bool:
        return self.writer.has(desc)

    def put_blob(self, desc: Descriptor, stream: BinaryIO) -> None:
        self.writer.put(desc, stream)

    def put_compressed_layer(
        self, plain: IO[bytes], compression: str, level: int | None
    ) -> LayerInfo:
        return self.writer.put_compressed_layer(plain, compression, level)

    def put_manifest(self, manifest: ManifestBlob) -> None:
        desc = manifest.descriptor()
        if not self.writer.has(desc):
            self.writer.put(desc, cast(BinaryIO, io.BytesIO(manifest.raw)))

    def commit(self, top: ManifestBlob) -> None:
        self.writer.add(self.names, top)
        if self._own:
            self.writer.finish()
            self._done = True

    def close(self) -> None:
        if self._own and not self._done:
            self.writer.abort()


@dataclass(frozen=True)
class LoadedImage:
    """An image ``load`` put in the store: the full references it was tagged with, and
    its ID (the config digest; for an index, the index digest)."""

    names: tuple[str, ...]
    image_id: Digest


def _image_id(top: ManifestBlob) -> Digest:
    if mt.is_manifest(top.media_type):
        return parse_image_manifest(top).config.digest
    return top.digest


def _layout_names(entry: dict[str, Any]) -> tuple[str, ...]:
    """What an OCI archive entry is called: containerd's full image name if present
    (docker and nerdctl write it), else its ref.name read as a reference."""
    annotations = entry.get("annotations")
    if isinstance(annotations, dict):
        for key in (ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME):
            value = annotations.get(key)
            if isinstance(value, str) and value:
                try:
                    return (normalize_name(value),)
                except PalletError:
                    continue  # e.g. skopeo's free-form names: the image loads untagged
    return ()


def _repo_tag(tag: str, label: str) -> str:
    try:
        return normalize_name(tag)
    except PalletError as exc:
        raise TransportError(
            f"{label}: RepoTags entry {tag!r} is not a valid name: {exc}"
        ) from None


def load_archive(
    root: Path, archive: ArchiveIndex, *, compression_level: int | None = None
) -> list[LoadedImage]:
    """Put every image of a docker-archive or OCI archive in the store, all or nothing:
    tags are written only once every image is complete."""
    from pallet.transport.docker_archive import MANIFEST_FILE, DockerArchive

    label = archive.describe()
    jobs: list[tuple[ImageSource, tuple[str, ...]]] = []
    if archive.exists(MANIFEST_FILE):
        docker = DockerArchive(archive)
        for i, image in enumerate(docker.images):
            names = tuple(_repo_tag(tag, label) for tag in image.repo_tags)
            jobs.append((docker.source(i), names))
    elif archive.exists(INDEX_FILE):
        for entry in read_index(archive):
            desc = entry_descriptor(entry, label)
            jobs.append((LayoutSource(archive, desc, f"oci-archive:{label}"), _layout_names(entry)))
    else:
        raise TransportError(
            f"{label}: not a docker-archive or an OCI archive (no {MANIFEST_FILE} or {INDEX_FILE})"
        )
    if not jobs:
        raise TransportError(f"{label}: holds no image")
    writer = StoreWriter.open(root)
    loaded = []
    try:
        for source, names in jobs:
            top = copy(source, writer.image(names), compression_level=compression_level)
            loaded.append(LoadedImage(names, _image_id(top)))
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    return loaded


def save_images(root: Path, refs: Sequence[str], output: Path | None, fmt: str) -> None:
    """Write the images ``refs`` name to one archive (``output`` None: stdout).

    ``fmt`` is "docker-archive" (what ``docker load`` reads; layers are decompressed) or
    "oci-archive". Names that are the same image share one entry, as with docker save.
    """
    groups: dict[str, tuple[StoreSource, list[str]]] = {}
    try:
        for ref in refs:
            source = StoreSource.open(root, ref)
            entry = groups.setdefault(source.top.digest, (source, []))
            if entry[0] is not source:
                source.close()
            if source.name is not None:
                entry[1].append(source.name)
        _write_archive(list(groups.values()), output, fmt)
    finally:
        for source, _ in groups.values():
            source.close()


def _write_archive(
    images: list[tuple[StoreSource, list[str]]], output: Path | None, fmt: str
) -> None:
    from pallet.transport.docker_archive import DockerArchiveWriter
    from pallet.transport.oci_archive import OciArchiveWriter

    writer: DockerArchiveWriter | OciArchiveWriter
    if fmt == "docker-archive":
        writer = DockerArchiveWriter(output)
    elif fmt == "oci-archive":
        writer = OciArchiveWriter(output)
    else:
        raise TransportError(f"unknown archive format {fmt!r}")
    try:
        for source, names in images:
            if isinstance(writer, DockerArchiveWriter):
                copy(source, writer.image([familiar_name(n) for n in names]))
                continue
            for name in names or [""]:
                copy(source, writer.image(name or None, name or None))
        writer.finish()
    except BaseException:
        writer.abort()
        raise
