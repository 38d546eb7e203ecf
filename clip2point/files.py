"""File-system conventions shared by every atomic write of the library and the pipeline."""

from __future__ import annotations

import os


def umask_mode(base: int = 0o666) -> int:
    """``base & ~umask``: the mode ``open`` (0o666) or ``mkdir`` (0o777) gives a new file or folder.

    ``tempfile.mkstemp`` / ``mkdtemp`` create 0600 / 0700 whatever the umask, and a rename keeps that mode, so
    every atomic write sets this mode on its temporary before renaming it into place (issue 22, item 14).
    """
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask
