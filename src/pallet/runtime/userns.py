"""User namespaces for containers: ``--userns=host|auto[:size=N]``, ``--uidmap``, ``--gidmap``
(podman's flags).

With a mapping, the container gets a user namespace of its own and its root is an
unprivileged host ID. The image's snapshots stay as they are on disk (owned by 0):
the container's rootfs is an overlay whose layers are *idmapped mounts*
(``mount_setattr(MOUNT_ATTR_IDMAP)``, see :mod:`pallet.runtime.idmap`), so inside the
container they read as owned by root, and what the container writes lands in its upper
dir unshifted (``commit`` and ``diff`` see IDs as the container does).

``--userns=auto`` takes a free block of host IDs from a pool: the ``/etc/subuid`` and
``/etc/subgid`` entries of the user ``pallet`` (else ``containers``, podman's), or, when
there is none, podman's recommended ``2147483647:2147483648``. Blocks in use are listed
in ``<root>/userns.json`` (under a lock), next to the container that holds each one.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pallet.errors import InvalidArgument

Extent = tuple[int, int, int]  # (container ID, host ID, size), as the OCI spec's mappings

DEFAULT_POOL: Extent = (0, 2147483647, 2147483648)  # podman's "containers" subuid advice
AUTO_SIZE = 65536
_MAX_ID = 4294967294  # (uid_t)-1 is no ID
_MAX_EXTENTS = 340  # the kernel's limit per map
_GRACE = 10.0  # seconds an allocation may live before its container directory exists


@dataclass(frozen=True)
class UserNamespace:
    """The ID mappings of a container's user namespace."""

    mode: str  # "auto" or "private" (explicit --uidmap/--gidmap)
    uids: tuple[Extent, ...]
    gids: tuple[Extent, ...]

    def host_uid(self, uid: int) -> int:
        return _map(self.uids, uid)

    def host_gid(self, gid: int) -> int:
        return _map(self.gids, gid)

    def check_user(self, user: str, uid: int, gid: int) -> None:
        """The container's process must run as mapped IDs (the runtime's own error is
        a bare ``setresuid: Invalid argument``)."""
        for kind, value, extents in (("uid", uid, self.uids), ("gid", gid, self.gids)):
            if not any(c <= value < c + n for c, _, n in extents):
                raise InvalidArgument(
                    f"user {user!r}: {kind} {value} is not mapped in the container's user "
                    "namespace (see --uidmap/--gidmap, --userns=auto:size=N)"
                )

    def container_ids(self, uid: int, gid: int) -> tuple[int, int]:
        """Host IDs as the container sees them (unmapped: the overflow ID)."""
        return _unmap(self.uids, uid), _unmap(self.gids, gid)

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "uids": [list(e) for e in self.uids],
                "gids": [list(e) for e in self.gids]}  # fmt: skip


def _map(extents: Sequence[Extent], value: int) -> int:
    for container, host, size in extents:
        if container <= value < container + size:
            return host + value - container
    return 65534  # the kernel's overflow ID: what an unmapped ID shows as


def _unmap(extents: Sequence[Extent], value: int) -> int:
    for container, host, size in extents:
        if host <= value < host + size:
            return container + value - host
    return 65534


def parse_extent(text: str, flag: str) -> Extent:
    parts = text.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise InvalidArgument(f"invalid {flag} {text!r}: expected CONTAINER_ID:HOST_ID:SIZE")
    container, host, size = (int(p) for p in parts)
    if size < 1 or container + size - 1 > _MAX_ID or host + size - 1 > _MAX_ID:
        raise InvalidArgument(f"invalid {flag} {text!r}: IDs out of range")
    return container, host, size


def _check_extents(extents: Sequence[Extent], flag: str) -> None:
    if len(extents) > _MAX_EXTENTS:
        raise InvalidArgument(f"too many {flag} ranges (the kernel allows {_MAX_EXTENTS})")
    for side in (0, 1):
        spans = sorted((e[side], e[side] + e[2]) for e in extents)
        for (_, end), (start, _) in itertools.pairwise(spans):
            if start < end:
                raise InvalidArgument(f"{flag} ranges overlap")
    if not any(c <= 0 < c + n for c, _, n in extents):
        raise InvalidArgument(f"{flag} must map the container's ID 0 (root)")


def parse_userns(
    mode: str | None, uidmaps: Sequence[str], gidmaps: Sequence[str]
) -> tuple[str, int] | UserNamespace | None:
    """None for the host's namespace; ``("auto", size)`` for a block still to allocate;
    a :class:`UserNamespace` for explicit maps (podman: --gidmap defaults to --uidmap)."""
    mode = mode or ""
    if uidmaps or gidmaps:
        if mode not in ("", "private"):
            raise InvalidArgument("--userns and --uidmap/--gidmap cannot be combined")
        uids = tuple(parse_extent(m, "--uidmap") for m in uidmaps)
        gids = tuple(parse_extent(m, "--gidmap") for m in gidmaps) or uids
        uids = uids or gids
        _check_extents(uids, "--uidmap")
        _check_extents(gids, "--gidmap")
        return UserNamespace("private", uids, gids)
    if mode in ("", "host"):
        return None
    name, _, options = mode.partition(":")
    if name != "auto":
        raise InvalidArgument(
            f"unsupported --userns {mode!r}: use host, auto[:size=N] or --uidmap/--gidmap"
        )
    size = AUTO_SIZE
    for option in filter(None, options.split(",")):
        key, _, value = option.partition("=")
        if key != "size" or not value.isdigit() or not 1 <= int(value) <= 1 << 31:
            raise InvalidArgument(f"invalid --userns option {option!r}: expected size=N")
        size = int(value)
    return "auto", size


def _pool(path: str) -> list[Extent]:
    """The host IDs ``--userns=auto`` may hand out, from a subuid/subgid file."""
    entries: dict[str, list[Extent]] = {}
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                entries.setdefault(parts[0], []).append((0, int(parts[1]), int(parts[2])))
    return entries.get("pallet") or entries.get("containers") or [DEFAULT_POOL]


@contextlib.contextmanager
def _locked_table(root: Path) -> Iterator[dict[str, list[Any]]]:
    with open(root / "userns.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        table_path = root / "userns.json"
        table: dict[str, list[Any]] = {}
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(table_path.read_text())
            if isinstance(loaded, dict):
                table = loaded
        yield table
        tmp = table_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(table))
        os.replace(tmp, table_path)


def allocate(root: Path, container_id: str, size: int) -> UserNamespace:
    """A block of ``size`` host IDs no other container of this store holds, mapped to the
    container's 0..size-1 (the same block for UIDs and GIDs)."""
    uid_pool, gid_pool = _pool("/etc/subuid"), _pool("/etc/subgid")
    with _locked_table(root) as table:
        now = time.time()
        for cid in list(table):  # blocks of removed containers are free again
            if not (root / "containers" / cid).exists() and now - float(table[cid][2]) > _GRACE:
                del table[cid]
        taken = sorted((int(start), int(start) + int(n)) for start, n, _ in table.values())
        for _, start, length in uid_pool:
            if not any(s <= start < s + n for _, s, n in gid_pool):
                continue  # only blocks both pools offer
            candidate = start
            for used_start, used_end in taken:
                if used_end <= candidate or used_start >= candidate + size:
                    continue
                candidate = used_end
            if candidate + size <= start + length and any(
                s <= candidate and candidate + size <= s + n for _, s, n in gid_pool
            ):
                table[container_id] = [candidate, size, now]
                extent = ((0, candidate, size),)
                return UserNamespace("auto", extent, extent)
    raise InvalidArgument(f"--userns=auto: no free block of {size} host IDs left in the pool")
