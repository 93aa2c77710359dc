"""``RUN --mount=type=ssh`` with ``pallet build --ssh``: a real ssh-agent holding a key,
listed from inside the step by the host's own ``ssh-add`` (run there with its loader
and libraries from a bind mount, since busybox has no ssh client)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from build_kit import pallet_cli

from pallet.store import Store

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.runtime, pytest.mark.peer]

MakeContext = Callable[..., Path]


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """(agent socket, the fingerprint of the key it holds)."""
    if not all(shutil.which(t) for t in ("ssh-agent", "ssh-add", "ssh-keygen", "ldd")):
        pytest.skip("LOUD SKIP: openssh-client (ssh-agent, ssh-add, ssh-keygen) is not installed")
    work = tmp_path_factory.mktemp("ssh")
    sock = work / "agent.sock"
    proc = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while not sock.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("ssh-agent did not start")
        time.sleep(0.05)
    key = work / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pallet-test", "-f", str(key)],
        check=True,
    )
    env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
    subprocess.run(["ssh-add", "-q", str(key)], env=env, check=True, capture_output=True)
    listed = subprocess.run(
        ["ssh-add", "-l"], env=env, check=True, capture_output=True, text=True
    ).stdout
    yield sock, listed.split()[1]
    proc.terminate()
    proc.wait(10)


def _ssh_add_kit(dest: Path) -> str:
    """Copy ssh-add, its libraries and loader into ``dest``; the command running it."""
    dest.mkdir(parents=True)
    binary = shutil.which("ssh-add")
    assert binary is not None
    shutil.copy(binary, dest / "ssh-add")
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    loader = ""
    for line in out.splitlines():
        m = re.search(r"(/\S+)\s+\(0x", line)
        if m is None:
            continue
        path = Path(m.group(1))
        shutil.copy(path, dest / path.name)
        if "=>" not in line:
            loader = path.name
    assert loader, out
    return f"/t/{loader} --library-path /t /t/ssh-add"


def test_ssh_mount_forwards_the_agent(
    store: Store, agent: tuple[Path, str], make_context: MakeContext, tmp_path: Path
) -> None:
    sock, fingerprint = agent
    ctx = make_context({})
    ssh_add = _ssh_add_kit(ctx / "tools")
    (ctx / "Dockerfile").write_text(
        "FROM busybox\n"
        "RUN --mount=type=ssh --mount=type=bind,source=tools,target=/t \\\n"
        f"    echo $SSH_AUTH_SOCK > /out && {ssh_add} -l >> /out\n"
        "RUN --mount=type=ssh,id=work,target=/agent.sock,uid=12,mode=0640 \\\n"
        "    stat -c '%a %u %F' /agent.sock > /perm\n"
    )
    dest = tmp_path / "fs"
    built = pallet_cli(
        store.root, "build", "--progress", "plain", "--ssh", "default", "--ssh",
        f"work={sock}", "-o", f"type=local,dest={dest}", str(ctx),
        env={"SSH_AUTH_SOCK": str(sock)},
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    lines = (dest / "out").read_text().splitlines()
    assert lines[0] == "/run/buildkit/ssh_agent.0"  # BuildKit's default target and env
    assert fingerprint in lines[1] and "pallet-test" in lines[1]
    assert (dest / "perm").read_text() == "640 12 socket\n"
    # neither the socket nor its mount point reaches a layer
    assert not (dest / "agent.sock").exists() and not (dest / "run/buildkit").exists()


def test_required_agent_missing_fails_before_running(
    store: Store, make_context: MakeContext
) -> None:
    ctx = make_context({}, "FROM busybox\nRUN echo ran\nRUN --mount=type=ssh,required true\n")
    built = pallet_cli(store.root, "build", "--progress", "plain", str(ctx))
    assert built.returncode != 0
    assert "error: line 3: RUN needs ssh agent 'default': pass it with --ssh default" in (
        built.stderr
    )
    assert "ran" not in built.stderr


def test_ssh_flag_needs_an_agent_socket(
    store: Store, make_context: MakeContext, tmp_path: Path
) -> None:
    ctx = make_context({}, "FROM busybox\n")
    key = tmp_path / "id_key"
    key.write_text("not a socket\n")
    built = pallet_cli(store.root, "build", "--ssh", f"default={key}", str(ctx))
    assert built.returncode != 0
    assert f"{key} is not an ssh-agent socket" in built.stderr.strip().splitlines()[-1]
    unset = pallet_cli(store.root, "build", "--ssh", "default", str(ctx), env={"SSH_AUTH_SOCK": ""})
    assert unset.returncode != 0 and "SSH_AUTH_SOCK is not set" in unset.stderr
