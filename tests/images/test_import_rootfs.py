"""pallet import: tarballs in every compression become one-layer images; bad input changes nothing."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import tarfile
from pathlib import Path

import pytest
import zstandard

from pallet_cli import Pallet, store_state


def _rootfs_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("etc/hostname", b"box\n"), ("bin/hello", b"#!/bin/sh\necho hi\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize(
    "compress",
    [
        lambda b: b,
        gzip.compress,
        lambda b: zstandard.ZstdCompressor().compress(b),
        lzma.compress,
        bz2.compress,
    ],
    ids=["plain", "gzip", "zstd", "xz", "bzip2"],
)
def test_import_each_compression(pallet: Pallet, tmp_path: Path, compress: object) -> None:
    raw = _rootfs_tar()
    src = tmp_path / "rootfs.tar.x"
    src.write_bytes(compress(raw))  # type: ignore[operator]
    image_id = pallet("import", "-m", "my rootfs", str(src), "imported:1").stdout.strip()
    (doc,) = json.loads(pallet("inspect", "imported:1").stdout)
    assert doc["Id"] == image_id
    # the diff ID is the sha256 of the uncompressed tar, whatever the input compression
    assert doc["RootFS"]["Layers"] == ["sha256:" + hashlib.sha256(raw).hexdigest()]
    assert doc["Comment"] == "my rootfs"
    hist = pallet("history", "--no-trunc", "imported:1").stdout.splitlines()
    assert hist[1].rstrip().endswith("my rootfs")


def test_import_from_stdin_comment(pallet: Pallet) -> None:
    pallet("import", "-", "fromstdin", input=_rootfs_tar())
    (doc,) = json.loads(pallet("inspect", "fromstdin").stdout)
    assert doc["Comment"] == "Imported from -"


def test_import_refuses_garbage_and_truncation(pallet: Pallet, tmp_path: Path) -> None:
    pallet("bootstrap", "busybox")
    root = pallet.root
    before = store_state(root)
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"this is not a tar archive at all" * 100)
    truncated = tmp_path / "cut.tar"
    truncated.write_bytes(_rootfs_tar()[:700])
    bad_gzip = tmp_path / "bad.tar.gz"
    bad_gzip.write_bytes(gzip.compress(_rootfs_tar())[:-30])
    for path, words in (
        (garbage, "not a tar"),
        (truncated, "truncated"),
        (bad_gzip, str(bad_gzip)),
    ):
        proc = pallet("import", str(path), "bad:1", check=False)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.startswith("error: ") and words in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert store_state(root) == before
    missing = pallet("import", str(tmp_path / "nope.tar"), check=False)
    assert missing.returncode == 1 and "nope.tar" in missing.stderr


def test_import_with_changes(pallet: Pallet, tmp_path: Path) -> None:
    src = tmp_path / "r.tar"
    src.write_bytes(_rootfs_tar())
    pallet(
        "import", "-c", 'CMD ["/bin/hello"]', "-c", "ENV A=1 B=two", "-c", "WORKDIR /srv",
        "-c", "EXPOSE 8080", str(src), "changed:1",
    )  # fmt: skip
    (doc,) = json.loads(pallet("inspect", "changed:1").stdout)
    cfg = doc["Config"]
    assert cfg["Cmd"] == ["/bin/hello"]
    assert cfg["Env"] == ["A=1", "B=two"]
    assert cfg["WorkingDir"] == "/srv"
    assert cfg["ExposedPorts"] == {"8080/tcp": {}}
    bad = pallet("import", "-c", "RUN rm -rf /", str(src), "bad:1", check=False)
    assert bad.returncode == 1 and "RUN is not a valid change command" in bad.stderr
