"""Reading a pseudo-terminal's master side in tests that drive a container's terminal."""

from __future__ import annotations

import os
import select
import time


def read_until(fd: int, token: bytes, timeout: float = 30.0) -> bytes:
    """Everything read from ``fd`` up to and including ``token``; fails the test with what
    was read if ``token`` does not come within ``timeout`` seconds or the pty closes."""
    buf = b""
    deadline = time.monotonic() + timeout
    while token not in buf and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    assert token in buf, f"{token!r} not in {buf!r}"
    return buf
