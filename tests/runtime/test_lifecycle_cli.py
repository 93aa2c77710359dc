"""create/start/stop/kill/restart/wait/rename/exec/inspect/prune/logs through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pallet_cli import CLI_ENV, Pallet

pytestmark = [pytest.mark.root, pytest.mark.runtime, pytest.mark.overlay]

# A container that ignores SIGTERM: only SIGKILL ends it.
STUBBORN = ["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.1; done"]


def _wait_for_log(pallet: Pallet, name: str, text: str) -> None:
    for _ in range(100):
        if text in pallet("logs", name).stdout:
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in the logs of {name}")


def test_create_start_stop_timeout_wait_inspect(pallet: Pallet) -> None:
    cid = pallet("create", "--name", "stubborn", "busybox", *STUBBORN).stdout.strip()
    assert pallet("ps", "-a", "--filter", "status=created", "-q").stdout.strip() == cid[:12]
    assert pallet("start", "stubborn").stdout.strip() == "stubborn"
    doc = json.loads(pallet("inspect", "stubborn").stdout)[0]
    assert doc["Id"] == cid and doc["Name"] == "/stubborn" and doc["State"]["Running"]
    assert doc["State"]["Pid"] > 0 and doc["Config"]["Cmd"] == STUBBORN
    # stop -t 1: SIGTERM is ignored, so SIGKILL ends it: 137 as docker
    assert pallet("stop", "-t", "1", "stubborn").stdout.strip() == "stubborn"
    assert pallet("wait", "stubborn").stdout.strip() == "137"
    assert pallet("inspect", "-f", "{{.State.Status}}", "stubborn").stdout.strip() == "exited"
    # restart brings it back under a new monitor; rename follows it
    pallet("restart", "-t", "0", "stubborn")
    assert pallet("ps", "-q").stdout.strip() == cid[:12]
    pallet("rename", "stubborn", "renamed")
    assert pallet("ps", "--format", "json").stdout.count('"Names": "renamed"') == 1
    pallet("kill", "-s", "KILL", "renamed")
    assert pallet("wait", "renamed").stdout.strip() == "137"
    not_running = pallet("kill", "renamed", check=False)
    assert not_running.returncode == 1 and "is not running" in not_running.stderr
    assert pallet("container", "prune", "-f").stdout.splitlines()[:2] == [
        "Deleted Containers:",
        cid,
    ]
    assert pallet("ps", "-aq").stdout == ""
    missing = pallet("inspect", "renamed", check=False)
    assert missing.returncode == 1 and "renamed" in missing.stderr


def test_stop_signal_of_the_image_and_kill_signal(pallet: Pallet) -> None:
    handler = "trap 'echo got-$0; exit 5' {sig}; echo ready; while true; do sleep 0.1; done"
    # an image whose STOPSIGNAL is SIGUSR1: stop without -s sends that
    pallet("create", "--name", "base", "busybox", "true")
    pallet("commit", "-c", "STOPSIGNAL SIGUSR1", "base", "usr1-stop:1")
    pallet("run", "-d", "--name", "usr1", "usr1-stop:1", "sh", "-c", handler.format(sig="USR1"))
    _wait_for_log(pallet, "usr1", "ready")
    pallet("stop", "usr1")
    assert pallet("wait", "usr1").stdout.strip() == "5"
    pallet("run", "-d", "--name", "hup", "busybox", "sh", "-c", handler.format(sig="HUP"))
    _wait_for_log(pallet, "hup", "ready")
    for bad in ("BOGUS", "0", "RTMIN+99"):  # refused before anything is sent
        refused = pallet("kill", "-s", bad, "hup", check=False)
        assert (refused.returncode, refused.stderr) == (1, f"error: Invalid signal: {bad}\n")
    pallet("kill", "-s", "HUP", "hup")
    assert pallet("wait", "hup").stdout.strip() == "5"


def test_exec_env_user_workdir_detach_and_codes(pallet: Pallet) -> None:
    pallet("run", "-d", "--name", "box", "-e", "FROM_RUN=1", "busybox", "sleep", "60")
    out = pallet(
        "exec", "-u", "nobody", "-w", "/tmp", "-e", "X=2", "box",
        "sh", "-c", 'id -u; pwd; echo "$X $FROM_RUN"',
    ).stdout.splitlines()  # fmt: skip
    assert out == ["65534", "/tmp", "2 1"]
    # docker's groups: the user's own, none of the container user's (root is in wheel)
    assert pallet("exec", "-u", "nobody", "box", "id", "-G").stdout.split() == ["65534"]
    assert pallet("exec", "-e", "FROM_RUN=2", "box", "sh", "-c", "env | grep FROM_RUN").stdout == (
        "FROM_RUN=2\n"
    )  # replaced, not a second entry
    assert pallet("exec", "box", "sh", "-c", "exit 4", check=False).returncode == 4
    assert pallet("exec", "box", "nope", check=False).returncode == 127
    assert pallet("exec", "-i", "box", "cat", input="piped\n").stdout == "piped\n"
    pallet("exec", "-d", "box", "sh", "-c", "echo bg > /tmp/detached")
    for _ in range(50):
        if pallet("exec", "box", "cat", "/tmp/detached", check=False).stdout == "bg\n":
            break
        time.sleep(0.05)
    assert pallet("exec", "box", "cat", "/tmp/detached").stdout == "bg\n"
    pallet("rm", "-f", "box")
    gone = pallet("exec", "box", "true", check=False)
    assert gone.returncode != 0 and "No such container: box" in gone.stderr


def test_logs_streams_tail_timestamps_since_and_follow(pallet: Pallet) -> None:
    script = "echo one; echo two >&2; echo three; sleep 0.5; echo late"
    pallet("run", "-d", "--name", "talk", "busybox", "sh", "-c", script)
    follow = pallet("logs", "-f", "talk")  # returns when the container ends
    assert follow.stdout == "one\nthree\nlate\n" and follow.stderr == "two\n"
    assert pallet("logs", "--tail", "1", "talk").stdout == "late\n"
    stamped = pallet("logs", "-t", "talk").stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["one", "three", "late"]
    assert all(line[:4].isdigit() and line.split(" ")[0].endswith("Z") for line in stamped)
    assert pallet("logs", "--since", stamped[-1].split(" ")[0], "talk").stdout == "late\n"
    assert pallet("logs", "--since", "1h", "talk").stdout.count("\n") == 3
    assert pallet("logs", "--until", "1h", "talk").stdout == ""


def test_restart_policy_on_failure(pallet: Pallet) -> None:
    code = pallet(
        "run", "--restart", "on-failure:2", "--name", "flaky", "busybox",
        "sh", "-c", "echo run; exit 3", check=False,
    ).returncode  # fmt: skip
    assert code == 3
    doc = json.loads(pallet("inspect", "flaky").stdout)[0]
    assert doc["RestartCount"] == 2
    # always: a clean exit is restarted too, until stop, which it then stays
    pallet("run", "-d", "--restart", "always", "--name", "again", "busybox", "sh", "-c", "echo x")
    for _ in range(200):
        if pallet("logs", "again").stdout.count("x") >= 2:
            break
        time.sleep(0.05)
    assert pallet("logs", "again").stdout.count("x") >= 2
    # listed by ps without -a, running or waiting to restart (docker's "Restarting (0)")
    assert pallet("ps", "-q", "--filter", "name=again").stdout.strip() != ""
    pallet("stop", "again")
    restarts = json.loads(pallet("inspect", "again").stdout)[0]["RestartCount"]
    assert restarts >= 1 and pallet("ps", "-q").stdout == ""
    assert "Exited (0)" in pallet("ps", "-a", "--filter", "name=again").stdout
    time.sleep(0.5)  # longer than the next restart delay would be
    assert json.loads(pallet("inspect", "again").stdout)[0]["RestartCount"] == restarts
    conflict = pallet("run", "--rm", "--restart", "always", "busybox", "true", check=False)
    assert conflict.returncode == 125 and "Conflicting options" in conflict.stderr


def test_start_attach_interactive_and_run_i_with_piped_stdin(pallet: Pallet) -> None:
    piped = pallet("run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done",
                   input="line1\nline2\n")  # fmt: skip
    assert piped.stdout == "line1\nline2\ndone\n"
    assert pallet("run", "--rm", "busybox", "cat", input="not given\n").stdout == ""
    script = "read x; echo got-$x; echo err >&2; exit 4"
    pallet("create", "--name", "ai", "-i", "busybox", "sh", "-c", script)
    attached = pallet("start", "-a", "-i", "ai", input="hello\n", check=False)
    assert (attached.returncode, attached.stdout, attached.stderr) == (4, "got-hello\n", "err\n")
    again = pallet("start", "-a", "ai", input="not attached\n", check=False)  # no -i: no stdin
    assert (again.returncode, again.stdout) == (4, "got-\n")
    assert "Exited (4)" in pallet("ps", "-a").stdout


def test_start_attach_to_a_running_container_follows_it(pallet: Pallet) -> None:
    pallet("run", "-d", "--name", "bg", "busybox", "sh", "-c",
           "echo early; until [ -f /go ]; do echo tick; sleep 0.2; done; "
           "echo late; echo bye >&2; exit 6")  # fmt: skip
    _wait_for_log(pallet, "bg", "early")
    attach = subprocess.Popen(
        [sys.executable, "-m", "pallet", "--root", str(pallet.root), "start", "-a", "bg"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=CLI_ENV,
    )  # fmt: skip
    assert attach.stdout is not None
    assert attach.stdout.readline() == b"tick\n"  # attached: output from now on
    pallet("exec", "bg", "touch", "/go")
    out, err = attach.communicate(timeout=60)
    assert attach.returncode == 6  # its exit code; it was not started a second time
    assert out.endswith(b"late\n") and set(out.splitlines()) <= {b"tick", b"late"}
    assert err == b"bye\n"
    doc = json.loads(pallet("inspect", "bg").stdout)[0]
    assert (doc["State"]["Status"], doc["State"]["ExitCode"], doc["RestartCount"]) == (
        "exited", 6, 0,
    )  # fmt: skip
    assert pallet("logs", "bg").stdout.count("early") == 1


def test_rm_f_of_a_container_with_a_restart_policy(pallet: Pallet) -> None:
    cid = pallet("run", "-d", "--restart", "always", "busybox", "sleep", "60").stdout.strip()
    # one that exits at once is mostly waiting for its next start: rm -f cancels that too
    flapping = pallet("run", "-d", "--restart", "always", "busybox", "true").stdout.strip()
    for _ in range(100):
        if json.loads(pallet("inspect", flapping).stdout)[0]["RestartCount"] >= 1:
            break
        time.sleep(0.05)
    pallet("rm", "-f", cid, flapping)
    time.sleep(0.5)  # a monitor that restarted one would have done so by now
    assert pallet("ps", "-aq").stdout == ""
    for gone in (cid, flapping):
        assert not list(Path("/sys/fs/cgroup/pids/pallet").glob(f"{gone}*"))
    assert str(pallet.root) not in Path("/proc/self/mountinfo").read_text()
    monitors = [p for p in Path("/proc").glob("[0-9]*/cmdline") if _mentions(p, flapping)]
    assert monitors == []


def _mentions(cmdline: Path, text: str) -> bool:
    try:
        return text.encode() in cmdline.read_bytes()
    except OSError:
        return False
