"""A container's filesystem as its processes see it, reached from the host.

The merged overlay holds the image and the writable layer, but volumes and bind mounts
live elsewhere on the host and are mounted over it only inside the container's mount
namespace. ``pallet cp`` must read and write what the container sees (as ``docker cp``
does), whether the container runs or not, so container paths are mapped here through the
bind mounts of the container's runtime spec. Symlinks are resolved in the container's
view, never the host's: an absolute link target starts again at the container's root.
Kernel filesystems (/proc, /sys, /dev) and tmpfs mounts have no host-side copy, and paths
on them are refused.
"""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

from pallet.errors import InvalidArgument, NotFound

_MAX_LINKS = 40
_KERNEL_TREES = ("/proc", "/sys", "/dev")


@dataclass(frozen=True)
class HostMount:
    destination: str  # normalized, symlink-free container path
    source: Path | None  # host path; None: nothing on the host (tmpfs, proc, ...)
    kind: str


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


@dataclass(frozen=True)
class ContainerFS:
    name: str  # for messages
    rootfs: Path
    mounts: tuple[HostMount, ...] = ()

    @classmethod
    def from_bundle(cls, name: str, rootfs: Path, config: Path) -> ContainerFS:
        """The view described by the bundle's ``config.json`` (mounts in the runtime's
        order; a destination is resolved inside the view made of the mounts before it)."""
        try:
            spec = json.loads(config.read_text())
        except (OSError, ValueError):
            spec = {}
        fs = cls(name, rootfs)
        for entry in spec.get("mounts") or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("destination"), str):
                continue
            kind = str(entry.get("type") or "")
            options = entry.get("options") or []
            source = entry.get("source")
            is_bind = kind == "bind" or "bind" in options or "rbind" in options
            try:
                destination, _ = fs.resolve(entry["destination"])
            except InvalidArgument:
                continue  # under /proc, /sys or /dev: never reached anyway
            host = Path(os.path.realpath(source)) if is_bind and isinstance(source, str) else None
            mount = HostMount(destination, host, kind)
            fs = cls(name, rootfs, (*fs.mounts, mount))
        return fs

    def _mount_for(self, path: str) -> HostMount | None:
        """The mount that shows ``path`` (the deepest; a later one hides an earlier one)."""
        best: HostMount | None = None
        for mount in self.mounts:
            if _under(path, mount.destination) and (
                best is None or len(mount.destination) >= len(best.destination)
            ):
                best = mount
        return best

    def host_path(self, path: str) -> Path:
        """The host path of a normalized, symlink-free container path."""
        for top in _KERNEL_TREES:
            if _under(path, top):
                raise InvalidArgument(
                    f"cannot copy {path} of container {self.name}: {top} is a kernel filesystem"
                )
        mount = self._mount_for(path)
        if mount is None:
            return self.rootfs / path.lstrip("/")
        if mount.source is None:
            raise InvalidArgument(
                f"cannot copy {path} of container {self.name}: it is on a {mount.kind} mount "
                f"at {mount.destination}, which has no copy on the host"
            )
        rest = path[len(mount.destination) :].lstrip("/")
        return mount.source / rest if rest else mount.source

    def is_mount_point(self, path: str) -> bool:
        return any(m.destination == path for m in self.mounts)

    def resolve(self, path: str, *, follow_last: bool = True) -> tuple[str, Path]:
        """``path`` with its symlinks followed in the container's view (the last component
        only with ``follow_last``): the container path and the host path it is at."""
        pending = [p for p in path.split("/") if p]
        current = "/"
        links = 0
        while pending:
            part = pending.pop(0)
            if part == ".":
                continue
            if part == "..":
                current = posixpath.dirname(current)
                continue
            candidate = posixpath.join(current, part)
            host = self.host_path(candidate)
            if (
                (pending or follow_last)
                and not self.is_mount_point(candidate)
                and host.is_symlink()
            ):
                links += 1
                if links > _MAX_LINKS:
                    raise InvalidArgument(f"too many levels of symbolic links in {path}")
                target = os.readlink(host)
                pending = [p for p in target.split("/") if p] + pending
                if target.startswith("/"):
                    current = "/"
                continue
            current = candidate
        return current, self.host_path(current)

    def existing(self, path: str, *, follow_last: bool = True) -> tuple[str, Path]:
        """As ``resolve``, for a path that must exist."""
        resolved, host = self.resolve(path, follow_last=follow_last)
        if not os.path.lexists(host):
            raise NotFound(f"Could not find the file {path} in container {self.name}")
        return resolved, host

    def children(self, path: str) -> list[tuple[str, str, Path]]:
        """The entries of directory ``path`` as (name, container path, host path), with
        mount points shown as their mounted source, sorted by name."""
        base = self.host_path(path)
        names = set(os.listdir(base)) if base.is_dir() and not base.is_symlink() else set()
        for mount in self.mounts:  # a mount point with nothing beneath it in the layer
            parent, leaf = posixpath.split(mount.destination)
            if parent == path and leaf:
                names.add(leaf)
        out = []
        for name in sorted(names):
            child = posixpath.join(path, name)
            try:
                out.append((name, child, self.host_path(child)))
            except InvalidArgument:
                continue  # kernel trees and tmpfs mounts are left out of copies
        return out
