"""Several real pallet processes on one store, and a load killed with SIGKILL midway."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from pallet_cli import Pallet, store_state


def _tar_with(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _spawn(root: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pallet", "--root", str(root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_eight_loads_and_eight_tags_at_once(tmp_path: Path) -> None:
    source = Pallet(tmp_path / "source")
    archives = []
    for i in range(8):
        rootfs = tmp_path / f"r{i}.tar"
        rootfs.write_bytes(_tar_with({f"file{i}": os.urandom(2000)}))
        source("import", str(rootfs), f"img/{i}:v1")
        archive = tmp_path / f"img{i}.tar"
        source("save", "-o", str(archive), f"img/{i}:v1")
        archives.append(archive)
    target = Pallet(tmp_path / "target")
    target("bootstrap", "busybox", "base:1")
    procs = [_spawn(target.root, "load", "-i", str(a)) for a in archives]
    procs += [_spawn(target.root, "tag", "base:1", f"base:t{i}") for i in range(8)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    names = {
        e["annotations"]["org.opencontainers.image.ref.name"]
        for e in json.loads((target.root / "index.json").read_text())["manifests"]
    }
    expected = {f"docker.io/img/{i}:v1" for i in range(8)} | {
        f"docker.io/library/base:t{i}" for i in range(8)
    }
    assert expected <= names
    assert target("system", "check").stdout.rstrip().endswith(": ok")


def test_load_killed_midway_leaves_store_whole(tmp_path: Path) -> None:
    source = Pallet(tmp_path / "source")
    rootfs = tmp_path / "big.tar"
    rootfs.write_bytes(_tar_with({"big.bin": os.urandom(96 << 20)}))
    source("import", "--compression", "gzip", str(rootfs), "big:1")
    archive = tmp_path / "big-archive.tar"
    source("save", "-o", str(archive), "big:1")

    target = Pallet(tmp_path / "target")
    target("bootstrap", "busybox", "base:1")
    before = store_state(target.root)
    proc = _spawn(target.root, "load", "-i", str(archive))
    ingest = target.root / "ingest"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.stat().st_size > (1 << 20) for p in ingest.iterdir() if p.is_file()):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "load finished before it could be killed; make the archive bigger"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the store is whole: nothing corrupt or missing, index.json untouched; a blob the
    # killed load had already committed is complete (check verified it) and unreferenced
    assert target("system", "check").stdout.rstrip().endswith(": ok")
    index_after, blobs_after = store_state(target.root)
    assert index_after == before[0]
    assert set(before[1]) <= set(blobs_after)
    assert target("images", "-q", "big").stdout == ""
    # gc removes what the killed writer left in ingest/
    target("system", "gc")
    assert [p for p in ingest.iterdir()] == []
    # and a second load completes
    assert target("load", "-i", str(archive)).stdout.strip() == "Loaded image: big:1"
