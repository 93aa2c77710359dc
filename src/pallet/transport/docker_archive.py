"""docker-archives (``docker-archive:FILE[:REF]``): the format of ``docker save``.

A ``manifest.json`` lists the images: ``Config`` (the config file, whose sha256 is the
image ID), ``RepoTags`` and ``Layers`` (uncompressed layer tars, so each layer's digest is
its diff_id). Docker up to 24 puts each layer in ``<id>/layer.tar`` next to legacy
``VERSION`` and ``json`` files (and may link a repeated layer to an earlier one);
Docker 25+ stores everything as ``blobs/sha256/<hex>`` of an OCI layout. Both are read.
Written is the 20.10 form, which ``docker load`` and ``podman load`` of every age accept.

Reading synthesizes an OCI manifest for each image (or uses the real one a Docker 25+
archive carries); the config is served byte-exact, so the image ID never changes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from pallet.errors import NotFound, OCIError, TransportError
from pallet.layer.compression import detect
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.transport.base import ManifestBlob
from pallet.transport.copy import (
    MAX_CONFIG_SIZE,
    parse_image_manifest,
    parse_index_children,
)
from pallet.transport.layout import (
    INDEX_FILE,
    MAX_INDEX_SIZE,
    MAX_MANIFEST_SIZE,
    blob_name,
    parse_json,
    read_index,
    read_limited,
)
from pallet.transport.oci_archive import ArchiveIndex, ArchiveWriter, FinishedByCommit

MANIFEST_FILE = "manifest.json"
REPOSITORIES_FILE = "repositories"
_BLOB_PATH = re.compile(r"blobs/sha256/([a-f0-9]{64})")
_LAYER_TYPE = {"none": mt.OCI_LAYER, "gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD}


@dataclass(frozen=True)
class ArchiveImage:
    """One entry of ``manifest.json``: paths inside the archive, and the image's names."""

    config: str
    repo_tags: tuple[str, ...]
    layers: tuple[str, ...]


def _parse_entries(raw: bytes, what: str) -> list[ArchiveImage]:
    doc = parse_json(raw, what)
    if not isinstance(doc, list) or not doc:
        raise TransportError(f"{what} lists no images")
    images = []
    for entry in doc:
        if not isinstance(entry, dict):
            raise TransportError(f"{what}: an entry is not a JSON object")
        config = entry.get("Config")
        tags = entry.get("RepoTags") or []
        layers = entry.get("Layers") or []
        if not isinstance(config, str) or not config:
            raise TransportError(f"{what}: an entry has no Config")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise TransportError(f"{what}: RepoTags of {config} is not a list of strings")
        if not isinstance(layers, list) or not all(isinstance(p, str) for p in layers):
            raise TransportError(f"{what}: Layers of {config} is not a list of strings")
        images.append(ArchiveImage(config, tuple(tags), tuple(layers)))
    return images


class DockerArchive:
    """A docker-archive opened for reading: its images and their files."""

    def __init__(self, files: ArchiveIndex) -> None:
        self.files = files
        self.label = f"docker-archive:{files.describe()}"
        if not files.exists(MANIFEST_FILE):
            raise TransportError(
                f"{files.describe()}: no {MANIFEST_FILE} (not a docker-archive, or one "
                "from Docker before 1.10, which is not supported)"
            )
        raw = read_limited(files, MANIFEST_FILE, MAX_INDEX_SIZE)
        self.images = _parse_entries(raw, f"{files.describe()}: {MANIFEST_FILE}")

    @classmethod
    def open_path(cls, path: Path) -> DockerArchive:
        files = ArchiveIndex.open_path(path)
        try:
            return cls(files)
        except BaseException:
            files.close()
            raise

    def select(self, ref: str | None, same_name: Callable[[str, str], bool]) -> int:
        """Which image ``ref`` names: ``@N``, a tag in RepoTags, or the only image."""
        if ref is None:
            if len(self.images) != 1:
                raise TransportError(
                    f"{self.label}: holds {len(self.images)} images; name one "
                    f"({self.label}:NAME or :@N)"
                )
            return 0
        if ref.startswith("@"):
            if not ref[1:].isdigit() or int(ref[1:]) >= len(self.images):
                raise NotFound(f"{self.label}: no image {ref} (it holds {len(self.images)})")
            return int(ref[1:])
        for i, image in enumerate(self.images):
            if any(same_name(tag, ref) for tag in image.repo_tags):
                return i
        raise NotFound(f"{self.label}: no image tagged {ref!r}")

    def source(self, i: int, owns_archive: bool = False) -> DockerArchiveSource:
        """Image ``i`` as a source; with ``owns_archive`` closing it closes the archive."""
        return DockerArchiveSource(self, self.images[i], owns_archive)

    def close(self) -> None:
        self.files.close()


class DockerArchiveSource:
    """One image of a docker-archive as an :class:`ImageSource`."""

    def __init__(
        self, archive: DockerArchive, image: ArchiveImage, owns_archive: bool = False
    ) -> None:
        self.archive = archive
        self.image = image
        self._owns_archive = owns_archive
        self._manifest: ManifestBlob | None = None
        self._paths: dict[str, str] = {}

    def describe(self) -> str:
        tag = self.image.repo_tags[0] if self.image.repo_tags else self.image.config
        return f"{self.archive.label}:{tag}"

    @property
    def files(self) -> ArchiveIndex:
        return self.archive.files

    def config_bytes(self) -> bytes:
        try:
            return read_limited(self.files, self.image.config, MAX_CONFIG_SIZE)
        except NotFound:
            raise TransportError(
                f"{self.describe()}: config {self.image.config} is missing"
            ) from None

    def _layer(self, path: str, diff_id: Digest) -> Descriptor:
        try:
            member = self.files.resolve(path)
            with self.files.open(path) as f:
                head = f.read(4)
        except NotFound:
            raise TransportError(f"{self.describe()}: layer {path} is missing") from None
        size = member.size
        compression = detect(head)
        named = _BLOB_PATH.fullmatch(member.name)
        if named:
            digest = Digest(f"sha256:{named.group(1)}")
        elif compression == "none":
            # Verified against the bytes when the layer is copied.
            digest = diff_id
        else:
            with self.files.open(path) as f:
                hasher = diff_id.hasher()
                while chunk := f.read(1 << 20):
                    hasher.update(chunk)
            digest = Digest.from_hasher(hasher)
        self._paths[digest] = path
        return Descriptor(_LAYER_TYPE[compression], digest, size)

    def get_manifest(self, digest: Digest | None = None) -> ManifestBlob:
        if self._manifest is None:
            self._manifest = self._build_manifest()
        if digest is not None and digest != self._manifest.digest:
            raise NotFound(f"{self.describe()}: no manifest {digest}")
        return self._manifest

    def _build_manifest(self) -> ManifestBlob:
        config_raw = self.config_bytes()
        config = Descriptor.of_bytes(mt.OCI_CONFIG, config_raw)
        self._paths[config.digest] = self.image.config
        diff_ids = _diff_ids(config_raw, self.describe())
        if len(diff_ids) != len(self.image.layers):
            raise TransportError(
                f"{self.describe()}: {len(self.image.layers)} layers but the config lists "
                f"{len(diff_ids)} diff_ids"
            )
        layers = [self._layer(p, d) for p, d in zip(self.image.layers, diff_ids, strict=True)]
        real = self._oci_manifest(config.digest, [d.digest for d in layers])
        if real is not None:
            return real
        doc = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": config.to_json(),
            "layers": [d.to_json() for d in layers],
        }
        return ManifestBlob(json.dumps(doc, indent=2).encode(), mt.OCI_MANIFEST)

    def _oci_manifest(self, config: Digest, layers: list[Digest]) -> ManifestBlob | None:
        """The manifest a Docker 25+ archive carries for this image, if it has one: using
        it keeps the manifest digest (and any annotations) as Docker wrote them."""
        if not self.files.exists(INDEX_FILE):
            return None
        try:
            entries = [Descriptor.from_json(e) for e in read_index(self.files)]
        except (TransportError, OCIError):
            return None
        candidates = list(entries)
        for desc in entries:
            if mt.is_index(desc.media_type) and self.files.exists(blob_name(desc.digest)):
                raw = read_limited(self.files, blob_name(desc.digest), MAX_MANIFEST_SIZE)
                try:
                    candidates += parse_index_children(ManifestBlob(raw, desc.media_type))[1]
                except OCIError:
                    continue
        for desc in candidates:
            if not mt.is_manifest(desc.media_type) or not self.files.exists(blob_name(desc.digest)):
                continue
            raw = read_limited(self.files, blob_name(desc.digest), MAX_MANIFEST_SIZE)
            blob = ManifestBlob(raw, desc.media_type)
            if blob.digest != desc.digest:
                continue
            try:
                manifest = parse_image_manifest(blob)
            except OCIError:
                continue
            if manifest.config.digest == config and [d.digest for d in manifest.layers] == layers:
                return blob
        return None

    def open_blob(self, desc: Descriptor) -> AbstractContextManager[BinaryIO]:
        if self._manifest is None:
            self.get_manifest()
        path = self._paths.get(desc.digest)
        if path is None:
            raise NotFound(f"{self.describe()}: no blob {desc.digest}")
        return self.files.open(path)

    def close(self) -> None:
        if self._owns_archive:
            self.archive.close()


def _diff_ids(config_raw: bytes, what: str) -> list[Digest]:
    doc = parse_json(config_raw, f"{what}: config")
    rootfs = doc.get("rootfs") if isinstance(doc, dict) else None
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(ids, list):
        raise TransportError(f"{what}: config has no rootfs.diff_ids")
    try:
        return [Digest(d) for d in ids]
    except OCIError as exc:
        raise TransportError(f"{what}: config: {exc}") from None


def _layer_path(hexid: str) -> str:
    return f"{hexid}/layer.tar"


def split_tag(repo_tag: str) -> tuple[str, str] | None:
    """``repo:tag`` -> (repo, tag); None for a reference without a tag."""
    if "@" in repo_tag:
        return None
    repo, sep, tag = repo_tag.rpartition(":")
    if not sep or "/" in tag:
        return None
    return repo, tag


class DockerArchiveWriter(ArchiveWriter):
    """Writes a docker-archive holding any number of images (``save A B``)."""

    def __init__(self, path: Path | None) -> None:
        super().__init__("docker-archive", path)
        self._entries: list[dict[str, Any]] = []
        self._repositories: dict[str, dict[str, str]] = {}

    def image(self, repo_tags: Sequence[str]) -> DockerArchiveDestination:
        """A destination for one image, named ``repo_tags`` (familiar form, as Docker
        writes them: ``busybox:latest``)."""
        return DockerArchiveDestination(self, tuple(repo_tags))

    def put(self, desc: Descriptor, stream: BinaryIO) -> None:
        if self.has(desc):
            return
        hexid = desc.digest.encoded
        if mt.is_layer(desc.media_type):
            if mt.layer_compression(desc.media_type) != "none":
                raise TransportError(f"{self.label}: layer {desc.digest} must be uncompressed")
            self._add_verified(_layer_path(hexid), desc, stream)
            self._legacy_files(hexid)
        else:
            self._add_verified(f"{hexid}.json", desc, stream)

    def put_layer_tar(self, stream: IO[bytes]) -> tuple[Digest, int]:
        """Write an uncompressed layer whose digest and size are learnt as it streams
        (a layer being decompressed on its way from the store)."""
        digest, size = self._tar.add_unsized(
            lambda d: _layer_path(d.encoded), stream, lambda d: str(d) not in self._written
        )
        if str(digest) not in self._written:
            self._legacy_files(digest.encoded)
            self._written.add(str(digest))
        return digest, size

    def _legacy_files(self, hexid: str) -> None:
        # what Docker before 25 writes next to each layer.tar; old loaders read them
        self._tar.add_bytes(f"{hexid}/VERSION", b"1.0")
        legacy = {"id": hexid, "created": "1970-01-01T00:00:00Z"}
        self._tar.add_bytes(f"{hexid}/json", json.dumps(legacy).encode())

    def add_image(self, config: Digest, layers: Sequence[Digest], repo_tags: Sequence[str]) -> None:
        self._entries.append(
            {
                "Config": f"{config.encoded}.json",
                "RepoTags": list(repo_tags),
                "Layers": [_layer_path(d.encoded) for d in layers],
            }
        )
        for repo_tag in repo_tags:
            split = split_tag(repo_tag)
            if split is not None and layers:
                self._repositories.setdefault(split[0], {})[split[1]] = layers[-1].encoded

    def _last_members(self) -> None:
        if not self._entries:
            raise TransportError(f"{self.label}: no image to write")
        self._tar.add_bytes(MANIFEST_FILE, json.dumps(self._entries).encode())
        if self._repositories:
            self._tar.add_bytes(REPOSITORIES_FILE, json.dumps(self._repositories).encode())


class DockerArchiveDestination:
    """One image going into a :class:`DockerArchiveWriter`."""

    #: ``put_blob`` checks size and digest itself (copy need not hash the bytes again)
    verifies_blobs = True

    #: docker-archives hold uncompressed layers: copy() decompresses into them
    layer_compression = "none"

    def __init__(self, writer: DockerArchiveWriter, repo_tags: tuple[str, ...]) -> None:
        self.writer = writer
        self.repo_tags = repo_tags
        self._manifests: dict[str, tuple[Digest, list[Digest]]] = {}

    def describe(self) -> str:
        return self.writer.label + (f":{self.repo_tags[0]}" if self.repo_tags else "")

    def has_blob(self, desc: Descriptor) -> bool:
        return self.writer.has(desc)

    def put_blob(self, desc: Descriptor, stream: BinaryIO) -> None:
        self.writer.put(desc, stream)

    def put_layer_tar(self, stream: IO[bytes]) -> tuple[Digest, int]:
        return self.writer.put_layer_tar(stream)

    def put_manifest(self, manifest: ManifestBlob) -> None:
        if not mt.is_manifest(manifest.media_type):
            raise TransportError(
                f"{self.describe()}: a docker-archive holds one platform per image, "
                "not an index (copy without --all)"
            )
        parsed = parse_image_manifest(manifest)
        self._manifests[manifest.digest] = (
            parsed.config.digest,
            [d.digest for d in parsed.layers],
        )

    def commit(self, top: ManifestBlob) -> None:
        config, layers = self._manifests[top.digest]
        self.writer.add_image(config, layers, self.repo_tags)

    def close(self) -> None:
        pass


class SingleImageDockerArchive(FinishedByCommit[DockerArchiveWriter], DockerArchiveDestination):
    """``docker-archive:FILE[:REF]`` as a copy destination: complete once committed,
    removed if never committed."""

    def commit(self, top: ManifestBlob) -> None:
        super().commit(top)
        self._finish()
