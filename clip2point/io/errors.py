"""The one error type of the readers (§5.1: datasets are read from users' local downloads) and the checks
that word its reasons: a path that is not a readable file (:func:`check_file`), coordinates that cannot
become float32 unchanged (:func:`coordinates_problem`)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import numpy as np


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


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


def path_problem(path: str | os.PathLike, missing: str = "no such file") -> str | None:
    """Why ``path`` is not an existing regular file (``None`` when it is one), in words a user can act on:
    ``missing`` (default ``no such file``), a dangling symlink (naming its target), a symlink loop, a folder,
    or another kind of file (a FIFO, a socket, a device). Other OS errors (permission denied) propagate."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        if p.is_symlink():
            return f"is a symlink to {os.readlink(p)}, which does not exist"
        return missing
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "is a symlink loop (too many levels of symbolic links)"
        if e.errno == errno.ENOTDIR:
            return missing
        raise
    if stat.S_ISDIR(st.st_mode):
        return "is a folder, not a file"
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a plain file")
        return f"is not a regular file ({kind})"
    return None


def check_file(path: Path) -> None:
    """``ReadError`` unless ``path`` is an existing regular file (:func:`path_problem` says why not)."""
    try:
        problem = path_problem(path, missing="file not found")
    except OSError as e:
        raise ReadError(path, f"unreadable ({short_reason(e)})") from None
    if problem is not None:
        raise ReadError(path, problem)


def short_reason(e: BaseException) -> str:
    """``Type: message`` of an exception on one line, at most ~160 characters of message."""
    msg = " ".join(str(e).split())
    if len(msg) > 160:
        msg = msg[:157] + "..."
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


#: the largest finite float32: coordinates are stored and rendered as float32
FLOAT32_MAX = float(np.finfo(np.float32).max)


def coordinates_problem(values: np.ndarray) -> str | None:
    """Why an array of coordinates cannot become float32 coordinates unchanged, or ``None``.

    Refused: a complex dtype (casting would drop the imaginary part), a non-numeric one, NaN/inf, and finite
    values beyond float32's range (they would become inf in the cast: not "non-finite" in the file).
    """
    arr = np.asarray(values)
    if np.issubdtype(arr.dtype, np.complexfloating):
        return f"complex-valued coordinates (dtype {arr.dtype}); points need real numbers"
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        return f"non-numeric coordinates (dtype {arr.dtype})"
    if arr.size == 0 or not np.issubdtype(arr.dtype, np.floating):
        return None
    if not np.isfinite(arr).all():
        return "non-finite coordinates (NaN/inf)"
    if arr.dtype.itemsize > 4:
        largest = float(np.abs(arr).max())
        if largest > FLOAT32_MAX:
            return f"coordinates out of float32 range (largest |value| {largest:.3g} > {FLOAT32_MAX:.3g})"
    return None
