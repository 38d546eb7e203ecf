"""Mesh readers: :func:`read_mesh` for every mesh format, format sniffing and validation.

§5.1 datasets: ModelNet10/40 ``.off``, ShapeNetCore ``.obj`` (+``.mtl``); also ``.ply`` and ``.stl``.

OFF goes through the project's own parser (:mod:`clip2point.io.off`, which says why). OBJ (with MTL
materials, as in ShapeNetCore), PLY and STL go through :func:`trimesh.load` with a :class:`ModelFolderResolver`,
so ShapeNetCore's ``map_Kd ../images/texture0.jpg`` is found (trimesh's default resolver refuses it); an
asset that cannot be read is logged as a WARNING. Texture or material colours are baked into vertex colours
so every mesh comes back as a single :class:`trimesh.Trimesh` whose ``visual`` is colour-based (face or
vertex colours) or untextured.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import trimesh

from clip2point.io.errors import ReadError, check_file, coordinates_problem, short_reason
from clip2point.io.off import read_off

log = logging.getLogger(__name__)

MESH_EXTENSIONS = (".off", ".obj", ".ply", ".stl")


def _bake_colours(geom: trimesh.Trimesh) -> trimesh.Trimesh:
    """Texture / material visuals → vertex colours, so parts can be concatenated without texture atlases."""
    vis = geom.visual
    if not isinstance(vis, trimesh.visual.texture.TextureVisuals):
        return geom
    mat = vis.material
    image = getattr(mat, "image", None) or getattr(mat, "baseColorTexture", None)
    try:
        if vis.uv is not None and image is not None:
            geom.visual = vis.to_color()  # sample the texture at each vertex's uv
        else:  # untextured material (ShapeNetCore's usual case): its diffuse colour on every face
            main = np.asarray(mat.main_color, dtype=np.uint8)
            geom.visual = trimesh.visual.ColorVisuals(geom, face_colors=np.tile(main, (len(geom.faces), 1)))
    except Exception:  # noqa: BLE001 - a material we cannot bake keeps trimesh's default colour
        geom.visual = trimesh.visual.ColorVisuals(geom)
    return geom


class ModelFolderResolver(trimesh.resolvers.FilePathResolver):
    """Resolve a mesh's assets (``.mtl``, textures) relative to its folder, anywhere inside its *model folder*.

    The model folder is the parent of the mesh's folder: ShapeNetCore.v2 keeps
    ``<model>/models/model_normalized.{obj,mtl}`` and the textures in ``<model>/images/``, referenced as
    ``map_Kd ../images/texture0.jpg``. trimesh's default resolver (since 5.0) refuses any name that leaves
    the mesh's own folder and logs that at DEBUG only, so such models silently lost their textures. Names
    that resolve outside the model folder are still refused. Every name that cannot be served is recorded in
    :attr:`missing` as ``(name, reason)``.
    """

    def __init__(self, source: str | os.PathLike, root: str | os.PathLike | None = None) -> None:
        super().__init__(str(source))
        self.root = Path(root if root is not None else Path(self.parent).parent).resolve()
        self.missing: list[tuple[str, str]] = []

    def absolute(self, name: str) -> Path:
        path = (Path(self.parent).resolve() / name.strip()).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"'{name.strip()}' lies outside the model folder {self.root}")
        return path

    def namespaced(self, namespace: str) -> ModelFolderResolver:
        return ModelFolderResolver(os.path.join(self.parent, namespace), self.root)

    def get(self, name: str) -> bytes:
        try:
            return super().get(name)
        except (OSError, ValueError) as e:
            reason = "file not found" if isinstance(e, FileNotFoundError) else short_reason(e)
            self.missing.append((name.strip(), reason))
            raise


def load_trimesh(path: Path) -> trimesh.Trimesh | trimesh.PointCloud | None:
    """trimesh.load for OBJ/PLY/STL: a Scene is flattened (transforms applied) into one mesh.

    Assets are resolved by :class:`ModelFolderResolver`; a material or texture file the mesh references
    but that cannot be read is logged as a WARNING naming the mesh and the file (the faces then keep their
    material's flat colour, or trimesh's default).
    """
    resolver = ModelFolderResolver(path)
    try:
        loaded = trimesh.load(str(path), process=False, resolver=resolver)
    except Exception as e:  # noqa: BLE001 - any parser failure is a corrupt file to the caller
        raise ReadError(path, f"corrupt or unreadable {path.suffix.lower()} file ({short_reason(e)})") from None
    for name, reason in dict(resolver.missing).items():
        log.warning("%s: referenced file %r not loaded (%s); rendered without it", path, name, reason)
    if isinstance(loaded, trimesh.Scene):
        geoms = [g for g in loaded.dump(concatenate=False) if isinstance(g, trimesh.Trimesh)]
        clouds = [g for g in loaded.dump(concatenate=False) if isinstance(g, trimesh.PointCloud)]
        if geoms:
            loaded = trimesh.util.concatenate([_bake_colours(g) for g in geoms])
        elif clouds:
            loaded = (
                clouds[0] if len(clouds) == 1 else trimesh.PointCloud(np.vstack([c.vertices for c in clouds]))
            )
        else:
            return None
    elif isinstance(loaded, trimesh.Trimesh):
        loaded = _bake_colours(loaded)
    return loaded


#: first words of OBJ statements (geometry, grouping, materials, free-form): a text file none of whose lines
#: starts with one is not an OBJ file
_OBJ_KEYWORDS = frozenset(
    b"v vt vn vp f l p o g s mtllib usemtl cstype deg bmat step curv curv2 surf parm trim hole scrv sp end "
    b"con mg bevel c_interp d_interp lod shadow_obj trace_obj ctech stech".split()
)


def format_problem(path: Path) -> str | None:
    """Why an ``.stl`` / ``.obj`` file that read as empty is not a file of its format at all, or ``None``
    when it is one (then it is an empty mesh or cloud). Random bytes read as an empty mesh by trimesh."""
    ext = path.suffix.lower()
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if ext == ".stl":
        if data.lstrip()[:5].lower() == b"solid" and b"\0" not in data:
            return None  # ASCII STL
        if len(data) >= 84:
            count = int(np.frombuffer(data[80:84], dtype="<u4")[0])
            if len(data) == 84 + 50 * count:
                return None  # binary STL of that many triangles
            return (f"not a valid STL file (not ASCII 'solid ...'; as binary STL its header says {count:,} "
                    f"triangles, {84 + 50 * count:,} bytes, but the file has {len(data):,})")  # fmt: skip
        return f"not a valid STL file ({len(data)} bytes: neither ASCII 'solid ...' nor a binary STL header)"
    if ext == ".obj":
        if b"\0" in data:
            return "not a valid OBJ file (binary data, not OBJ text)"
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            try:
                text = data.decode("latin-1")
                if sum(ch < " " and ch not in "\t\r\n\f\v" for ch in text) > len(text) // 100:
                    return "not a valid OBJ file (binary data, not OBJ text)"
            except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any bytes
                return "not a valid OBJ file (not text)"
        words = [ln.split(maxsplit=1)[0].encode() for ln in text.splitlines() if ln.strip()]
        words = [w for w in words if not w.startswith(b"#")]
        if words and not any(w in _OBJ_KEYWORDS for w in words):
            first = words[0][:20].decode(errors="replace")
            return f"not a valid OBJ file (no line starts with an OBJ statement such as 'v' or 'f'; first: {first!r})"
    return None


def validate_mesh(mesh: trimesh.Trimesh, path: Path) -> trimesh.Trimesh:
    if len(mesh.vertices) == 0 or len(mesh.faces) == 0:
        raise ReadError(path, f"empty mesh ({len(mesh.vertices)} vertices, {len(mesh.faces)} faces)")
    problem = coordinates_problem(np.asarray(mesh.vertices))
    if problem is not None:
        raise ReadError(path, f"vertex {problem}" if problem.startswith("non-finite") else problem)
    return mesh


def read_mesh(path: str | os.PathLike) -> trimesh.Trimesh:
    """Read a triangle mesh from ``.off``, ``.obj`` (+``.mtl``), ``.ply`` or ``.stl``, keeping its colours.

    Raises :class:`ReadError` (one line: path and reason) for a missing or unreadable file, an unknown
    extension, a corrupt file, an empty mesh, or NaN/inf coordinates.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in MESH_EXTENSIONS:
        raise ReadError(
            path, f"unknown mesh extension {ext or '(none)'!r} (expected {', '.join(MESH_EXTENSIONS)})"
        )
    check_file(path)
    if ext == ".off":
        return validate_mesh(read_off(path), path)
    if path.stat().st_size == 0:
        raise ReadError(path, "empty file")
    loaded = load_trimesh(path)
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0 or len(loaded.vertices) == 0:
        problem = format_problem(path)
        if problem is not None:
            raise ReadError(path, problem)
    if not isinstance(loaded, trimesh.Trimesh):
        raise ReadError(path, "empty mesh (no faces)")
    return validate_mesh(loaded, path)
