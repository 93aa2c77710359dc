"""Layer tars: deterministic writer, safe extractor, whiteouts, compression, diffs.

Imports only ``pallet.oci`` and ``pallet.errors``.
"""

from typing import TYPE_CHECKING

from pallet.lazy_exports import lazy_getattr

__all__ = [
    "Compression",
    "ExtractResult",
    "LayerInfo",
    "commit_layer",
    "commit_snapshot",
    "compress_stream",
    "compressor",
    "detect",
    "extract_layer",
    "media_type",
    "open_decompressed",
    "snapshot_to_tar",
    "source_date_epoch_from_env",
    "write_tar",
]

__getattr__ = lazy_getattr(
    __name__,
    {
        "Compression": "compression",
        "ExtractResult": "extract",
        "LayerInfo": "commit",
        "commit_layer": "commit",
        "commit_snapshot": "diff",
        "compress_stream": "commit",
        "compressor": "compression",
        "detect": "compression",
        "extract_layer": "extract",
        "media_type": "compression",
        "open_decompressed": "compression",
        "snapshot_to_tar": "diff",
        "source_date_epoch_from_env": "writer",
        "write_tar": "writer",
    },
)

if TYPE_CHECKING:
    from pallet.layer.commit import LayerInfo, commit_layer, compress_stream
    from pallet.layer.compression import (
        Compression,
        compressor,
        detect,
        media_type,
        open_decompressed,
    )
    from pallet.layer.diff import commit_snapshot, snapshot_to_tar
    from pallet.layer.extract import ExtractResult, extract_layer
    from pallet.layer.writer import source_date_epoch_from_env, write_tar
