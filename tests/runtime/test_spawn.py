"""pallet.runtime.spawn starts children as subprocess does (the run path's replacement)."""

from __future__ import annotations

import ast
import os
import signal
import sys
from pathlib import Path

import pytest

from pallet.runtime import spawn

SH = "/bin/sh"


def test_exit_codes_and_signals() -> None:
    assert spawn.run([SH, "-c", "exit 7"]) == 7
    assert spawn.run([SH, "-c", "kill -TERM $$"]) == -signal.SIGTERM


def test_streams_go_where_they_are_sent(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with open(out, "wb") as f:
        code = spawn.run([SH, "-c", "echo to-out; echo to-err >&2; cat"],
                         stdin=spawn.DEVNULL, stdout=f, stderr=f.fileno())  # fmt: skip
    assert code == 0
    assert out.read_bytes() == b"to-out\nto-err\n"  # cat read /dev/null: nothing more
    with open(out, "wb") as f:
        code = spawn.run([SH, "-c", "echo one; echo two >&2"], stdout=f, stderr=spawn.STDOUT)
    assert (code, out.read_bytes()) == (0, b"one\ntwo\n")


def test_only_stdio_and_passed_descriptors_reach_the_child() -> None:
    """Neither our close-on-exec descriptors nor inheritable ones we were given ourselves
    (a caller's pipe: it would see EOF only once the child ended) reach it."""
    passed_r, passed_w = os.pipe()
    private_r, private_w = os.pipe()
    leaked_r, leaked_w = os.pipe()
    os.set_inheritable(leaked_w, True)
    try:
        probe = (
            "import os, sys\n"
            "open_fds = sorted(int(n) for n in os.listdir('/proc/self/fd'))\n"
            "os.write(int(sys.argv[1]), repr(open_fds).encode())\n"
        )
        code = spawn.run([sys.executable, "-c", probe, str(passed_w)], pass_fds=(passed_w,))
        assert code == 0
        open_fds = ast.literal_eval(os.read(passed_r, 1000).decode())
        assert passed_w in open_fds
        assert private_w not in open_fds and leaked_w not in open_fds
        assert not os.get_inheritable(passed_w)  # left as it was found
    finally:
        for fd in (passed_r, passed_w, private_r, private_w, leaked_r, leaked_w):
            os.close(fd)


def test_sigpipe_is_back_at_its_default_in_the_child() -> None:
    # Python ignores SIGPIPE; a child that writes to a closed pipe must die of it
    r, w = os.pipe()
    os.close(r)
    try:
        code = spawn.run([SH, "-c", "while true; do echo x; done"], stdout=w)
    finally:
        os.close(w)
    assert code == -signal.SIGPIPE


def test_new_session_wait_timeout_and_kill() -> None:
    proc = spawn.spawn([SH, "-c", "sleep 30"], new_session=True)
    try:
        assert os.getsid(proc.pid) == proc.pid
        assert proc.poll() is None
        with pytest.raises(TimeoutError):
            proc.wait(0.05)
    finally:
        proc.kill()
    assert proc.wait() == -signal.SIGKILL
    assert proc.poll() == -signal.SIGKILL


def test_a_missing_program_raises() -> None:
    with pytest.raises(FileNotFoundError):
        spawn.spawn(["/nonexistent/program"])


def test_new_group_leaves_the_terminals_process_group() -> None:
    proc = spawn.spawn([SH, "-c", "sleep 30"], new_group=True)
    try:
        assert os.getpgid(proc.pid) == proc.pid != os.getpgid(0)
        assert os.getsid(proc.pid) == os.getsid(0)  # same session: only the group is its own
    finally:
        proc.kill()
        proc.wait()
