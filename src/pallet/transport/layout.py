"""OCI image layout directories (``oci:DIR[:REF]``), read and written as skopeo does.

A layout is ``oci-layout``, ``index.json`` and ``blobs/<alg>/<hex>``. The images it holds
are the entries of ``index.json``; an entry is named by its
``org.opencontainers.image.ref.name`` annotation, stored exactly as the user wrote it
(``oci:dir:mytag`` names the entry ``mytag``), which is what skopeo and umoci expect.

The reading side works over any :class:`LayoutFiles` (a directory here, a tar archive in
:mod:`pallet.transport.oci_archive`), so an OCI archive is read by the same code.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from contextlib import AbstractContextManager
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from pallet.errors import NotFound, OCIError, StoreError, TransportError
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, Descriptor
from pallet.oci.digest import Digest
from pallet.oci.layout import INDEX_FILE as INDEX_FILE
from pallet.oci.layout import LAYOUT_FILE, blob_path
from pallet.store.fsutil import atomic_write
from pallet.store.refs import index_document, parse_index_entries
from pallet.transport.base import ManifestBlob
from pallet.transport.copy import VerifyingReader

#: manifests and indexes larger than this are refused (registries use 4 MiB too)
MAX_MANIFEST_SIZE = 4 << 20
#: index.json of a layout, manifest.json of a docker-archive
MAX_INDEX_SIZE = 16 << 20

OCI_LAYOUT_FILE = LAYOUT_FILE
LAYOUT_JSON = json.dumps({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}).encode()


class LayoutFiles(Protocol):
    """Named files of a layout: a directory, or the members of a tar archive."""

    def describe(self) -> str: ...

    def exists(self, name: str) -> bool: ...

    def open(self, name: str) -> AbstractContextManager[BinaryIO]:
        """The file's bytes; raises :class:`NotFound` naming it if absent."""
        ...


class DirFiles:
    """Files of a layout directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return str(self.root)

    def exists(self, name: str) -> bool:
        return (self.root / name).is_file()

    def open(self, name: str) -> AbstractContextManager[BinaryIO]:
        try:
            return open(self.root / name, "rb")
        except FileNotFoundError:
            raise NotFound(f"{self.root / name}: no such file") from None
        except OSError as exc:
            raise TransportError(f"{self.root / name}: {exc.strerror}") from exc


def blob_name(digest: Digest) -> str:
    return blob_path(digest)


def read_limited(files: LayoutFiles, name: str, limit: int) -> bytes:
    """A whole (small) file, refusing anything over ``limit`` bytes."""
    with files.open(name) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise TransportError(f"{files.describe()}: {name} is larger than {limit} bytes")
    return data


def parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TransportError(f"{what} is not valid JSON: {exc}") from None


def sniff_media_type(raw: bytes, what: str) -> str:
    """The media type a manifest or index says it has (or its shape implies)."""
    doc = parse_json(raw, what)
    if not isinstance(doc, dict):
        raise TransportError(f"{what} is not a JSON object")
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    return mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST


def read_index(files: LayoutFiles) -> list[dict[str, Any]]:
    """The entries of a layout's ``index.json``, as JSON objects.

    Entries are validated only when chosen, so one malformed entry does not hide the
    others (containers/image behaves the same way).
    """
    what = f"{files.describe()}: {INDEX_FILE}"
    try:
        return parse_index_entries(read_limited(files, INDEX_FILE, MAX_INDEX_SIZE), what)
    except StoreError as exc:
        raise TransportError(str(exc)) from None


def entry_descriptor(entry: dict[str, Any], where: str) -> Descriptor:
    try:
        return Descriptor.from_json(entry)
    except OCIError as exc:
        raise TransportError(f"{where}: {exc}") from None


def entry_names(entry: dict[str, Any]) -> list[str]:
    """Names an index entry answers to: its ref.name and containerd's image name."""
    annotations = entry.get("annotations")
    if not isinstance(annotations, dict):
        return []
    names = (annotations.get(ANNOTATION_REF_NAME), annotations.get(ANNOTATION_IMAGE_NAME))
    return [n for n in names if isinstance(n, str) and n]


def select_entry(entries: Sequence[dict[str, Any]], ref: str | None, where: str) -> Descriptor:
    """The entry named ``ref``, or the only entry when no name is given (as skopeo does)."""
    if ref:
        for entry in entries:
            if ref in entry_names(entry):
                return entry_descriptor(entry, where)
        raise NotFound(f"{where}: no image named {ref!r}")
    if len(entries) == 1:
        return entry_descriptor(entries[0], where)
    if not entries:
        raise NotFound(f"{where}: holds no image")
    raise TransportError(f"{where}: holds {len(entries)} images; name one ({where}:NAME)")


class LayoutSource:
    """One image (or index) of an OCI layout, chosen by name or as the only one."""

    def __init__(self, files: LayoutFiles, top: Descriptor, label: str) -> None:
        self.files = files
        self.top = top
        self.label = label

    @classmethod
    def open(cls, files: LayoutFiles, ref: str | None, label: str) -> LayoutSource:
        if not files.exists(INDEX_FILE):
            raise TransportError(f"{files.describe()}: not an OCI layout (no {INDEX_FILE})")
        return cls(files, select_entry(read_index(files), ref, label), label)

    def describe(self) -> str:
        return self.label

    def get_manifest(self, digest: Digest | None = None) -> ManifestBlob:
        desc = self.top if digest is None else None
        want = self.top.digest if desc is not None else Digest(str(digest))
        if desc is not None and desc.size > MAX_MANIFEST_SIZE:
            raise TransportError(f"{self.label}: manifest {want} is too large")
        raw = read_limited(self.files, blob_name(want), MAX_MANIFEST_SIZE)
        if Digest.from_bytes(raw, want.algorithm) != want:
            raise TransportError(f"{self.label}: manifest {want} does not match its digest")
        media_type = desc.media_type if desc is not None else ""
        if not (mt.is_manifest(media_type) or mt.is_index(media_type)):
            media_type = sniff_media_type(raw, f"{self.label}: manifest {want}")
        return ManifestBlob(raw, media_type)

    def open_blob(self, desc: Descriptor) -> AbstractContextManager[BinaryIO]:
        try:
            return self.files.open(blob_name(desc.digest))
        except NotFound:
            raise NotFound(f"{self.label}: blob {desc.digest} is missing") from None

    def close(self) -> None:
        pass


def write_layout_marker(root: Path) -> None:
    marker = root / OCI_LAYOUT_FILE
    if not marker.exists():
        _atomic_write(marker, LAYOUT_JSON)


#: the layout's index.json, laid out as the store writes its own
index_json = index_document


def _atomic_write(path: Path, data: bytes) -> None:
    # 0600 as the layout's blobs (mkstemp files) have always been
    atomic_write(path, data, mode=0o600)


def with_ref(top: ManifestBlob, ref: str | None) -> Descriptor:
    desc = top.descriptor()
    return desc.with_annotations({ANNOTATION_REF_NAME: ref}) if ref else desc


def _has_ref_name(entry: dict[str, Any], ref: str) -> bool:
    annotations = entry.get("annotations")
    return isinstance(annotations, dict) and annotations.get(ANNOTATION_REF_NAME) == ref


class LayoutDestination:
    """Writes one image into a layout directory; ``commit`` adds it to ``index.json``,
    replacing an entry of the same name (as skopeo does)."""

    #: ``put_blob`` checks size and digest itself (copy need not hash the bytes again)
    verifies_blobs = True

    def __init__(self, root: Path, ref: str | None) -> None:
        self.root = root
        self.ref = ref
        try:
            (root / "blobs").mkdir(parents=True, exist_ok=True)
            write_layout_marker(root)
        except OSError as exc:
            raise TransportError(f"{root}: cannot create OCI layout: {exc.strerror}") from exc

    def describe(self) -> str:
        return f"oci:{self.root}" + (f":{self.ref}" if self.ref else "")

    def _path(self, digest: Digest) -> Path:
        return self.root / blob_name(digest)

    def has_blob(self, desc: Descriptor) -> bool:
        path = self._path(desc.digest)
        return path.is_file() and path.stat().st_size == desc.size

    def put_blob(self, desc: Descriptor, stream: BinaryIO) -> None:
        path = self._path(desc.digest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._write_blob(path, desc, stream)
        except OSError as exc:
            raise TransportError(f"{path}: cannot write: {exc.strerror}") from exc

    def _write_blob(self, path: Path, desc: Descriptor, stream: BinaryIO) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ingest-")
        try:
            with os.fdopen(fd, "wb") as out:
                reader = VerifyingReader(stream, desc)
                while chunk := reader.read(1 << 20):
                    out.write(chunk)
                reader.finish()
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_manifest(self, manifest: ManifestBlob) -> None:
        desc = manifest.descriptor()
        if not self.has_blob(desc):
            self.put_blob(desc, BytesIO(manifest.raw))

    def commit(self, top: ManifestBlob) -> None:
        files = DirFiles(self.root)
        entries = read_index(files) if files.exists(INDEX_FILE) else []
        if self.ref:
            entries = [e for e in entries if not _has_ref_name(e, self.ref)]
        entries.append(with_ref(top, self.ref).to_json())
        try:
            _atomic_write(self.root / INDEX_FILE, index_json(entries))
        except OSError as exc:
            raise TransportError(f"{self.root / INDEX_FILE}: cannot write: {exc.strerror}") from exc

    def close(self) -> None:
        pass
