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

from pallet.errors import InvalidArgument, LayerError
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


@pytest.mark.parametrize("threads", [1, 2])
def test_write_failure_surfaces_as_layer_error(tree: Path, threads: int) -> None:
    out = FailingOut(after=1000)
    with pytest.raises(LayerError, match="No space left"):
        commit_layer(tree, out, compression="gzip", threads=threads)  # type: ignore[arg-type]
    with pytest.raises(LayerError, match="No space left"):
        compress_stream(
            io.BytesIO(os.urandom(8 << 20)),
            FailingOut(after=0),  # type: ignore[arg-type]
            compression="none",
            threads=threads,
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


@pytest.fixture
def mixed_tree(tmp_path: Path) -> Path:
    """Several 1 MiB blocks: incompressible files, text, and blocks mixing both."""
    root = tmp_path / "mixed"
    root.mkdir()
    for i in range(3):
        (root / f"random{i}").write_bytes(os.urandom((1 << 20) + 12_345 * i))
        (root / f"text{i}").write_bytes(b"%d some ordinary text\n" % i * (20_000 + i))
    return root


@pytest.mark.parametrize("kind", ["gzip", "zstd", "none"])
def test_blob_is_the_same_whatever_the_thread_count(mixed_tree: Path, kind: str) -> None:
    blobs = set()
    for threads in (1, 2, 4):
        out = io.BytesIO()
        commit_layer(mixed_tree, out, compression=kind, threads=threads)
        blobs.add(out.getvalue())
    assert len(blobs) == 1


ONE_CORE_SCRIPT = """
import io, os, sys
from pathlib import Path
from pallet.layer.commit import commit_layer
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
out = io.BytesIO()
print(commit_layer(Path(sys.argv[1]), out).digest)
"""


def test_one_usable_core_writes_the_same_blob(mixed_tree: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", ONE_CORE_SCRIPT, str(mixed_tree)],
        capture_output=True,
        text=True,
        check=True,
    )
    out = io.BytesIO()
    info = commit_layer(mixed_tree, out, threads=2)
    assert done.stdout.strip() == info.digest


@pytest.mark.parametrize("threads", [1, 2])
def test_gzip_tools_read_the_blob(mixed_tree: Path, tmp_path: Path, threads: int) -> None:
    blob = tmp_path / "layer.tar.gz"
    with open(blob, "wb") as out:
        info = commit_layer(mixed_tree, out, threads=threads)
    plain = io.BytesIO()
    write_tar(mixed_tree, plain)
    assert gzip.decompress(blob.read_bytes()) == plain.getvalue()
    subprocess.run(["gzip", "-t", str(blob)], check=True)
    unzipped = subprocess.run(["zcat", str(blob)], capture_output=True, check=True).stdout
    assert unzipped == plain.getvalue()
    assert sha(unzipped) == info.diff_id


def test_incompressible_data_is_stored_and_mixed_blocks_still_compress() -> None:
    text = b"".join(b"line %d of a config file\n" % i for i in range(12_000))
    noise = os.urandom(4 << 20)
    stored, mixed = io.BytesIO(), io.BytesIO()
    compress_stream(io.BytesIO(noise), stored, threads=1)
    # each 1 MiB block is a quarter text and three quarters noise
    quarter = 1 << 18
    data = b"".join(text[:quarter] + noise[i : i + 3 * quarter] for i in range(0, 4 << 20, 1 << 20))
    compress_stream(io.BytesIO(data), mixed, threads=1)
    # stored deflate blocks: a few bytes of framing per 64 KiB, nothing like a deflate
    assert len(stored.getvalue()) < len(noise) * 1.0001 + 64
    assert len(mixed.getvalue()) < len(data) - 4 * quarter // 2
    assert gzip.decompress(stored.getvalue()) == noise
    assert gzip.decompress(mixed.getvalue()) == data


def test_thread_count_below_one_is_refused(tree: Path) -> None:
    with pytest.raises(InvalidArgument, match="0"):
        commit_layer(tree, io.BytesIO(), threads=0)
