"""A container's filesystem seen from outside: diff, export, commit (cp: container_copy)."""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pallet.errors import InvalidArgument
from pallet.runtime.container import Containers
from pallet.runtime.records import ContainerRecord

# Files the runtime creates as mount points; Docker keeps them in its init layer, out of diff.
_MOUNT_POINTS = {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/dev", "/proc", "/sys"}


@dataclass(frozen=True)
class Change:
    kind: str  # A, C or D
    path: str

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _in_lower(lowers: Sequence[Path], rel: str) -> bool:
    return any(os.path.lexists(lower / rel) for lower in lowers)


def diff(containers: Containers, record: ContainerRecord) -> list[Change]:
    """Walk the writable layer: whiteouts are deletions, paths absent below are additions,
    the rest changes (a directory only when something under it changed, as Docker shows)."""
    upper = containers.dir(record.id) / "upper"
    # checked as a mount checks them: one an earlier boot left unflushed is verified first
    lowers = containers.store.snapshots.mount_lowerdirs(record.chain_ids)  # type: ignore[arg-type]
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(upper):
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, upper)
            path = "/" + rel
            st = os.lstat(full)
            if _is_whiteout(st):
                found[path] = "D"
            elif path in _MOUNT_POINTS and not _in_lower(lowers, rel):
                continue
            elif _in_lower(lowers, rel):
                found[path] = "C"
            else:
                found[path] = "A"
        dirnames.sort()
    keep: dict[str, str] = {}
    for path, kind in found.items():
        if kind == "C" and os.path.isdir(upper / path[1:]) and not os.path.islink(upper / path[1:]):
            prefix = path + "/"
            if not any(p.startswith(prefix) for p in found):
                continue
        keep[path] = kind
    return [Change(kind, path) for path, kind in sorted(keep.items())]


def export(containers: Containers, record: ContainerRecord, out: BinaryIO) -> None:
    """The merged root filesystem as one tar stream."""
    from pallet.layer.writer import write_tar

    rootfs = containers.dir(record.id) / "rootfs"
    if not os.path.ismount(rootfs):
        raise InvalidArgument(f"container {record.name} has no mounted filesystem")
    if record.host_config.get("IDMappings"):  # its rootfs shows host IDs: export its own
        from pallet.runtime.idmap import unmapped_view

        with unmapped_view(containers, record) as view:
            write_tar(view, out)
        return
    write_tar(rootfs, out)


def commit(
    containers: Containers,
    record: ContainerRecord,
    *,
    names: Sequence[str] = (),
    changes: Sequence[str] = (),
    message: str = "",
    author: str = "",
) -> str:
    """The container's writable layer on top of its image, as a new image; its ID."""
    from pallet.dockerfile.plan import apply_changes
    from pallet.images.compose import layer_from_dir, now_timestamp, write_image
    from pallet.images.lookup import find_image
    from pallet.oci.config import History
    from pallet.oci.platform import host_platform

    store = containers.store
    image = find_image(store, record.image_id)
    config = image.config
    container_config = config.config
    if changes:
        container_config = apply_changes(container_config, changes, host_platform())
    upper = containers.dir(record.id) / "upper"
    if record.host_config.get("IDMappings"):
        from pallet.runtime.idmap import whiteouts_to_root

        whiteouts_to_root(upper)  # overlayfs made them with its mounter's mapped ID
    with store.lease() as lease:
        desc, info = layer_from_dir(store, lease, upper, overlay=True)
        created = now_timestamp()
        history = History(
            created=created,
            created_by=" ".join(record.argv),
            author=author,
            comment=message,
        )
        new_config = dataclasses.replace(
            config,
            raw=None,
            created=created,
            author=author or config.author,
            config=container_config,
            diff_ids=(*config.diff_ids, info.diff_id),
            history=(*config.history, history),
        )
        write_image(store, lease, new_config, [*image.manifest.layers, desc], names)
    return str(new_config.digest)
