"""pallet run / ps / logs / rm through the real CLI, on the busybox image, under runc."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest

from pallet_cli import Pallet

pytestmark = [pytest.mark.root, pytest.mark.runtime, pytest.mark.overlay]


@pytest.mark.parametrize("network", ["private", "none", "host"])
def test_exit_codes_like_docker(pallet: Pallet, network: str) -> None:
    # private: the runtime's create + start; none and host: one runtime run
    def run(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return pallet("run", "--rm", "--network", network, *args, **kw)

    out = run("busybox", "sh", "-c", "echo hello; echo oops >&2; exit 3", check=False)
    assert (out.returncode, out.stdout, out.stderr) == (3, "hello\n", "oops\n")
    missing = run("busybox", "nope", check=False)
    assert missing.returncode == 127
    assert 'exec: "nope": executable file not found in $PATH' in missing.stderr
    assert run("busybox", "/etc/passwd", check=False).returncode == 126
    bad_workdir = run("-w", "/etc/passwd", "busybox", "true", check=False)
    assert bad_workdir.returncode == 125  # the runtime failed: pallet's own code, not the command's
    assert bad_workdir.stderr.splitlines()[-1].endswith("Not a directory")
    no_image = pallet("run", "--rm", "nosuchimage", check=False)
    assert no_image.returncode == 125 and "No such image" in no_image.stderr
    assert pallet("ps", "-aq").stdout == ""  # --rm left nothing


def test_entrypoint_cmd_env_user_workdir(pallet: Pallet) -> None:
    out = pallet(
        "run", "--rm", "-u", "nobody", "-w", "/tmp/work", "-e", "A=1", "--hostname", "box",
        "busybox", "sh", "-c", 'id -u; id -g; pwd; echo "$A $HOSTNAME $HOME"; hostname',
    ).stdout.splitlines()  # fmt: skip
    assert out == ["65534", "65534", "/tmp/work", "1 box /home", "box"]
    # --entrypoint replaces the image's and its CMD; trailing args become the command
    assert pallet("run", "--rm", "--entrypoint", "echo", "busybox", "a", "b").stdout == "a b\n"
    # the image's CMD (sh) runs when no command is given: it reads the script from stdin
    assert pallet(
        "run", "--rm", "-i", "busybox", input="echo from-stdin\n", check=False
    ).returncode in (0, 2)


def test_writable_layer_is_per_container(pallet: Pallet) -> None:
    pallet("run", "--name", "one", "busybox", "sh", "-c", "echo mine > /etc/marker")
    other = pallet("run", "--rm", "busybox", "cat", "/etc/marker", check=False)
    assert other.returncode == 1  # another container of the image does not see it
    pallet("rm", "one")
    assert pallet("run", "--rm", "busybox", "ls", "/etc/marker", check=False).returncode == 1


def test_detached_logs_ps_and_rm(pallet: Pallet) -> None:
    cid = pallet(
        "run", "-d", "--name", "web", "busybox", "sh", "-c", "echo started; sleep 60"
    ).stdout.strip()
    assert len(cid) == 64
    for _ in range(100):
        if "started" in pallet("logs", "web").stdout:
            break
        time.sleep(0.05)
    assert pallet("logs", "web").stdout == "started\n"
    lines = pallet("ps").stdout.splitlines()
    assert lines[0].split()[:2] == ["CONTAINER", "ID"]
    assert lines[1].startswith(cid[:12]) and lines[1].rstrip().endswith("web") and "Up" in lines[1]
    # a name in use is refused with 125 and creates nothing
    dup = pallet("run", "--name", "web", "busybox", "true", check=False)
    assert dup.returncode == 125 and 'name "/web" is already in use' in dup.stderr
    assert len(pallet("ps", "-aq").stdout.split()) == 1
    refused = pallet("rm", "web", check=False)
    assert refused.returncode == 1 and "running container" in refused.stderr
    assert pallet("rm", "-f", "web").stdout.strip() == "web"
    assert pallet("ps", "-aq").stdout == ""


def test_exited_container_listed_with_status(pallet: Pallet) -> None:
    pallet("run", "--name", "done", "busybox", "sh", "-c", "exit 7", check=False)
    assert pallet("ps", "-q").stdout == ""  # not running
    row = pallet("ps", "-a", "--filter", "status=exited").stdout.splitlines()[1]
    assert "Exited (7)" in row and row.rstrip().endswith("done")
    done_id = pallet("ps", "-aq", "--filter", "name=done").stdout.strip()
    assert done_id and pallet("ps", "-aq", "--filter", "ancestor=busybox").stdout.strip() == done_id
    assert pallet("ps", "-aq", "--filter", "ancestor=other:1").stdout == ""
    assert pallet("ps", "-aq", "--filter", "status=running").stdout == ""


def test_bad_volume_spec_is_125_and_creates_nothing(pallet: Pallet) -> None:
    for spec in ("bad name!:/x", "/tmp:relative", "/tmp:/x:rx", "a:b:c:d"):
        proc = pallet("run", "--rm", "-v", spec, "busybox", "true", check=False)
        assert proc.returncode == 125, spec
        assert proc.stderr.startswith("error: invalid"), proc.stderr
        assert len(proc.stderr.splitlines()) == 1
    assert pallet("ps", "-aq").stdout == ""
    assert pallet("volume", "ls", "-q").stdout == ""


def test_bind_mount_read_only(pallet: Pallet, tmp_path: object) -> None:
    from pathlib import Path

    host = Path(str(tmp_path)) / "data"
    host.mkdir()
    (host / "f").write_text("shared\n")
    out = pallet(
        "run",
        "--rm",
        "-v",
        f"{host}:/data:ro",
        "busybox",
        "sh",
        "-c",
        "cat /data/f; touch /data/g 2>/dev/null || echo ro",
    )
    assert out.stdout == "shared\nro\n"


def test_ps_format_templates_as_docker(pallet: Pallet) -> None:
    pallet("create", "--name", "fmt1", "busybox", "true")
    out = pallet("ps", "-a", "--format", "{{.Names}}: {{.State}} {{.Image}}").stdout
    assert out == "fmt1: created busybox\n"
    as_json = pallet("ps", "-a", "--format", "json").stdout
    assert '"Names": "fmt1"' in as_json
    bad = pallet("ps", "-a", "--format", "table {{.Names}}", check=False)
    assert bad.returncode != 0 and "table" in bad.stderr and "Traceback" not in bad.stderr
