"""The one error type of the readers (§5.1: datasets are read from users' local downloads)."""

from __future__ import annotations

import os
from pathlib import Path


class ReadError(Exception):
    """A file cannot be read as a mesh or point cloud.

    ``str(err)`` is a single line ``"<path>: <reason>"`` so batch stages can record it verbatim in the
    rejected-items table.
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = " ".join(str(reason).split()) or "unknown error"
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self):  # picklable across multiprocessing workers
        return (type(self), (self.path, self.reason))


def check_file(path: Path) -> None:
    """``ReadError`` unless ``path`` is an existing regular file."""
    if not path.exists():
        raise ReadError(path, "file not found")
    if not path.is_file():
        raise ReadError(path, "not a regular file")


def short_reason(e: BaseException) -> str:
    """``Type: message`` of an exception on one line, at most ~160 characters of message."""
    msg = " ".join(str(e).split())
    if len(msg) > 160:
        msg = msg[:157] + "..."
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__
