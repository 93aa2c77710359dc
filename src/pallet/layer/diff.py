"""Snapshots and overlay upper dirs back to OCI layers.

A snapshot (a layer extracted in overlay form) or an overlay upper dir is turned into a
layer tar by writing it with ``overlay=True``: 0:0 character devices become ``.wh.NAME``
whiteouts and opaque directories get ``.wh..wh..opq``. For tars pallet wrote itself,
extract -> snapshot -> tar reproduces the same bytes, hence the same diffID.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from pallet.layer.commit import LayerInfo, commit_layer
from pallet.layer.writer import write_tar


def snapshot_to_tar(snapshot: Path, out: BinaryIO, *, source_date_epoch: int | None = None) -> None:
    """The uncompressed OCI layer tar of a snapshot or overlay upper dir."""
    write_tar(snapshot, out, overlay=True, source_date_epoch=source_date_epoch)


def commit_snapshot(
    snapshot: Path,
    out: BinaryIO,
    *,
    compression: str = "gzip",
    level: int | None = None,
    source_date_epoch: int | None = None,
) -> LayerInfo:
    """A snapshot or overlay upper dir as a compressed layer blob, in one pass."""
    return commit_layer(
        snapshot,
        out,
        compression=compression,
        level=level,
        overlay=True,
        source_date_epoch=source_date_epoch,
    )
