"""Progress of blob transfers: rich progress bars on a terminal (bytes, speed, state per
layer), plain lines otherwise, nothing with ``-q``."""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Protocol, TextIO

from pallet.oci.descriptor import Descriptor

if TYPE_CHECKING:
    from rich.progress import TaskID

#: what a state is shown as, in bars and lines
STATE_TEXT = {
    "waiting": "Waiting",
    "downloading": "Downloading",
    "uploading": "Pushing",
    "exists": "Already exists",
    "mounted": "Mounted",
    "verified": "Verified",
    "pushed": "Pushed",
}


class Progress(Protocol):
    def add(self, desc: Descriptor) -> None: ...

    def advance(self, desc: Descriptor, amount: int) -> None: ...

    def state(self, desc: Descriptor, state: str) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    def add(self, desc: Descriptor) -> None:
        pass

    def advance(self, desc: Descriptor, amount: int) -> None:
        pass

    def state(self, desc: Descriptor, state: str) -> None:
        pass

    def close(self) -> None:
        pass


class LineProgress:
    """One line per blob state change, for logs and pipes (no byte counts)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self._lock = threading.Lock()

    def add(self, desc: Descriptor) -> None:
        pass

    def advance(self, desc: Descriptor, amount: int) -> None:
        pass

    def state(self, desc: Descriptor, state: str) -> None:
        if state == "waiting":
            return
        with self._lock:
            print(f"{desc.digest.short()}: {STATE_TEXT.get(state, state)}", file=self.out)
            self.out.flush()

    def close(self) -> None:
        pass


class BarProgress:
    """A rich progress bar per blob."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as RichProgress

        self._bars = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[state]}"),
            console=Console(file=sys.stderr),
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()
        self._bars.start()

    def add(self, desc: Descriptor) -> None:
        with self._lock:
            if desc.digest not in self._tasks:
                self._tasks[desc.digest] = self._bars.add_task(
                    desc.digest.short(), total=desc.size, state="Waiting"
                )

    def advance(self, desc: Descriptor, amount: int) -> None:
        task = self._tasks.get(desc.digest)
        if task is not None:
            self._bars.advance(task, amount)

    def state(self, desc: Descriptor, state: str) -> None:
        self.add(desc)
        task = self._tasks[desc.digest]
        done = state in ("exists", "mounted", "verified", "pushed")
        if done:
            self._bars.update(task, completed=desc.size, state=STATE_TEXT[state])
        else:
            self._bars.update(task, state=STATE_TEXT.get(state, state))

    def close(self) -> None:
        self._bars.stop()


def make_progress(quiet: bool, out: TextIO | None = None) -> Progress:
    """Bars on a terminal, lines otherwise, nothing when ``quiet``."""
    if quiet:
        return NoProgress()
    stream = out or sys.stderr
    if stream.isatty():
        return BarProgress()
    return LineProgress(stream)
