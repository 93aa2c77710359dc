"""Snapshot -> layer: the conversion the store and the builder use."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path

import pytest

from pallet.layer.compression import open_decompressed
from pallet.layer.diff import commit_snapshot, snapshot_to_tar
from pallet.layer.extract import extract_layer


@pytest.mark.root
def test_committed_snapshot_extracts_to_an_identical_snapshot(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "var" / "cache").mkdir(parents=True)
    (upper / "var" / "cache" / "index").write_text("fresh")
    os.setxattr(upper / "var" / "cache", "trusted.overlay.opaque", b"y")
    os.mknod(upper / "var" / "stale", stat.S_IFCHR, os.makedev(0, 0))
    os.utime(upper / "var" / "cache" / "index", (1_700_000_000, 1_700_000_000))

    plain = io.BytesIO()
    snapshot_to_tar(upper, plain, source_date_epoch=1_000)
    blob = io.BytesIO()
    info = commit_snapshot(upper, blob, compression="zstd", source_date_epoch=1_000)
    assert info.diff_id == "sha256:" + hashlib.sha256(plain.getvalue()).hexdigest()

    snap = tmp_path / "snap"
    result = extract_layer(open_decompressed(io.BytesIO(blob.getvalue())), snap)
    assert result.diff_id == info.diff_id
    assert os.getxattr(snap / "var" / "cache", "trusted.overlay.opaque") == b"y"
    assert os.lstat(snap / "var" / "stale").st_rdev == 0
    # clamped by SOURCE_DATE_EPOCH on the way out
    assert os.lstat(snap / "var" / "cache" / "index").st_mtime == 1_000
    again = io.BytesIO()
    snapshot_to_tar(snap, again)
    assert again.getvalue() == plain.getvalue()
