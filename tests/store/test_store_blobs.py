"""Blobs: round trips, dedup, verification, and crash safety of the ingest path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pallet.errors import DigestMismatch, NotFound
from pallet.store import Store


def test_write_then_read_round_trip(store: Store, kit: Any) -> None:
    data = b"hello, store\n"
    digest = store.write_blob(data)
    assert digest == kit.sha256(data)
    assert store.has_blob(digest)
    assert store.blob_size(digest) == len(data)
    assert store.read_blob(digest) == data
    assert store.blob_path(digest) == store.root / "blobs" / "sha256" / digest.encoded
    with store.open_blob(digest) as f:
        assert f.read() == data


def test_streamed_ingest_commits_digest_and_size(store: Store, kit: Any) -> None:
    chunks = [os.urandom(1000) for _ in range(5)]
    whole = b"".join(chunks)
    with store.ingest(kit.sha256(whole), len(whole)) as w:
        for c in chunks:
            w.write(c)
        digest, size = w.commit()
    assert (digest, size) == (kit.sha256(whole), len(whole))
    assert store.read_blob(digest) == whole
    assert kit.ingest_files(store) == []


def test_missing_blob_is_not_found_naming_it(store: Store, kit: Any) -> None:
    absent = kit.sha256(b"never written")
    assert not store.has_blob(absent)
    with pytest.raises(NotFound, match=absent):
        store.open_blob(absent)
    with pytest.raises(NotFound, match=absent):
        store.read_blob(absent)


def test_same_content_is_stored_once(store: Store, kit: Any) -> None:
    first = store.write_blob(b"shared layer")
    second = store.write_blob(b"shared layer", expected=first)
    assert first == second
    assert kit.blob_files(store) == {first.encoded}
    assert kit.ingest_files(store) == []


def test_two_writers_of_one_blob_both_succeed(store: Store, kit: Any) -> None:
    data = b"raced" * 1000
    a = store.ingest(kit.sha256(data))
    b = store.ingest(kit.sha256(data))
    assert a.ingest_path != b.ingest_path
    a.write(data)
    b.write(data)
    assert b.commit()[0] == a.commit()[0] == kit.sha256(data)
    assert store.read_blob(kit.sha256(data)) == data
    assert kit.ingest_files(store) == []


def test_digest_mismatch_leaves_nothing(store: Store, kit: Any) -> None:
    announced = kit.sha256(b"what was promised")
    with pytest.raises(DigestMismatch, match=announced):
        store.write_blob(b"what arrived", expected=announced)
    assert kit.blob_files(store) == set()
    assert kit.ingest_files(store) == []


def test_oversized_stream_is_refused_as_it_arrives(store: Store, kit: Any) -> None:
    with (
        pytest.raises(DigestMismatch, match="larger than its expected 4 bytes"),
        store.ingest(expected_size=4) as w,
    ):
        w.write(b"12345")
    assert kit.blob_files(store) == set()
    assert kit.ingest_files(store) == []


def test_abandoned_or_failed_writer_removes_its_file(store: Store, kit: Any) -> None:
    with store.ingest() as w:
        w.write(b"never committed")
        assert len(kit.ingest_files(store)) == 1
    assert kit.ingest_files(store) == []
    with pytest.raises(RuntimeError), store.ingest() as w:
        w.write(b"partial")
        raise RuntimeError("source failed")
    assert kit.ingest_files(store) == []
    assert kit.blob_files(store) == set()


def test_corrupt_blob_is_caught_on_read(store: Store, kit: Any) -> None:
    digest = store.write_blob(b'{"a": 1}')
    path = store.blob_path(digest)
    path.write_bytes(b'{"a": 2}')
    with pytest.raises(DigestMismatch, match=digest):
        store.read_blob(digest)


def test_read_blob_refuses_more_than_max_size(store: Store, kit: Any) -> None:
    digest = store.write_blob(b"x" * 100)
    with pytest.raises(Exception, match="larger than 10 bytes"):
        store.read_blob(digest, max_size=10)


_CRASHING_WRITER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from pallet.store import Store

    store = Store.open(Path(sys.argv[1]))
    w = store.ingest()
    w.write(os.urandom(1 << 20))
    w._file.flush()
    print("halfway", flush=True)
    sys.stdin.read()  # wait to be killed
    """
)


def test_writer_killed_midway_leaves_store_whole(store: Store, kit: Any, tmp_path: Path) -> None:
    kept = store.write_blob(b"already here")
    child = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_WRITER, str(store.root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == b"halfway\n"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.stdin is not None
    child.stdin.close()
    child.stdout.close()

    leftovers = kit.ingest_files(store)
    assert len(leftovers) == 1 and leftovers[0].stat().st_size == 1 << 20
    assert kit.blob_files(store) == {kept.encoded}  # no partial blob is visible
    assert store.check().ok

    report = store.gc()
    assert report.removed_leftovers == tuple(leftovers)
    assert kit.ingest_files(store) == []
    assert store.has_blob(kept) is False  # unreferenced, so gc took it too
    assert store.check().ok


def test_gc_spares_the_ingest_file_of_a_live_writer(store: Store, kit: Any) -> None:
    with store.ingest() as w:
        w.write(b"in flight")
        report = store.gc()
        assert report.removed_leftovers == ()
        assert w.ingest_path.exists()
        digest, _ = w.commit()
    assert store.read_blob(digest) == b"in flight"


def test_writer_hashed_by_caller_commits_under_the_callers_digest(store: Store) -> None:
    import hashlib
    import io

    from pallet.errors import StoreError
    from pallet.layer.commit import compress_stream
    from pallet.oci.digest import Digest

    tar = io.BytesIO(bytes(10240))  # an empty tar: two zero blocks, padded
    with store.ingest(hashed_by_caller=True) as w:
        info = compress_stream(tar, w, compression="gzip")  # type: ignore[arg-type]
        digest, size = w.commit(info.digest)
    data = store.blob_path(digest).read_bytes()
    assert digest == info.digest == Digest("sha256:" + hashlib.sha256(data).hexdigest())
    assert size == info.size == len(data)
    # a writer that hashes for itself refuses a digest; one that does not needs it
    with store.ingest() as w, pytest.raises(StoreError):
        w.write(b"x")
        w.commit(Digest("sha256:" + "0" * 64))
    with store.ingest(hashed_by_caller=True) as w, pytest.raises(StoreError):
        w.write(b"y")
        w.commit()
    assert list((store.root / "ingest").iterdir()) == []
    assert store.blobs() == [digest]
