"""commit_layer / compress_stream: one pass gives the blob, both digests and sizes."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pallet.errors import LayerError
from pallet.layer.commit import commit_layer, compress_stream
from pallet.layer.compression import compressor, open_decompressed
from pallet.layer.writer import write_tar
from pallet.oci import mediatypes


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "conf").write_text("key = value\n" * 5000)
    (root / "bin").mkdir()
    (root / "bin" / "blob").write_bytes(os.urandom(3 << 20))
    os.symlink("bin/blob", root / "link")
    return root


@pytest.mark.parametrize(
    ("kind", "media"),
    [
        ("gzip", mediatypes.OCI_LAYER_GZIP),
        ("zstd", mediatypes.OCI_LAYER_ZSTD),
        ("none", mediatypes.OCI_LAYER),
    ],
)
def test_commit_layer_reports_what_it_wrote(tree: Path, kind: str, media: str) -> None:
    plain = io.BytesIO()
    write_tar(tree, plain)
    out = io.BytesIO()
    info = commit_layer(tree, out, compression=kind)
    blob = out.getvalue()
    assert info.diff_id == sha(plain.getvalue())
    assert info.digest == sha(blob)
    assert info.size == len(blob)
    assert info.uncompressed_size == len(plain.getvalue())
    assert info.media_type == media
    assert open_decompressed(io.BytesIO(blob)).read() == plain.getvalue()


def test_commit_is_reproducible_and_matches_the_sequential_compressor(tree: Path) -> None:
    first, second = io.BytesIO(), io.BytesIO()
    commit_layer(tree, first, level=2)
    commit_layer(tree, second, level=2)
    assert first.getvalue() == second.getvalue()
    plain = io.BytesIO()
    write_tar(tree, plain)
    c = compressor("gzip", 2)
    assert c.compress(plain.getvalue()) + c.flush() == first.getvalue()
    assert gzip.decompress(first.getvalue()) == plain.getvalue()


@pytest.mark.parametrize("kind", ["gzip", "zstd", "none"])
def test_compress_stream(kind: str) -> None:
    data = os.urandom(1 << 20) + b"text " * 300_000
    out = io.BytesIO()
    info = compress_stream(io.BytesIO(data), out, compression=kind)
    assert info.diff_id == sha(data)
    assert info.digest == sha(out.getvalue())
    assert info.uncompressed_size == len(data)
    assert open_decompressed(io.BytesIO(out.getvalue())).read() == data


class FailingOut(io.RawIOBase):
    def __init__(self, after: int) -> None:
        self.left = after

    def writable(self) -> bool:
        return True

    def write(self, b: object) -> int:
        n = len(memoryview(b))  # type: ignore[arg-type]
        self.left -= n
        if self.left < 0:
            raise OSError(28, "No space left on device")
        return n


def test_write_failure_surfaces_as_layer_error(tree: Path) -> None:
    with pytest.raises(LayerError, match="No space left"):
        commit_layer(tree, FailingOut(after=1000), compression="gzip")  # type: ignore[arg-type]
    with pytest.raises(LayerError, match="No space left"):
        compress_stream(
            io.BytesIO(os.urandom(8 << 20)),
            FailingOut(after=0),  # type: ignore[arg-type]
            compression="none",
        )


RSS_SCRIPT = """
import os, resource, sys
from pathlib import Path
from pallet.layer.commit import commit_layer
root = Path(sys.argv[1])
with open(os.devnull, "wb") as out:
    info = commit_layer(root, out, compression=sys.argv[2])
assert info.uncompressed_size > 160 << 20
# VmHWM is this process's own peak: ru_maxrss would carry over the pytest worker's
# RSS across exec.
print(int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) // 1024)
"""


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_memory_stays_flat(tmp_path: Path, kind: str) -> None:
    chunk = os.urandom(1 << 20)
    with open(tmp_path / "big", "wb") as f:
        for _ in range(160):
            f.write(chunk)
    done = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, str(tmp_path), kind],
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(done.stdout) < 100, f"peak RSS {done.stdout.strip()} MiB for a 160 MiB layer"
