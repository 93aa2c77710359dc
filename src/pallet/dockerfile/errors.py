"""The one exception type of the Dockerfile front end."""

from __future__ import annotations

from pallet.errors import PalletError


class DockerfileError(PalletError):
    """A Dockerfile cannot be parsed or holds an invalid instruction.

    ``str(err)`` is ``<file>:<line>:<column>: <message>`` (``<file>: <message>`` when the
    position is unknown). ``filename`` may be changed after the fact, e.g. by a caller that
    knows the real path of the file it parsed.
    """

    def __init__(
        self,
        message: str,
        line: int | None = None,
        column: int | None = None,
        *,
        filename: str = "Dockerfile",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.filename = filename

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.filename}: {self.message}"
        return f"{self.filename}:{self.line}:{self.column or 1}: {self.message}"
