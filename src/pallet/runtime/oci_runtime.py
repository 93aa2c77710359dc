"""Drive an OCI runtime binary (crun, else runc) over a bundle directory.

crun is preferred; on hosts whose cgroup v2 hierarchy still has controllers while v1 is in
use (a hybrid layout) crun refuses to create any container ("cgroups in hybrid mode not
supported"), so there pallet uses runc, which handles v1 controllers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pallet.errors import ContainerError

_RUNTIMES = ("crun", "runc")


def cgroup_hybrid_with_v2_controllers() -> bool:
    """True when a v1 hierarchy is mounted and the v2 one still lists controllers."""
    unified = Path("/sys/fs/cgroup/unified/cgroup.controllers")
    try:
        return bool(unified.read_text().split()) and Path("/sys/fs/cgroup/memory").is_dir()
    except OSError:
        return False


@dataclass(frozen=True)
class RuntimeBinary:
    name: str
    path: str


def find_runtime(preferred: str | None = None) -> RuntimeBinary:
    """The runtime to use: ``preferred`` or $PALLET_RUNTIME if set, else crun, else runc."""
    wanted = preferred or os.environ.get("PALLET_RUNTIME")
    if wanted:
        path = shutil.which(wanted)
        if path is None:
            raise ContainerError(f"OCI runtime {wanted!r} not found on PATH")
        return RuntimeBinary(os.path.basename(wanted), path)
    order = list(_RUNTIMES)
    if cgroup_hybrid_with_v2_controllers():
        order.reverse()
    for name in order:
        path = shutil.which(name)
        if path:
            return RuntimeBinary(name, path)
    raise ContainerError("no OCI runtime found: install crun or runc")


class OCIRuntime:
    """One runtime binary with its own state directory (``--root``)."""

    def __init__(self, binary: RuntimeBinary, state_root: Path) -> None:
        self.binary = binary
        self.state_root = state_root

    def _cmd(self, *args: str) -> list[str]:
        cmd = [self.binary.path, "--root", str(self.state_root)]
        if self.binary.name == "crun":
            cmd.append("--cgroup-manager=disabled")
        return [*cmd, *args]

    def command_with_log(self, log: Path, *args: str) -> list[str]:
        """A runtime command whose own messages go to ``log`` as JSON lines."""
        base = self._cmd()
        return [base[0], "--log", str(log), "--log-format", "json", *base[1:], *args]

    def write_bundle(self, bundle: Path, spec: dict[str, Any]) -> None:
        bundle.mkdir(parents=True, exist_ok=True)
        tmp = bundle / "config.json.tmp"
        tmp.write_text(json.dumps(spec, indent=1))
        os.replace(tmp, bundle / "config.json")

    def run(
        self,
        container_id: str,
        bundle: Path,
        *,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
    ) -> int:
        """Create, start and wait for the container; return its exit status (128+N for signal N)."""
        self.state_root.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            self._cmd("run", "--bundle", str(bundle), container_id),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            check=False,
        )
        return proc.returncode if proc.returncode >= 0 else 128 - proc.returncode

    def popen_run(self, container_id: str, bundle: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
        self.state_root.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(self._cmd("run", "--bundle", str(bundle), container_id), **kwargs)

    def state(self, container_id: str) -> dict[str, Any] | None:
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
        subprocess.run(self._cmd(*args), capture_output=True, check=False)

    def knows(self, container_id: str) -> bool:
        """Whether the runtime still holds state for the container (not yet deleted)."""
        return (self.state_root / container_id).exists()

    def delete(self, container_id: str, *, force: bool = True) -> None:
        args = ["delete"] + (["--force"] if force else []) + [container_id]
        subprocess.run(self._cmd(*args), capture_output=True, check=False)
