"""The one error type of the readers (§5.1: datasets are read from users' local downloads)."""

from __future__ import annotations

import os


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
