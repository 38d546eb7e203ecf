"""File-system conventions shared by every write of the library and the pipeline: the one atomic-file
primitive (:func:`atomic_file`), the modes new files get (:func:`umask_mode`) and the one JSON fallback for
numpy / torch scalars and paths (:func:`json_default`).

``pipeline.artifacts`` (stage outputs, with the clean-up of killed runs' temporaries),
``clip2point.train.checkpoint`` (fsync'ed checkpoints, temporaries in a scratch folder), the CLI's
``atomic_output`` (errors as one line) and :mod:`clip2point.shards` (shards, manifests) are thin layers over
:func:`atomic_file`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def umask_mode(base: int = 0o666) -> int:
    """``base & ~umask``: the mode ``open`` (0o666) or ``mkdir`` (0o777) gives a new file or folder.

    ``tempfile.mkstemp`` / ``mkdtemp`` create 0600 / 0700 whatever the umask, and a rename keeps that mode, so
    every atomic write sets this mode on its temporary before renaming it into place (issue 22, item 14).
    """
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, tmp_dir: str | os.PathLike | None = None,
                fsync: bool = False) -> Iterator[Path]:
    """Yield the path of a new, empty temporary file; it becomes ``path`` only when the block succeeds.

    The temporary is ``.<name>.<random>.tmp`` in ``tmp_dir`` (default: ``path``'s folder; both folders are
    created), with the mode a plain ``open`` would give (:func:`umask_mode`). On success it is fsync'ed (with
    ``fsync``) and renamed onto ``path`` (atomic on POSIX within one filesystem); a ``tmp_dir`` on another
    filesystem has the complete file copied next to ``path`` first. On any error (or Ctrl-C) the temporary
    is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tmp_dir) if tmp_dir is not None else path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    tmp = Path(name)
    try:
        try:
            os.fchmod(fd, umask_mode(0o666))
        finally:
            os.close(fd)
        yield tmp
        if fsync:
            _fsync(tmp)
        try:
            os.replace(tmp, path)
        except OSError as e:
            if e.errno != errno.EXDEV or folder == path.parent:
                raise
            with atomic_file(path, fsync=fsync) as near:  # tmp_dir on another filesystem
                shutil.copyfile(tmp, near)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def json_default(o: Any) -> Any:
    """``json.dumps(..., default=json_default)``: numpy / torch scalars as Python numbers, numpy arrays as
    lists, paths as strings; anything else is a TypeError naming its type."""
    import numpy as np

    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic) or (hasattr(o, "item") and callable(o.item)):  # numpy / torch scalars
        return o.item()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
