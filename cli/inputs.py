"""The user's input files of ``classify`` and ``render``: which are accepted, what a folder expands to, and a
file read into a ``(num_points, 3)`` cloud. Every unusable file is a one-line :class:`BadInput`."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from cli._common import one_line, os_reason

#: Extensions ``classify`` and ``render`` accept (``.h5`` entries as ``file.h5:INDEX``).
SUPPORTED_EXTENSIONS = (".ply", ".obj", ".off", ".stl", ".xyz", ".txt", ".pts", ".npy", ".h5", ".hdf5")


class BadInput(Exception):
    """One input file cannot be used; ``str()`` is one line naming the file and the reason."""



def check_input(spec: str) -> Path:
    """The cheap checks of an input, before any model is loaded: a supported extension, an existing readable
    file (not a folder), an ``INDEX`` for HDF5 files. Returns the file's path; raises :class:`BadInput`."""
    from clip2point.io.errors import path_problem
    from clip2point.io.points import split_h5_entry

    path, index = split_h5_entry(spec)
    ext = path.suffix.lower()
    if index is None and re.search(r"\.(h5|hdf5):", str(spec), re.IGNORECASE):
        raise BadInput(f"{spec}: bad HDF5 entry (expected FILE.h5:INDEX with an integer INDEX)")
    try:
        problem = path_problem(path)  # missing, a dangling symlink or a loop, a folder, a FIFO or device
        if problem is not None:
            raise BadInput(f"{path}: {problem}")
        if ext not in SUPPORTED_EXTENSIONS:
            raise BadInput(
                f"{spec}: unsupported extension {ext or '(none)'!r} "
                f"(supported: {', '.join(SUPPORTED_EXTENSIONS)})"
            )
        if not os.access(path, os.R_OK):
            raise BadInput(f"{path}: cannot read it (permission denied)")
    except OSError as e:  # e.g. a file inside a folder we may not enter
        raise BadInput(f"{path}: cannot access it ({os_reason(e)})") from None
    if ext in (".h5", ".hdf5") and index is None:
        raise BadInput(f"{path}: name one entry of the HDF5 file as {path}:INDEX")
    return path


def load_cloud(spec: str, num_points: int = 1024, n_dense: int = 20000, seed: int = 0) -> np.ndarray:
    """Read a mesh or point file and bring it to ``(num_points, 3)`` float32 in the unit sphere.

    Meshes are surface-sampled then farthest-point sampled (the pipeline's ``mesh_to_points``); clouds are
    FPS-subsampled, or padded by repeating points when they have fewer than ``num_points`` (a repeated
    point does not change a min-depth render). The up axis is converted later, by the bundle.
    Raises :class:`BadInput` for a missing, unsupported, corrupt, empty or non-finite input.
    """
    from clip2point.io import MESH_EXTENSIONS, ReadError, read_mesh_or_points, read_points
    from clip2point.sampling import SamplingError, mesh_to_points, points_to_points

    path = check_input(spec)
    ext = path.suffix.lower()
    try:
        obj = read_mesh_or_points(path) if ext in MESH_EXTENSIONS else read_points(spec)
        if isinstance(obj, np.ndarray):
            return points_to_points(obj, num_points, seed=seed, allow_fewer=True)
        return mesh_to_points(obj, num_points, n_dense, seed)
    except ReadError as e:
        raise BadInput(str(e)) from None
    except SamplingError as e:
        raise BadInput(f"{spec}: {one_line(e)}") from None
    except OSError as e:  # a read error the reader did not name (e.g. a device error)
        raise BadInput(f"{spec}: cannot read it ({os_reason(e)})") from None


def expand_input(spec: str) -> list[str]:
    """A file as given; a folder expands to its supported files (sorted, not recursive).

    Raises :class:`BadInput` for a folder that cannot be listed or that holds no supported file.
    """
    p = Path(spec)
    try:
        is_dir = p.is_dir()
    except OSError:  # inside a folder we may not enter: check_input names the file and the reason
        return [spec]
    if not is_dir:
        return [spec]
    try:
        found = sorted(
            str(c) for c in p.iterdir() if c.suffix.lower() in SUPPORTED_EXTENSIONS and c.is_file()
        )
    except OSError as e:
        raise BadInput(f"{p}: cannot list the folder ({os_reason(e)})") from None
    if not found:
        raise BadInput(f"{p}: folder holds no supported files ({', '.join(SUPPORTED_EXTENSIONS)})")
    return found


def expand_inputs(specs: Iterable[str]) -> list[str]:
    """Files as given; a directory expands to its supported files (:func:`expand_input`)."""
    return [f for s in specs for f in expand_input(s)]
