"""``pallet stats``: CPU, memory, pids, network and block I/O of running containers.

CPU, memory, pids and block I/O come from the container's v1 cgroups (this host's hybrid
layout keeps those controllers on v1); network counters from its network namespace, read
through ``/proc/<init pid>/net/dev``, as Docker reads them from the container's interfaces.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from pallet.runtime.container import cgroups_path

_CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Sample:
    cpu_ns: int
    wall_ns: int
    memory: int
    memory_limit: int
    pids: int
    net_rx: int = 0
    net_tx: int = 0
    block_read: int = 0
    block_write: int = 0


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _memory_stat(group: Path, key: str) -> int:
    try:
        for line in (group / "memory.stat").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def parse_net_dev(text: str) -> tuple[int, int]:
    """Received and transmitted bytes over every interface but loopback (``/proc/net/dev``)."""
    rx = tx = 0
    for line in text.splitlines()[2:]:  # two header lines
        name, sep, counters = line.partition(":")
        fields = counters.split()
        if not sep or name.strip() == "lo" or len(fields) < 9:
            continue
        try:
            rx += int(fields[0])
            tx += int(fields[8])
        except ValueError:
            continue
    return rx, tx


def parse_blkio(text: str) -> tuple[int, int]:
    """Bytes read and written over all devices, from a v1 ``blkio.*io_service_bytes*`` file
    (lines ``MAJ:MIN Read|Write|Sync|Async|Discard|Total N`` and a final ``Total N``)."""
    read = write = 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 3 or not fields[2].isdigit():
            continue
        if fields[1] == "Read":
            read += int(fields[2])
        elif fields[1] == "Write":
            write += int(fields[2])
    return read, write


def _net(pid: int) -> tuple[int, int]:
    if pid <= 0:
        return 0, 0
    try:
        return parse_net_dev(Path(f"/proc/{pid}/net/dev").read_text())
    except OSError:
        return 0, 0


def _blkio(group: Path) -> tuple[int, int]:
    # docker's source; kernels that keep no v1 throttle counters (no limit configured on
    # the device) report zeros there, and so does docker
    try:
        return parse_blkio((group / "blkio.throttle.io_service_bytes_recursive").read_text())
    except OSError:
        return 0, 0


def sample(container_id: str, pid: int = 0, *, own_network: bool = True) -> Sample:
    """One reading of the container's counters; ``pid`` is its init (for network counters),
    ``own_network`` False for ``--network host``, whose traffic is the host's, as in docker."""
    rel = cgroups_path(container_id).lstrip("/")
    mem = _CGROUP_ROOT / "memory" / rel
    cpu = _CGROUP_ROOT / "cpuacct" / rel
    if not cpu.is_dir():
        cpu = _CGROUP_ROOT / "cpu,cpuacct" / rel
    limit = _read_int(mem / "memory.limit_in_bytes")
    # docker's "usage" leaves out the page cache the kernel can drop at once
    usage = _read_int(mem / "memory.usage_in_bytes") - _memory_stat(mem, "total_inactive_file")
    rx, tx = _net(pid) if own_network else (0, 0)
    block_read, block_write = _blkio(_CGROUP_ROOT / "blkio" / rel)
    return Sample(
        cpu_ns=_read_int(cpu / "cpuacct.usage"),
        wall_ns=time.monotonic_ns(),
        memory=max(usage, 0),
        memory_limit=min(limit, _host_memory()) if limit else _host_memory(),
        pids=_read_int(_CGROUP_ROOT / "pids" / rel / "pids.current"),
        net_rx=rx,
        net_tx=tx,
        block_read=block_read,
        block_write=block_write,
    )


def cpu_percent(before: Sample, after: Sample) -> float:
    wall = after.wall_ns - before.wall_ns
    return 100.0 * (after.cpu_ns - before.cpu_ns) / wall if wall > 0 else 0.0


def binary_size(n: float) -> str:
    """Docker's BytesSize: 1.5MiB, 32MiB (four significant digits)."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024
        i += 1
    return f"{n:.4g}{units[i]}"


def decimal_size(n: float) -> str:
    """Docker's HumanSizeWithPrecision(n, 3), used for NET I/O and BLOCK I/O: 1.23kB, 648B."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.3g}{units[i]}"
