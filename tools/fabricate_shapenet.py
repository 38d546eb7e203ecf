"""ShapeNetCore.v2 and Point-BERT's ShapeNet-55 release, fabricated (:mod:`tools.fabricate` writes them with
the other datasets): OBJ/MTL/JSON models, half of them textured, ``taxonomy.json``, 8192-point ``.npy`` clouds
and the split lists.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from PIL import Image

from clip2point.datasets import SHAPENET_SYNSETS, SHAPENETCORE_MODEL
from tools.fabricate import _fmt_rows, _generators, _rng, _shape, _surface

#: A synset outside ShapeNet-55's table, so its name is known only from ``taxonomy.json`` (WordNet's
#: "wine bottle", a child of bottle in ShapeNet's taxonomy).
EXTRA_SYNSET = ("04591713", "wine bottle", "02876657")
#: The two texture colours (RGB) of the ShapeNetCore checkerboard: saturated, and unused by untextured parts.
TEXTURE_COLOURS = ((255, 0, 255), (0, 255, 255))
#: Pixel size of the texture and the number of checker cells along each side.
TEXTURE_SIZE, TEXTURE_CELLS = 256, 8
#: The diffuse colour (0..1) of the textured material, what a renderer shows when the texture is lost.
TEXTURED_KD = (0.6, 0.6, 0.6)
SHAPENET55_POINTS = 8192


def checkerboard() -> Image.Image:
    """The texture: :data:`TEXTURE_CELLS`² cells alternating the two :data:`TEXTURE_COLOURS`."""
    cell = TEXTURE_SIZE // TEXTURE_CELLS
    ij = np.indices((TEXTURE_SIZE, TEXTURE_SIZE)) // cell
    odd = ((ij[0] + ij[1]) % 2).astype(bool)
    img = np.where(odd[..., None], np.array(TEXTURE_COLOURS[1]), np.array(TEXTURE_COLOURS[0]))
    return Image.fromarray(img.astype(np.uint8), "RGB")


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95, subsampling=0)
    return buf.getvalue()


def _model_id(seed: int, synset: str, index: int) -> str:
    return hashlib.md5(f"{seed}/{synset}/{index}".encode()).hexdigest()  # 32 hex digits, as ShapeNet's ids


def _planar_uv(points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Per-corner UVs: each face projected on the plane its normal faces most, scaled into [0, 1]."""
    span = float(np.ptp(points.reshape(-1, 3), axis=0).max()) or 1.0
    lo = points.reshape(-1, 3).min(axis=0)
    axis = np.abs(normals).argmax(axis=1)  # (F,)
    keep = np.array([[1, 2], [0, 2], [0, 1]])[axis]  # (F, 2) the two other axes
    rel = (points - lo) / span  # (F, 3, 3)
    uv = np.take_along_axis(rel, keep[:, None, :].repeat(3, axis=1), axis=2)
    return np.clip(uv, 0.0, 1.0)


def write_shapenet_model(mesh: trimesh.Trimesh, model_dir: Path, textured: bool) -> None:
    """``models/model_normalized.{obj,mtl,json}`` (+ ``images/texture0.jpg`` when textured) for one model.

    One material per part colour (``Kd``); when ``textured``, the largest part's material also has
    ``map_Kd ../images/texture0.jpg`` and its faces carry ``vt`` coordinates (``f v/vt/vn``), the others
    ``f v//vn`` as in ShapeNetCore's exports.
    """
    verts = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    fcols = np.asarray(mesh.visual.face_colors)[:, :3]
    groups, group_of = np.unique(fcols, axis=0, return_inverse=True)
    group_of = group_of.reshape(-1)
    sizes = np.bincount(group_of, minlength=len(groups))
    tex_group = int(sizes.argmax()) if textured else -1
    normals = np.asarray(mesh.face_normals)

    models = model_dir / "models"
    models.mkdir(parents=True, exist_ok=True)
    mtl = []
    obj = ["# fabricated in ShapeNetCore.v2's format (clip2point tools.fabricate)", "mtllib model_normalized.mtl"]
    obj += _fmt_rows(verts, "v %.6f %.6f %.6f")
    obj += _fmt_rows(normals, "vn %.6f %.6f %.6f")
    vt_base = 0
    for g, rgb in enumerate(groups):
        name = f"material_{g}_{24 + g}"
        kd = TEXTURED_KD if g == tex_group else tuple(float(c) / 255 for c in rgb)
        mtl += [f"newmtl {name}", "\tKa 0 0 0", "\tKd {:.6f} {:.6f} {:.6f}".format(*kd), "\tKs 0.4 0.4 0.4",
                "\tNs 10.0", "\tillum 2"]  # fmt: skip
        idx = np.flatnonzero(group_of == g)
        obj += [f"o mesh{g}", f"usemtl {name}"]
        if g == tex_group:
            mtl.append("\tmap_Kd ../images/texture0.jpg")
            uv = _planar_uv(verts[faces[idx]], normals[idx]).reshape(-1, 2)
            obj += _fmt_rows(uv, "vt %.6f %.6f")
            corners = np.arange(len(uv)).reshape(-1, 3) + vt_base + 1
            vt_base += len(uv)
            obj += [
                f"f {f[0]}/{t[0]}/{n} {f[1]}/{t[1]}/{n} {f[2]}/{t[2]}/{n}"
                for f, t, n in zip((faces[idx] + 1).tolist(), corners.tolist(), (idx + 1).tolist(), strict=True)
            ]
        else:
            obj += [
                f"f {f[0]}//{n} {f[1]}//{n} {f[2]}//{n}"
                for f, n in zip((faces[idx] + 1).tolist(), (idx + 1).tolist(), strict=True)
            ]
        mtl.append("")
    (models / "model_normalized.obj").write_text("\n".join(obj) + "\n")
    (models / "model_normalized.mtl").write_text("\n".join(mtl))
    lo, hi = verts.min(axis=0), verts.max(axis=0)
    info = {"id": model_dir.name, "numVertices": len(verts), "min": lo.tolist(), "max": hi.tolist(),
            "centroid": verts.mean(axis=0).tolist()}  # fmt: skip
    (models / "model_normalized.json").write_text(json.dumps(info))
    if textured:
        (model_dir / "images").mkdir(exist_ok=True)
        (model_dir / "images" / "texture0.jpg").write_bytes(_jpeg(checkerboard()))


def _normalized(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """ShapeNetCore.v2's ``model_normalized``: bounding box centred on the origin, unit diagonal."""
    lo, hi = mesh.bounds
    mesh.apply_translation(-(lo + hi) / 2)
    mesh.apply_scale(1.0 / float(np.linalg.norm(hi - lo)))
    return mesh


def fabricate_shapenet(
    core_root: Path, pb_root: Path, per_class: int, seed: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """ShapeNetCore.v2 under ``core_root`` and Point-BERT's ShapeNet-55 release of the same models under
    ``pb_root``; returns their ``expected.json`` entries."""
    extra_id, extra_name, extra_parent = EXTRA_SYNSET
    names = {**SHAPENET_SYNSETS, extra_id: extra_name}
    synsets = sorted(names)
    gens = _generators([names[s] for s in synsets])
    lists: dict[str, list[str]] = {"train": [], "test": []}
    textured: list[str] = []
    per_synset: dict[str, int] = {}
    k = 0
    for syn in synsets:
        index = 0
        for split in ("train", "test"):
            for _ in range(per_class):
                index += 1
                mesh = _normalized(_shape(gens[names[syn]], seed, "shapenetcore", syn, index))
                model = _model_id(seed, syn, index)
                is_textured = k % 2 == 0
                k += 1
                write_shapenet_model(mesh, core_root / syn / model, is_textured)
                if is_textured:
                    textured.append(f"{syn}-{model}")
                pts = _surface(mesh, SHAPENET55_POINTS, _rng(seed, syn, index))
                (pb_root / "shapenet_pc").mkdir(parents=True, exist_ok=True)
                np.save(pb_root / "shapenet_pc" / f"{syn}-{model}.npy", pts.astype(np.float32))
                lists[split].append(f"{syn}-{model}.npy")
                per_synset[syn] = per_synset.get(syn, 0) + 1
    list_dir = pb_root / "ShapeNet-55"
    list_dir.mkdir(parents=True, exist_ok=True)
    for split, lines in lists.items():
        (list_dir / f"{split}.txt").write_text("\n".join(lines) + "\n")
    taxonomy = []
    for syn in synsets:
        label = names[syn]
        synonyms = {"airplane": "airplane,aeroplane,plane", "table": "table", "chair": "chair"}.get(label, label)
        children = [extra_id] if syn == extra_parent else []
        taxonomy.append({"synsetId": syn, "name": synonyms, "children": children, "numInstances": per_synset[syn]})
    (core_root / "taxonomy.json").write_text(json.dumps(taxonomy))

    class_names = [names[s] for s in synsets]
    n = per_class * len(synsets)
    core = {
        "kind": "shapenetcore",
        "root": core_root.name,
        "variant": f"{pb_root.name}/{list_dir.name}",
        "up_axis": "y",
        "classes": class_names,
        "synsets": synsets,
        "counts": {"train": n, "val": n},
        "class_counts": {s: dict.fromkeys(class_names, per_class) for s in ("train", "val")},
        "taxonomy_only": {extra_id: extra_name},
        "textured": textured,
        "texture_colours": [list(c) for c in TEXTURE_COLOURS],
        "model": SHAPENETCORE_MODEL,
    }
    # Point-BERT's release carries no taxonomy: a synset outside ShapeNet-55's table is named by its id
    pb_names = [SHAPENET_SYNSETS.get(s, s) for s in synsets]
    pb = {
        "kind": "shapenet55",
        "root": pb_root.name,
        "variant": "",
        "up_axis": "y",
        "classes": pb_names,
        "synsets": synsets,
        "counts": {"train": n, "test": n},
        "class_counts": {s: dict.fromkeys(pb_names, per_class) for s in ("train", "test")},
    }
    return core, pb
