"""Compression: detection, reproducible gzip, zstd, streaming decompression and its failures."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import zlib

import pytest
import zstandard

from pallet.errors import InvalidArgument, LayerError
from pallet.layer import compression as comp
from pallet.layer.compression import compressor, detect, media_type, open_decompressed
from pallet.oci import mediatypes

TEXT = b"".join(b"line %d of a very ordinary text file\n" % i for i in range(60_000))
RANDOM = os.urandom(comp.GZIP_BLOCK + 300_000)  # a full block plus an incompressible tail
MIXED = TEXT + RANDOM + TEXT[:5000]


def compress_all(kind: str, data: bytes, level: int | None = None, step: int = 70_001) -> bytes:
    c = compressor(kind, level)
    out = [c.compress(data[i : i + step]) for i in range(0, len(data), step)]
    return b"".join(out) + c.flush()


def test_detect_by_magic() -> None:
    assert detect(gzip.compress(b"x")) == "gzip"
    assert detect(zstandard.ZstdCompressor().compress(b"x")) == "zstd"
    assert detect(b"hello world") == "none"
    assert detect(b"") == "none"


def test_media_types() -> None:
    assert media_type("gzip") == mediatypes.OCI_LAYER_GZIP
    assert media_type("zstd") == mediatypes.OCI_LAYER_ZSTD
    assert media_type("none") == mediatypes.OCI_LAYER
    with pytest.raises(InvalidArgument, match="lz4"):
        media_type("lz4")


@pytest.mark.parametrize(("kind", "level"), [("gzip", 4), ("gzip", -1), ("zstd", 0), ("zstd", 99)])
def test_levels_out_of_range_are_refused(kind: str, level: int) -> None:
    with pytest.raises(InvalidArgument, match=str(level)):
        compressor(kind, level)


@pytest.mark.parametrize(
    "data", [b"", TEXT, RANDOM, MIXED], ids=["empty", "text", "random", "mixed"]
)
@pytest.mark.parametrize("level", [None, 0, 3])
def test_gzip_is_standard_and_reproducible(data: bytes, level: int | None) -> None:
    first = compress_all("gzip", data, level)
    # same bytes again, whatever the write pattern
    assert compress_all("gzip", data, level, step=1 << 20) == first
    assert gzip.decompress(first) == data
    assert zlib.decompress(first, 31) == data
    # fixed header: deflate, no flags (no name), mtime 0, OS 255
    assert first[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def test_gzip_compresses_text_and_stores_random_data() -> None:
    assert len(compress_all("gzip", TEXT)) < len(TEXT) // 5
    # incompressible data costs only a few bytes of framing
    assert len(compress_all("gzip", RANDOM)) < len(RANDOM) * 1.001 + 64


@pytest.mark.parametrize("data", [b"", TEXT, MIXED], ids=["empty", "text", "mixed"])
def test_zstd_is_standard_and_reproducible(data: bytes) -> None:
    first = compress_all("zstd", data)
    assert compress_all("zstd", data, step=1 << 20) == first
    assert zstandard.ZstdDecompressor().decompressobj().decompress(first) == data


@pytest.mark.parametrize("kind", ["gzip", "zstd", "none"])
def test_open_decompressed_roundtrips(kind: str) -> None:
    blob = compress_all(kind, MIXED)
    reader = open_decompressed(io.BytesIO(blob))
    got = bytearray()
    while chunk := reader.read(12_345):
        got += chunk
    assert bytes(got) == MIXED


def test_open_decompressed_reads_foreign_gzip_and_multiple_members() -> None:
    blob = gzip.compress(TEXT, mtime=123) + gzip.compress(b"tail")
    assert open_decompressed(io.BytesIO(blob)).read() == TEXT + b"tail"


def test_open_decompressed_reads_multiple_zstd_frames() -> None:
    c = zstandard.ZstdCompressor()
    blob = c.compress(b"one") + c.compress(b"two")
    assert open_decompressed(io.BytesIO(blob)).read() == b"onetwo"


def test_open_decompressed_empty_stream_is_empty() -> None:
    assert open_decompressed(io.BytesIO(b"")).read() == b""


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
@pytest.mark.parametrize("cut", [5, 100, -9, -1])
def test_truncated_stream_raises_layer_error(kind: str, cut: int) -> None:
    blob = compress_all(kind, MIXED)
    with pytest.raises(LayerError, match=f"truncated {kind}"):
        open_decompressed(io.BytesIO(blob[:cut])).read()


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_corrupt_stream_raises_layer_error(kind: str) -> None:
    blob = bytearray(compress_all(kind, TEXT))
    for i in range(len(blob) // 2, len(blob) // 2 + 64):
        blob[i] ^= 0x5A
    with pytest.raises(LayerError, match=f"corrupt {kind}"):
        open_decompressed(io.BytesIO(bytes(blob))).read()


def test_gzip_crc_mismatch_is_detected() -> None:
    blob = bytearray(compress_all("gzip", TEXT))
    blob[-8] ^= 0xFF  # crc32 in the trailer
    with pytest.raises(LayerError, match="corrupt gzip"):
        open_decompressed(io.BytesIO(bytes(blob))).read()


def test_trailing_garbage_after_gzip_is_refused() -> None:
    blob = compress_all("gzip", TEXT) + b"garbage!"
    with pytest.raises(LayerError, match="trailing garbage"):
        open_decompressed(io.BytesIO(blob)).read()


BOMB_SCRIPT = """
import io, resource, sys, zstandard, gzip
from pallet.layer.compression import open_decompressed
size = 256 << 20
if sys.argv[1] == "zstd":
    blob = zstandard.ZstdCompressor(level=3).compress(bytes(size))
else:
    blob = gzip.compress(bytes(size), 1)
reader = open_decompressed(io.BytesIO(blob))
del blob
total = 0
while chunk := reader.read(1 << 16):
    total += len(chunk)
assert total == size, total
# VmHWM is this process's own peak: ru_maxrss would carry over the pytest worker's
# RSS across exec.
print(int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) // 1024)
"""


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_decompression_bomb_keeps_memory_bounded(kind: str) -> None:
    # 256 MiB of zeros from a blob of a few hundred KiB, read in small pieces
    done = subprocess.run(
        [sys.executable, "-c", BOMB_SCRIPT, kind], capture_output=True, text=True, check=True
    )
    assert int(done.stdout) < 150, f"peak RSS {done.stdout.strip()} MiB"
