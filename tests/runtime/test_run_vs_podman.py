"""Differential: the same ``run`` commands through pallet and podman (where installed), on
the same busybox image (``pallet save`` -> ``podman load``); stdout and exit codes compared.

podman stands in for docker here; the cases leave out where podman itself differs from
docker (its smaller default capability set, no ``-w`` directory creation, its init's name).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pallet_cli import CLI_ENV

pytestmark = [pytest.mark.root, pytest.mark.runtime, pytest.mark.overlay, pytest.mark.peer]

_SH = ("busybox", "sh", "-c")
CASES: dict[str, tuple[str, ...]] = {
    "echo": ("busybox", "echo", "hello"),
    "exit-code": (*_SH, "echo out; exit 3"),
    "not-found-127": ("busybox", "nope"),
    "not-executable-126": ("busybox", "/etc/passwd"),
    "entrypoint-args": ("--entrypoint", "echo", "busybox", "a", "b"),
    "env": ("-e", "A=1", "-e", "FROM_CALLER", "-e", "NOT_SET", *_SH,
            'echo "$A $FROM_CALLER ${NOT_SET-unset} $PATH $HOME"; whoami'),
    "user-ids": ("-u", "1000:1000", *_SH, "id -u; id -g; echo $HOME"),
    "user-name": ("-u", "nobody", *_SH, "id -un; id -gn; echo $HOME"),
    "workdir": ("-w", "/tmp", *_SH, "pwd"),
    "hostname": ("--hostname", "box", "busybox", "hostname"),
    "read-only": ("--read-only", *_SH, "touch /x 2>/dev/null || echo ro"),
    "tmpfs": ("--tmpfs", "/scratch", *_SH, "grep -c ' /scratch tmpfs' /proc/mounts"),
    "cap-drop-all": ("--cap-drop", "ALL", *_SH, "grep CapEff /proc/self/status"),
    "no-new-privileges": ("--security-opt", "no-new-privileges", *_SH,
                          "grep NoNewPrivs /proc/self/status"),
    "masked-proc": (*_SH, "cat /proc/kcore 2>&1 | wc -c; ls /proc/acpi 2>/dev/null | wc -l; "
                    "touch /proc/sys/kernel/x 2>/dev/null || echo ro-sys"),
    # crun also links /dev/core to /proc/kcore (masked), as runc before 1.1 did for docker
    "dev": (*_SH, "ls /dev | grep -vx core | tr '\\n' ' '"),
    "limits": ("-m", "64m", "--pids-limit", "50", *_SH,
               "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max"),
    "add-host": ("--add-host", "db.local:10.1.2.3", *_SH, "grep db.local /etc/hosts"),
    "user-groups": ("-u", "nobody", "busybox", "id"),
    "seccomp": (*_SH, "grep Seccomp: /proc/self/status"),
}  # fmt: skip


@pytest.fixture(scope="module")
def podman(busybox_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    if shutil.which("podman") is None:
        pytest.skip("LOUD SKIP: podman is not installed (the differential test is optional)")
    work = tmp_path_factory.mktemp("podman")
    archive = work / "busybox.tar"
    _pallet(busybox_root, "save", "-o", str(archive), "busybox")
    # podman refuses a runroot longer than 50 characters (pytest-xdist's paths are)
    runroot = Path(tempfile.mkdtemp(prefix="pp-", dir="/tmp"))
    base = ["podman", "--root", str(work / "storage"), "--runroot", str(runroot),
            "--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager", "cgroupfs",
            "--events-backend", "none"]  # fmt: skip
    loaded = subprocess.run([*base, "load", "-i", str(archive)], capture_output=True, text=True)
    assert loaded.returncode == 0, f"podman load failed: {loaded.stderr}"
    yield base
    subprocess.run([*base, "rm", "-af"], capture_output=True)
    subprocess.run([*base, "system", "reset", "-f"], capture_output=True)
    shutil.rmtree(runroot, ignore_errors=True)


def _env() -> dict[str, str]:
    return {**CLI_ENV, "FROM_CALLER": "from-the-caller"}


def _pallet(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "pallet", "--root", str(root), *args]
    return subprocess.run(cmd, capture_output=True, env=_env(), check=args[0] != "run")


def _both(
    root: Path, podman: list[str], args: tuple[str, ...]
) -> tuple[tuple[bytes, int], tuple[bytes, int]]:
    run = ("run", "--rm", "--network", "none")
    ours = _pallet(root, *run, *args)
    # podman asks for rlimits above this host's hard limits unless told
    limits = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096")
    theirs = subprocess.run([*podman, *run, *limits, *args], capture_output=True, env=_env())
    return (ours.stdout, ours.returncode), (theirs.stdout, theirs.returncode)


Outcome = tuple[bytes, int]


@pytest.fixture(scope="module")
def outcomes(busybox_root: Path, podman: list[str]) -> dict[str, tuple[Outcome, Outcome]]:
    """Every case through both tools, a few at a time (each run is mostly waiting)."""
    cases = CASES
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            name: pool.submit(_both, busybox_root, podman, args) for name, args in cases.items()
        }
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_run_like_podman(outcomes: dict[str, tuple[Outcome, Outcome]], case: str) -> None:
    ours, theirs = outcomes[case]
    assert ours == theirs
