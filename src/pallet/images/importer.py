"""``pallet import``: a root filesystem tarball becomes a one-layer image."""

from __future__ import annotations

import bz2
import io
import lzma
from collections.abc import Sequence
from typing import BinaryIO, cast

from pallet.errors import InvalidArgument, LayerError
from pallet.images.compose import layer_from_tar, now_timestamp, write_image
from pallet.layer.compression import open_decompressed
from pallet.layer.tarformat import BLOCK, checksum_ok
from pallet.oci.config import ImageConfig, history_entry
from pallet.oci.descriptor import Descriptor
from pallet.oci.platform import host_platform
from pallet.store import Store


class _CheckedTar(io.RawIOBase):
    """Passes a tar stream through, refusing what is not one or was cut short.

    The first header must carry a valid checksum, and the stream must end on a block
    boundary with the two zero blocks that close every tar archive.
    """

    def __init__(self, inner: BinaryIO, name: str) -> None:
        self._inner = inner
        self._name = name
        self._seen = 0
        self._head = b""
        self._tail = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        # Straight into the caller's buffer (the layer pipeline's block): no extra copy.
        try:
            n = self._inner.readinto(buf) or 0  # type: ignore[attr-defined]
        except (LayerError, lzma.LZMAError, EOFError, OSError) as exc:
            raise LayerError(f"{self._name}: {exc}") from exc
        if n == 0:
            self._finish()
            return 0
        view = memoryview(buf)[:n]
        if self._seen < BLOCK:
            self._head += bytes(view[: BLOCK - self._seen])
        self._seen += n
        keep = 2 * BLOCK
        self._tail = bytes(view[-keep:]) if n >= keep else (self._tail + bytes(view))[-keep:]
        return n

    def _finish(self) -> None:
        try:
            header_ok = len(self._head) == BLOCK and checksum_ok(self._head)
        except LayerError:
            header_ok = False
        if not header_ok:
            raise LayerError(f"{self._name}: not a tar archive")
        if self._seen % BLOCK or self._tail != bytes(2 * BLOCK):
            raise LayerError(f"{self._name}: tar archive is truncated")


def _open_any_compression(stream: BinaryIO, name: str) -> BinaryIO:
    """gzip and zstd via pallet.layer; xz and bzip2 (which docker import also takes) here."""
    buffered = cast(io.BufferedReader, stream)
    if not hasattr(stream, "peek"):
        buffered = io.BufferedReader(cast(io.RawIOBase, stream), 1 << 20)
    head = buffered.peek(6)[:6]
    try:
        if head.startswith(b"\xfd7zXZ\x00"):
            return cast(BinaryIO, lzma.open(buffered))
        if head.startswith(b"BZh"):
            return cast(BinaryIO, bz2.open(buffered))
        return open_decompressed(buffered)
    except (OSError, lzma.LZMAError, EOFError) as exc:
        raise LayerError(f"{name}: cannot decompress: {exc}") from exc


def import_rootfs(
    store: Store,
    stream: BinaryIO,
    *,
    source_name: str,
    names: Sequence[str] = (),
    message: str = "",
    changes: Sequence[str] = (),
    compression: str = "gzip",
) -> Descriptor:
    config = ImageConfig.new(host_platform(), created=now_timestamp())
    if changes:
        from pallet.dockerfile.plan import apply_changes  # the Dockerfile frontend, only when asked

        config = config.replace(config=apply_changes(config.config, changes, config.platform))
    comment = message or f"Imported from {source_name}"
    checked = _CheckedTar(_open_any_compression(stream, source_name), source_name)
    with store.gc_lock(), store.lease() as lease:
        try:
            layer, info = layer_from_tar(
                store, lease, cast(BinaryIO, checked), compression=compression
            )
        except (lzma.LZMAError, EOFError, OSError) as exc:
            raise LayerError(f"{source_name}: cannot read: {exc}") from exc
        config = config.replace(
            extra={**config.extra, "comment": comment},
        ).with_layer(info.diff_id, history_entry("", created=config.created, comment=comment))
        return write_image(store, lease, config, [layer], names)


def validate_names(names: Sequence[str]) -> None:
    from pallet.oci.reference import Reference

    for name in names:
        ref = Reference.parse(name)
        if ref.digest is not None:
            raise InvalidArgument(f"refusing to create a tag with a digest reference: {name}")
