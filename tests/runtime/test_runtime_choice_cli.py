"""Which OCI runtime runs a container, and that it keeps running it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pallet.runtime.oci_runtime import cgroup_hybrid_with_v2_controllers, find_runtime
from pallet_cli import CLI_ENV, Pallet

pytestmark = [pytest.mark.root, pytest.mark.runtime]


def test_crun_is_preferred_and_on_a_hybrid_host_runs_without_the_v2_hierarchy() -> None:
    if shutil.which("crun") is None:
        pytest.skip("LOUD SKIP: crun is not installed (apt install crun)")
    binary = find_runtime()
    assert binary.name == "crun"
    # crun refuses a hybrid layout whose v2 hierarchy lists controllers; pallet runs it
    # where that hierarchy is unmounted
    assert bool(binary.wrapper) == cgroup_hybrid_with_v2_controllers()


def test_a_container_made_by_runc_is_still_driven_by_runc(
    pallet: Pallet, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("crun") is None or shutil.which("runc") is None:
        pytest.skip("LOUD SKIP: needs both crun and runc installed")
    monkeypatch.setitem(CLI_ENV, "PALLET_RUNTIME", "runc")
    cid = pallet("run", "-d", "--name", "old", "busybox", "sleep", "60").stdout.strip()
    monkeypatch.delitem(CLI_ENV, "PALLET_RUNTIME")
    # pallet now defaults to crun, which knows nothing of this container
    assert pallet("exec", "old", "echo", "hi").stdout == "hi\n"
    pallet("stop", "-t", "1", "old")
    assert pallet("inspect", "-f", "{{.State.Status}}", "old").stdout.strip() == "exited"
    pallet("start", "old")
    pallet("rm", "-f", "old")
    assert not any(Path("/sys/fs/cgroup").glob(f"*/pallet/{cid}"))
    assert str(pallet.root) not in Path("/proc/self/mountinfo").read_text()


def test_limits_land_in_the_containers_v1_cgroups_which_exec_joins(pallet: Pallet) -> None:
    cid = pallet(
        "run", "-d", "--name", "lim", "-m", "64m", "--pids-limit", "20", "busybox", "sleep", "60"
    ).stdout.strip()
    memory = Path("/sys/fs/cgroup/memory/pallet") / cid
    assert (memory / "memory.limit_in_bytes").read_text().split() == [str(64 << 20)]
    assert (Path("/sys/fs/cgroup/pids/pallet") / cid / "pids.max").read_text().split() == ["20"]
    groups = pallet("exec", "lim", "cat", "/proc/self/cgroup").stdout.splitlines()
    by_controller = {line.split(":")[1]: line.split(":")[2] for line in groups}
    assert by_controller["memory"] == by_controller["pids"] == f"/pallet/{cid}"
    assert "64MiB" in pallet("stats", "--no-stream", "lim").stdout
    pallet("rm", "-f", "lim")
    assert not memory.exists()
