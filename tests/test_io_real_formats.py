"""Readers on files in the real datasets' formats: ShapeNetCore textures (``../images/``) and OFF parsing paths.

The ShapeNetCore fixtures are written by :func:`tools.fabricate_shapenet.write_shapenet_model` (the release's
``<synset>/<id>/models/model_normalized.{obj,mtl}`` + ``images/texture0.jpg`` layout); the OFF fixtures are
written here from known arrays, and the expected triangles come from a plain-Python fan triangulation.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import trimesh

from clip2point.io import ReadError, parse_off, read_mesh
from clip2point.synth import make_shape, shape_rng
from tools.fabricate_shapenet import TEXTURE_COLOURS, TEXTURED_KD, write_shapenet_model

# ------------------------------------------------------------------------------------------ ShapeNetCore

SYNSET, MODEL = "03001627", "1a6f615e8b1b5ae4dbbc9440457e303e"


def _model(root: Path, textured: bool, name: str = MODEL) -> Path:
    mesh = make_shape("chair", shape_rng(0, "chair", 1))
    write_shapenet_model(mesh, root / SYNSET / name, textured)
    return root / SYNSET / name / "models" / "model_normalized.obj"


def _near(colours: np.ndarray, rgb: tuple[int, ...], tol: int = 40) -> np.ndarray:
    return np.abs(colours[:, :3].astype(int) - np.array(rgb)).max(axis=1) < tol


def _grey() -> tuple[int, ...]:
    return tuple(round(c * 255) for c in TEXTURED_KD)


def test_shapenetcore_texture_under_images_is_loaded(tmp_path, caplog):
    obj = _model(tmp_path, textured=True)
    assert "map_Kd ../images/texture0.jpg" in obj.with_suffix(".mtl").read_text()
    with caplog.at_level(logging.WARNING):
        mesh = read_mesh(obj)
    assert not caplog.records
    colours = np.asarray(mesh.visual.face_colors)
    for rgb in TEXTURE_COLOURS:  # both checker colours reach the faces ...
        assert _near(colours, rgb).sum() >= 5, rgb
    assert not _near(colours, _grey(), tol=3).any()  # ... and none kept the flat Kd of the textured material


def test_untextured_model_keeps_its_kd_colours(tmp_path):
    mesh = read_mesh(_model(tmp_path, textured=False))
    colours = np.asarray(mesh.visual.face_colors)
    assert not any(_near(colours, rgb).any() for rgb in TEXTURE_COLOURS)
    source = make_shape("chair", shape_rng(0, "chair", 1))
    want = {tuple(c) for c in np.asarray(source.visual.face_colors)[:, :3].tolist()}
    got = {tuple(c) for c in colours[:, :3].tolist()}
    assert got == want


def test_missing_texture_is_a_logged_warning(tmp_path, caplog):
    obj = _model(tmp_path, textured=True)
    (obj.parent.parent / "images" / "texture0.jpg").unlink()
    with caplog.at_level(logging.WARNING, logger="clip2point.io.meshes"):
        mesh = read_mesh(obj)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 1
    assert str(obj) in messages[0] and "../images/texture0.jpg" in messages[0] and "not found" in messages[0]
    assert _near(np.asarray(mesh.visual.face_colors), _grey(), tol=3).any()  # falls back to the flat Kd


def test_texture_outside_the_model_folder_is_refused(tmp_path, caplog):
    """The resolver widens to the model folder (``<synset>/<id>/``), not further up."""
    obj = _model(tmp_path, textured=True)
    outside = tmp_path / SYNSET / "stolen.jpg"
    outside.write_bytes((obj.parent.parent / "images" / "texture0.jpg").read_bytes())
    mtl = obj.with_suffix(".mtl")
    mtl.write_text(mtl.read_text().replace("../images/texture0.jpg", "../../stolen.jpg"))
    with caplog.at_level(logging.WARNING, logger="clip2point.io.meshes"):
        mesh = read_mesh(obj)
    messages = [r.getMessage() for r in caplog.records]
    assert any("../../stolen.jpg" in m and "outside the model folder" in m for m in messages), messages
    assert not any(_near(np.asarray(mesh.visual.face_colors), rgb).any() for rgb in TEXTURE_COLOURS)


def test_missing_mtl_is_a_logged_warning(tmp_path, caplog):
    obj = _model(tmp_path, textured=False)
    obj.with_suffix(".mtl").unlink()
    with caplog.at_level(logging.WARNING, logger="clip2point.io.meshes"):
        mesh = read_mesh(obj)
    assert len(mesh.faces) > 0
    assert any("model_normalized.mtl" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------------------------ OFF


def _fan(polys: list[list[int]]) -> np.ndarray:
    return np.array([[p[0], p[k], p[k + 1]] for p in polys for k in range(1, len(p) - 1)])


def _off(verts: np.ndarray, polys: list[list[int]], face_extra: list[str] | None = None, head: str = "OFF") -> str:
    lines = [head, f"{len(verts)} {len(polys)} 0"] if head == "OFF" else [head]  # else: counts in the header
    lines += [" ".join(f"{x:.6f}" for x in v) for v in verts]
    for i, p in enumerate(polys):
        extra = f" {face_extra[i]}" if face_extra and face_extra[i] else ""
        lines.append(f"{len(p)} " + " ".join(map(str, p)) + extra)
    return "\n".join(lines) + "\n"


def _random_polys(rng: np.random.Generator, nv: int, nf: int, sizes: tuple[int, ...]) -> list[list[int]]:
    return [rng.choice(nv, int(rng.choice(sizes)), replace=False).tolist() for _ in range(nf)]


@pytest.mark.parametrize("sizes", [(3,), (4,), (3, 4, 5, 6)], ids=["triangles", "quads", "mixed"])
def test_off_polygons_fan_triangulated(tmp_path, sizes):
    rng = np.random.default_rng(len(sizes))
    verts = rng.normal(0, 50, (40, 3))
    polys = _random_polys(rng, len(verts), 200, sizes)
    path = tmp_path / "m.off"
    path.write_text(_off(verts, polys))
    mesh = read_mesh(path)
    np.testing.assert_allclose(mesh.vertices, verts, atol=1e-6)
    np.testing.assert_array_equal(mesh.faces, _fan(polys))


def test_off_face_colours_int_float_alpha_and_absent_per_face(tmp_path):
    """Each face decides its own colour encoding: ints 0..255, floats 0..1, with or without alpha, or none
    (trimesh's default grey); polygons repeat their colour on each of their triangles."""
    rng = np.random.default_rng(7)
    verts = rng.normal(0, 1, (30, 3))
    polys = _random_polys(rng, len(verts), 120, (3, 4, 5))
    want, extras = [], []
    for i in range(len(polys)):
        rgba = rng.integers(0, 256, 4)
        kind = i % 5
        if kind == 0:
            extras.append(" ".join(map(str, rgba[:3])))
            rgba[3] = 255
        elif kind == 1:
            extras.append(" ".join(map(str, rgba)))
        elif kind == 2:
            extras.append(" ".join(f"{c / 255:.6f}" for c in rgba[:3]))
            rgba[3] = 255
        elif kind == 3:
            extras.append(" ".join(f"{c / 255:.6f}" for c in rgba))
        else:
            extras.append("")
            rgba = np.array([102, 102, 102, 255])
        want.append(rgba)
    path = tmp_path / "c.off"
    path.write_text(_off(verts, polys, extras))
    mesh = read_mesh(path)
    np.testing.assert_array_equal(mesh.faces, _fan(polys))
    per_tri = np.repeat(np.array(want), [len(p) - 2 for p in polys], axis=0)
    np.testing.assert_array_equal(mesh.visual.face_colors, per_tri)


@pytest.mark.parametrize("floats", [False, True])
def test_coff_vertex_colours_int_and_float(tmp_path, floats):
    rng = np.random.default_rng(3)
    verts = rng.normal(0, 1, (12, 3))
    cols = rng.integers(0, 256, (12, 4))
    fmt = (lambda c: f"{c / 255:.6f}") if floats else str
    lines = ["COFF", f"{len(verts)} 4 0"]
    lines += [" ".join([*(f"{x:.6f}" for x in v), *map(fmt, c)]) for v, c in zip(verts, cols, strict=True)]
    lines += ["3 0 1 2", "3 3 4 5", "4 6 7 8 9", "3 9 10 11"]
    path = tmp_path / "v.off"
    path.write_text("\n".join(lines) + "\n")
    mesh = read_mesh(path)
    assert mesh.visual.kind == "vertex"
    np.testing.assert_array_equal(mesh.visual.vertex_colors, cols)
    assert len(mesh.faces) == 5


def test_off_quirk_header_comments_blank_lines_crlf_and_trailing_lines(tmp_path):
    rng = np.random.default_rng(11)
    verts = rng.normal(0, 100, (20, 3))
    polys = _random_polys(rng, len(verts), 30, (3, 4))
    text = _off(verts, polys, head=f"OFF{len(verts)} {len(polys)} 0")
    lines = text.splitlines()
    lines.insert(3, "")
    lines.insert(5, "# a comment line")
    lines[7] += "  # trailing comment"
    lines.append("junk that is not part of the mesh")
    path = tmp_path / "q.off"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    mesh = read_mesh(path)
    np.testing.assert_allclose(mesh.vertices, verts, atol=1e-6)
    np.testing.assert_array_equal(mesh.faces, _fan(polys))


def test_off_ragged_vertex_lines_use_the_common_columns(tmp_path):
    text = "OFF\n3 1 0\n0 0 0 9 9\n1 0 0\n0 1 0 7\n3 0 1 2\n"
    mesh = parse_off(text)
    np.testing.assert_array_equal(mesh.vertices, [[0, 0, 0], [1, 0, 0], [0, 1, 0]])


def test_parse_off_accepts_str_and_bytes():
    text = "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2 255 0 0\n"
    a, b = parse_off(text), parse_off(text.encode())
    np.testing.assert_array_equal(a.faces, b.faces)
    np.testing.assert_array_equal(a.visual.face_colors, b.visual.face_colors)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("OFF\n4 2 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n3 0 1 2\n", "truncated: expected 4 vertex and 2 face lines"),
        ("OFF4 2 0\n0 0 0\n1 0 0\n", "truncated"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 x\n", "non-numeric face index"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 1.5\n", "non-integer face index"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n2 0 1\n", "fewer than 3 vertex indices"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n4 0 1 2\n", "fewer than 3 vertex indices"),
        ("OFF\n3 1 0\n0 0\n1 0 0\n0 1 0\n3 0 1 2\n", "fewer than 3 coordinates"),
        ("OFF\nthree 1 0\n", "malformed counts"),
        ("OFF\n", "missing vertex/face counts"),
        ("# only a comment\n\n", "empty file"),
    ],
)
def test_bad_off_names_the_file(tmp_path, content, reason):
    path = tmp_path / "bad.off"
    path.write_text(content)
    with pytest.raises(ReadError) as e:
        read_mesh(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg
    assert reason in msg, msg


def test_off_matches_trimesh_obj_on_a_large_mesh(tmp_path):
    """The vectorised reader agrees with trimesh's OBJ reader on the same 20k-face mesh."""
    mesh = trimesh.creation.icosphere(subdivisions=5)
    mesh.vertices = mesh.vertices * 37.5 + 12.0
    path = tmp_path / "ico.off"
    path.write_text(_off(np.asarray(mesh.vertices), np.asarray(mesh.faces).tolist()))
    mesh.export(tmp_path / "ico.obj")
    ref = trimesh.load(tmp_path / "ico.obj", process=False)
    got = read_mesh(path)
    np.testing.assert_allclose(got.vertices, ref.vertices, atol=1e-5)
    np.testing.assert_array_equal(got.faces, ref.faces)
