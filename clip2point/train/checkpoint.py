"""Atomic training checkpoints and exact resume (issue 4, "Reliability").

A checkpoint holds everything a run needs to continue as if never stopped: model (E_d and σ), optimizer,
scheduler, RNG states (python, numpy, torch CPU and CUDA), the global step, the best-so-far selection and
the metric history. It is written to a temporary file and renamed into place (``os.replace``), so a run
killed while saving leaves the previous checkpoint intact. The library knows no paths: callers pass them.

Byte-reproducible: ``torch.save`` given a *path* records that file's name inside its zip archive (the
records are ``<name>/data.pkl``, …), so saving through a randomly named temporary file gives different
bytes for identical content. :func:`to_bytes` serialises through a file object instead (fixed archive
name ``archive``), so identical objects give identical bytes, wherever they are written.

Temporary files: :func:`write_bytes_atomic` writes ``.<name>.<random>.tmp`` in ``tmp_dir`` (default: the
target's folder; pass a folder outside an output directory so that even a kill leaves nothing inside the
output) through the library's one atomic primitive, :func:`clip2point.files.atomic_file` (fsync'ed), and
:func:`remove_stale_temps` removes such leftovers of earlier killed runs.
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from clip2point.files import atomic_file


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def to_bytes(obj: Any) -> bytes:
    """``torch.save`` of ``obj`` as bytes: identical objects give identical bytes (see the module docstring)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _write_atomic(write: Callable[[BinaryIO], Any], path: Path, tmp_dir: str | os.PathLike | None) -> None:
    with atomic_file(path, tmp_dir=tmp_dir, fsync=True) as tmp, open(tmp, "wb") as f:
        write(f)


def write_bytes_atomic(data: bytes, path: str | os.PathLike, tmp_dir: str | os.PathLike | None = None) -> None:
    """Write ``data`` to a temporary file in ``tmp_dir`` (default: ``path``'s folder; same filesystem),
    fsync, then rename over ``path``. The temporary file is removed on failure."""
    _write_atomic(lambda f: f.write(data), Path(path), tmp_dir)


def save_atomic(obj: Any, path: str | os.PathLike, tmp_dir: str | os.PathLike | None = None) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically (as :func:`write_bytes_atomic`) and byte-reproducibly:
    serialised straight into the open temporary file (a file object, so the archive name is the fixed
    ``archive``, the same bytes as :func:`to_bytes` without holding them in memory)."""
    _write_atomic(lambda f: torch.save(obj, f), Path(path), tmp_dir)


def remove_stale_temps(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Delete leftovers ``.<name>.*.tmp`` (any name if None) of atomic writes killed in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    gone = []
    for p in folder.glob(f".{name}.*.tmp" if name else ".*.tmp"):
        if p.is_file():
            p.unlink()
            gone.append(p)
    return gone


def save_checkpoint(
    path: str | os.PathLike,
    *,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    extra: dict[str, Any] | None = None,
    tmp_dir: str | os.PathLike | None = None,
) -> None:
    """Write a full training checkpoint atomically (model, optimizer, scheduler, RNG states, step, extra)."""
    save_atomic(
        {
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": rng_state(),
            "extra": extra or {},
        },
        path,
        tmp_dir,
    )


class CheckpointError(ValueError):
    """A checkpoint file cannot be read (truncated or corrupt); the message names the file."""


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The raw content of a checkpoint written by :func:`save_checkpoint` (on the CPU); a truncated or corrupt
    file raises :class:`CheckpointError` naming it (``FileNotFoundError`` when it is missing)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is one line naming it
        msg = " ".join(str(e).split())[:160]
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({type(e).__name__}: {msg})") from None


def apply_checkpoint(
    state: dict[str, Any],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Restore a checkpoint's content (from :func:`read_checkpoint`) in place; returns ``{"step", "extra"}``."""
    model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    if restore_rng:
        set_rng_state(state["rng"])
    return {"step": int(state["step"]), "extra": state.get("extra", {})}


def load_checkpoint(
    path: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Restore a checkpoint written by :func:`save_checkpoint` in place; returns ``{"step", "extra"}``."""
    return apply_checkpoint(read_checkpoint(path), model=model, optimizer=optimizer, scheduler=scheduler,
                            restore_rng=restore_rng)
