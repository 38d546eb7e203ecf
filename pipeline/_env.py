"""Paths that the environment gives at import but a test may pin by replacing a module constant."""

from __future__ import annotations

import os
from pathlib import Path


def env_path(current: Path, import_default: Path, var: str, default: str) -> Path:
    """``current`` when it was replaced (is not ``import_default``), else ``$var`` (``default`` if unset) read
    now."""
    if current is not import_default:
        return current
    return Path(os.environ.get(var, default))
