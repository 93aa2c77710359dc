"""Container logs in Docker's json-file shape: one JSON object per line of output,
``{"log": ..., "stream": "stdout"|"stderr", "time": RFC3339Nano}``, so ``logs`` can
tell the streams apart, show timestamps and filter by time."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pallet.errors import InvalidArgument

_MAX_LINE = 16 * 1024  # docker splits longer lines into partial entries of this size


def rfc3339nano(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


@dataclass(frozen=True)
class LogEntry:
    time: str
    stream: str
    data: bytes

    @property
    def epoch(self) -> float:
        return parse_rfc3339(self.time)


class LogWriter:
    """Copies the container's stdout/stderr pipes into the log file, one thread each
    (and, for a container in the foreground, on to the caller's own streams)."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def write(self, stream: str, data: bytes) -> None:
        entry = {
            "log": data.decode("utf-8", "surrogateescape"),
            "stream": stream,
            "time": rfc3339nano(time.time_ns()),
        }
        line = json.dumps(entry).encode() + b"\n"
        with self._lock:
            self._file.write(line)

    def pump(self, fd: int, stream: str, echo: int | None = None) -> None:
        """Log what arrives on ``fd`` until its end; with ``echo``, pass it on to that fd
        as it comes (not line by line: a prompt without a newline shows at once)."""
        thread = threading.Thread(target=self._copy, args=(fd, stream, echo), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _copy(self, fd: int, stream: str, echo: int | None) -> None:
        pending = b""
        try:
            while chunk := os.read(fd, 65536):
                if echo is not None:
                    echo = _echo(echo, chunk)
                pending += chunk
                while (cut := pending.find(b"\n")) >= 0 or len(pending) >= _MAX_LINE:
                    end = cut + 1 if 0 <= cut < _MAX_LINE else _MAX_LINE
                    self.write(stream, pending[:end])
                    pending = pending[end:]
        finally:
            if pending:
                self.write(stream, pending)
            os.close(fd)

    def close(self, timeout: float = 5.0) -> None:
        for thread in self._threads:
            thread.join(timeout)
        self._file.close()


def _echo(fd: int, data: bytes) -> int | None:
    """Write all of ``data`` to ``fd``; None once the reader is gone (the log goes on)."""
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        return None
    return fd


def read_entries(path: Path, offset: int = 0) -> tuple[list[LogEntry], int]:
    """Entries from ``offset`` on, and the offset after the last complete line."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    entries = []
    for line in data[:end].splitlines():
        try:
            doc = json.loads(line)
            entries.append(
                LogEntry(
                    str(doc["time"]),
                    str(doc["stream"]),
                    str(doc["log"]).encode("utf-8", "surrogateescape"),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue  # a torn or foreign line is skipped, not fatal
    return entries, offset + end


def parse_rfc3339(text: str) -> float:
    import datetime as dt

    base, _, frac = text.rstrip("Z").partition(".")
    when = dt.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    return when.timestamp() + (float("0." + frac) if frac.isdigit() else 0.0)


def parse_since(text: str, now: float | None = None) -> float:
    """``--since``/``--until``: a Unix timestamp, an RFC 3339 time or a duration ago (10m)."""
    now = time.time() if now is None else now
    value = text.strip()
    try:
        return float(value)
    except ValueError:
        pass
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in sorted(units, key=len, reverse=True):
        number = value[: -len(suffix)]
        if value.endswith(suffix) and number.replace(".", "", 1).isdigit():
            return now - float(number) * units[suffix]
    try:
        if "T" in value:
            if value.endswith("Z") or "+" not in value[10:]:
                return parse_rfc3339(value)
            import datetime as dt

            return dt.datetime.fromisoformat(value).timestamp()
        import datetime as dt

        return dt.datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        raise InvalidArgument(f"invalid value for --since: {text!r}") from None


def follow(path: Path, offset: int, still_running: object) -> Iterator[LogEntry]:
    """New entries as they are written, until ``still_running()`` says the container ended."""
    assert callable(still_running)
    while True:
        entries, offset = read_entries(path, offset)
        yield from entries
        if entries:
            continue
        if not still_running():
            entries, offset = read_entries(path, offset)
            yield from entries
            return
        time.sleep(0.1)
