from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pallet_cli import Pallet


@pytest.fixture(scope="module", autouse=True)
def cached_bytecode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """These tests start pallet ~150 times: let those processes keep compiled bytecode
    (out of the source tree) instead of compiling every module at every start."""
    saved = {k: os.environ.get(k) for k in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.getbasetemp() / "pycache")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


_CGROUPS = Path("/sys/fs/cgroup")
_RUNTIME_STATE = Path("/run/pallet")  # runc's --root per store: /run/pallet/<tag>/<id>
_USERNS_VIEWS = Path("/run/pallet-userns")  # a mapped rootfs shown to the runtime: <tag>-<id>


def _container_cgroups() -> set[Path]:
    """Every container cgroup pallet made (``/pallet/<id>`` in each v1 controller)."""
    return {group for group in _CGROUPS.glob("*/pallet/*") if group.is_dir()}


def _runtime_states() -> set[str]:
    """IDs the OCI runtime still knows, for any store on this machine."""
    return {d.name for d in _RUNTIME_STATE.glob("*/*") if d.is_dir()}


def leftovers(base: Path, before: set[Path]) -> list[str]:
    """What this session left on the host: mounts and processes under its temp dir, and
    container cgroups and processes no runtime state accounts for. runc makes its state
    before a cgroup and removes it after, so other stores' live containers never show."""
    found = []
    stores = {store.resolve() for store in base.glob("*/root")}
    tags = {hashlib.sha256(str(store).encode()).hexdigest()[:16] for store in stores}
    views = tuple(f"{_USERNS_VIEWS}/{tag}-" for tag in tags)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point.startswith(str(base)) or point.startswith(views):
            found.append(f"mount {point}")
    for tag in sorted(tags):  # the stores of this session: the runtime knows none of theirs
        found += [f"runtime state {d}" for d in (_RUNTIME_STATE / tag).glob("*")]
        found += [f"userns view {d}" for d in _USERNS_VIEWS.glob(f"{tag}-*")]
    known = _runtime_states()
    stale_ids = set()
    for group in sorted(_container_cgroups() - before):
        if group.name not in known:
            found.append(f"cgroup {group}")
            stale_ids.add(group.name)
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
            cgroup = (proc / "cgroup").read_text()
        except OSError:
            continue
        if b"pytest" in cmdline:  # the test runner itself (--basetemp in its arguments)
            continue
        if str(base).encode() in cmdline or any(f"/pallet/{i}\n" in cgroup for i in stale_ids):
            words = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"process {proc.name}: {words[:200]}")
    return found


@pytest.fixture(scope="session", autouse=True)
def nothing_left_at_the_end(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The suite ends with no stale mount, cgroup or process of its own."""
    before = _container_cgroups() if os.geteuid() == 0 else set()
    yield
    if os.geteuid() != 0:
        return
    found = leftovers(tmp_path_factory.getbasetemp(), before)
    assert found == [], "left on the host after the runtime tests:\n" + "\n".join(found)


@pytest.fixture(scope="module")
def busybox_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with busybox:latest, made once per module and copied per test."""
    if os.geteuid() != 0:
        pytest.skip("LOUD SKIP: containers need root (overlay mounts, runc); CI runs as root")
    root = tmp_path_factory.mktemp("bbstore") / "root"
    Pallet(root)("bootstrap", "busybox")
    return root


@pytest.fixture
def pallet(busybox_root: Path, tmp_path: Path) -> Pallet:
    root = tmp_path / "root"
    shutil.copytree(busybox_root, root, symlinks=True)
    p = Pallet(root)
    yield p  # type: ignore[misc]
    # leave no container, mount or runtime state behind
    for cid in p("ps", "-aq", "--no-trunc", check=False).stdout.split():
        p("rm", "-f", cid, check=False)
