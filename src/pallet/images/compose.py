"""Write new images into the store: layers from directories or tar streams, then config,
manifest and tags, in that order (a tag never points at an image with missing blobs)."""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from pallet.images.humanize import format_timestamp
from pallet.oci import mediatypes as mt
from pallet.oci.config import ImageConfig
from pallet.oci.descriptor import Descriptor
from pallet.oci.manifest import Manifest
from pallet.oci.reference import Reference
from pallet.store import Lease, Store

if TYPE_CHECKING:
    from pallet.layer.commit import LayerInfo


def source_date_epoch() -> int | None:
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return int(value) if value.isdigit() else None


def now_timestamp() -> str:
    """``created`` for a new image: now, or SOURCE_DATE_EPOCH for reproducible output."""
    epoch = source_date_epoch()
    when = (
        _dt.datetime.fromtimestamp(epoch, _dt.UTC)
        if epoch is not None
        else _dt.datetime.now(_dt.UTC)
    )
    return format_timestamp(when)


def layer_from_dir(
    store: Store,
    lease: Lease,
    root: Path,
    *,
    compression: str = "gzip",
    level: int | None = None,
    overlay: bool = False,
) -> tuple[Descriptor, LayerInfo]:
    """Tar, compress and hash ``root`` in one pass straight into a store blob."""
    with store.ingest(hashed_by_caller=True) as writer:
        from pallet.layer.commit import commit_layer  # loaded only when a layer is made

        info = commit_layer(
            root,
            cast(BinaryIO, writer),
            compression=compression,
            level=level,
            overlay=overlay,
            source_date_epoch=source_date_epoch(),
        )
        digest, size = writer.commit(info.digest)
    lease.add(digest)
    return Descriptor(info.media_type, digest, size), info


def layer_from_tar(
    store: Store,
    lease: Lease,
    stream: BinaryIO,
    *,
    compression: str = "gzip",
    level: int | None = None,
) -> tuple[Descriptor, LayerInfo]:
    """Compress an uncompressed tar stream into a store blob, computing its diff ID."""
    with store.ingest(hashed_by_caller=True) as writer:
        from pallet.layer.commit import compress_stream

        info = compress_stream(stream, cast(BinaryIO, writer), compression=compression, level=level)
        digest, size = writer.commit(info.digest)
    lease.add(digest)
    return Descriptor(info.media_type, digest, size), info


def write_image(
    store: Store,
    lease: Lease,
    config: ImageConfig,
    layers: Sequence[Descriptor],
    names: Sequence[str] = (),
) -> Descriptor:
    """Store config and manifest, then tag (or record as dangling). Returns the manifest."""
    config_bytes = config.to_bytes()
    config_desc = Descriptor(mt.OCI_CONFIG, store.write_blob(config_bytes), len(config_bytes))
    lease.add(config_desc.digest)
    manifest = Manifest.build(config_desc, list(layers))
    store.write_blob(manifest.raw)
    lease.add(manifest.digest)
    desc = manifest.descriptor()
    full_names = [str(Reference.parse(n).normalized()) for n in names]
    if full_names:
        for name in full_names:
            store.tag(name, desc)
    else:
        store.add_image(desc)
    return desc
