"""The one exception type users see: a one-line message naming the file and the problem."""

from __future__ import annotations

from pathlib import Path


class VocaganError(Exception):
    """A user-facing error. The CLI prints `error: <message>` on one line and exits with status 1.

    Raise it for anything the user can fix (bad file, bad option); let real bugs raise normally.
    """

    def __init__(self, message: str, path: str | Path | None = None):
        message = " ".join(str(message).split())  # always one line
        if path is not None:
            message = f"{path}: {message}"
        super().__init__(message)
        self.path = None if path is None else Path(path)
