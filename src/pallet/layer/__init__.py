"""Layer tars: deterministic writer, safe extractor, whiteouts, compression, diffs.

Imports only ``pallet.oci`` and ``pallet.errors``.
"""

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
