"""Readers and catalogues of clip2point.io, on tiny fixtures written here in each real format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import trimesh

from clip2point.io import (
    KINDS,
    SCANOBJECTNN_CLASSES,
    Item,
    ReadError,
    catalogue,
    class_names,
    load_item,
    read_mesh,
    read_mesh_or_points,
    read_points,
    register_catalogue,
    shapenetcore_split,
    write_off,
)

# A unit square split in two triangles plus a tetrahedron apex: small enough to write by hand.
VERTS = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0.5, 0.5, 1.0]])
FACES = np.array([[0, 1, 2], [0, 2, 3], [0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]])


def _off_text(header_quirk: bool = False, colours: list | None = None, comment: bool = False) -> str:
    counts = f"{len(VERTS)} {len(FACES)} 0"
    lines = [f"OFF{counts}"] if header_quirk else ["OFF", counts]
    if comment:
        lines.insert(1, "# a comment line")
    lines += [" ".join(str(x) for x in v) for v in VERTS]
    for i, f in enumerate(FACES):
        extra = "" if colours is None else " " + " ".join(str(c) for c in colours[i])
        lines.append("3 " + " ".join(map(str, f)) + extra)
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def _assert_one_line(err: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg
    assert str(path) in msg
    for w in words:
        assert w.lower() in msg.lower(), msg


def _refused(read: Any, path: Path, *words: str) -> None:
    """``read(path)`` raises one :class:`ReadError` line naming ``path`` and holding ``words``."""
    with pytest.raises(ReadError) as e:
        read(path)
    _assert_one_line(e, path, *words)


# ------------------------------------------------------------------------------------------ OFF


@pytest.mark.parametrize("quirk", [False, True])
def test_off_regular_and_modelnet_quirk(tmp_path, quirk):
    p = _write(tmp_path / "m.off", _off_text(header_quirk=quirk, comment=not quirk))
    m = read_mesh(p)
    np.testing.assert_allclose(m.vertices, VERTS)
    np.testing.assert_array_equal(m.faces, FACES)


def test_off_quirk_real_modelnet_first_line(tmp_path):
    # The shape of the line as it appears in ModelNet40 (e.g. bathtub_0107.off): no space after OFF.
    text = "OFF4 2 0\n0 0 0\n2 0 0\n2 3 0\n0 3 0\n3 0 1 2\n3 0 2 3\n"
    m = read_mesh(_write(tmp_path / "q.off", text))
    assert np.isclose(m.area, 6.0)


def test_off_polygons_are_fan_triangulated(tmp_path):
    text = "OFF\n5 1 0\n0 0 0\n2 0 0\n3 1 0\n2 2 0\n0 2 0\n5 0 1 2 3 4 10 20 30\n"
    m = read_mesh(_write(tmp_path / "pent.off", text))
    assert len(m.faces) == 3
    # shoelace area of the pentagon, computed independently
    xy = np.array([[0, 0], [2, 0], [3, 1], [2, 2], [0, 2]], dtype=float)
    shoelace = 0.5 * abs(np.dot(xy[:, 0], np.roll(xy[:, 1], -1)) - np.dot(xy[:, 1], np.roll(xy[:, 0], -1)))
    assert np.isclose(m.area, shoelace)
    np.testing.assert_array_equal(m.visual.face_colors[:, :3], np.tile([10, 20, 30], (3, 1)))


def test_off_face_colours_int_and_float(tmp_path):
    rng = np.random.default_rng(0)
    cols = rng.integers(0, 256, (len(FACES), 3))
    m = read_mesh(_write(tmp_path / "c.off", _off_text(colours=cols.tolist())))
    assert m.visual.kind == "face"
    np.testing.assert_array_equal(m.visual.face_colors[:, :3], cols)
    fcols = [[f"{c / 255:.6f}" for c in row] for row in cols]
    m2 = read_mesh(_write(tmp_path / "f.off", _off_text(colours=fcols)))
    np.testing.assert_array_equal(m2.visual.face_colors[:, :3], cols)


def test_coff_vertex_colours(tmp_path):
    text = "COFF\n3 1 0\n0 0 0 255 0 0 255\n1 0 0 0 255 0 255\n0 1 0 0 0 255 255\n3 0 1 2\n"
    m = read_mesh(_write(tmp_path / "v.off", text))
    assert m.visual.kind == "vertex"
    np.testing.assert_array_equal(m.visual.vertex_colors[:, :3], [[255, 0, 0], [0, 255, 0], [0, 0, 255]])


def test_write_off_round_trips_colours(tmp_path):
    mesh = trimesh.creation.icosphere(subdivisions=1)
    rng = np.random.default_rng(1)
    cols = np.column_stack([rng.integers(0, 256, (len(mesh.faces), 3)), np.full(len(mesh.faces), 255)])
    mesh.visual = trimesh.visual.ColorVisuals(mesh, face_colors=cols.astype(np.uint8))
    write_off(mesh, tmp_path / "s.off")
    back = read_mesh(tmp_path / "s.off")
    np.testing.assert_allclose(back.vertices, mesh.vertices, atol=1e-6)
    np.testing.assert_array_equal(back.faces, mesh.faces)
    np.testing.assert_array_equal(back.visual.face_colors, cols)


# ------------------------------------------------------------------------------------------ OBJ / PLY / STL


def test_obj_with_mtl_materials_become_face_colours(tmp_path):
    _write(tmp_path / "m.mtl", "newmtl red\nKd 1.0 0.0 0.0\nnewmtl blue\nKd 0.0 0.0 1.0\n")
    obj = ["mtllib m.mtl"] + [f"v {x} {y} {z}" for x, y, z in VERTS]
    obj += ["g base", "usemtl red", "f 1 2 3", "f 1 3 4", "g roof", "usemtl blue"]
    obj += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in FACES[2:]]
    m = read_mesh(_write(tmp_path / "model_normalized.obj", "\n".join(obj) + "\n"))
    assert len(m.faces) == len(FACES)
    # faces on the z=0 square are red, the four sloped faces blue, wherever trimesh put them
    on_base = np.isclose(m.triangles[:, :, 2], 0).all(axis=1)
    assert on_base.sum() == 2
    np.testing.assert_array_equal(m.visual.face_colors[on_base, :3], [[255, 0, 0]] * 2)
    np.testing.assert_array_equal(m.visual.face_colors[~on_base, :3], [[0, 0, 255]] * 4)
    assert np.isclose(m.area, trimesh.Trimesh(VERTS, FACES).area)


def test_ply_mesh_keeps_face_colours_and_stl_reads(tmp_path):
    mesh = trimesh.creation.box(extents=(1, 2, 3))
    cols = np.tile([10, 200, 30, 255], (len(mesh.faces), 1)).astype(np.uint8)
    mesh.visual = trimesh.visual.ColorVisuals(mesh, face_colors=cols)
    mesh.export(tmp_path / "b.ply")
    mesh.export(tmp_path / "b.stl")
    ply = read_mesh(tmp_path / "b.ply")
    np.testing.assert_array_equal(ply.visual.face_colors, cols)
    stl = read_mesh(tmp_path / "b.stl")
    assert np.isclose(stl.area, 2 * (1 * 2 + 2 * 3 + 1 * 3))
    assert np.isclose(abs(stl.volume), 6.0)


def test_ply_point_cloud(tmp_path):
    pts = np.random.default_rng(2).normal(size=(50, 3))
    trimesh.PointCloud(pts).export(tmp_path / "pc.ply")
    np.testing.assert_allclose(read_points(tmp_path / "pc.ply"), pts, atol=1e-6)
    got = read_mesh_or_points(tmp_path / "pc.ply")
    assert isinstance(got, np.ndarray) and got.shape == (50, 3)
    with pytest.raises(ReadError) as e:
        read_mesh(tmp_path / "pc.ply")
    _assert_one_line(e, tmp_path / "pc.ply", "empty mesh")


# ------------------------------------------------------------------------------------------ point files


def test_npy_plain_and_with_extra_columns(tmp_path):
    rng = np.random.default_rng(3)
    a = rng.normal(size=(100, 3))
    np.save(tmp_path / "a.npy", a)
    got = read_points(tmp_path / "a.npy")
    assert got.dtype == np.float32 and got.shape == (100, 3)
    np.testing.assert_allclose(got, a, atol=1e-6)
    b = rng.normal(size=(40, 6)).astype(np.float32)  # e.g. xyz + normals
    np.save(tmp_path / "b.npy", b)
    np.testing.assert_array_equal(read_points(tmp_path / "b.npy"), b[:, :3])


def test_xyz_and_modelnet_resampled_txt(tmp_path):
    rng = np.random.default_rng(4)
    a = rng.normal(size=(30, 3))
    np.savetxt(tmp_path / "a.xyz", a, fmt="%.6f")
    np.testing.assert_allclose(read_points(tmp_path / "a.xyz"), a, atol=1e-5)
    b = rng.normal(size=(30, 6))
    np.savetxt(tmp_path / "airplane_0001.txt", b, fmt="%.6f", delimiter=",")
    np.testing.assert_allclose(read_points(tmp_path / "airplane_0001.txt"), b[:, :3], atol=1e-5)


def _h5(path: Path, data: np.ndarray, labels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=data)
        f.create_dataset("label", data=labels.reshape(-1, 1))
    return path


def test_h5_entry(tmp_path):
    data = np.random.default_rng(5).normal(size=(4, 64, 3)).astype(np.float32)
    p = _h5(tmp_path / "x.h5", data, np.arange(4))
    np.testing.assert_array_equal(read_points(f"{p}:2"), data[2])
    _refused(read_points, p, "INDEX")
    with pytest.raises(ReadError) as e:
        read_points(f"{p}:9")
    _assert_one_line(e, p, "out of range")


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("reader", [read_mesh, read_points])
def test_missing_file(tmp_path, reader):
    p = tmp_path / ("nope.off" if reader is read_mesh else "nope.npy")
    _refused(reader, p, "not found")


@pytest.mark.parametrize(
    ("reader", "name"), [(read_mesh, "m.abc"), (read_points, "p.las"), (read_mesh, "noext")]
)
def test_unknown_extension(tmp_path, reader, name):
    p = _write(tmp_path / name, "whatever")
    _refused(reader, p, "unknown")


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.off", "", "empty"),
        ("empty_mesh.off", "OFF\n0 0 0\n", "empty mesh"),
        ("nan.off", "OFF\n3 1 0\n0 0 0\nnan 0 0\n0 1 0\n3 0 1 2\n", "non-finite"),
        ("inf.off", "OFF\n3 1 0\n0 0 0\ninf 0 0\n0 1 0\n3 0 1 2\n", "non-finite"),
        ("garbage.off", "hello world\n", "not an off"),
        ("trunc.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n", "truncated"),
        ("badidx.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", "out of range"),
        ("words.off", "OFF\n3 1 0\n0 0 0\n1 x 0\n0 1 0\n3 0 1 2\n", "non-numeric"),
        ("empty.obj", "", "empty"),
        ("noface.obj", "v 0 0 0\nv 1 0 0\n", "empty mesh"),
        (
            "corrupt.ply",
            b"ply\nformat binary_little_endian 1.0\nelement vertex 5\nend_header\n\x00\x01",
            "corrupt",
        ),
        ("corrupt.stl", b"solid x\n facet normal 0 0 1\n  outer loop\n   vertex 0 0\n", "corrupt"),
    ],
)
def test_bad_meshes(tmp_path, name, content, reason):
    p = _write(tmp_path / name, content)
    _refused(read_mesh, p, reason)


def test_nan_in_obj_mesh(tmp_path):
    p = _write(tmp_path / "nan.obj", "v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n")
    _refused(read_mesh, p, "non-finite")


def _npy_bytes(arr: np.ndarray, tmp_path: Path) -> bytes:
    np.save(tmp_path / "_tmp.npy", arr)
    return (tmp_path / "_tmp.npy").read_bytes()


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("empty.npy", lambda t: b"", "empty"),
        ("zero.npy", lambda t: _npy_bytes(np.zeros((0, 3)), t), "empty point cloud"),
        ("nan.npy", lambda t: _npy_bytes(np.array([[0, 0, 0], [np.nan, 1, 1.0]]), t), "non-finite"),
        ("flat.npy", lambda t: _npy_bytes(np.zeros(6), t), "shape"),
        ("corrupt.npy", lambda t: b"\x93NUMPY garbage", "corrupt"),
        ("inf.txt", lambda t: "0,0,0\n1,inf,2\n", "non-finite"),
        ("ragged.xyz", lambda t: "0 0 0\n1 2\n", "inconsistent"),
        ("words.txt", lambda t: "0 0 0\na b c\n", "non-numeric"),
        ("comments.xyz", lambda t: "# nothing\n", "empty"),
        ("corrupt.h5", lambda t: b"not an hdf5 file", "corrupt"),
    ],
)
def test_bad_points(tmp_path, name, make, reason):
    p = _write(tmp_path / name, make(tmp_path))
    _refused(read_points, p, reason)


def test_read_error_pickles_and_is_one_line():
    import pickle

    e = ReadError("/a/b.off", "two\nlines")
    assert str(e) == "/a/b.off: two lines"
    e2 = pickle.loads(pickle.dumps(e))
    assert str(e2) == str(e) and e2.path == "/a/b.off"


# ------------------------------------------------------------------------------------------ catalogues


def _modelnet_folder(root: Path, classes: list[str], quirk: bool = True) -> None:
    n = 0
    for c in classes:
        for split, count in (("train", 2), ("test", 1)):
            for _ in range(count):
                n += 1
                _write(root / c / split / f"{c}_{n:04d}.off", _off_text(header_quirk=quirk and n % 2 == 0))


def test_modelnet_folder_catalogue(tmp_path):
    root = tmp_path / "ModelNet10"
    _modelnet_folder(root, ["toilet", "bathtub", "night_stand"])
    (root / "README.txt").write_text("not a class")
    items = catalogue("modelnet10", root)
    names = sorted(["toilet", "bathtub", "night_stand"])
    assert class_names("modelnet10", root) == names
    assert len(items) == 9
    for it in items:
        assert it.label_name == Path(it.source).parent.parent.name
        assert names[it.label] == it.label_name
        assert it.split == Path(it.source).parent.name
        assert it.id == Path(it.source).stem
    assert sorted({it.split for it in items}) == ["test", "train"]
    assert isinstance(load_item(items[1]), trimesh.Trimesh)


def test_synth_catalogue_uses_classes_txt_order(tmp_path):
    root = tmp_path / "pool"
    _modelnet_folder(root, ["cup", "airplane"])
    (root / "classes.txt").write_text("cup\nairplane\n")
    assert class_names("synth", root) == ["cup", "airplane"]
    items = catalogue("synth", root)
    assert {it.label_name: it.label for it in items} == {"cup": 0, "airplane": 1}


def test_modelnet40_resampled_catalogue(tmp_path):
    root = tmp_path / "modelnet40_normal_resampled"
    names = ["airplane", "night_stand"]
    _write(root / "modelnet40_shape_names.txt", "\n".join(names) + "\n")
    _write(root / "modelnet40_train.txt", "airplane_0001\nnight_stand_0001\n")
    _write(root / "modelnet40_test.txt", "night_stand_0002\n")
    rng = np.random.default_rng(6)
    clouds = {}
    for sid in ("airplane_0001", "night_stand_0001", "night_stand_0002"):
        clouds[sid] = rng.normal(size=(20, 6))
        cls = sid.rsplit("_", 1)[0]
        (root / cls).mkdir(parents=True, exist_ok=True)
        np.savetxt(root / cls / f"{sid}.txt", clouds[sid], fmt="%.6f", delimiter=",")
    items = catalogue("modelnet40", root)
    assert [(it.id, it.split, it.label_name, it.label) for it in items] == [
        ("airplane_0001", "train", "airplane", 0),
        ("night_stand_0001", "train", "night_stand", 1),
        ("night_stand_0002", "test", "night_stand", 1),
    ]
    np.testing.assert_allclose(load_item(items[2]), clouds["night_stand_0002"][:, :3], atol=1e-5)
    assert class_names("modelnet40", root) == names


def _shapenet55(root: Path, lists: Path) -> dict[str, np.ndarray]:
    files = {"train": ["03001627-aaa.npy", "02691156-bbb.npy"], "test": ["03001627-ccc.npy"]}
    rng = np.random.default_rng(7)
    clouds = {}
    for split, fs in files.items():
        _write(lists / f"{split}.txt", "\n".join(fs) + "\n")
        for f in fs:
            clouds[Path(f).stem] = rng.normal(size=(16, 3)).astype(np.float32)
            (root / "shapenet_pc").mkdir(parents=True, exist_ok=True)
            np.save(root / "shapenet_pc" / f, clouds[Path(f).stem])
    return clouds


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "point_bert_archive"])
def test_shapenet55_catalogue(tmp_path, nested):
    # Point-BERT's archive: ShapeNet55-34/{shapenet_pc/, ShapeNet-55/{train,test}.txt}; flat: lists in root
    root = tmp_path / "ShapeNet55-34"
    clouds = _shapenet55(root, root / "ShapeNet-55" if nested else root)
    items = catalogue("shapenet55", root)
    assert class_names("shapenet55", root) == ["airplane", "chair"]  # synsets sorted: 02691156 < 03001627
    by_id = {it.id: it for it in items}
    assert sorted(by_id) == ["02691156-bbb", "03001627-aaa", "03001627-ccc"]
    assert by_id["03001627-aaa"].label_name == "chair" and by_id["03001627-aaa"].label == 1
    assert by_id["02691156-bbb"].label == 0 and by_id["03001627-ccc"].split == "test"
    np.testing.assert_array_equal(load_item(by_id["03001627-ccc"]), clouds["03001627-ccc"])


def test_shapenet55_missing_lists_or_clouds(tmp_path):
    root = tmp_path / "ShapeNet55-34"
    (root / "shapenet_pc").mkdir(parents=True)
    _write(root / "ShapeNet-55" / "train.txt", "03001627-aaa.npy\n")  # test.txt missing
    for fn in (catalogue, class_names):
        with pytest.raises(ReadError) as e:
            fn("shapenet55", root)
        _assert_one_line(e, root, "train.txt and test.txt not found", "ShapeNet-55/")
    _write(root / "ShapeNet-55" / "test.txt", "03001627-bbb.npy\n")
    (root / "shapenet_pc").rmdir()
    with pytest.raises(ReadError) as e:
        catalogue("shapenet55", root)
    _assert_one_line(e, root / "shapenet_pc", "not found")


# ------------------------------------------------------------------------------------------ ShapeNetCore.v2

# Two synsets of ShapeNetCore (airplane, chair) with a few models each; the MTL colours differ per model.
SHAPENETCORE = {"02691156": ["a1", "a2"], "03001627": ["c1", "c2", "c3"]}


def _shapenetcore_model(root: Path, synset: str, model: str, rgb: tuple[float, float, float]) -> Path:
    d = root / synset / model / "models"
    _write(d / "model_normalized.mtl", "newmtl m0\nKd {} {} {}\n".format(*rgb))
    obj = ["mtllib model_normalized.mtl", "usemtl m0"] + [f"v {x} {y} {z}" for x, y, z in VERTS]
    obj += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in FACES]
    return _write(d / "model_normalized.obj", "\n".join(obj) + "\n")


def _shapenetcore(root: Path, models: dict[str, list[str]] = SHAPENETCORE) -> Path:
    for i, (synset, ids) in enumerate(models.items()):
        for model in ids:
            _shapenetcore_model(root, synset, model, (float(i), 0.0, 1.0 - i))
    return root


def test_shapenetcore_split_is_a_stable_sha256_rule():
    import hashlib

    for model in ("c1", "1a04e3eab45ca15dd86060f189eb133", "ñ-unicode"):
        bucket = int(hashlib.sha256(model.encode()).hexdigest()[:16], 16) % 100
        assert shapenetcore_split(model) == ("val" if bucket < 20 else "train")
    val = sum(shapenetcore_split(f"model{i:05d}") == "val" for i in range(5000)) / 5000
    assert 0.18 < val < 0.22


def test_shapenetcore_catalogue_hash_split(tmp_path):
    root = _shapenetcore(tmp_path / "ShapeNetCore.v2")
    (root / "02691156" / "empty_model").mkdir()  # no models/model_normalized.obj: not an item
    (root / "README").mkdir()  # not a synset folder
    items = catalogue("shapenetcore", root)
    assert class_names("shapenetcore", root) == ["airplane", "chair"]
    assert [(it.id, it.label, it.label_name) for it in items] == [
        ("02691156-a1", 0, "airplane"), ("02691156-a2", 0, "airplane"),
        ("03001627-c1", 1, "chair"), ("03001627-c2", 1, "chair"), ("03001627-c3", 1, "chair"),
    ]  # fmt: skip
    for it in items:
        assert it.split == shapenetcore_split(it.id.split("-", 1)[1])
        assert it.source == str(root / it.id[:8] / it.id[9:] / "models" / "model_normalized.obj")
    assert catalogue("shapenetcore", root) == items  # deterministic
    mesh = load_item(items[2])  # a chair: Kd (1, 0, 0) in its MTL
    assert isinstance(mesh, trimesh.Trimesh) and len(mesh.faces) == len(FACES)
    np.testing.assert_array_equal(mesh.visual.face_colors[:, :3], [[255, 0, 0]] * len(FACES))


def test_shapenetcore_point_bert_lists_in_root_or_variant(tmp_path):
    root = _shapenetcore(tmp_path / "ShapeNetCore.v2")
    lists = "train.txt", "test.txt"
    content = (
        "02691156-a1.npy\n03001627-c1.npy\n03001627-gone.npy\n",  # a listed model absent from disk is skipped
        "02691156-a2.npy\n03001627-c2\n",  # ".npy" optional
    )
    for name, text in zip(lists, content, strict=True):
        _write(tmp_path / "ShapeNet-55" / name, text)
    expected = {"02691156-a1": "train", "03001627-c1": "train", "02691156-a2": "val", "03001627-c2": "val",
                "03001627-c3": shapenetcore_split("c3")}  # fmt: skip  # not listed: the hash rule
    via_variant = catalogue("shapenetcore", root, str(tmp_path / "ShapeNet-55"))
    assert {it.id: it.split for it in via_variant} == expected
    for name, text in zip(lists, content, strict=True):
        _write(root / name, text)
    in_root = catalogue("shapenetcore", root)
    assert in_root == via_variant


def test_shapenetcore_names_from_table_then_taxonomy(tmp_path):
    root = _shapenetcore(tmp_path / "core", {"04530566": ["w"], "09999999": ["x"], "09999998": ["y"]})
    taxonomy = [
        {"synsetId": "04530566", "name": "vessel,watercraft", "children": [], "numInstances": 1},
        {"synsetId": "09999999", "name": "gizmo,widget", "children": [], "numInstances": 1},
    ]
    assert class_names("shapenetcore", root) == ["watercraft", "09999998", "09999999"]  # no taxonomy.json
    _write(root / "taxonomy.json", json.dumps(taxonomy))
    assert class_names("shapenetcore", root) == ["watercraft", "09999998", "gizmo"]  # the table wins for known
    assert [it.label_name for it in catalogue("shapenetcore", root)] == ["watercraft", "09999998", "gizmo"]
    _write(root / "taxonomy.json", "{not json")
    with pytest.raises(ReadError) as e:
        class_names("shapenetcore", root)
    _assert_one_line(e, root / "taxonomy.json", "not a ShapeNet taxonomy")


@pytest.mark.parametrize(
    ("make", "variant", "bad", "reason"),
    [
        (lambda r: None, "", "root", "not found"),
        (lambda r: (r / "02691156" / "m1" / "models").mkdir(parents=True), "", "root", "no ShapeNetCore models"),
        (lambda r: _write(_shapenetcore(r) / "train.txt", "02691156-a1.npy\n"), "", "test.txt",
         "split list not found"),
        (lambda r: _shapenetcore(r), "lists", "lists", "split-list folder"),
        (lambda r: [_write(_shapenetcore(r) / n, "02691156-a1.npy\n") for n in ("train.txt", "test.txt")], "",
         "test.txt", "listed in both"),
        (lambda r: [_write(_shapenetcore(r) / n, "chair_0001\n") for n in ("train.txt", "test.txt")], "",
         "train.txt", "is not <synset>-<model_id>.npy"),
        (lambda r: [_write(_shapenetcore(r) / f"{n}.txt", f"04379243-{n}.npy\n") for n in ("train", "test")], "",
         "root", "none of the 2 models"),
    ],
    ids=["missing_root", "no_models", "one_list", "no_list_folder", "in_both_lists", "bad_line", "wrong_lists"],
)  # fmt: skip
def test_shapenetcore_bad_inputs_are_one_line(tmp_path, make, variant, bad, reason):
    root = tmp_path / "ShapeNetCore.v2"
    make(root)
    variant = str(tmp_path / variant) if variant else ""
    with pytest.raises(ReadError) as e:
        catalogue("shapenetcore", root, variant)
    _assert_one_line(e, {"root": root, "lists": tmp_path / "lists"}.get(bad, root / bad), reason)


@pytest.mark.parametrize(
    ("variant", "folder", "stem"),
    [
        ("OBJ_ONLY", "main_split_nobg", "objectdataset"),
        ("OBJ_BG", "main_split", "objectdataset"),
        ("PB_T50_RS", "main_split", "objectdataset_augmentedrot_scale75"),
    ],
)
def test_scanobjectnn_variants(tmp_path, variant, folder, stem):
    root = tmp_path / "h5_files"
    rng = np.random.default_rng(8)
    # decoys: every other variant's files exist too, with data that would not match
    for fo, st in [("main_split_nobg", "objectdataset"), ("main_split", "objectdataset"),
                   ("main_split", "objectdataset_augmentedrot_scale75")]:  # fmt: skip
        for split in ("training", "test"):
            n = 5 if split == "training" else 3
            fill = 100.0 if (fo, st) != (folder, stem) else 0.0
            _h5(root / fo / f"{split}_{st}.h5", np.full((n, 32, 3), fill, np.float32), np.zeros(n, int))
    labels = np.array([0, 14, 3, 9, 1])
    data = rng.normal(size=(5, 32, 3)).astype(np.float32)
    _h5(root / folder / f"training_{stem}.h5", data, labels)
    for given in (root, tmp_path):  # h5_files/ itself or its parent
        items = catalogue("scanobjectnn", given, variant)
        assert len(items) == 8
        train = [it for it in items if it.split == "train"]
        assert [it.label for it in train] == labels.tolist()
        assert [it.label_name for it in train] == [SCANOBJECTNN_CLASSES[i] for i in labels]
        np.testing.assert_array_equal(load_item(train[3]), data[3])
    assert len(class_names("scanobjectnn", root, variant)) == 15


def test_catalogue_errors(tmp_path):
    for fn in (catalogue, class_names):
        with pytest.raises(ValueError, match="kind") as e:
            fn("modelnet99", tmp_path)
        assert "\n" not in str(e.value) and all(k in str(e.value) for k in KINDS)
    assert "shapenetcore" in KINDS and "shapenet55" in KINDS
    with pytest.raises(ValueError, match="variant"):
        catalogue("scanobjectnn", tmp_path, "OBJ_WHATEVER")
    for kind in ("synth", "modelnet40", "shapenet55", "shapenetcore"):
        with pytest.raises(ReadError) as e:
            catalogue(kind, tmp_path / "absent")
        _assert_one_line(e, tmp_path / "absent", "not found")
    with pytest.raises(ReadError):
        catalogue("scanobjectnn", tmp_path, "OBJ_BG")  # files missing


def test_register_catalogue(tmp_path, monkeypatch):
    from clip2point.datasets import base as catalogues

    monkeypatch.setattr(catalogues, "_CATALOGUES", catalogues._CATALOGUES.copy())

    @register_catalogue("toy", names=lambda root, variant: ["thing"])
    def toy(root: Path, variant: str) -> list[Item]:
        return [Item(f"toy-{variant}", "train", 0, "thing", str(root / "t.off"))]

    assert catalogue("toy", tmp_path, "v") == [Item("toy-v", "train", 0, "thing", str(tmp_path / "t.off"))]
    assert class_names("toy", tmp_path) == ["thing"]
    with pytest.raises(ValueError, match="toy"):  # the live registry is listed
        catalogue("nope", tmp_path)
    with pytest.raises(ValueError, match="already registered"):
        register_catalogue("shapenetcore", names=lambda root, variant: [])(toy)


def test_load_item_bad_file_raises_read_error(tmp_path):
    p = _write(tmp_path / "bad.off", "OFF\n1 1 0\n")
    with pytest.raises(ReadError):
        load_item(Item("bad", "train", 0, "x", str(p)))


# ------------------------------------------------------------------ issue 22.15: say what is wrong


def _random_bytes(n: int = 5000) -> bytes:
    return np.random.default_rng(0).bytes(n)


@pytest.mark.parametrize(("name", "reason"), [
    ("random.stl", "not a valid STL file"), ("random.obj", "not a valid OBJ file (binary data"),
])
def test_random_bytes_are_not_a_valid_mesh_file_not_an_empty_mesh(tmp_path, name, reason):
    """Before: "empty mesh (no faces)" (STL) and "empty point cloud" (OBJ) for a file that is no STL/OBJ."""
    from clip2point.io import read_mesh_or_points

    p = _write(tmp_path / name, _random_bytes())
    for reader in (read_mesh, read_mesh_or_points):
        _refused(reader, p, reason)


def test_text_that_is_no_obj_and_a_truly_empty_stl(tmp_path):
    p = _write(tmp_path / "prose.obj", "hello there\nthis is not geometry\n")
    _refused(read_mesh, p, "not a valid OBJ file (no line starts with an OBJ statement")
    # a well-formed binary STL of zero triangles is an empty mesh, as before
    p = _write(tmp_path / "zero.stl", b"\0" * 80 + np.uint32(0).tobytes())
    _refused(read_mesh, p, "empty mesh")


def test_a_complex_npy_is_refused_naming_the_dtype(tmp_path):
    """Before: accepted, the imaginary part silently dropped."""
    p = tmp_path / "c.npy"
    np.save(p, np.ones((10, 3)) + 2j)
    _refused(read_points, p, "complex-valued coordinates (dtype complex128)")


@pytest.mark.parametrize(("name", "make"), [
    ("big.npy", lambda p: np.save(p, np.array([[0.0, 0.0, 0.0], [1e39, 0.0, 0.0]]))),
    ("big.txt", lambda p: p.write_text("0 0 0\n-1e39 0 0\n")),
    ("big.off", lambda p: p.write_text("OFF\n3 1 0\n0 0 0\n1e39 0 0\n0 1 0\n3 0 1 2\n")),
])
def test_finite_float64_beyond_float32_is_out_of_range_not_non_finite(tmp_path, name, make):
    """Before: 1e39 (finite in float64) was reported as "non-finite" (it became inf in the float32 cast)."""
    p = tmp_path / name
    make(p)
    reader = read_mesh if name.endswith(".off") else read_points
    _refused(reader, p, "coordinates out of float32 range (largest |value| 1e+39 > 3.4e+38)")


def test_the_largest_float32_itself_is_accepted(tmp_path):
    p = tmp_path / "edge.npy"
    big = float(np.finfo(np.float32).max)
    np.save(p, np.array([[0.0, 0.0, 0.0], [big, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    assert read_points(p)[1, 0] == np.float32(big)
