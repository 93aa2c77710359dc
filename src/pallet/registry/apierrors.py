"""The distribution spec's error codes, and the exception that carries one to the client.

Every refusal the HTTP API makes is a :class:`ApiError`; the app turns it into the spec's
JSON body ``{"errors": [{"code", "message", "detail"}]}`` with the matching status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# code -> HTTP status, as the distribution spec (and Docker's registry) use them
STATUS: dict[str, int] = {
    "BLOB_UNKNOWN": 404,
    "BLOB_UPLOAD_INVALID": 400,
    "BLOB_UPLOAD_UNKNOWN": 404,
    "DIGEST_INVALID": 400,
    "MANIFEST_BLOB_UNKNOWN": 400,
    "MANIFEST_INVALID": 400,
    "MANIFEST_UNKNOWN": 404,
    "NAME_INVALID": 400,
    "NAME_UNKNOWN": 404,
    "SIZE_INVALID": 400,
    "UNAUTHORIZED": 401,
    "DENIED": 403,
    "UNSUPPORTED": 405,
    "TOOMANYREQUESTS": 429,
    "PAGINATION_NUMBER_INVALID": 400,
    "RANGE_INVALID": 416,
    "NOT_FOUND": 404,
    "UNKNOWN": 500,  # distribution's code for an internal error
}


class ApiError(Exception):
    """A request the registry refuses, with the spec's code, a message and a status."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status if status is not None else STATUS[code]
        self.detail = detail
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return json.dumps({"errors": [entry]}).encode()
