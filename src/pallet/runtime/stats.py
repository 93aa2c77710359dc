"""``pallet stats``: CPU, memory and pids of running containers from their v1 cgroups."""

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


def sample(container_id: str) -> Sample:
    rel = cgroups_path(container_id).lstrip("/")
    mem = _CGROUP_ROOT / "memory" / rel
    cpu = _CGROUP_ROOT / "cpuacct" / rel
    if not cpu.is_dir():
        cpu = _CGROUP_ROOT / "cpu,cpuacct" / rel
    limit = _read_int(mem / "memory.limit_in_bytes")
    # docker's "usage" leaves out the page cache the kernel can drop at once
    usage = _read_int(mem / "memory.usage_in_bytes") - _memory_stat(mem, "total_inactive_file")
    return Sample(
        cpu_ns=_read_int(cpu / "cpuacct.usage"),
        wall_ns=time.monotonic_ns(),
        memory=max(usage, 0),
        memory_limit=min(limit, _host_memory()) if limit else _host_memory(),
        pids=_read_int(_CGROUP_ROOT / "pids" / rel / "pids.current"),
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
