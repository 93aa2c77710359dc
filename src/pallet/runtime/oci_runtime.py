"""Drive an OCI runtime binary (crun, else runc) over a bundle directory.

crun is preferred: it creates a container in a third of runc's time. On a hybrid cgroup
host (v1 controllers, plus a v2 hierarchy at /sys/fs/cgroup/unified that still lists a
controller) crun refuses to create anything ("cgroups in hybrid mode not supported") and
checks that on every command. There each crun command runs in a private mount namespace
(a slave of the host's, so mounts made by pallet show in it) where the v2 hierarchy is
unmounted: crun sees a pure v1 host and puts the container in real v1 cgroups. Mounts
pallet makes itself (the container's overlay) stay in the host's namespace.

A command runs in such a namespace through a wrapper (``unshare`` and a shell: 3 ms per
command), or, for the several commands that run one container (create, start, delete),
in one namespace the pallet process enters itself around them (:meth:`OCIRuntime.v1_view`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pallet.errors import ContainerError
from pallet.paths import which
from pallet.runtime import spawn

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import IO, Any

if TYPE_CHECKING:
    import subprocess

_RUNTIMES = ("crun", "runc")
_UNIFIED = "/sys/fs/cgroup/unified"
_CLONE_NEWNS = 0x00020000
_MS_REC = 0x4000
_MS_SLAVE = 1 << 19
_MNT_DETACH = 2


def cgroup_hybrid_with_v2_controllers() -> bool:
    """True when a v1 hierarchy is mounted and the v2 one still lists controllers."""
    try:
        with open(f"{_UNIFIED}/cgroup.controllers") as f:
            controllers = f.read().split()
    except OSError:
        return False
    return bool(controllers) and os.path.isdir("/sys/fs/cgroup/memory")


@dataclass(frozen=True)
class RuntimeBinary:
    """An OCI runtime on this host and how to run it."""

    name: str
    path: str
    #: what runs the binary (empty: nothing, it runs itself); see the module's doc
    wrapper: tuple[str, ...] = ()


def _v1_only_wrapper() -> tuple[str, ...] | None:
    """``unshare`` + a shell that run a command where the v2 hierarchy is unmounted (one
    namespace per command: each lives only as long as its crun). busybox's shell runs its
    own ``umount`` without an exec: 2 ms less than sh + util-linux's umount, per command."""
    unshare, busybox, sh = which("unshare"), which("busybox"), which("sh")
    shell = (busybox, "sh") if busybox else (sh,) if sh else None
    if unshare is None or shell is None:
        return None
    script = f'umount {_UNIFIED} && exec "$@"'
    return (unshare, "--mount", "--propagation", "slave", *shell, "-c", script, "crun")


def _binary(name: str, path: str, hybrid: bool) -> RuntimeBinary | None:
    if os.path.basename(name) != "crun" or not hybrid:
        return RuntimeBinary(os.path.basename(name), path)
    wrapper = _v1_only_wrapper()
    return None if wrapper is None else RuntimeBinary("crun", path, wrapper)


def find_runtime(preferred: str | None = None) -> RuntimeBinary:
    """The runtime to use: ``preferred`` or $PALLET_RUNTIME if set, else crun, else runc."""
    wanted = preferred or os.environ.get("PALLET_RUNTIME")
    hybrid = cgroup_hybrid_with_v2_controllers()
    if wanted:
        path = which(wanted)
        binary = None if path is None else _binary(wanted, path, hybrid)
        if binary is None:
            raise ContainerError(f"OCI runtime {wanted!r} not found on PATH")
        return binary
    for name in _RUNTIMES:
        path = which(name)
        binary = None if path is None else _binary(name, path, hybrid)
        if binary is not None:
            return binary
    raise ContainerError("no OCI runtime found: install crun or runc")


class OCIRuntime:
    """One runtime binary with its own state directory (``--root``)."""

    def __init__(self, binary: RuntimeBinary, state_root: Path) -> None:
        self.binary = binary
        self.state_root = state_root
        self._in_v1_view = False

    @contextmanager
    def v1_view(self) -> Iterator[None]:
        """Run this block's runtime commands without their wrapper: this process moves
        into a private mount namespace (a slave of the host's) without the v2 hierarchy,
        and back to the host's at the end, so mounts and unmounts after the block are
        the host's again. Only a single-threaded process can change its mount namespace;
        elsewhere, or if anything fails, the wrapper stays."""
        threading = sys.modules.get("threading")  # not imported: no thread was started
        busy = threading is not None and threading.active_count() != 1
        if not self.binary.wrapper or self._in_v1_view or busy:
            yield
            return
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        host = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        cwd = os.open(".", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.unshare(_CLONE_NEWNS) != 0:
                yield
                return
            entered = (
                libc.mount(b"none", b"/", None, ctypes.c_ulong(_MS_REC | _MS_SLAVE), None) == 0
                and libc.umount2(_UNIFIED.encode(), _MNT_DETACH) == 0
            )
            self._in_v1_view = entered
            try:
                yield
            finally:
                self._in_v1_view = False
                # back home: setns also moves cwd to the namespace's root, so restore it
                if libc.setns(host, _CLONE_NEWNS) != 0:
                    err = ctypes.get_errno()
                    raise ContainerError(
                        f"cannot return to the host's mount namespace: {os.strerror(err)}"
                    )
                os.fchdir(cwd)
        finally:
            os.close(host)
            os.close(cwd)

    def _cmd(self, *args: str, log: Path | None = None) -> list[str]:
        wrapper = () if self._in_v1_view else self.binary.wrapper
        cmd = [*wrapper, self.binary.path]
        if log is not None:
            cmd += ["--log", str(log), "--log-format", "json"]
        cmd += ["--root", str(self.state_root)]
        if self.binary.name == "crun":
            # the container's cgroups at its spec's cgroupsPath, as runc makes them
            cmd.append("--cgroup-manager=cgroupfs")
        return [*cmd, *args]

    def command(self, *args: str) -> list[str]:
        """The argv of one runtime command (``list``, ``state``, ...)."""
        return self._cmd(*args)

    def command_with_log(self, log: Path, *args: str) -> list[str]:
        """A runtime command whose own messages go to ``log`` as JSON lines."""
        return self._cmd(*args, log=log)

    def write_bundle(self, bundle: Path, spec: dict[str, Any]) -> None:
        bundle.mkdir(parents=True, exist_ok=True)
        tmp = bundle / "config.json.tmp"
        tmp.write_text(json.dumps(spec))  # compact: only the C encoder skips indenting
        os.replace(tmp, bundle / "config.json")

    def run(
        self,
        container_id: str,
        bundle: Path,
        *,
        stdin: int | IO[Any] | None = spawn.DEVNULL,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
    ) -> int:
        """Create, start and wait for the container; return its exit status (128+N for signal N)."""
        self.state_root.mkdir(parents=True, exist_ok=True)
        code = spawn.run(
            self._cmd("run", "--bundle", str(bundle), container_id),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
        )
        return code if code >= 0 else 128 - code

    def popen_run(self, container_id: str, bundle: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
        """``run`` under ``subprocess.Popen`` (for its pipes: the builder reads RUN's output)."""
        import subprocess

        self.state_root.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(self._cmd("run", "--bundle", str(bundle), container_id), **kwargs)

    def state(self, container_id: str) -> dict[str, Any] | None:
        import subprocess

        proc = subprocess.run(self._cmd("state", container_id), capture_output=True, check=False)
        if proc.returncode != 0:
            return None
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def kill(self, container_id: str, signal: str = "KILL", *, all_processes: bool = False) -> None:
        args = ["kill"] + (["--all"] if all_processes else []) + [container_id, signal]
        spawn.run(self._cmd(*args), stdin=spawn.DEVNULL, stdout=spawn.DEVNULL, stderr=spawn.DEVNULL)

    def knows(self, container_id: str) -> bool:
        """Whether the runtime still holds state for the container (not yet deleted)."""
        return (self.state_root / container_id).exists()

    def delete(self, container_id: str, *, force: bool = True) -> None:
        self.start_delete(container_id, force=force).wait()

    def start_delete(self, container_id: str, *, force: bool = True) -> spawn.Process:
        """``delete`` under way: the caller may do other work, then wait for it."""
        args = ["delete"] + (["--force"] if force else []) + [container_id]
        return spawn.spawn(
            self._cmd(*args), stdin=spawn.DEVNULL, stdout=spawn.DEVNULL, stderr=spawn.DEVNULL
        )
