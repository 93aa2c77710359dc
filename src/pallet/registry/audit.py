"""The audit log: one JSON line per write and per denied request.

Fields: time, user, address, action, repository, reference, digest, outcome. Lines are
appended with a single ``write`` on an ``O_APPEND`` descriptor, so concurrent writers
(the server, a CLI gc) never interleave within a line.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class AuditEvent:
    user: str
    address: str
    action: str
    repository: str
    reference: str = ""
    digest: str = ""
    outcome: str = "ok"


class AuditLog:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fd: int | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def record(self, event: AuditEvent) -> None:
        if self._fd is None:
            return
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            + f".{int(time.time() * 1000) % 1000:03d}Z",
            **asdict(event),
        }
        os.write(self._fd, (json.dumps(entry, separators=(",", ":")) + "\n").encode())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
