"""The OFF parser and the colour OFF writer (§5.1: ModelNet10/40 ``.off``; the synthetic benchmark's meshes).

OFF is parsed here rather than by trimesh for two reasons measured on trimesh 5.2:

* trimesh drops per-face and per-vertex colours of OFF files (``3 a b c r g b`` face lines, ``COFF``), and its
  exporter writes none, so the synthetic benchmark could not round-trip its part colours;
* the ModelNet quirk where the header and the counts share the first line (``OFF490 518 0``) must be
  accepted as-is (about 1% of ModelNet40's files have it).

The parser is vectorised (numpy tokenising of the bytes, one ``np.fromstring`` per block, a fast path for
all-triangle faces); ``benchmarks/bench_off.py`` compares it with trimesh's OBJ reader on the same mesh.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import trimesh

from clip2point.io.errors import ReadError, check_file, coordinates_problem, short_reason

_OFF_HEADER = re.compile(rb"^\s*(ST)?(C)?(N)?(4)?(n)?OFF")
_COMMENT = re.compile(rb"#[^\n]*")


def _colours_to_uint8(values: np.ndarray, as_float: np.ndarray | bool) -> np.ndarray:
    """(M, 3|4) colour values (0..255 ints or 0..1 floats, NaN for an absent alpha) to (M, 4) uint8 RGBA.

    ``as_float`` is one flag for all rows or one per row."""
    values = np.array(values[:, :4], dtype=np.float64)
    scale = np.where(np.asarray(as_float, dtype=bool), 255.0, 1.0)
    values = values * (scale[:, None] if np.ndim(scale) else scale)
    rgba = np.full((len(values), 4), 255.0)
    rgba[:, : values.shape[1]] = values
    rgba[np.isnan(rgba)] = 255.0
    return np.clip(np.rint(rgba), 0, 255).astype(np.uint8)


def _numbers(data: bytes, dtype: type) -> np.ndarray | None:
    """All whitespace-separated numbers of ``data`` (``None`` if any token is not a number of ``dtype``)."""
    try:
        with warnings.catch_warnings():  # NumPy < 2.3 warns and stops early instead of raising
            warnings.simplefilter("ignore", DeprecationWarning)
            return np.fromstring(data, dtype=dtype, sep=" ")  # text mode: the fastest numpy number reader
    except ValueError:
        return None


def _next_line(data: bytes, pos: int) -> tuple[bytes, int]:
    """The next non-blank line at or after ``pos`` (stripped) and the position after it; ``b""`` at the end."""
    while pos < len(data):
        nl = data.find(b"\n", pos)
        end = len(data) if nl < 0 else nl
        line = data[pos:end].strip()
        pos = end + 1
        if line:
            return line, pos
    return b"", len(data)


class _Lines:
    """Token layout of a block of text, computed with numpy on its bytes: for each non-blank line, the index
    of its first token and its number of tokens, plus each token's byte span."""

    def __init__(self, data: bytes) -> None:
        b = np.frombuffer(data, dtype=np.uint8)
        ws = (b == 32) | ((b >= 9) & (b <= 13))  # what np.fromstring(sep=" ") skips
        word = ~ws
        begins = word.copy()
        begins[1:] &= ws[:-1]
        finishes = word.copy()
        finishes[:-1] &= ws[1:]
        self.starts = np.flatnonzero(begins)
        self.ends = np.flatnonzero(finishes) + 1
        newlines = np.flatnonzero(b == 10)
        before = np.searchsorted(self.starts, newlines)  # tokens before each newline
        per_line = np.diff(np.concatenate([[0], before, [len(self.starts)]]))
        self.line_end = np.concatenate([newlines, [len(b)]])  # byte where each line ends
        keep = per_line > 0
        self.ntok = per_line[keep]
        self.line_end = self.line_end[keep]
        self.first = (np.cumsum(self.ntok) - self.ntok).astype(np.int64)
        self.data = b

    def __len__(self) -> int:
        return len(self.ntok)

    def looks_float(self, tokens: np.ndarray) -> np.ndarray:
        """Per token index: does its text hold ``.``, ``e`` or ``E`` (a float, not a 0..255 integer)?"""
        if len(tokens) == 0:
            return np.zeros(0, dtype=bool)
        s, e = self.starts[tokens], self.ends[tokens]
        width = int((e - s).max())
        pos = s[:, None] + np.arange(width)
        inside = pos < e[:, None]
        chars = self.data[np.minimum(pos, len(self.data) - 1)]
        return (((chars == 46) | (chars == 101) | (chars == 69)) & inside).any(axis=1)


def _off_vertices(
    path: str | os.PathLike, lines: _Lines, vals: np.ndarray, nv: int, colour_at: int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    ntok = lines.ntok[:nv]
    width = int(ntok.min())
    if width < 3:
        raise ReadError(path, "vertex line with fewer than 3 coordinates")
    if (ntok == width).all():
        table = vals[: nv * width].reshape(nv, width)
    else:  # ragged lines: the columns every line has (as numpy cannot reshape them)
        table = vals[lines.first[:nv, None] + np.arange(width)]
    vertices = np.ascontiguousarray(table[:, :3])
    problem = coordinates_problem(vertices)
    if problem is not None:
        raise ReadError(path, f"vertex {problem}" if problem.startswith("non-finite") else problem)
    colours = None
    if colour_at is not None and width >= colour_at + 3:
        cols = table[:, colour_at : colour_at + 4]
        as_float = lines.looks_float(np.arange(colour_at, min(width, colour_at + 4))).any()
        colours = _colours_to_uint8(cols, bool(as_float))
    return vertices, colours


def _off_faces(
    path: str | os.PathLike, lines: _Lines, vals: np.ndarray, nv: int, nf: int, any_float: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Triangles (fan-triangulated polygons), their RGBA colours and which of them had a colour.

    ``any_float``: whether the face block holds any non-integer token (else no colour is a 0..1 float)."""
    first = lines.first[nv : nv + nf] - lines.first[nv]
    ntok = lines.ntok[nv : nv + nf]
    n_raw = vals[first]
    if not (n_raw == np.floor(n_raw)).all():
        raise ReadError(path, "non-integer polygon size in a face line")
    sizes = n_raw.astype(np.int64)
    if (sizes < 3).any() or (ntok < sizes + 1).any():
        raise ReadError(path, "face line with fewer than 3 vertex indices")
    if (sizes == 3).all():  # fast path: triangles only
        corners = vals[first[:, None] + np.array([1, 2, 3])]
        owner = None
    else:  # fan triangulation (v0, v[k+1], v[k+2]) of each polygon
        tris = sizes - 2
        owner = np.repeat(np.arange(nf), tris)
        k = np.arange(len(owner)) - np.repeat(np.cumsum(tris) - tris, tris)
        base = first[owner] + 1
        corners = vals[np.column_stack([base, base + k + 1, base + k + 2])]
    if not (corners == np.floor(corners)).all():
        raise ReadError(path, "non-integer face index")
    faces = corners.astype(np.int64)
    if faces.min() < 0 or faces.max() >= nv:
        raise ReadError(path, f"face index out of range (mesh has {nv} vertices)")

    extra = ntok - sizes - 1
    coloured = extra >= 3
    if not coloured.any():
        return faces, None, None
    ncol = np.minimum(extra, 4)
    at = first + sizes + 1
    cols = np.full((nf, 4), np.nan)
    for j in range(4):
        has = coloured & (ncol > j)
        cols[has, j] = vals[at[has] + j]
    col_tokens = (at + lines.first[nv])[:, None] + np.arange(4)
    col_valid = coloured[:, None] & (np.arange(4) < ncol[:, None])
    is_float = np.zeros(col_tokens.shape, dtype=bool)
    if any_float:
        is_float[col_valid] = lines.looks_float(col_tokens[col_valid])
    rgba = _colours_to_uint8(cols, is_float.any(axis=1))
    if owner is not None:
        rgba, coloured = rgba[owner], coloured[owner]
    return faces, rgba, coloured


def parse_off(text: str | bytes, path: str | os.PathLike = "<string>") -> trimesh.Trimesh:
    """Parse OFF / COFF / NOFF text into a triangulated mesh with face or vertex colours.

    Accepts comments (``#``), polygons (fan-triangulated, the colour repeated on each triangle), per-face
    colours after the indices (3 or 4 values, 0–255 integers or 0–1 floats, decided per face), per-vertex
    colours (``COFF``), and the ModelNet first-line quirk ``OFF490 518 0``. Lines past the declared vertex
    and face lines are ignored. Parsing is vectorised: the body is tokenised on its bytes with numpy and
    its numbers read in one ``np.fromstring`` call per block, with a fast path for all-triangle faces.
    """
    data = text.encode("utf-8", errors="replace") if isinstance(text, str) else bytes(text)
    if b"#" in data:
        data = _COMMENT.sub(b"", data)
    header, pos = _next_line(data, 0)
    if not header:
        raise ReadError(path, "empty file")
    m = _OFF_HEADER.match(header)
    if not m:
        shown = header[:20].decode("utf-8", errors="replace")
        raise ReadError(path, f"not an OFF file (header {shown!r})")
    has_colour, has_normal = bool(m.group(2)), bool(m.group(3))
    rest = header[m.end() :].split()
    if not rest:  # regular layout: counts on the next line
        counts_line, pos = _next_line(data, pos)
        if not counts_line:
            raise ReadError(path, "missing vertex/face counts")
        rest = counts_line.split()
    try:
        counts = [int(t) for t in rest[:3]]
    except ValueError:
        shown = b" ".join(rest).decode("utf-8", errors="replace")[:40]
        raise ReadError(path, f"malformed counts line {shown!r}") from None
    if len(counts) < 2 or min(counts[:2]) < 0:
        raise ReadError(path, "malformed counts line")
    nv, nf = counts[0], counts[1]
    if nv == 0 or nf == 0:
        raise ReadError(path, f"empty mesh ({nv} vertices, {nf} faces)")

    body = data[pos:]
    lines = _Lines(body)
    if len(lines) < nv + nf:
        raise ReadError(path, f"truncated: expected {nv} vertex and {nf} face lines, found {len(lines)} lines")
    vend = int(lines.line_end[nv - 1])
    fend = int(lines.line_end[nv + nf - 1])
    vvals = _numbers(body[:vend], np.float64)
    if vvals is None or len(vvals) != lines.first[nv]:
        raise ReadError(path, "non-numeric vertex coordinate")
    fblock = body[vend:fend]
    fvals = _numbers(fblock, np.int64)  # integers only (the usual case) parse fastest
    n_ftok = int(lines.first[nv + nf - 1] + lines.ntok[nv + nf - 1] - lines.first[nv])
    any_float = fvals is None or len(fvals) != n_ftok
    if any_float:
        fvals = _numbers(fblock, np.float64)  # float colours
        if fvals is None or len(fvals) != n_ftok:
            raise ReadError(path, "non-numeric face index or colour")
    vertices, vertex_colors = _off_vertices(path, lines, vvals, nv, (6 if has_normal else 3) if has_colour else None)
    faces, fcols, coloured = _off_faces(path, lines, fvals.astype(np.float64, copy=False), nv, nf, any_float)

    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False, validate=False)
    if fcols is not None:
        fcols[~coloured] = (102, 102, 102, 255)  # trimesh's default grey for uncoloured faces
        mesh.visual = trimesh.visual.ColorVisuals(mesh, face_colors=fcols)
    elif vertex_colors is not None:
        mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=vertex_colors)
    return mesh


def read_off(path: str | os.PathLike) -> trimesh.Trimesh:
    """Read an OFF file (see :func:`parse_off`)."""
    path = Path(path)
    check_file(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ReadError(path, f"unreadable ({short_reason(e)})") from None
    return parse_off(data, path)


def write_off(mesh: trimesh.Trimesh, path: str | os.PathLike, digits: int = 6) -> None:
    """Write ``mesh`` as OFF with per-face RGBA colours (``3 a b c r g b a``) when it has face colours.

    trimesh's own OFF exporter drops colours; this writer and :func:`parse_off` round-trip them.
    """
    verts = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    lines = ["OFF", f"{len(verts)} {len(faces)} 0"]
    fmt = f"%.{digits}f"
    lines.extend(" ".join(fmt % v for v in row) for row in verts)
    coloured = mesh.visual is not None and mesh.visual.kind in ("face", "vertex")
    if coloured:
        fc = np.asarray(mesh.visual.face_colors, dtype=np.int64)
        rows = np.column_stack([np.full(len(faces), 3), faces, fc[:, :4]])
    else:
        rows = np.column_stack([np.full(len(faces), 3), faces])
    lines.extend(" ".join(map(str, r)) for r in rows.tolist())
    Path(path).write_text("\n".join(lines) + "\n")
