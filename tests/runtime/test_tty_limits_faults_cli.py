"""-it through a pseudo-terminal, cgroup limits seen from inside, and faults: pallet
SIGKILLed while its container runs, rm -f leaving no mount, cgroup or process behind."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from pallet_cli import Pallet
from pty_reader import read_until

pytestmark = [pytest.mark.root, pytest.mark.runtime, pytest.mark.overlay]


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def test_run_it_through_a_pty(pallet: Pallet) -> None:
    master, slave = os.openpty()
    _set_size(slave, 33, 101)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pallet", "--root", str(pallet.root), "run", "--rm", "-it",
         "busybox", "sh"],
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )  # fmt: skip
    os.close(slave)
    try:
        read_until(master, b"# ")
        # $((..)) marks the end of the output: the typed line shows it unexpanded
        os.write(master, b"stty size; tty; echo end-$((40+2))\r")
        out = read_until(master, b"end-42").replace(b"\r", b"")
        assert b"33 101\n/dev/pts/0\n" in out  # our size, a real terminal
        os.write(master, b"sleep 30\r")
        read_until(master, b"sleep 30")
        time.sleep(0.5)  # let the shell start it
        os.write(master, b"\x03")  # Ctrl-C interrupts the sleep, not pallet
        read_until(master, b"# ")
        _set_size(master, 40, 120)  # the window grows: the container follows
        time.sleep(0.2)
        os.write(master, b"stty size; echo $TERM; echo end-$((1+1))\r")
        out = read_until(master, b"end-2")
        if b"# " not in out.split(b"end-2", 1)[1]:
            # the prompt: the shell reads its line again. A Ctrl-D typed before that meets
            # the canonical line discipline, and the switch to raw mode drops it.
            read_until(master, b"# ")
        assert b"40 120\nxterm\n" in out.replace(b"\r", b"")
        os.write(master, b"\x04")  # Ctrl-D at the prompt ends the shell: exit 0
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert pallet("ps", "-aq").stdout == ""


def test_limits_visible_inside_and_in_stats(pallet: Pallet) -> None:
    script = (
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
        "/sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/pids/pids.max"
    )
    out = pallet("run", "--rm", "-m", "64m", "--cpus", "0.5", "--pids-limit", "50",
                 "busybox", "sh", "-c", script).stdout.split()  # fmt: skip
    assert out == [str(64 << 20), "50000", "100000", "50"]
    fork_bomb = "for i in $(seq 20); do sleep 5 & done 2>&1 | grep -c 'fork' || true"
    capped = pallet("run", "--rm", "--pids-limit", "5", "busybox", "sh", "-c", fork_bomb)
    assert int(capped.stdout.strip() or "0") >= 1  # forks beyond the limit fail
    # traffic on its own interface (slirp's gateway answers the ping): NET I/O counts it
    pallet("run", "-d", "--name", "busy", "-m", "32m", "busybox", "sh", "-c",
           "ping -c 1 -W 2 10.0.2.2 >/dev/null; echo pinged; exec sleep 60")  # fmt: skip
    for _ in range(100):
        if "pinged" in pallet("logs", "busy").stdout:
            break
        time.sleep(0.05)
    stats = json.loads(pallet("stats", "--no-stream", "--format", "json", "busy").stdout)
    assert stats["Name"] == "busy" and stats["PIDs"] == "1"
    assert stats["MemUsage"].endswith("/ 32MiB")
    received, sent = stats["NetIO"].split(" / ")
    assert received != "0B" and sent != "0B", stats["NetIO"]
    assert re.fullmatch(r"[0-9.]+[kMGT]?B / [0-9.]+[kMGT]?B", stats["BlockIO"]), stats["BlockIO"]
    table = pallet("stats", "--no-stream", "busy").stdout.splitlines()
    assert "NET I/O" in table[0] and "BLOCK I/O" in table[0]
    assert table[1].count(" / ") == 3  # memory, network, block I/O


def test_pallet_sigkilled_then_ps_and_rm_f_clean_up(pallet: Pallet) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pallet", "--root", str(pallet.root), "run", "--name", "orphan",
         "-v", "vol:/data", "busybox", "sleep", "60"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(200):
        if pallet("ps", "-q", "--filter", "name=orphan").stdout.strip():
            break
        time.sleep(0.05)
    doc = json.loads(pallet("inspect", "orphan").stdout)[0]
    pid, cid = doc["State"]["Pid"], doc["Id"]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # another pallet process still sees it, running, with the truth from the runtime
    row = pallet("ps", "-a", "--filter", "name=orphan").stdout.splitlines()[1]
    assert "Up" in row
    assert pallet("rm", "-f", "orphan").stdout.strip() == "orphan"
    assert pallet("ps", "-aq").stdout == ""
    assert not Path(f"/proc/{pid}").exists() or _zombie(pid)
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(pallet.root) not in mounts and cid not in mounts
    assert not any(Path("/sys/fs/cgroup").glob(f"*/pallet/{cid}"))
    assert not any(Path("/run/pallet").glob(f"*/{cid[:16]}.slirp"))  # slirp4netns' socket
    assert (pallet.root / "volumes" / "vol" / "_data").is_dir()  # named volumes stay


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True


def test_no_stale_mounts_cgroups_or_processes(pallet: Pallet) -> None:
    """After create/run/rm cycles, nothing of this store is left on the host."""
    pallet("create", "--name", "c1", "busybox", "true")
    pallet("run", "-d", "--name", "c2", "busybox", "sleep", "60")
    pallet("run", "--name", "c3", "busybox", "true")
    ids = pallet("ps", "-aq", "--no-trunc").stdout.split()
    assert len(ids) == 3
    pallet("rm", "-f", "c1", "c2", "c3")
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(pallet.root) not in mounts
    for cid in ids:
        assert not any(Path("/sys/fs/cgroup").glob(f"*/pallet/{cid}")), cid
    ours = []
    for proc_dir in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc_dir / "cmdline").read_bytes()
        except OSError:
            continue
        if str(pallet.root).encode() in cmdline or any(c.encode() in cmdline for c in ids):
            ours.append(cmdline)
    assert ours == []


@pytest.mark.parametrize("network", ["private", "none"])
def test_signals_to_pallet_run_reach_the_container_and_init(pallet: Pallet, network: str) -> None:
    # private: create + start with pallet forwarding; none: one runtime run relaying them
    proc = subprocess.Popen(
        [sys.executable, "-m", "pallet", "--root", str(pallet.root), "run", "--name", "sig",
         "--network", network, "busybox", "sh", "-c",
         "trap 'echo got-term; exit 9' TERM; trap 'echo got-int' INT; echo up; "
         "while true; do sleep 0.1; done"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"up\n"  # forwarding is set up before start
    running = [line for line in pallet("ps").stdout.splitlines() if line.endswith(" sig")]
    assert len(running) == 1 and " Up " in running[0]  # seen from another process meanwhile
    proc.send_signal(signal.SIGINT)
    assert proc.stdout.readline() == b"got-int\n"  # once: relayed by one process only
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    finally:
        pallet("rm", "-f", "sig", check=False)  # nothing left if forwarding failed
    assert out == b"got-term\n" and proc.returncode == 9
    # --init: a small init is pid 1 and the command runs under it
    out = pallet(
        "run", "--rm", "--init", "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"
    )
    assert out.stdout.startswith("/sbin/pallet-init -- sh -c")


def test_exec_it_through_a_pty(pallet: Pallet) -> None:
    pallet("run", "-d", "--name", "box", "busybox", "sleep", "60")
    master, slave = os.openpty()
    _set_size(slave, 21, 77)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pallet", "--root", str(pallet.root), "exec", "-it", "-e",
         "PS1=exec# ", "box", "sh"],
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )  # fmt: skip
    os.close(slave)
    try:
        read_until(master, b"exec# ")
        # $((..)) marks the end of the output: the typed line shows it unexpanded
        os.write(master, b"stty size; tty; echo end-$((40+2))\r")
        out = read_until(master, b"end-42").replace(b"\r", b"")
        assert b"21 77\n/dev/pts/" in out  # our window size, a terminal of its own
        os.write(master, b"sleep 30\r")
        read_until(master, b"sleep 30")
        time.sleep(0.5)  # let the shell start it
        os.write(master, b"\x03")  # Ctrl-C reaches the exec'd shell's foreground job
        read_until(master, b"exec# ")
        _set_size(master, 30, 90)
        time.sleep(0.2)
        os.write(master, b"stty size; echo end-$((1+1))\r")
        assert b"30 90\n" in read_until(master, b"end-2").replace(b"\r", b"")
        os.write(master, b"exit 3\r")
        assert proc.wait(30) == 3  # the exec'd process's code
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert pallet("inspect", "-f", "{{.State.Status}}", "box").stdout.strip() == "running"
