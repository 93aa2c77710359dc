"""RUN-step isolation through the real OCI runtime, on a busybox root filesystem."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from pallet.images.rootfs import make_busybox_rootfs
from pallet.runtime.oci_runtime import OCIRuntime, find_runtime
from pallet.runtime.spec import Mount, SpecOptions, build_spec
from pallet.runtime.users import resolve_user

pytestmark = [pytest.mark.root, pytest.mark.runtime]


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("LOUD SKIP: running containers needs root (CI runs as root)")
    root = tmp_path_factory.mktemp("bb") / "rootfs"
    root.mkdir()
    make_busybox_rootfs(root)
    return root


def _run(rootfs: Path, tmp: Path, args: list[str], **kw: object) -> tuple[int, str]:
    runtime = OCIRuntime(find_runtime(), tmp / "state")
    bundle = tmp / f"bundle-{uuid.uuid4().hex[:8]}"
    spec = build_spec(SpecOptions(rootfs=str(rootfs), args=args, **kw))  # type: ignore[arg-type]
    runtime.write_bundle(bundle, spec)
    out = tmp / "out.txt"
    with open(out, "wb") as f:
        rc = runtime.run(f"t-{uuid.uuid4().hex[:12]}", bundle, stdout=f, stderr=subprocess.STDOUT)
    return rc, out.read_text()


def test_exit_code_and_output(rootfs: Path, tmp_path: Path) -> None:
    rc, out = _run(rootfs, tmp_path, ["/bin/sh", "-c", "echo hello; exit 3"])
    assert (rc, out) == (3, "hello\n")


def test_pid_namespace_and_private_root(rootfs: Path, tmp_path: Path) -> None:
    rc, out = _run(rootfs, tmp_path, ["/bin/sh", "-c", "echo $$; ls /root | wc -l"])
    assert rc == 0
    pid, root_entries = out.split()
    assert pid == "1"
    # The host's /root is not visible: the container's /root is the image's, empty.
    assert root_entries == "0"


def test_env_cwd_hostname_user(rootfs: Path, tmp_path: Path) -> None:
    user = resolve_user(rootfs, "nobody")
    rc, out = _run(
        rootfs,
        tmp_path,
        ["/bin/sh", "-c", 'echo "$GREETING" $(pwd) $(hostname) $(id -u):$(id -g)'],
        env=["GREETING=hi there", "PATH=/bin"],
        cwd="/tmp",
        hostname="box1",
        uid=user.uid,
        gid=user.gid,
    )
    assert rc == 0
    assert out.strip() == "hi there /tmp box1 65534:65534"


def test_network_none_has_only_loopback(rootfs: Path, tmp_path: Path) -> None:
    rc, out = _run(rootfs, tmp_path, ["/bin/sh", "-c", "ls /sys/class/net"], network="none")
    assert rc == 0
    assert out.split() == ["lo"]


def test_bind_mount_readonly(rootfs: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "f").write_text("data\n")
    rc, out = _run(
        rootfs,
        tmp_path,
        ["/bin/sh", "-c", "cat /mnt/f; echo x 2>/dev/null > /mnt/g || echo refused"],
        mounts=[Mount("/mnt", str(shared), "bind", ("rbind", "ro"))],
    )
    assert rc == 0
    assert out.splitlines() == ["data", "refused"]
    assert not (shared / "g").exists()
