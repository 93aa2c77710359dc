"""Root filesystems of build steps: overlay mounts over snapshot stacks, and their cleanup.

A step's tree is mounted inside its snapshot workspace (``snapshots/.tmp-*``), which is
locked while the builder lives. A builder killed with SIGKILL leaves its mounts behind;
the next build unmounts every mount under a workspace nobody holds any more
(:func:`clean_stale_mounts`). ``pallet build`` also runs in a private mount namespace
when it can, so its mounts die with it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pallet.errors import BuildError, PalletError
from pallet.store import Store, overlay
from pallet.store.locks import is_in_use, lock_fd
from pallet.store.snapshots import TMP_PREFIX

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from threading import Thread

_CLONE_NEWNS = 0x00020000
_MS_REC = 0x4000
_MS_SLAVE = 1 << 19


def _rmtree(path: Path | str, ignore_errors: bool = False) -> None:
    import shutil  # here: its archive support (bz2, lzma) costs a rebuild's start-up 3 ms

    shutil.rmtree(path, ignore_errors=ignore_errors)


SCRATCH_DIR = "build/tmp"


def private_mount_namespace() -> bool:
    """Move this process into a mount namespace of its own (only before threads start),
    so no mount outlives it. Returns whether it could."""
    threading = sys.modules.get("threading")  # not imported: no thread was started
    if os.geteuid() != 0 or (threading is not None and threading.active_count() != 1):
        return False
    import ctypes  # here: 3 ms of every build's start-up otherwise

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(ctypes.c_int(_CLONE_NEWNS)) != 0:
        return False
    # Receive the host's mounts, send none back.
    libc.mount(b"none", b"/", None, ctypes.c_ulong(_MS_REC | _MS_SLAVE), None)
    return True


def _mount_points() -> list[str]:
    out = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 4:
                    out.append(fields[4].replace("\\040", " "))
    except OSError:
        pass
    return out


def clean_stale_mounts(store: Store) -> int:
    """Unmount what dead builders left mounted under the store and remove their scratch
    directories; returns how many mounts. (Their snapshot workspaces are gc's.)"""
    prefixes = [str(store.snapshots.dir) + "/", str(store.root / SCRATCH_DIR) + "/"]
    count = 0
    for point in sorted(_mount_points(), key=len, reverse=True):
        for prefix in prefixes:
            if point.startswith(prefix):
                name = point[len(prefix) :].split("/", 1)[0]
                owner = Path(prefix) / name
                if prefix == prefixes[0] and not name.startswith(TMP_PREFIX):
                    continue  # only build workspaces are ours to clean
                if not is_in_use(owner):
                    with contextlib.suppress(PalletError):
                        overlay.unmount(Path(point), lazy=True)
                        count += 1
    scratch = store.root / SCRATCH_DIR
    if scratch.is_dir():
        for entry in scratch.iterdir():
            if not is_in_use(entry):
                _unmount_below(entry)
                _rmtree(entry, ignore_errors=True)
    return count


@contextmanager
def scratch_dir(store: Store) -> Iterator[Path]:
    """A private, locked directory for a build's temporary mounts and files."""
    base = store.root / SCRATCH_DIR
    base.mkdir(parents=True, exist_ok=True)
    path = base / os.urandom(8).hex()
    path.mkdir(0o700)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    lock_fd(fd)
    try:
        yield path
    finally:
        try:
            _unmount_below(path)
            _rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)


def _unmount_below(path: Path) -> None:
    prefix = str(path) + "/"
    for point in sorted(_mount_points(), key=len, reverse=True):
        if point.startswith(prefix):
            with contextlib.suppress(PalletError):
                overlay.unmount(Path(point), lazy=True)


def unmount(target: Path) -> None:
    try:
        overlay.unmount(target)
    except PalletError:
        overlay.unmount(target, lazy=True)


class StepRoot:
    """A build step's writable root: ``lowerdirs`` with ``work/fs`` as the upper dir,
    mounted on ``work/rootfs`` (see :func:`writable_rootfs`)."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.merged = work / "rootfs"
        self._thread: Thread | None = None
        self._error: BaseException | None = None
        self._released = False

    def _release(self) -> None:
        try:
            unmount(self.merged)
            for d in (self.work / "ovl", self.merged, self.work / "empty"):
                _rmtree(d, ignore_errors=True)
                if d.exists():  # overlay's work dir keeps a 000 "work" subdir
                    os.chmod(d, 0o700)
                    for sub in d.iterdir():
                        os.chmod(sub, 0o700)
                    _rmtree(d)
        except BaseException as exc:  # re-raised by wait()
            self._error = exc

    def release(self, *, background: bool = False) -> None:
        """Unmount and remove everything but ``fs`` from the workspace. ``background``
        lets the caller read the upper dir (it must not change it) while that runs;
        :meth:`wait` before using the workspace otherwise."""
        if self._released:
            return
        self._released = True
        if background:
            from threading import Thread  # a real build: threads run anyway

            self._thread = Thread(target=self._release, name="unmount")
            self._thread.start()
        else:
            self._release()
            self.wait()

    def wait(self) -> None:
        """Release (if nobody did) and wait until the workspace holds ``fs`` alone."""
        self.release()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


@contextmanager
def writable_rootfs(lowerdirs: Sequence[Path], work: Path) -> Iterator[StepRoot]:
    """Mount ``lowerdirs`` (bottom first) with ``work/fs`` as the upper dir; yields the
    mount (its tree is ``.merged``). Everything but ``fs`` is removed from ``work`` by
    the end of the block (or by an earlier :meth:`StepRoot.release`), so the workspace
    can then be adopted as the new snapshot.

    The mount is volatile: overlay never syncs the upper dir, so unmounting does not
    flush the whole filesystem under the store (everybody's dirty data). The snapshot
    the upper dir becomes is published unflushed and verified after a reboot (see
    pallet.store.snapshots); its layer blob is fsynced by the commit."""
    upper = work / "fs"
    step = StepRoot(work)
    ovl = work / "ovl"
    empty = work / "empty"
    for d in (ovl, step.merged, empty):
        d.mkdir(exist_ok=True)
    lowers = list(lowerdirs) or [empty]
    try:
        overlay.mount_overlay(lowers, step.merged, upperdir=upper, workdir=ovl, volatile=True)
    except PalletError as exc:
        raise BuildError(f"cannot mount the build step's root filesystem: {exc}") from exc
    try:
        yield step
    finally:
        step.wait()


@contextmanager
def readonly_rootfs(lowerdirs: Sequence[Path], scratch: Path) -> Iterator[Path]:
    """A read-only view of a snapshot stack (an empty directory for no layers)."""
    target = scratch / f"ro-{os.urandom(6).hex()}"
    target.mkdir()
    if not lowerdirs:
        yield target
        return
    try:
        overlay.mount_overlay(list(lowerdirs), target)
    except PalletError as exc:
        raise BuildError(f"cannot mount a source filesystem: {exc}") from exc
    try:
        yield target
    finally:
        unmount(target)
