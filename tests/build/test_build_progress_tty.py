"""``--progress tty``: BuildKit's live view, checked on the screen a user would see.

The unit tests drive :class:`Progress` into a rich console that records to a string with a
fixed size and a fake clock, and replay what was written through a small terminal
emulator; the CLI tests run ``pallet build`` with its stderr on a pseudo-terminal.
"""

from __future__ import annotations

import fcntl
import io
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from rich.console import Console

from pallet.build.progress import Progress
from pallet.store import Store

MakeContext = Callable[..., Path]

_TOKEN = re.compile(r"\x1b\[(\??)([0-9;]*)([A-Za-z])|(\x1b)|(.)", re.S)


class Screen:
    """Just enough of a VT100 for what a live display writes: text, CR, LF, cursor up and
    down, erase in line, SGR (ignored) and cursor show/hide. Anything else fails the test,
    so an escape sequence that leaks from a build's output cannot go unnoticed."""

    def __init__(self) -> None:
        self.rows: list[list[str]] = [[]]
        self.row = 0
        self.col = 0
        self.cursor_visible = True

    def feed(self, data: str) -> Screen:
        for m in _TOKEN.finditer(data):
            private, params, final, bare_escape, char = m.groups()
            if bare_escape:
                raise AssertionError(f"unexpected escape sequence at {data[m.start() :][:12]!r}")
            if final:
                self._control(private, params, final)
            else:
                self._char(char)
        return self

    def _char(self, char: str) -> None:
        if char == "\r":
            self.col = 0
        elif char == "\n":  # as a tty's line discipline passes it (ONLCR): CR LF
            self.row += 1
            self.col = 0
            while len(self.rows) <= self.row:
                self.rows.append([])
        elif ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0:
            raise AssertionError(f"control character {char!r} reached the terminal")
        else:
            line = self.rows[self.row]
            line.extend(" " * (self.col + 1 - len(line)))
            line[self.col] = char
            self.col += 1

    def _control(self, private: str, params: str, final: str) -> None:
        n = int(params) if params.isdigit() else None
        if private == "?" and params == "25" and final in "hl":
            self.cursor_visible = final == "h"
        elif final == "m" and not private:
            pass  # colours and dim: not part of the text
        elif final == "A":
            self.row = max(0, self.row - (n or 1))
        elif final == "B":
            self.row += n or 1
            while len(self.rows) <= self.row:
                self.rows.append([])
        elif final == "K":
            line = self.rows[self.row]
            if n == 2:
                line.clear()
            else:
                del line[self.col :]
        else:
            raise AssertionError(f"unexpected control sequence ESC[{private}{params}{final}")

    def lines(self) -> list[str]:
        text = ["".join(row).rstrip() for row in self.rows]
        while text and not text[-1]:
            text.pop()
        return text

    def text(self) -> str:
        return "\n".join(self.lines())


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class View:
    """A tty Progress on a recording console of a fixed size, with a fake clock."""

    def __init__(self, width: int, height: int) -> None:
        self.out = io.StringIO()
        console = Console(
            file=self.out,
            force_terminal=True,
            width=width,
            height=height,
            color_system="standard",
            highlight=False,
        )
        self.clock = Clock()
        self.progress = Progress("tty", console=console, clock=self.clock)

    def screen(self) -> Screen:
        """The terminal after a redraw."""
        self.progress.refresh()
        return Screen().feed(self.out.getvalue())

    def summary(self, error: BaseException | None = None) -> Screen:
        """The terminal once the view is closed."""
        self.progress.close(error)
        return Screen().feed(self.out.getvalue())


@contextmanager
def live_progress(width: int = 72, height: int = 24) -> Iterator[View]:
    view = View(width, height)
    try:
        yield view
    finally:
        view.progress.close()


def _steps_with_tails(lines: list[str]) -> dict[str, list[str]]:
    """Each step line (without its duration) -> the output lines shown under it."""
    steps: dict[str, list[str]] = {}
    current: list[str] = []
    for line in lines[1:]:
        if line.startswith("=> => # "):
            current.append(line.removeprefix("=> => # "))
        else:
            current = steps.setdefault(re.sub(r"\s+\d+\.\ds$", "", line), [])
    return steps


def test_header_counts_steps_with_durations_cached_and_finished() -> None:
    with live_progress() as view:
        base = view.progress.vertex("[stage-0 1/3] FROM busybox")
        view.progress.done(base)
        copy = view.progress.vertex("[stage-0 2/3] COPY a.txt /a.txt")
        view.progress.cached(copy)
        run = view.progress.vertex("[stage-0 3/3] RUN make")
        view.clock.now += 3.25
        lines = view.screen().lines()
        assert lines[0] == "[+] Building 3.2s (2/3)"
        assert lines[1:] == [
            "=> [stage-0 1/3] FROM busybox".ljust(68) + "0.0s",
            "=> CACHED [stage-0 2/3] COPY a.txt /a.txt".ljust(68) + "0.0s",
            "=> [stage-0 3/3] RUN make".ljust(68) + "3.2s",  # running: time so far
        ]
        view.clock.now += 1.0
        view.progress.done(run)
        final = view.summary()
    assert final.lines()[0] == "[+] Building 4.2s (3/3) FINISHED"
    assert final.lines()[-1] == "=> [stage-0 3/3] RUN make".ljust(68) + "4.2s"
    assert final.cursor_visible


def test_running_step_shows_the_last_lines_dimmed_and_drops_them_when_done() -> None:
    with live_progress() as view:
        run = view.progress.vertex("[stage-0 2/2] RUN for i in $(seq 10); do echo line-$i; done")
        for i in range(1, 11):
            view.progress.log(run, f"line-{i}")
        view.clock.now += 1
        running = _steps_with_tails(view.screen().lines())
        title = "=> [stage-0 2/2] RUN for i in $(seq 10); do echo line-$i; done"
        assert running == {title: [f"line-{i}" for i in range(5, 11)]}
        assert re.search(r"\x1b\[2m=> => # line-10", view.out.getvalue())  # dimmed
        view.progress.done(run)
        assert _steps_with_tails(view.screen().lines()) == {title: []}


def test_failed_step_keeps_its_last_lines_and_the_summary_shows_the_error() -> None:
    with live_progress() as view:
        ok = view.progress.vertex("[stage-0 2/3] RUN echo fine")
        view.progress.log(ok, "fine")
        view.progress.done(ok)
        bad = view.progress.vertex("[stage-0 3/3] RUN ./configure")
        for line in ("checking for cc... no", "configure: error: no C compiler"):
            view.progress.log(bad, line)
        view.clock.now += 0.5
        view.progress.error(bad, "process '/bin/sh -c ./configure' did not complete: exit code: 1")
        final = view.summary(RuntimeError("the build failed"))
    assert final.lines()[0] == "[+] Building 0.5s (2/2)"  # not FINISHED
    assert _steps_with_tails(final.lines()) == {
        "=> [stage-0 2/3] RUN echo fine": [],
        "=> ERROR [stage-0 3/3] RUN ./configure": [
            "checking for cc... no",
            "configure: error: no C compiler",
        ],
    }
    assert final.cursor_visible


def test_parallel_stages_interleave_and_each_tail_stays_under_its_step() -> None:
    with live_progress(height=40) as view:
        started = threading.Barrier(3)
        logged = threading.Barrier(3)
        finish = threading.Event()

        def stage(name: str) -> None:
            number = view.progress.vertex(f"[{name} 2/2] RUN work")
            started.wait()
            for i in range(200):
                view.progress.log(number, f"{name}-{i}")
            logged.wait()
            finish.wait()
            view.progress.done(number)

        threads = [threading.Thread(target=stage, args=(n,)) for n in ("one", "two")]
        for thread in threads:
            thread.start()
        started.wait()
        logged.wait()
        shown = _steps_with_tails(view.screen().lines())
        finish.set()
        for thread in threads:
            thread.join()
        final = view.summary()
    assert {title.split()[1].lstrip("[") for title in shown} == {"one", "two"}
    for title, tail in shown.items():
        name = title.split()[1].lstrip("[")
        assert tail == [f"{name}-{i}" for i in range(194, 200)]
    assert final.lines()[0] == "[+] Building 0.0s (2/2) FINISHED"


def test_program_output_cannot_move_the_cursor_or_break_the_view() -> None:
    with live_progress(width=40) as view:
        run = view.progress.vertex("[stage-0 2/2] RUN \x1b[2Jevil")
        view.progress.log(run, "\x1b[2J\x1b[Hcleared?\x07")
        view.progress.log(run, "downloading 10%\rdownloading 100%\r\n")
        view.progress.log(run, "tab\there " + "x" * 100)
        lines = view.screen().lines()  # Screen fails on any escape it does not expect
    assert lines[1].startswith("=> [stage-0 2/2] RUN evil")
    assert lines[2:] == [
        "=> => # cleared?",
        "=> => # downloading 100%",
        ("=> => # tab     here " + "x" * 100)[:40],
    ]
    assert all(len(line) <= 40 for line in lines)


def test_a_short_terminal_keeps_the_running_step_and_the_summary_keeps_all() -> None:
    with live_progress(height=8) as view:
        for i in range(10):
            view.progress.done(view.progress.vertex(f"[stage-0 {i + 1}/12] COPY f{i} /"))
        run = view.progress.vertex("[stage-0 12/12] RUN long")
        for i in range(8):
            view.progress.log(run, f"out-{i}")
        lines = view.screen().lines()
        assert lines[0] == "[+] Building 0.0s (10/11)"
        # a row to spare so the display never scrolls: finished steps leave, then the
        # running step's oldest lines
        assert lines[1:] == [
            "=> [stage-0 12/12] RUN long".ljust(68) + "0.0s",
            *(f"=> => # out-{i}" for i in range(3, 8)),
        ]
        view.progress.done(run)
        final = view.summary()
    assert [line.split()[2] for line in final.lines()[1:]] == [
        *(f"{i + 1}/12]" for i in range(10)),
        "12/12]",
    ]


def test_ctrl_c_leaves_a_summary_with_the_open_steps_cancelled() -> None:
    with live_progress() as view:
        one = view.progress.vertex("[one 2/2] RUN sleep 60")
        two = view.progress.vertex("[two 2/2] RUN sleep 60")
        view.progress.error(two, "cancelled")  # the runner stopped it
        view.progress.log(one, "still here")
        final = view.summary(KeyboardInterrupt())
    assert final.lines()[0] == "[+] Building 0.0s (2/2)"
    assert _steps_with_tails(final.lines()) == {
        "=> CANCELED [one 2/2] RUN sleep 60": [],
        "=> CANCELED [two 2/2] RUN sleep 60": [],
    }
    assert final.cursor_visible


def test_a_note_goes_above_the_view() -> None:
    with live_progress() as view:
        view.progress.vertex("[stage-0 2/2] RUN make")
        view.progress.note("pushing demo:1 \x1b[2J")
        lines = view.screen().lines()
    assert lines[0] == "pushing demo:1"
    assert lines[1] == "[+] Building 0.0s (0/1)"


def test_tty_mode_on_a_stream_that_is_not_a_terminal_prints_lines() -> None:
    out = io.StringIO()
    with Progress("tty", out, clock=Clock()) as progress:
        progress.done(progress.vertex("[stage-0 1/1] FROM busybox"))
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())
    assert plain.splitlines() == ["#1 [stage-0 1/1] FROM busybox", "#1 DONE 0.0s"]


# -- the real CLI on a pseudo-terminal ----------------------------------------------


def _build_on_pty(
    root: Path, ctx: Path, interrupt_when: str | None = None
) -> tuple[int, Screen, str]:
    """``pallet build --progress tty CTX`` with stderr on a 100x30 pseudo-terminal:
    (exit code, the terminal's screen at the end, stdout). With ``interrupt_when``,
    SIGINT as soon as that text is drawn."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pallet", "--root", str(root), "build", "--progress=tty", str(ctx)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    raw = b""
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal is gone
                break
            if not data:
                break
            raw += data
            # on the raw bytes: the last read may end inside an escape sequence
            if interrupt_when and interrupt_when.encode() in raw:
                proc.send_signal(signal.SIGINT)
                interrupt_when = None
        else:
            proc.kill()
            pytest.fail("pallet build did not finish")
        assert proc.stdout is not None
        stdout = proc.stdout.read().decode()
        code = proc.wait(timeout=60)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, Screen().feed(raw.decode()), stdout


CLI_DOCKERFILE = """\
FROM busybox
RUN for i in 1 2 3 4 5 6 7 8 9; do echo "line $i"; done
COPY a.txt /a.txt
"""


@pytest.mark.root
@pytest.mark.overlay
@pytest.mark.runtime
def test_cli_tty_success_leaves_the_summary(store: Store, make_context: MakeContext) -> None:
    ctx = make_context({"a.txt": "a\n"}, CLI_DOCKERFILE)
    code, screen, stdout = _build_on_pty(store.root, ctx)
    assert code == 0, screen.text()
    assert stdout.strip().startswith("sha256:")
    lines = screen.lines()
    assert re.fullmatch(r"\[\+\] Building \d+\.\ds \(3/3\) FINISHED", lines[0]), lines
    steps = _steps_with_tails(lines)
    assert steps == {
        "=> [stage-0 1/3] FROM busybox": [],
        '=> [stage-0 2/3] RUN /bin/sh -c for i in 1 2 3 4 5 6 7 8 9; do echo "line $i"; done': [],
        "=> [stage-0 3/3] COPY a.txt /a.txt": [],
    }
    # (the tail while a RUN runs through the CLI: the Ctrl-C test waits for it)
    assert "Traceback" not in screen.text()
    assert screen.cursor_visible

    again, screen, _ = _build_on_pty(store.root, ctx)
    assert again == 0, screen.text()
    assert "=> CACHED [stage-0 2/3] RUN /bin/sh -c for i in" in screen.text()


@pytest.mark.root
@pytest.mark.overlay
@pytest.mark.runtime
def test_cli_tty_failure_shows_the_step_its_output_and_the_error(
    store: Store, make_context: MakeContext
) -> None:
    ctx = make_context({}, "FROM busybox\nRUN echo first; echo last-words; exit 3\n")
    code, screen, stdout = _build_on_pty(store.root, ctx)
    assert code != 0 and stdout == ""
    lines = screen.lines()
    assert re.fullmatch(r"\[\+\] Building \d+\.\ds \(2/2\)", lines[0]), lines
    steps = _steps_with_tails(lines)
    failed = "=> ERROR [stage-0 2/2] RUN /bin/sh -c echo first; echo last-words; exit 3"
    assert steps[failed] == ["first", "last-words"]
    assert any(line.startswith("error: ") and "exit code: 3" in line for line in lines)
    assert "Traceback" not in screen.text()
    assert screen.cursor_visible


@pytest.mark.root
@pytest.mark.overlay
@pytest.mark.runtime
def test_cli_tty_ctrl_c_stops_the_view_and_restores_the_terminal(
    store: Store, make_context: MakeContext
) -> None:
    ctx = make_context({}, "FROM busybox\nRUN echo started; sleep 60\n")
    code, screen, _ = _build_on_pty(store.root, ctx, interrupt_when="=> => # started")
    assert code == 130, screen.text()
    text = screen.text()
    assert "=> CANCELED [stage-0 2/2] RUN /bin/sh -c echo started; sleep 60" in text
    assert "error: interrupted" in text
    assert "Traceback" not in text
    assert screen.cursor_visible
