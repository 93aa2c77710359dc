"""Detached containers with a terminal: ``run -dt``, ``run -dit``, ``create -t`` + ``start``.
The monitor holds the pty master; the log gets the terminal's output as one stream."""

from __future__ import annotations

import fcntl
import json
import os
import struct
import subprocess
import sys
import termios

import pytest

from pallet_cli import CLI_ENV, Pallet
from pty_reader import read_until

pytestmark = [pytest.mark.root, pytest.mark.runtime, pytest.mark.overlay]


def _log_streams(pallet: Pallet, name: str) -> set[str]:
    cid = pallet("inspect", "-f", "{{.Id}}", name).stdout.strip()
    log = pallet.root / "containers" / cid / "container.log"
    return {json.loads(line)["stream"] for line in log.read_text().splitlines()}


def test_run_dt_logs_the_terminal_output(pallet: Pallet) -> None:
    cid = pallet("run", "-dt", "--name", "t1", "busybox", "sh", "-c", "tty; echo hi; echo err >&2")
    assert pallet("wait", cid.stdout.strip()).stdout.strip() == "0"
    logs = pallet("logs", "t1")
    # a terminal: its own pts, CRLF line ends, stderr merged into the one stream
    assert logs.stdout == "/dev/pts/0\r\nhi\r\nerr\r\n"
    assert logs.stderr == ""
    assert _log_streams(pallet, "t1") == {"stdout"}
    assert json.loads(pallet("inspect", "t1").stdout)[0]["Config"]["Tty"] is True


def test_run_dit_shell_stays_up_exec_and_stop_work(pallet: Pallet) -> None:
    pallet("run", "-dit", "--name", "sh1", "busybox", "sh")
    out = pallet("exec", "sh1", "sh", "-c", "readlink /proc/1/fd/0; echo in-$((1+1))")
    assert out.stdout == "/dev/pts/0\nin-2\n"  # the shell's stdin is its terminal
    assert pallet("inspect", "-f", "{{.State.Status}}", "sh1").stdout.strip() == "running"
    pallet("stop", "-t", "1", "sh1")
    state = json.loads(pallet("inspect", "sh1").stdout)[0]["State"]
    # sh as pid 1 ignores SIGTERM, as with docker
    assert (state["Status"], state["ExitCode"]) == ("exited", 137)


def test_create_t_then_start(pallet: Pallet) -> None:
    pallet("create", "-t", "--name", "c1", "busybox", "sh", "-c", "tty; echo created")
    pallet("start", "c1")
    assert pallet("wait", "c1").stdout.strip() == "0"
    assert pallet("logs", "c1").stdout == "/dev/pts/0\r\ncreated\r\n"
    pallet("start", "c1")  # a second run gets a terminal again
    assert pallet("wait", "c1").stdout.strip() == "0"
    assert pallet("logs", "c1").stdout == "/dev/pts/0\r\ncreated\r\n" * 2


def test_run_d_without_t_has_no_terminal(pallet: Pallet) -> None:
    pallet("run", "-d", "--name", "n1", "busybox", "sh", "-c", "tty; true")
    pallet("wait", "n1")
    assert pallet("logs", "n1").stdout == "not a tty\n"


def _attach(pallet: Pallet, name: str) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 27, 93, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pallet", "--root", str(pallet.root), "attach", name],
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True, env=CLI_ENV,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )  # fmt: skip
    os.close(slave)
    return proc, master


def test_attach_to_a_dit_shell_then_detach_and_exit(pallet: Pallet) -> None:
    pallet("run", "-dit", "--name", "at1", "busybox", "sh")
    proc, master = _attach(pallet, "at1")
    try:
        # $((..)) marks the output: the echoed typed line shows it unexpanded
        os.write(master, b"stty size; echo at-$((1+1))\r")
        out = read_until(master, b"at-2\r\n").replace(b"\r", b"")
        assert b"27 93\n" in out  # attach gave the container our window size
        os.write(master, b"\x10\x11")  # Ctrl-P Ctrl-Q: detach, the shell runs on
        read_until(master, b"read escape sequence")
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert pallet("inspect", "-f", "{{.State.Status}}", "at1").stdout.strip() == "running"
    proc, master = _attach(pallet, "at1")
    try:
        os.write(master, b"exit 5\r")
        assert proc.wait(30) == 5  # the container's exit code
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert b"at-2" in pallet("logs", "at1").stdout.encode()  # the log has it all


def test_attach_refuses_a_stopped_container(pallet: Pallet) -> None:
    pallet("create", "-t", "--name", "st1", "busybox", "sh")
    proc = pallet("attach", "st1", check=False)
    assert proc.returncode != 0
    assert "You cannot attach to a stopped container" in proc.stderr
