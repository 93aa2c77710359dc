"""Idmapped mounts (Linux >= 5.12; overlayfs on idmapped layers >= 5.19) through the mount
API: ``open_tree(OPEN_TREE_CLONE)`` + ``mount_setattr(MOUNT_ATTR_IDMAP)`` + ``move_mount``.

A container with a user namespace gets an overlay rootfs whose lower layers are idmapped
views of the store's snapshots and whose upper dir is an idmapped view of its own
directory: an ID ``k`` on disk reads as the host ID the container's ``k`` maps to. The
overlay itself cannot be idmapped (the kernel refuses it), hence one mount per layer;
overlayfs keeps private clones of its layers, so those mounts are detached at once.

Overlayfs writes its work dir (and whiteouts) with the credentials of whoever mounted it,
host root here: the upper view therefore also maps one ID no container range uses (the
first after the highest mapped container ID) to host 0, or the mount turns read-only.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pallet.errors import ContainerError
from pallet.runtime.userns import Extent, UserNamespace

if TYPE_CHECKING:
    from pallet.runtime.container import Containers
    from pallet.runtime.records import ContainerRecord

_SYS_OPEN_TREE, _SYS_MOVE_MOUNT, _SYS_MOUNT_SETATTR = 428, 429, 442  # x86_64 and arm64 alike
_OPEN_TREE_CLONE, _OPEN_TREE_CLOEXEC = 1, os.O_CLOEXEC
_AT_EMPTY_PATH, _AT_FDCWD = 0x1000, -100
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MOUNT_ATTR_IDMAP = 0x00100000
_CLONE_NEWUSER = 0x10000000
_MNT_DETACH = 2
_MS_BIND = 4096

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _check(ret: int, what: str, path: Path | str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise ContainerError(
            f"cannot make an idmapped mount of {path} ({what}): {os.strerror(err)}"
        )
    return ret


def _with_mounter(extents: Sequence[Extent]) -> list[Extent]:
    """``extents`` plus host 0 at a container ID no extent uses, unless 0 is mapped."""
    if any(h <= 0 < h + n for _, h, n in extents):
        return list(extents)
    spare = max(c + n for c, _, n in extents)
    return [*extents, (spare, 0, 1)]


def userns_fd(uids: Sequence[Extent], gids: Sequence[Extent]) -> int:
    """An fd of a new user namespace with these mappings (a child makes it, then exits)."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only unshares and waits
        try:
            os.close(ready_r)
            os.close(go_w)
            ok = _libc.unshare(_CLONE_NEWUSER) == 0
            os.write(ready_w, b"1" if ok else b"0")
            os.read(go_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(go_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise ContainerError("cannot create a user namespace (user.max_user_namespaces?)")
        for name, extents in (("uid_map", uids), ("gid_map", gids)):
            text = "".join(f"{c} {h} {n}\n" for c, h, n in extents)
            try:
                Path(f"/proc/{pid}/{name}").write_text(text)
            except OSError as exc:
                raise ContainerError(
                    f"cannot write the user namespace's {name}: {exc.strerror}"
                ) from exc
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(go_w)
        os.waitpid(pid, 0)


def idmapped_mount(source: Path, target: Path, ns_fd: int) -> None:
    """Attach an idmapped view of ``source`` on ``target`` (an existing directory)."""
    tree = _check(
        _libc.syscall(_SYS_OPEN_TREE, _AT_FDCWD, os.fsencode(str(source)),
                      _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC),
        "open_tree", source,
    )  # fmt: skip
    try:
        attr = _MountAttr(_MOUNT_ATTR_IDMAP, 0, 0, ns_fd)
        _check(
            _libc.syscall(_SYS_MOUNT_SETATTR, tree, b"", _AT_EMPTY_PATH,
                          ctypes.byref(attr), ctypes.sizeof(attr)),
            "mount_setattr", source,
        )  # fmt: skip
        _check(
            _libc.syscall(_SYS_MOVE_MOUNT, tree, b"", _AT_FDCWD, os.fsencode(str(target)),
                          _MOVE_MOUNT_F_EMPTY_PATH),
            "move_mount", target,
        )  # fmt: skip
    finally:
        os.close(tree)


VIEWS = Path("/run/pallet-userns")  # 0711: traversable by a container's mapped root


def runtime_root(state_root: Path, container_id: str) -> Path:
    """Where a mapped container's rootfs is shown to the runtime (see :func:`mount_rootfs`);
    the runtime's own state dir is 0700, so this is beside it, not in it."""
    return VIEWS / f"{state_root.name}-{container_id[:16]}"


def mount_rootfs(
    lowerdirs: Sequence[Path],
    container_dir: Path,
    rootfs: Path,
    ns: UserNamespace,
    runtime_view: Path,
) -> None:
    """The container's overlay on ``rootfs`` (upper and work in ``container_dir``) over
    idmapped views of ``lowerdirs`` (bottom first), bound again on ``runtime_view``: the
    runtime reaches the rootfs as the container's root, which may not traverse the
    store's parents (a 0700 home or temp dir), so it gets a path it can reach."""
    _mount_overlay_view(lowerdirs, container_dir, rootfs, ns)
    runtime_view.parent.mkdir(exist_ok=True)
    runtime_view.parent.chmod(0o711)
    runtime_view.mkdir(exist_ok=True)
    if _libc.mount(os.fsencode(str(rootfs)), os.fsencode(str(runtime_view)), None,
                   ctypes.c_ulong(_MS_BIND), None) != 0:  # fmt: skip
        err = ctypes.get_errno()
        _libc.umount2(os.fsencode(str(rootfs)), _MNT_DETACH)
        raise ContainerError(f"cannot bind {rootfs} on {runtime_view}: {os.strerror(err)}")


def unmount_runtime_view(runtime_view: Path) -> None:
    if os.path.ismount(runtime_view):
        _libc.umount2(os.fsencode(str(runtime_view)), _MNT_DETACH)
    with contextlib.suppress(OSError):
        runtime_view.rmdir()


def _mount_overlay_view(
    lowerdirs: Sequence[Path], container_dir: Path, rootfs: Path, ns: UserNamespace
) -> None:
    from pallet.store.overlay import mount_overlay

    staging = container_dir / "idmap"
    staging.mkdir(exist_ok=True)
    attached: list[Path] = []
    lower_fd = userns_fd(ns.uids, ns.gids)
    upper_fd = userns_fd(_with_mounter(ns.uids), _with_mounter(ns.gids))
    try:
        views = []
        for i, lower in enumerate(lowerdirs):
            view = staging / str(i)
            view.mkdir(exist_ok=True)
            idmapped_mount(lower, view, lower_fd)
            attached.append(view)
            views.append(view)
        own = staging / "rw"
        own.mkdir(exist_ok=True)
        idmapped_mount(container_dir, own, upper_fd)
        attached.append(own)
        mount_overlay(views, rootfs, upperdir=own / "upper", workdir=own / "work")
    finally:
        os.close(lower_fd)
        os.close(upper_fd)
        for view in attached:  # overlayfs holds clones of its layers: these can go
            _libc.umount2(os.fsencode(str(view)), _MNT_DETACH)
        with contextlib.suppress(OSError):
            for entry in staging.iterdir():
                entry.rmdir()
            staging.rmdir()


def adopt_owners(volume: Path, image_path: Path | None, ns: UserNamespace) -> None:
    """A new volume of a mapped container: each seeded entry gets the owner its source has
    in the (idmapped) image view; the rest, and an unseeded volume, the container's root."""
    root_ids = ns.host_uid(0), ns.host_gid(0)
    for dirpath, dirnames, filenames in os.walk(volume):
        for name in ["", *filenames, *dirnames]:
            full = os.path.join(dirpath, name) if name else dirpath
            if name in dirnames and not os.path.islink(full):
                continue  # chowned when walked
            rel = os.path.relpath(full, volume)
            owner = root_ids
            if image_path is not None:
                with contextlib.suppress(OSError):
                    st = os.lstat(image_path / rel)
                    owner = st.st_uid, st.st_gid
            os.chown(full, *owner, follow_symlinks=False)


def user_namespace_of(host_config: dict[str, Any]) -> UserNamespace | None:
    """A container's mappings, as its record keeps them (None: the host's namespace)."""
    doc = host_config.get("IDMappings")
    if not isinstance(doc, dict):
        return None
    uids = tuple((int(c), int(h), int(n)) for c, h, n in doc.get("uids") or ())
    gids = tuple((int(c), int(h), int(n)) for c, h, n in doc.get("gids") or ())
    return UserNamespace(str(doc.get("mode", "private")), uids, gids) if uids else None


@contextlib.contextmanager
def unmapped_view(containers: Containers, record: ContainerRecord) -> Iterator[Path]:
    """The container's files with the IDs its processes see: its rootfs, or for a mapped
    container a read-only overlay of the image's snapshots and its upper dir as they are on
    disk (the rootfs shows host IDs), for ``export``."""
    cdir = containers.dir(record.id)
    if user_namespace_of(record.host_config) is None:
        yield cdir / "rootfs"
        return
    from pallet.oci.digest import Digest
    from pallet.store.overlay import mount_overlay, unmount

    lowers = containers.store.snapshots.mount_lowerdirs([Digest(c) for c in record.chain_ids])
    view = Path(tempfile.mkdtemp(prefix="view-", dir=cdir))
    try:
        mount_overlay([*lowers, cdir / "upper"], view)
        try:
            yield view
        finally:
            unmount(view, lazy=True)
    finally:
        view.rmdir()


def whiteouts_to_root(upper: Path) -> None:
    """Give the whiteouts of a mapped container's upper dir (0/0 character devices) the
    owner 0:0 they have everywhere else, before its layer is written."""
    for dirpath, _, filenames in os.walk(upper):
        for name in filenames:
            full = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                st = os.lstat(full)
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 and (st.st_uid or st.st_gid):
                    os.chown(full, 0, 0, follow_symlinks=False)
