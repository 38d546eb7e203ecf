"""Fabricate small stand-ins of the paper's real datasets (§5.1) in their exact on-disk formats and layouts.

The real downloads cannot be fetched here, yet the readers (:mod:`clip2point.datasets`) and
``clip2point prepare`` must be exercised on what those downloads look like, quirks included. This module
writes, under one output folder, shapes from the procedural generators of :mod:`clip2point.synth` (a class
without a generator reuses one cyclically: the content need not match the name):

* ``ModelNet40/`` and ``ModelNet10/`` — the manually aligned release, ``<class>/{train,test}/<class>_NNNN.off``
  with the real class names, numbering continuing from train into test as in the release, **z-up**, at CAD
  scales (largest extent 20–400 units, a different scale and mild stretch per model, shifted off the
  origin). The ``.off`` files rotate through three styles: the regular header (``OFF`` then the counts line),
  ModelNet's first-line quirk (``OFF490 518 0``), and the regular header with coplanar triangle pairs written as quads
  (mixed 3- and 4-gons, as some ModelNet files have).
* ``h5_files/main_split{,_nobg}/`` — ScanObjectNN's HDF5 files for ``OBJ_ONLY``, ``OBJ_BG`` and ``PB_T50_RS``
  with datasets ``data`` (float32 ``N×2048×3``), ``label`` (``N``, int64) and ``mask`` (``N×2048``, int64;
  ``-1`` marks background points), 15 classes, y-up. ``OBJ_BG``/``PB_T50_RS`` carry a floor and wall of
  background points; ``PB_T50_RS`` holds ``SCANOBJECTNN_PERTURBED`` rotated, scaled and shifted copies
  of each object (:mod:`tools.fabricate_scanobjectnn`).
* ``ShapeNetCore.v2/`` — ``<synset>/<model_id>/models/model_normalized.{obj,mtl,json}`` for the 55 synsets of
  ShapeNet-55 plus ``EXTRA_SYNSET`` (named only in ``taxonomy.json``), y-up, normalised to a unit
  bounding-box diagonal. Every other model is textured: its largest part uses a material with
  ``map_Kd ../images/texture0.jpg``, the JPEG (a checkerboard of ``TEXTURE_COLOURS``, colours no untextured
  part uses) at ``<synset>/<model_id>/images/texture0.jpg``, and ``vt`` coordinates in the OBJ; the other
  parts, and untextured models, carry a ``Kd`` colour. ``taxonomy.json`` lists
  ``{synsetId, name, children, numInstances}`` entries (:mod:`tools.fabricate_shapenet`, also the next item).
* ``ShapeNet55-34/`` — Point-BERT's release for the same models: ``shapenet_pc/<synset>-<model_id>.npy``
  (8192×3 float32) and the split lists ``ShapeNet-55/{train,test}.txt`` (``<synset>-<model_id>.npy`` lines),
  which also split the ShapeNetCore models (pass the list folder as the ``shapenetcore`` variant).
* ``expected.json`` — per dataset: catalogue kind, root and variant (relative to the output folder), class
  names in label order, per-split counts and per-split per-class counts; plus the ModelNet files written with
  each OFF style and the textured ShapeNetCore models. Tests compare the readers' output against it.

Each split has ``per_class`` models per class (``PB_T50_RS``: that many objects, each perturbed
``SCANOBJECTNN_PERTURBED`` times). Output is deterministic per ``seed``.

Usage: ``python -m tools.fabricate --out DIR [--per-class N] [--seed S] [--overwrite]`` or
:func:`fabricate`. Note that ``clip2point prepare`` compares against the published split sizes, so on
fabricated data it reports the counts (and only the counts) as incomplete.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from clip2point import synth
from clip2point.datasets import (
    MODELNET10_CLASSES,
    MODELNET40_CLASSES,
)

#: The folders (and file) :func:`fabricate` writes under the output folder.
YUP_SUFFIX = "_yup"
OUTPUTS = ("ModelNet40", "ModelNet40_yup", "ModelNet10", "ModelNet10_yup", "h5_files", "ShapeNetCore.v2",
           "ShapeNet55-34", "expected.json")
OFF_STYLES = ("regular", "header_quirk", "mixed_polygons")


class FabricateError(RuntimeError):
    """The output folder cannot be written as asked."""


# ------------------------------------------------------------------------------------------ helpers


def _rng(seed: int, *keys: str | int) -> np.random.Generator:
    ints = [k if isinstance(k, int) else zlib.crc32(k.encode()) for k in keys]
    return np.random.default_rng(np.random.SeedSequence([seed, *ints]))


def _generators(names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """class name → synth generator: the same name, else its last word ("wine bottle" → bottle), else the
    remaining generators in turn."""
    pool = sorted(synth.CLASSES)
    out, k = {}, 0
    for name in names:
        if name in synth.CLASSES:
            out[name] = name
        elif name.split()[-1] in synth.CLASSES:
            out[name] = name.split()[-1]
        else:
            out[name] = pool[k % len(pool)]
            k += 1
    return out


def _shape(generator: str, seed: int, dataset: str, name: str, index: int) -> trimesh.Trimesh:
    """A y-up, centred, face-coloured synth shape; independent per (seed, dataset, class, index)."""
    return synth.make_shape(generator, synth.shape_rng([seed, zlib.crc32(dataset.encode())], name, index))


def _z_up(vertices: np.ndarray) -> np.ndarray:
    """y-up → z-up: the inverse of :func:`clip2point.sampling.to_y_up` for ``"z"``, ``(x, y, z) → (x, -z, y)``."""
    v = np.asarray(vertices, dtype=np.float64)
    return np.column_stack([v[:, 0], -v[:, 2], v[:, 1]])


def _surface(mesh: trimesh.Trimesh, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points sampled uniformly on the surface of ``mesh``."""
    return trimesh.sample.sample_surface(mesh, n, seed=int(rng.integers(2**31)))[0]


def _fmt_rows(rows: np.ndarray, fmt: str) -> list[str]:
    """One line per row of ``rows``, each ``fmt % tuple(row)``."""
    return [fmt % tuple(r) for r in rows.tolist()]


# ------------------------------------------------------------------------------------------ ModelNet


def _quads(faces: np.ndarray, vertices: np.ndarray) -> list[list[int]]:
    """Faces as polygons, consecutive coplanar triangles sharing an edge merged into quads whose fan
    triangulation from the first corner gives back exactly the two triangles."""
    normals = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    lens = np.linalg.norm(normals, axis=1)
    normals = normals / np.where(lens > 0, lens, 1.0)[:, None]
    polys: list[list[int]] = []
    i = 0
    while i < len(faces):
        t1 = [int(x) for x in faces[i]]
        if i + 1 < len(faces) and lens[i] > 0 and lens[i + 1] > 0 and normals[i] @ normals[i + 1] > 1 - 1e-9:
            t2 = [int(x) for x in faces[i + 1]]
            merged = None
            for r in range(3):  # rotate t1 so the shared edge is t1[2] -> t1[0]
                a, b, c = t1[r:] + t1[:r]
                for s in range(3):  # t2 walks the edge the other way: (a, c, d)
                    if t2[s:] + t2[:s] == [a, c, t2[(s + 2) % 3]] and t2[(s + 2) % 3] not in (a, b, c):
                        merged = [a, b, c, t2[(s + 2) % 3]]
                        break
                if merged:
                    break
            if merged:
                polys.append(merged)
                i += 2
                continue
        polys.append(t1)
        i += 1
    return polys


def write_modelnet_off(mesh: trimesh.Trimesh, path: Path, style: str) -> None:
    """Write ``mesh`` (no colours, as ModelNet) as OFF in one of :data:`OFF_STYLES`."""
    verts = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    polys = _quads(faces, verts) if style == "mixed_polygons" else faces.tolist()
    counts = f"{len(verts)} {len(polys)} 0"
    head = [f"OFF{counts}"] if style == "header_quirk" else ["OFF", counts]
    body = _fmt_rows(verts, "%.6f %.6f %.6f") + [f"{len(p)} " + " ".join(map(str, p)) for p in polys]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(head + body) + "\n")


def _cad_pose(mesh: trimesh.Trimesh, rng: np.random.Generator) -> trimesh.Trimesh:
    """z-up at a CAD-like scale: largest extent 20–400 units (per model), mild per-axis stretch, an offset."""
    size = float(np.ptp(mesh.vertices, axis=0).max())
    scale = np.exp(rng.uniform(np.log(20.0), np.log(400.0))) / size * np.exp(rng.uniform(-0.15, 0.15, 3))
    verts = _z_up(mesh.vertices) * scale
    verts = verts + rng.uniform(-1.0, 1.0, 3) * scale * rng.uniform(0.2, 2.0)
    return trimesh.Trimesh(verts, np.asarray(mesh.faces), process=False, validate=False)


def fabricate_modelnet(
    root: Path, classes: tuple[str, ...], per_class: int, seed: int, dataset: str, yup_copy: bool = True,
    test_per_class: int | None = None,
) -> dict[str, Any]:
    """ModelNet's aligned layout under ``root``; returns the dataset's ``expected.json`` entry.

    With ``yup_copy``, ``<root>_yup`` holds the same meshes (same file names) rotated back to y-up by the
    inverse of this module's own z-up turn: what a pipeline given ``up_axis: z`` must see.
    """
    gens = _generators(classes)
    styles: dict[str, list[str]] = {s: [] for s in OFF_STYLES}
    k = 0
    n_split = {"train": per_class, "test": per_class if test_per_class is None else test_per_class}
    for name in classes:
        index = 0
        for split in ("train", "test"):
            for _ in range(n_split[split]):
                index += 1
                mesh = _cad_pose(_shape(gens[name], seed, dataset, name, index), _rng(seed, dataset, name, index))
                style = OFF_STYLES[k % len(OFF_STYLES)]
                k += 1
                rel = f"{name}/{split}/{name}_{index:04d}.off"
                write_modelnet_off(mesh, root / rel, style)
                styles[style].append(rel)
                if yup_copy:  # the very same shape stored y-up, for the rehearsal's frame check
                    back = np.linalg.solve(_z_up(np.eye(3)).T, np.asarray(mesh.vertices).T).T
                    copy = trimesh.Trimesh(back, np.asarray(mesh.faces), process=False, validate=False)
                    write_modelnet_off(copy, root.with_name(root.name + YUP_SUFFIX) / rel, "regular")
    names = sorted(classes)
    return {
        "kind": dataset,
        "root": root.name,
        "variant": "",
        "up_axis": "z",
        "classes": names,
        "counts": {s: n_split[s] * len(names) for s in ("train", "test")},
        "class_counts": {s: dict.fromkeys(names, n_split[s]) for s in ("train", "test")},
        "off_styles": styles,
    }


# ------------------------------------------------------------------------------------------ all


def fabricate(out: str | Path, per_class: int = 1, seed: int = 0, overwrite: bool = False,
              test_per_class: int | None = None, pool_per_class: int | None = None) -> dict[str, Any]:
    """Write every dataset under ``out`` and ``out/expected.json``; returns the expected-contents mapping.

    ``test_per_class`` (default ``per_class``): ModelNet / ScanObjectNN test models per class;
    ``pool_per_class`` (default ``per_class``): ShapeNetCore models per synset and split.

    ``out`` must be absent or empty unless ``overwrite`` (which first removes only :data:`OUTPUTS`).
    """
    from tools.fabricate_scanobjectnn import fabricate_scanobjectnn  # they import this module's helpers
    from tools.fabricate_shapenet import fabricate_shapenet

    if per_class < 1:
        raise FabricateError(f"--per-class must be at least 1, not {per_class}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FabricateError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FabricateError(f"{out} is not empty (pass --overwrite to replace the fabricated datasets)")
        for name in OUTPUTS:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    datasets: dict[str, Any] = {}
    for n in (test_per_class, pool_per_class):
        if n is not None and n < 1:
            raise FabricateError(f"per-class counts must be at least 1, not {n}")
    tpc = test_per_class
    datasets["modelnet40"] = fabricate_modelnet(out / "ModelNet40", MODELNET40_CLASSES, per_class, seed, "modelnet40",
                                                test_per_class=tpc)
    datasets["modelnet10"] = fabricate_modelnet(out / "ModelNet10", MODELNET10_CLASSES, per_class, seed, "modelnet10",
                                                test_per_class=tpc)
    datasets.update(fabricate_scanobjectnn(out / "h5_files", per_class, seed, test_per_class=tpc))
    datasets["shapenetcore"], datasets["shapenet55"] = fabricate_shapenet(
        out / "ShapeNetCore.v2", out / "ShapeNet55-34", pool_per_class or per_class, seed
    )
    expected = {"seed": seed, "per_class": per_class, "datasets": datasets}
    (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    return expected


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.fabricate", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="output folder (absent or empty)")
    ap.add_argument("--per-class", type=int, default=1, help="models per class and split (default 1)")
    ap.add_argument("--test-per-class", type=int, default=None, help="ModelNet/ScanObjectNN test models per class")
    ap.add_argument("--pool-per-class", type=int, default=None, help="ShapeNetCore models per synset and split")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true", help="replace the fabricated datasets in --out")
    args = ap.parse_args(argv)
    try:
        expected = fabricate(args.out, args.per_class, args.seed, args.overwrite, args.test_per_class,
                             args.pool_per_class)
    except FabricateError as e:
        print(f"fabricate: {e}", file=sys.stderr)
        return 1
    for name, d in expected["datasets"].items():
        split_sizes = ", ".join(f"{s} {n}" for s, n in d["counts"].items())
        print(f"{name}: {len(d['classes'])} classes, {split_sizes} -> {args.out / d['root']}")
    return 0


if __name__ == "__main__":
    from tools.fabricate import main as _main  # one module object, so the format modules share its FabricateError

    sys.exit(_main())
