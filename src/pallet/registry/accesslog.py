"""Structured access logs: one JSON object per request on the ``pallet.registry.access`` logger."""

from __future__ import annotations

import json
import logging
import time

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse


class JsonAccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time_taken: float) -> None:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "remote": request.remote,
            "method": request.method,
            "path": request.path[:512],
            "status": response.status,
            "bytes": response.body_length,
            "duration_ms": round(time_taken * 1000, 3),
            "user_agent": request.headers.get("User-Agent", "")[:256],
        }
        self.logger.info(json.dumps(entry, separators=(",", ":")))

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
