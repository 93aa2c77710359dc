"""``copy(src, dst)``: move an image or an index from any place to any other.

Blobs stream from source to destination, verified while they flow; the destination's
existing blobs are skipped; manifests go in children first and the reference (``commit``)
last, so a failure at any point leaves no name pointing at a partial image.

Manifests are copied byte-exact. Only when layers are recompressed (the destination asks
for another compression, or stores only uncompressed tars as docker-archive does) do the
layer digests change, and only then is a new manifest written: same config, new layers.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

from pallet.errors import DigestMismatch, LayerError, NotFound, OCIError, TransportError
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.oci.index import Index, NoMatchingPlatform, select_platform
from pallet.oci.jsonutil import dump_bytes, load_object
from pallet.oci.manifest import Manifest
from pallet.oci.platform import Platform, host_platform
from pallet.transport.base import ImageDestination, ImageSource, ManifestBlob

if TYPE_CHECKING:
    from pallet.layer.commit import LayerInfo

CHUNK = 1 << 20
COMPRESSIONS = ("none", "gzip", "zstd")
#: configs are read whole (to check layer diff_ids); anything larger is refused
MAX_CONFIG_SIZE = 32 << 20
#: an index of indexes of ... deeper than this is refused (hostile input, not real images)
MAX_INDEX_DEPTH = 8

#: ``progress(event, descriptor)``; events: "skip" (destination has it), "copy", "done"
Progress = Callable[[str, Descriptor], None]


class VerifyingReader(io.RawIOBase):
    """Reads a blob's stream, failing with :class:`DigestMismatch` as soon as the bytes
    cannot be the announced ones: too many, too few, or the wrong hash.

    The check runs on the read that delivers the last byte, so a consumer that reads
    exactly ``size`` bytes (as tar writers do) still never accepts bad data.
    """

    def __init__(self, stream: IO[bytes], desc: Descriptor) -> None:
        self._stream = stream
        self._desc = desc
        self._hasher = desc.digest.hasher()
        self._count = 0
        self._verified = False

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def read(self, n: int | None = -1) -> bytes:
        if n == 0:
            return b""
        remaining = self._desc.size - self._count
        want = remaining + 1 if n is None or n < 0 else min(n, remaining + 1)
        data = self._stream.read(max(want, 1)) if remaining > 0 or not self._verified else b""
        if not data:
            self.finish()
            return b""
        self._count += len(data)
        if self._count > self._desc.size:
            raise DigestMismatch(f"blob {self._desc.digest}: more than {self._desc.size} bytes")
        self._hasher.update(data)
        if self._count == self._desc.size:
            self._check()
        return data

    def _check(self) -> None:
        if not self._verified:
            got = Digest.from_hasher(self._hasher)
            if got != self._desc.digest:
                raise DigestMismatch(f"blob {self._desc.digest}: content hashes to {got}")
            self._verified = True

    def finish(self) -> None:
        """Raise unless the whole blob was read and matched."""
        if self._count < self._desc.size:
            raise DigestMismatch(
                f"blob {self._desc.digest}: truncated at {self._count} of {self._desc.size} bytes"
            )
        self._check()

    def as_stream(self) -> BinaryIO:
        # Consumers only call read(); a full BinaryIO implementation would add nothing.
        return cast(BinaryIO, self)


@dataclass(frozen=True)
class ImageManifest:
    """The parts of an image manifest copy needs, with the parsed document kept so a
    rewritten manifest keeps every field it does not change."""

    doc: dict[str, Any]
    config: Descriptor
    layers: tuple[Descriptor, ...]


def parse_image_manifest(blob: ManifestBlob) -> ImageManifest:
    """The image manifest ``blob``, validated by :class:`Manifest`."""
    what = f"manifest {blob.digest}"
    try:
        doc = load_object(blob.raw, what)
        manifest = Manifest.from_doc(blob.raw, doc, blob.media_type)
    except OCIError as exc:
        raise OCIError(f"{what}: {exc}") from None
    return ImageManifest(doc, manifest.config, manifest.layers)


def parse_index_children(blob: ManifestBlob) -> tuple[dict[str, Any], list[Descriptor]]:
    """The index ``blob`` (validated by :class:`Index`) and its entries."""
    what = f"index {blob.digest}"
    try:
        doc = load_object(blob.raw, what)
        index = Index.from_doc(blob.raw, doc, blob.media_type)
    except OCIError as exc:
        raise OCIError(f"{what}: {exc}") from None
    return doc, list(index.manifests)


def select_child(children: list[Descriptor], want: Platform, where: str) -> Descriptor:
    """The index entry for ``want``, ranked as containerd ranks them (attestations skipped)."""
    try:
        return select_platform(Index.build(children), want)
    except NoMatchingPlatform as exc:
        raise NotFound(f"{where}: {exc}") from None


# Which layer media type a recompressed layer gets, per family.
_OCI_LAYER = {"none": mt.OCI_LAYER, "gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD}
_OCI_NONDIST = {
    "none": mt.OCI_LAYER_NONDIST,
    "gzip": mt.OCI_LAYER_NONDIST_GZIP,
    "zstd": mt.OCI_LAYER_NONDIST_ZSTD,
}
_DOCKER_LAYER = {"none": mt.DOCKER_LAYER, "gzip": mt.DOCKER_LAYER_GZIP}


def _layer_media_type(old: str, compression: str, oci: bool) -> str:
    if "nondistributable" in old:
        return _OCI_NONDIST[compression]
    return _OCI_LAYER[compression] if oci else _DOCKER_LAYER[compression]


def _is_foreign(desc: Descriptor) -> bool:
    # Foreign layers (Windows base layers) are not copied, as docker and skopeo do.
    return bool(desc.urls) and (
        desc.media_type == mt.DOCKER_LAYER_FOREIGN or "nondistributable" in desc.media_type
    )


@dataclass
class _Copier:
    src: ImageSource
    dst: ImageDestination
    all_platforms: bool
    platform: Platform | None
    dest_compression: str | None
    compression_level: int | None
    progress: Progress | None

    def _note(self, event: str, desc: Descriptor) -> None:
        if self.progress is not None:
            self.progress(event, desc)

    def _child(self, desc: Descriptor) -> ManifestBlob:
        blob = self.src.get_manifest(desc.digest)
        if blob.digest != desc.digest:
            raise DigestMismatch(f"manifest {desc.digest}: content hashes to {blob.digest}")
        return blob

    def any(self, blob: ManifestBlob, depth: int = 0) -> ManifestBlob:
        if mt.is_index(blob.media_type):
            if depth >= MAX_INDEX_DEPTH:
                raise TransportError(
                    f"{self.src.describe()}: indexes nested more than {MAX_INDEX_DEPTH} deep"
                )
            return self.index(blob, depth)
        if mt.is_manifest(blob.media_type):
            return self.image(blob)
        raise TransportError(
            f"{self.src.describe()}: unsupported manifest media type {blob.media_type!r}"
        )

    def index(self, blob: ManifestBlob, depth: int) -> ManifestBlob:
        doc, children = parse_index_children(blob)
        if not self.all_platforms:
            want = self.platform or host_platform()
            chosen = select_child(children, want, self.src.describe())
            return self.any(self._child(chosen), depth + 1)
        changed = False
        entries: list[dict[str, Any]] = []
        for child, entry in zip(children, doc.get("manifests") or [], strict=True):
            if mt.is_index(child.media_type) or mt.is_manifest(child.media_type):
                new = self.any(self._child(child), depth + 1)
                if new.digest != child.digest:
                    changed = True
                    entry = {**entry, "mediaType": new.media_type}
                    entry.update(digest=str(new.digest), size=len(new.raw))
            else:
                self.blob(child)
            entries.append(entry)
        if changed:
            blob = ManifestBlob(
                dump_bytes({**doc, "manifests": entries}, indent=2), blob.media_type
            )
        self.dst.put_manifest(blob)
        return blob

    def image(self, blob: ManifestBlob) -> ManifestBlob:
        manifest = parse_image_manifest(blob)
        self.blob(manifest.config)
        targets = [self._target(layer) for layer in manifest.layers]
        oci = blob.media_type == mt.OCI_MANIFEST or "zstd" in targets
        diff_ids = self._diff_ids(manifest.config) if any(targets) else []
        new_layers: list[Descriptor] = []
        for i, (layer, target) in enumerate(zip(manifest.layers, targets, strict=True)):
            if target is None:
                self.blob(layer)
                new_layers.append(layer)
            else:
                diff_id = diff_ids[i] if i < len(diff_ids) else None
                new_layers.append(self.transcode(layer, target, oci, diff_id))
        if new_layers != list(manifest.layers) or (oci and blob.media_type != mt.OCI_MANIFEST):
            blob = self._rewrite(blob, manifest, new_layers, oci)
        self.dst.put_manifest(blob)
        return blob

    def _rewrite(
        self, blob: ManifestBlob, manifest: ImageManifest, layers: list[Descriptor], oci: bool
    ) -> ManifestBlob:
        doc = dict(manifest.doc)
        doc["layers"] = [layer.to_json() for layer in layers]
        media_type = blob.media_type
        if oci and media_type != mt.OCI_MANIFEST:
            # zstd has no Docker media type: the whole manifest becomes OCI.
            media_type = mt.OCI_MANIFEST
            doc["mediaType"] = mt.OCI_MANIFEST
            config = manifest.config
            if config.media_type == mt.DOCKER_CONFIG:
                config = Descriptor(mt.OCI_CONFIG, config.digest, config.size, config.annotations)
            doc["config"] = config.to_json()
        return ManifestBlob(dump_bytes(doc, indent=2), media_type)

    def _target(self, layer: Descriptor) -> str | None:
        """The compression ``layer`` must be rewritten to, or None to copy it as is."""
        if not mt.is_layer(layer.media_type) or _is_foreign(layer):
            return None
        current = mt.layer_compression(layer.media_type)
        want: str | None = getattr(self.dst, "layer_compression", None) or self.dest_compression
        if want is None and current == "none":
            want = getattr(self.dst, "default_compression", None)
        return None if want is None or want == current else want

    def _diff_ids(self, config: Descriptor) -> list[Digest]:
        """The config's diff_ids, to check layers against while they are recompressed."""
        if config.size > MAX_CONFIG_SIZE:
            raise TransportError(f"config {config.digest} is larger than {MAX_CONFIG_SIZE} bytes")
        with self.src.open_blob(config) as stream:
            reader = VerifyingReader(stream, config)
            raw = b"".join(iter(lambda: reader.read(CHUNK), b""))
        try:
            doc = json.loads(raw)
            ids = doc["rootfs"]["diff_ids"]
            return [Digest(d) for d in ids]
        except (ValueError, KeyError, TypeError, OCIError):
            return []

    def blob(self, desc: Descriptor) -> None:
        if _is_foreign(desc) or self.dst.has_blob(desc):
            self._note("skip", desc)
            return
        self._note("copy", desc)
        with self.src.open_blob(desc) as stream:
            if getattr(self.dst, "verifies_blobs", False):
                # it hashes what it writes and refuses a mismatch: hashing here too is waste
                self.dst.put_blob(desc, stream)
            else:
                self.dst.put_blob(desc, VerifyingReader(stream, desc).as_stream())
        self._note("done", desc)

    def transcode(
        self, layer: Descriptor, target: str, oci: bool, diff_id: Digest | None
    ) -> Descriptor:
        """Recompress one layer, checking its digest and diff_id: streamed into a
        destination that takes a layer of unknown digest, else through a scratch file."""
        self._note("copy", layer)
        put_tar = getattr(self.dst, "put_layer_tar", None)
        put_compressed = getattr(self.dst, "put_compressed_layer", None)
        if target == "none" and put_tar is not None:

            def put_plain(plain: IO[bytes]) -> tuple[Digest, int, Digest]:
                digest, size = put_tar(plain)
                return digest, size, digest  # uncompressed: the digest is the diff_id

            return self._stream_into(layer, put_plain, target, oci, diff_id)
        if target != "none" and put_compressed is not None:

            def put(plain: IO[bytes]) -> tuple[Digest, int, Digest]:
                info: LayerInfo = put_compressed(plain, target, self.compression_level)
                return info.digest, info.size, info.diff_id

            return self._stream_into(layer, put, target, oci, diff_id)
        scratch = getattr(self.dst, "scratch_dir", None)
        # The layer package (isal, zstandard) only when a layer is recompressed.
        from pallet.layer.commit import compress_stream
        from pallet.layer.compression import open_decompressed

        with tempfile.TemporaryFile(dir=scratch) as tmp:
            with self.src.open_blob(layer) as stream:
                reader = VerifyingReader(stream, layer)
                try:
                    info = compress_stream(
                        open_decompressed(reader.as_stream()),
                        cast(BinaryIO, tmp),
                        compression=target,
                        level=self.compression_level,
                    )
                except LayerError as exc:
                    raise TransportError(f"layer {layer.digest}: {exc}") from None
                reader.finish()
            if diff_id is not None and info.diff_id != diff_id:
                raise DigestMismatch(
                    f"layer {layer.digest}: uncompressed content hashes to {info.diff_id}, "
                    f"config says {diff_id}"
                )
            new = Descriptor(
                _layer_media_type(layer.media_type, target, oci),
                info.digest,
                info.size,
                layer.annotations,
            )
            if not self.dst.has_blob(new):
                tmp.seek(0)
                # the destination verifies it: digest and size were taken as it was written
                self.dst.put_blob(new, cast(BinaryIO, tmp))
        self._note("done", new)
        return new

    def _stream_into(
        self,
        layer: Descriptor,
        put: Callable[[IO[bytes]], tuple[Digest, int, Digest]],
        target: str,
        oci: bool,
        diff_id: Digest | None,
    ) -> Descriptor:
        """Stream a layer, decompressed, straight into a destination that (re)compresses
        it and learns digest and size as it writes (the store, a docker-archive): no
        scratch copy. ``put`` returns the blob's digest and size and the diff_id it saw."""
        from pallet.layer.compression import open_decompressed

        with self.src.open_blob(layer) as stream:
            reader = VerifyingReader(stream, layer)
            try:
                digest, size, got = put(open_decompressed(reader.as_stream()))
            except LayerError as exc:
                raise TransportError(f"layer {layer.digest}: {exc}") from None
            reader.finish()
        if diff_id is not None and got != diff_id:
            raise DigestMismatch(
                f"layer {layer.digest}: uncompressed content hashes to {got}, config says {diff_id}"
            )
        new = Descriptor(
            _layer_media_type(layer.media_type, target, oci), digest, size, layer.annotations
        )
        self._note("done", new)
        return new


def copy(
    src: ImageSource,
    dst: ImageDestination,
    *,
    all_platforms: bool = False,
    platform: Platform | None = None,
    dest_compression: str | None = None,
    compression_level: int | None = None,
    progress: Progress | None = None,
) -> ManifestBlob:
    """Copy the image (or, with ``all_platforms``, the whole index) ``src`` names to
    ``dst`` and commit it there; returns the top manifest as written.

    An index resolves to ``platform`` (default: this host) unless ``all_platforms``.
    ``dest_compression`` ("none", "gzip", "zstd") recompresses layers that differ.
    """
    if dest_compression is not None and dest_compression not in COMPRESSIONS:
        raise TransportError(f"unknown compression {dest_compression!r}")
    copier = _Copier(
        src, dst, all_platforms, platform, dest_compression, compression_level, progress
    )
    top = copier.any(src.get_manifest())
    dst.commit(top)
    return top
