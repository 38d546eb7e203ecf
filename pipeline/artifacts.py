"""Atomic artifact writes and the one reader of torch artifacts: a failed stage leaves no half-written output,
and a damaged one is one line naming the file.

Every stage writes through these helpers: content goes to a temporary sibling ``.<name>.<random>.tmp`` and is
renamed into place only when complete (``os.replace`` is atomic on POSIX within one filesystem; the file case is
the library's one primitive, :func:`clip2point.files.atomic_file`, JSON through its ``json_default``). Outputs get
the modes any tool gives under the current umask (0o666 / 0o777 ``& ~umask``), not the temporaries' 0600 /
0700. A run killed mid-write leaves its temporary behind: the next write of the same output removes every
temporary of that output (``.<name>.*.tmp``, ``.<name>.old``, ``.<name>.staging-*``) older than this process
(:func:`remove_stale`), so a stage cleans up after its own killed runs and never touches another output's.
Every ``torch.load`` of a pipeline artifact goes through :func:`load_torch`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clip2point.files import atomic_file, json_default, umask_mode

#: when this process started its stage (this module is imported at start-up): temporaries older than this
#: are leftovers of killed runs
STARTED = time.time()


def remove_stale(path: str | os.PathLike, keep: str | os.PathLike | None = None) -> list[Path]:
    """Delete the temporaries of output ``path`` (``.<name>.*.tmp``, ``.<name>.old``, ``.<name>.staging-*``
    next to it, files or folders) last modified before this process started, except ``keep``; returns them."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    gone = []
    for pat in (f".{path.name}.*.tmp", f".{path.name}.old", f".{path.name}.staging-*"):
        for p in path.parent.glob(pat):
            if keep is not None and p == Path(keep):
                continue
            try:
                if p.lstat().st_mtime >= STARTED:
                    continue  # this run's own (or a live concurrent writer's)
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
            except FileNotFoundError:
                continue
            gone.append(p)
    return gone


def _ready(path: str | os.PathLike) -> Path:
    """``path`` with its folder made and the leftovers of killed writes to it removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path next to ``path``; rename it to ``path`` on success, delete on error."""
    with atomic_file(_ready(path)) as tmp:
        yield tmp


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces ``path`` whole, on error it is removed."""
    path = _ready(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, umask_mode(0o777))
    try:
        yield tmp
        replace_dir(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def replace_dir(staging: str | os.PathLike, final: str | os.PathLike) -> None:
    """Move the complete directory ``staging`` to ``final``, replacing any previous ``final`` whole.

    The old directory is renamed aside first, so ``final`` is at every moment either the old or the new
    complete directory (never a mixture); the aside copy is removed once the new one is in place.
    """
    staging, final = Path(staging), Path(final)
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old)
    else:
        os.replace(staging, final)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


class ArtifactError(ValueError):
    """A pipeline artifact cannot be read (truncated or corrupt); ``str()`` is one line naming the file."""


def load_torch(path: str | os.PathLike, what: str = "artifact") -> Any:
    """``torch.load`` (CPU, tensors and plain containers only) of a pipeline artifact: a missing file is a
    ``FileNotFoundError``, a truncated or corrupt one an :class:`ArtifactError`, each one line naming it."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: {p}")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable artifact is one line naming it
        msg = " ".join(str(e).split())[:160]
        raise ArtifactError(f"{what} {p} is truncated or corrupt ({type(e).__name__}: {msg}); "
                            "rerun the stage that writes it") from None


def torch_bytes(obj: Any) -> bytes:
    """``torch.save`` of ``obj`` as bytes, the same bytes for the same content.

    Saved to a file path, torch records the file's name inside the zip, so an atomic write through a
    random temporary name gives different bytes each run and DVC reruns everything downstream; saved to a
    buffer, the archive name is fixed.
    """
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def write_torch(obj: Any, path: str | os.PathLike) -> None:
    """Atomically write ``torch.save(obj)`` to ``path``, byte-reproducibly (see :func:`torch_bytes`)."""
    data = torch_bytes(obj)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
