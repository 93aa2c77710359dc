"""A container run in the foreground keeps its output in its log, as docker's does: the
caller sees it live, each stream on its own, and ``pallet logs`` shows it afterwards."""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import sys
import termios
import time

import pytest

from pallet_cli import CLI_ENV, Pallet

pytestmark = [pytest.mark.root, pytest.mark.runtime, pytest.mark.overlay]


def test_stdout_and_stderr_reach_the_caller_and_the_log_apart(pallet: Pallet) -> None:
    script = "echo out-1; echo err-1 >&2; printf 'no newline'; exit 4"
    run = pallet("run", "--name", "fg", "busybox", "sh", "-c", script, check=False)
    assert (run.returncode, run.stdout, run.stderr) == (4, "out-1\nno newline", "err-1\n")
    logs = pallet("logs", "fg")
    assert (logs.stdout, logs.stderr) == ("out-1\nno newline", "err-1\n")
    # a second run appends, as a restarted container's log does
    assert pallet("start", "-a", "fg", check=False).stdout == "out-1\nno newline"
    assert pallet("logs", "fg").stdout == "out-1\nno newline" * 2


def test_interactive_input_and_its_output_are_logged(pallet: Pallet) -> None:
    run = pallet("run", "-i", "--name", "cat", "busybox", "cat", input="typed line\n")
    assert run.stdout == "typed line\n"
    assert pallet("logs", "cat").stdout == "typed line\n"


def test_a_removed_container_leaves_no_log_behind(pallet: Pallet) -> None:
    run = pallet("run", "--rm", "busybox", "sh", "-c", "echo gone; echo away >&2")
    assert (run.stdout, run.stderr) == ("gone\n", "away\n")
    assert pallet("ps", "-aq").stdout == ""
    assert not any((pallet.root / "containers").iterdir())


def test_tty_output_is_logged_through_a_pty(pallet: Pallet) -> None:
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pallet", "--root", str(pallet.root), "run", "-t", "--name",
         "tty", "busybox", "sh", "-c", "tty; echo done-$((40+2)); exit 3"],
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True, env=CLI_ENV,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )  # fmt: skip
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and b"done-42" not in seen:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
        assert proc.wait(30) == 3
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    # live, on the caller's terminal (whose line discipline, put back by the runtime as it
    # exits, may double a CR in the last lines)
    assert b"/dev/pts/0\ndone-42\n" in seen.replace(b"\r", b"")
    logs = pallet("logs", "tty")  # the container's terminal output, as it was
    assert "/dev/pts/0\r\ndone-42\r\n" in logs.stdout and logs.stderr == ""
