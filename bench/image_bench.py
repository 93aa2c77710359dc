"""``import`` of a 1 GiB rootfs tarball and ``save`` of the result: pallet beside podman.

Each command runs in its own child process; wall time and the child's peak RSS are
reported. podman uses a scratch root with the vfs driver so it touches no system state.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

# the installed command, as users run it (python -m pallet would add runpy's imports)
_COMMAND = Path(sys.executable).with_name("pallet")
PALLET = [str(_COMMAND)] if _COMMAND.exists() else [sys.executable, "-m", "pallet"]


def _make_rootfs_tar(path: Path, size_mib: int) -> None:
    """``size_mib`` of incompressible files (64 files) plus 2,000 small text files."""
    chunk = os.urandom(1 << 20)
    per_file = max(1, size_mib // 64)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(64):
            src = path.parent / "blob.bin"
            with open(src, "wb") as f:
                for j in range(per_file):
                    f.write(chunk[j % 7 :] + chunk[: j % 7])
            tar.add(src, arcname=f"data/big{i:02d}.bin")
        txt = path.parent / "t.txt"
        for i in range(2000):
            txt.write_text(f"line {i}\n" * 40)
            tar.add(txt, arcname=f"etc/conf{i:04d}.txt")


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(seconds, peak RSS MiB of the child) for one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}...: {proc.stderr.decode()[-300:]}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the max over all children so far: run pallet first.
    return elapsed, max(rss, before) / 1024


def run(size_mib: int = 1024) -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="pallet-bench-", dir="/var/tmp"))
    rows: list[dict[str, Any]] = []
    try:
        tar = work / "rootfs.tar"
        _make_rootfs_tar(tar, size_mib)
        size = tar.stat().st_size / 1e6
        root = work / "pallet-root"
        t, rss = _timed([*PALLET, "--root", str(root), "import", str(tar), "bench/rootfs:1"])
        rows.append({"name": "pallet import", "seconds": t, "MB/s": size / t, "peak RSS MiB": rss})
        out = work / "pallet-save.tar"
        t, _ = _timed([*PALLET, "--root", str(root), "save", "-o", str(out), "bench/rootfs:1"])
        rows.append({"name": "pallet save (docker-archive)", "seconds": t, "MB/s": size / t})
        if shutil.which("podman"):
            pod = ["podman", "--root", str(work / "pod"), "--runroot", str(work / "podrun"),
                   "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"]  # fmt: skip
            t, _ = _timed([*pod, "import", str(tar), "bench/rootfs:1"])
            rows.append({"name": "podman import", "seconds": t, "MB/s": size / t})
            t, _ = _timed([*pod, "save", "-o", str(work / "pod-save.tar"), "bench/rootfs:1"])
            rows.append({"name": "podman save (docker-archive)", "seconds": t, "MB/s": size / t})
        for row in rows:
            row["input MB"] = round(size)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    for row in run(int(sys.argv[1]) if len(sys.argv) > 1 else 1024):
        print(row)
