"""Docker's default seccomp policy (pallet.runtime.seccomp) applied by the real runtime."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from pallet.images.rootfs import make_busybox_rootfs
from pallet.runtime.oci_runtime import OCIRuntime, find_runtime
from pallet.runtime.seccomp import default_profile
from pallet.runtime.spec import DEFAULT_CAPABILITIES, SpecOptions, build_spec

pytestmark = [pytest.mark.root, pytest.mark.runtime]

PROBE = (
    "grep Seccomp: /proc/self/status; "
    "unshare -U true 2>/dev/null && echo userns-made || echo userns-refused; "
    "echo still-works > /tmp/f && cat /tmp/f"
)


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("LOUD SKIP: running containers needs root (CI runs as root)")
    root = tmp_path_factory.mktemp("bbsec") / "rootfs"
    root.mkdir()
    make_busybox_rootfs(root)
    return root


def _run(rootfs: Path, tmp: Path, caps: tuple[str, ...], seccomp: bool) -> list[str]:
    args = ["/bin/sh", "-c", PROBE]
    spec = build_spec(
        SpecOptions(rootfs=str(rootfs), args=args, network="none", cap_add=caps, seccomp=seccomp)
    )
    if seccomp:  # build_spec applies the same profile pallet.runtime.seccomp makes
        bounding = spec["process"]["capabilities"]["bounding"]
        assert spec["linux"]["seccomp"] == default_profile(bounding)
    else:
        assert "seccomp" not in spec["linux"]
    runtime = OCIRuntime(find_runtime(), tmp / "state")
    bundle = tmp / f"bundle-{uuid.uuid4().hex[:8]}"
    runtime.write_bundle(bundle, spec)
    out = tmp / "out.txt"
    with open(out, "wb") as f:
        rc = runtime.run(f"s-{uuid.uuid4().hex[:12]}", bundle, stdout=f, stderr=subprocess.STDOUT)
    assert rc == 0, out.read_text()
    return out.read_text().split("\n")[:-1]


def test_default_profile_refuses_what_docker_refuses(rootfs: Path, tmp_path: Path) -> None:
    filtered = _run(rootfs, tmp_path, (), seccomp=True)
    assert filtered == ["Seccomp:\t2", "userns-refused", "still-works"]
    # the same container without the filter makes a user namespace: the filter did it
    assert _run(rootfs, tmp_path, (), seccomp=False)[:2] == ["Seccomp:\t0", "userns-made"]
    # CAP_SYS_ADMIN lifts the ban, as in docker's profile
    assert _run(rootfs, tmp_path, ("SYS_ADMIN",), seccomp=True)[:2] == [
        "Seccomp:\t2",
        "userns-made",
    ]


def test_capabilities_lift_their_bans() -> None:
    plain = default_profile(DEFAULT_CAPABILITIES)
    admin = default_profile([*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN", "CAP_SYS_TIME"])
    assert {"unshare", "mount", "settimeofday", "keyctl"} <= set(plain["syscalls"][0]["names"])
    assert not {"unshare", "mount", "settimeofday"} & set(admin["syscalls"][0]["names"])
    assert "keyctl" in admin["syscalls"][0]["names"]  # no capability lifts this one
    assert any(rule["names"] == ["clone3"] for rule in plain["syscalls"])
    assert not any("clone" in rule["names"] for rule in admin["syscalls"])
    assert default_profile([], machine="x86_64")["architectures"][:2] == [
        "SCMP_ARCH_X86_64", "SCMP_ARCH_X86",
    ]  # fmt: skip
