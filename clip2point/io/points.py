"""Point-cloud readers.

§5.1 datasets: ModelNet40 resampled ``.txt``, Point-BERT ShapeNet-55 ``.npy``, ScanObjectNN ``.h5``.

Every reader returns an ``(N, 3) float32`` array of xyz coordinates; extra columns (normals, colours,
intensities) are dropped. An HDF5 entry is addressed as ``"file.h5:INDEX"`` (row ``INDEX`` of its ``data``).
:func:`read_mesh_or_points` reads a ``.ply`` / ``.obj`` that may hold either (through :mod:`.meshes`, which
imports nothing from here).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import trimesh

from clip2point.io.errors import ReadError, check_file, coordinates_problem, short_reason
from clip2point.io.meshes import format_problem, load_trimesh, read_mesh, validate_mesh

POINT_EXTENSIONS = (".npy", ".xyz", ".txt", ".pts", ".ply", ".h5", ".hdf5")

_H5_ENTRY = re.compile(r"^(?P<file>.+\.(?:h5|hdf5)):(?P<index>-?\d+)$", re.IGNORECASE)


def validate_points(points: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """Check an array is a non-empty finite (N, >=3) cloud and return its xyz as float32."""
    arr = np.asarray(points)
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise ReadError(path, f"expected an (N, 3+) array of points, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ReadError(path, "empty point cloud")
    if not np.issubdtype(arr.dtype, np.number):
        raise ReadError(path, f"non-numeric point array (dtype {arr.dtype})")
    problem = coordinates_problem(arr[:, :3])  # before the cast: complex, NaN/inf, beyond float32
    if problem is not None:
        raise ReadError(path, problem)
    return np.ascontiguousarray(arr[:, :3], dtype=np.float32)


def split_h5_entry(spec: str | os.PathLike) -> tuple[Path, int | None]:
    """``"a/b.h5:12"`` → ``(Path("a/b.h5"), 12)``; any other path → ``(path, None)``."""
    m = _H5_ENTRY.match(str(spec))
    if m:
        return Path(m.group("file")), int(m.group("index"))
    return Path(spec), None


def _read_text(path: Path) -> np.ndarray:
    """Whitespace- or comma-separated rows (ModelNet40 resampled: ``x,y,z,nx,ny,nz``)."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as e:
        raise ReadError(path, f"unreadable ({short_reason(e)})") from None
    rows = [ln.replace(",", " ").split() for ln in text.splitlines()]
    rows = [r for r in rows if r and not r[0].startswith("#")]
    if not rows:
        raise ReadError(path, "empty point cloud")
    width = len(rows[0])
    if any(len(r) != width for r in rows):
        bad = next(i for i, r in enumerate(rows) if len(r) != width)
        raise ReadError(
            path, f"inconsistent number of columns (row {bad + 1} has {len(rows[bad])}, expected {width})"
        )
    try:
        return np.array(rows, dtype=np.float64)
    except ValueError:
        raise ReadError(path, "non-numeric value in point file") from None


def _read_h5(path: Path, index: int | None) -> np.ndarray:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "data" not in f:
                raise ReadError(path, f"no 'data' dataset (has {sorted(f.keys())})")
            data = f["data"]
            if data.ndim == 2:
                if index is not None:
                    raise ReadError(path, "index given but 'data' holds a single cloud")
                return data[()]
            if data.ndim != 3:
                raise ReadError(path, f"'data' must be (M, N, 3+), got shape {data.shape}")
            if index is None:
                raise ReadError(path, f"holds {data.shape[0]} clouds: address one as '{path}:INDEX'")
            if not -data.shape[0] <= index < data.shape[0]:
                raise ReadError(path, f"index {index} out of range (holds {data.shape[0]} clouds)")
            return data[index]
    except ReadError:
        raise
    except Exception as e:  # noqa: BLE001 - h5py raises OSError/KeyError/... for corrupt files
        raise ReadError(path, f"corrupt or unreadable HDF5 file ({short_reason(e)})") from None


def read_h5_labels(path: str | os.PathLike) -> np.ndarray:
    """The ``label`` dataset of a ScanObjectNN-style HDF5 file as a flat int array."""
    import h5py

    path = Path(path)
    check_file(path)
    try:
        with h5py.File(path, "r") as f:
            if "label" not in f or "data" not in f:
                raise ReadError(path, f"expected 'data' and 'label' datasets (has {sorted(f.keys())})")
            labels = np.asarray(f["label"][()]).reshape(-1).astype(np.int64)
            n = f["data"].shape[0]
    except ReadError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ReadError(path, f"corrupt or unreadable HDF5 file ({short_reason(e)})") from None
    if len(labels) != n:
        raise ReadError(path, f"{len(labels)} labels for {n} clouds")
    return labels


def read_points(path: str | os.PathLike) -> np.ndarray:
    """Read a point cloud as ``(N, 3) float32``.

    Formats: ``.npy`` (plain or Point-BERT ShapeNet-55, (N, 3+)), ``.xyz`` / ``.txt`` / ``.pts`` (space- or
    comma-separated, e.g. ModelNet40 resampled ``x,y,z,nx,ny,nz``), ``.ply`` (vertices), and
    ``file.h5:INDEX`` (ScanObjectNN: row ``INDEX`` of ``data``). Raises :class:`ReadError` on bad input.
    """
    path, index = split_h5_entry(path)
    ext = path.suffix.lower()
    if ext not in POINT_EXTENSIONS:
        raise ReadError(
            path,
            f"unknown point-cloud extension {ext or '(none)'!r} (expected {', '.join(POINT_EXTENSIONS)})",
        )
    check_file(path)
    if path.stat().st_size == 0:
        raise ReadError(path, "empty file")
    shown = f"{path}:{index}" if index is not None else path
    if ext == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001
            raise ReadError(path, f"corrupt or unreadable .npy file ({short_reason(e)})") from None
    elif ext in (".xyz", ".txt", ".pts"):
        arr = _read_text(path)
    elif ext == ".ply":
        loaded = load_trimesh(path)
        arr = np.asarray(loaded.vertices) if loaded is not None else np.zeros((0, 3))
    else:
        arr = _read_h5(path, index)
    return validate_points(arr, shown)


def read_mesh_or_points(path: str | os.PathLike) -> trimesh.Trimesh | np.ndarray:
    """A ``.ply`` / ``.obj`` may hold a mesh or a bare point cloud: return whichever it holds."""
    path = Path(path)
    if path.suffix.lower() not in (".ply", ".obj"):
        return read_mesh(path)
    check_file(path)
    if path.stat().st_size == 0:
        raise ReadError(path, "empty file")
    loaded = load_trimesh(path)
    if isinstance(loaded, trimesh.Trimesh) and len(loaded.faces):
        return validate_mesh(loaded, path)
    verts = np.asarray(loaded.vertices) if loaded is not None else np.zeros((0, 3))
    if len(verts) == 0:
        problem = format_problem(path)  # random bytes read as an empty cloud
        if problem is not None:
            raise ReadError(path, problem)
    return validate_points(verts, path)
