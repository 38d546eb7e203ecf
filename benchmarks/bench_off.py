"""OFF reading speed: the project's own parser (``clip2point.io.off.read_off``) against trimesh's OBJ reader.

The OFF parser exists because trimesh drops OFF colours and must accept ModelNet's header quirk; it should
be no slower than reading the same mesh as OBJ with :func:`trimesh.load`. On one mesh of about 300k faces
(an icosphere, generated here, with mild noise so coordinates carry full decimals) written to a temporary
folder, this prints the best-of-N time of:

* ``read_off`` on the plain OFF (ModelNet's case: triangles, no colours);
* ``read_off`` on the same mesh with per-face RGBA colours (the synthetic benchmark's case);
* ``read_off`` on the same vertices with consecutive triangle pairs written as 4-gons (the polygon path);
* ``trimesh.load(..., process=False)`` of the same mesh saved as OBJ (the reference),

and each OFF time's ratio to the reference (below 1: faster than trimesh's OBJ reader).

Usage: ``.venv/bin/python benchmarks/bench_off.py [--subdivisions 7] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import numpy as np
import trimesh
from _timing import best_of

from clip2point.io.off import read_off, write_off


def write_quads(mesh: trimesh.Trimesh, path: Path) -> None:
    """Faces 2k and 2k+1 written as one 4-gon ``(a, b, c, d)`` whose fan is ``(a, b, c), (a, c, d)``: the
    reader must fan-triangulate it back into two triangles (the geometry differs from the mesh's)."""
    faces = np.asarray(mesh.faces)
    n = len(faces) // 2 * 2
    quads = np.column_stack([faces[:n:2], faces[1:n:2, 2]])
    rows = [f"4 {a} {b} {c} {d}" for a, b, c, d in quads.tolist()]
    rows += [f"3 {a} {b} {c}" for a, b, c in faces[n:].tolist()]
    verts = [f"{x:.6f} {y:.6f} {z:.6f}" for x, y, z in np.asarray(mesh.vertices).tolist()]
    path.write_text("\n".join(["OFF", f"{len(verts)} {len(rows)} 0", *verts, *rows]) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subdivisions", type=int, default=7, help="icosphere level: 7 gives 327,680 faces")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, numpy {np.__version__}, trimesh {trimesh.__version__}")

    mesh = trimesh.creation.icosphere(subdivisions=args.subdivisions)
    rng = np.random.default_rng(0)
    mesh.vertices = mesh.vertices * (1 + rng.normal(0, 0.01, (len(mesh.vertices), 1))) * 123.456
    print(f"mesh: {len(mesh.vertices):,} vertices, {len(mesh.faces):,} faces")
    with tempfile.TemporaryDirectory() as tmp:
        plain, coloured, quads = Path(tmp) / "plain.off", Path(tmp) / "coloured.off", Path(tmp) / "quads.off"
        obj = Path(tmp) / "mesh.obj"
        write_off(trimesh.Trimesh(mesh.vertices, mesh.faces, process=False), plain)
        painted = mesh.copy()
        cols = np.column_stack([rng.integers(0, 256, (len(mesh.faces), 3)), np.full(len(mesh.faces), 255)])
        painted.visual = trimesh.visual.ColorVisuals(painted, face_colors=cols.astype(np.uint8))
        write_off(painted, coloured)
        write_quads(mesh, quads)
        mesh.export(obj)

        back = read_off(plain)
        assert len(back.faces) == len(mesh.faces) and np.allclose(back.vertices, mesh.vertices, atol=1e-5)
        assert len(read_off(quads).faces) == len(mesh.faces)
        ref = trimesh.load(obj, process=False)
        assert len(ref.faces) == len(mesh.faces)

        t_obj = best_of(lambda: trimesh.load(obj, process=False), args.repeats)
        rows = [
            ("read_off, plain OFF", plain),
            ("read_off, face colours", coloured),
            ("read_off, quads", quads),
        ]
        print(f"{'trimesh.load OBJ (reference)':32s} {t_obj:7.3f} s   ({obj.stat().st_size / 1e6:.1f} MB)")
        for label, path in rows:
            t = best_of(lambda p=path: read_off(p), args.repeats)
            print(f"{label:32s} {t:7.3f} s   ({path.stat().st_size / 1e6:.1f} MB)   ratio to OBJ {t / t_obj:.2f}")


if __name__ == "__main__":
    main()
