"""The context hash cache: right digests, reused when files are unchanged, refreshed when not."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from pallet.build import context_hash
from pallet.build.context_hash import ContextHasher


def _files(root: Path) -> list[tuple[str, os.stat_result]]:
    return [(str(p), p.stat()) for p in sorted(root.rglob("*")) if p.is_file()]


def test_digests_match_sha256_and_cache_is_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for i in range(50):
        (ctx / f"f{i}").write_bytes(os.urandom(i * 100))
    hasher = ContextHasher(tmp_path / "state.db")
    first = hasher.digests(_files(ctx))
    for path, digest in first.items():
        assert digest == "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()

    calls: list[str] = []
    real = context_hash.hash_file

    def counting(path: str) -> context_hash.Digest:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(context_hash, "hash_file", counting)
    assert hasher.digests(_files(ctx)) == first
    assert calls == []  # unchanged files are only stat'ed
    (ctx / "f7").write_bytes(b"changed content")
    again = hasher.digests(_files(ctx))
    assert calls == [str(ctx / "f7")]
    assert again[str(ctx / "f7")] == "sha256:" + hashlib.sha256(b"changed content").hexdigest()


def test_only_regular_files_are_hashed(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "link").symlink_to("d")
    entries = [
        (str(tmp_path / "d"), os.lstat(tmp_path / "d")),
        (str(tmp_path / "link"), os.lstat(tmp_path / "link")),
    ]
    assert ContextHasher(tmp_path / "state.db").digests(entries) == {}
