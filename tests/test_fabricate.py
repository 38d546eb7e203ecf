"""tools.fabricate: stand-ins of the real datasets, read back through the project's real readers."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest

from clip2point.datasets import check_layout
from clip2point.io import (
    SHAPENET_SYNSETS,
    catalogue,
    class_names,
    load_item,
    read_mesh,
    scanobjectnn_files,
)
from clip2point.sampling import to_y_up
from tools import fabricate as fab


@pytest.fixture(scope="module")
def fabricated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("fabricated")
    expected = fab.fabricate(out, per_class=1, seed=3)
    return out, expected


def _args(out: Path, entry: dict) -> tuple[str, Path, str]:
    variant = entry["variant"]
    if entry["kind"] == "shapenetcore":  # a folder, relative to the output
        variant = str(out / variant)
    return entry["kind"], out / entry["root"], variant


def test_expected_json_is_written_and_matches_the_return_value(fabricated):
    out, expected = fabricated
    assert json.loads((out / "expected.json").read_text()) == expected
    assert set(expected["datasets"]) == {
        "modelnet40", "modelnet10", "scanobjectnn_obj_only", "scanobjectnn_obj_bg", "scanobjectnn_pb_t50_rs",
        "shapenetcore", "shapenet55",
    }  # fmt: skip


@pytest.mark.parametrize(
    "name",
    ["modelnet40", "modelnet10", "scanobjectnn_obj_only", "scanobjectnn_obj_bg", "scanobjectnn_pb_t50_rs",
     "shapenetcore", "shapenet55"],
)  # fmt: skip
def test_every_dataset_reads_through_the_real_catalogue(fabricated, name):
    out, expected = fabricated
    entry = expected["datasets"][name]
    kind, root, variant = _args(out, entry)
    assert class_names(kind, root, variant) == entry["classes"]
    items = catalogue(kind, root, variant)
    assert dict(Counter(it.split for it in items)) == entry["counts"]
    for split, per_class in entry["class_counts"].items():
        got = Counter(it.label_name for it in items if it.split == split)
        assert dict(got) == per_class
    for it in items:
        assert entry["classes"][it.label] == it.label_name
        shape = load_item(it)
        n = len(shape.vertices) if hasattr(shape, "vertices") else len(shape)
        assert n > 0


def test_real_class_names(fabricated):
    _, expected = fabricated
    ds = expected["datasets"]
    assert len(ds["modelnet40"]["classes"]) == 40 and {"night_stand", "flower_pot", "xbox"} <= set(
        ds["modelnet40"]["classes"]
    )
    assert len(ds["modelnet10"]["classes"]) == 10
    assert len(ds["scanobjectnn_obj_bg"]["classes"]) == 15
    assert len(ds["shapenetcore"]["classes"]) == len(SHAPENET_SYNSETS) + 1


def test_layout_checker_finds_everything_but_the_published_counts(fabricated):
    """What ``clip2point prepare`` checks first: only the split sizes differ from the real downloads."""
    out, expected = fabricated
    for entry in expected["datasets"].values():
        kind, root, variant = _args(out, entry)
        report = check_layout(kind, root, variant)
        assert report.problems, entry
        for p in report.problems:
            assert re.match(r"^(train|test|all): found [\d,]+ of [\d,]+ \([\d,]+ missing\)$", p), p


# ------------------------------------------------------------------------------------------ ModelNet


def test_modelnet_files_follow_the_release_naming(fabricated):
    out, _ = fabricated
    root = out / "ModelNet40"
    train = sorted(p.name for p in (root / "night_stand" / "train").iterdir())
    test = sorted(p.name for p in (root / "night_stand" / "test").iterdir())
    assert train == ["night_stand_0001.off"] and test == ["night_stand_0002.off"]  # numbering continues


def test_off_header_quirk_is_present_and_parsed(fabricated):
    out, expected = fabricated
    quirky = expected["datasets"]["modelnet40"]["off_styles"]["header_quirk"]
    assert quirky
    for rel in quirky:
        path = out / "ModelNet40" / rel
        first = path.read_text().splitlines()[0]
        m = re.fullmatch(r"OFF(\d+) (\d+) 0", first)
        assert m, first
        mesh = read_mesh(path)
        assert (len(mesh.vertices), len(mesh.faces)) == (int(m.group(1)), int(m.group(2)))
    regular = expected["datasets"]["modelnet40"]["off_styles"]["regular"]
    assert regular and all((out / "ModelNet40" / r).read_text().startswith("OFF\n") for r in regular)


def test_mixed_polygon_off_files_parse_to_the_fan_triangle_count(fabricated):
    out, expected = fabricated
    mixed = expected["datasets"]["modelnet40"]["off_styles"]["mixed_polygons"]
    assert mixed
    n_quads = 0
    for rel in mixed:
        path = out / "ModelNet40" / rel
        lines = path.read_text().splitlines()
        nv, nf, _ = map(int, lines[1].split())
        sizes = [int(ln.split()[0]) for ln in lines[2 + nv : 2 + nv + nf]]
        n_quads += sizes.count(4)
        assert len(read_mesh(path).faces) == sum(s - 2 for s in sizes)
    assert n_quads > 0


def test_modelnet_is_z_up_at_cad_scale(fabricated):
    """Rotated back with the pipeline's own ``to_y_up``, each model is its y-up synth shape up to a per-axis
    scale and an offset; and its coordinates are CAD-sized and off the origin."""
    out, expected = fabricated
    entry = expected["datasets"]["modelnet10"]
    gens = fab._generators(fab.MODELNET10_CLASSES)
    for it in catalogue("modelnet10", out / entry["root"]):
        mesh = read_mesh(it.source)
        index = int(it.id.rsplit("_", 1)[1])
        ref = fab._shape(gens[it.label_name], expected["seed"], "modelnet10", it.label_name, index)
        back = to_y_up(np.asarray(mesh.vertices), "z")

        def unit(v: np.ndarray) -> np.ndarray:
            return (v - v.min(axis=0)) / np.ptp(v, axis=0)

        np.testing.assert_allclose(unit(back), unit(np.asarray(ref.vertices)), atol=1e-4)
        assert np.ptp(mesh.vertices, axis=0).max() >= 15
        assert np.abs(mesh.bounds.mean(axis=0)).max() > 1


# ------------------------------------------------------------------------------------------ ScanObjectNN


@pytest.mark.parametrize("variant", ["OBJ_ONLY", "OBJ_BG", "PB_T50_RS"])
def test_scanobjectnn_h5_files_have_the_real_names_and_datasets(fabricated, variant):
    out, expected = fabricated
    entry = expected["datasets"][f"scanobjectnn_{variant.lower()}"]
    for split, path in scanobjectnn_files(out / "h5_files", variant).items():
        assert path.is_file()
        with h5py.File(path, "r") as f:
            assert set(f.keys()) == {"data", "label", "mask"}
            n = entry["counts"][split]
            assert f["data"].shape == (n, 2048, 3) and f["data"].dtype == np.float32
            assert f["label"].shape == (n,) and np.issubdtype(f["label"].dtype, np.integer)
            assert f["mask"].shape == (n, 2048)
            assert set(np.unique(f["label"][()])) == set(range(15))
            has_background = (f["mask"][()] == -1).any(axis=1)
            assert has_background.all() if variant != "OBJ_ONLY" else not has_background.any()


# ------------------------------------------------------------------------------------------ ShapeNet


def test_shapenetcore_layout_taxonomy_and_textures(fabricated):
    out, expected = fabricated
    entry = expected["datasets"]["shapenetcore"]
    root = out / entry["root"]
    taxonomy = json.loads((root / "taxonomy.json").read_text())
    assert all(set(e) == {"synsetId", "name", "children", "numInstances"} for e in taxonomy)
    (extra_id, extra_name), = entry["taxonomy_only"].items()
    assert extra_id not in SHAPENET_SYNSETS
    assert extra_name in class_names("shapenetcore", root)
    assert any(e["synsetId"] == extra_id for e in taxonomy)
    assert entry["textured"] and len(entry["textured"]) < sum(entry["counts"].values())
    for key in entry["textured"]:
        synset, model = key.split("-")
        mdir = root / synset / model
        assert "map_Kd ../images/texture0.jpg" in (mdir / "models" / "model_normalized.mtl").read_text()
        assert (mdir / "images" / "texture0.jpg").read_bytes()[:2] == b"\xff\xd8"  # a JPEG
        assert re.search(r"^vt ", (mdir / "models" / "model_normalized.obj").read_text(), re.M)


def test_shapenet55_lists_cover_the_shapenetcore_models(fabricated):
    out, expected = fabricated
    core = expected["datasets"]["shapenetcore"]
    lists = out / core["variant"]
    listed = [ln for s in ("train", "test") for ln in (lists / f"{s}.txt").read_text().split()]
    assert all(re.fullmatch(r"\d{8}-[0-9a-f]{32}\.npy", ln) for ln in listed)
    on_disk = {it.id for it in catalogue("shapenetcore", out / core["root"])}
    assert {ln.removesuffix(".npy") for ln in listed} == on_disk
    pc = np.load(out / expected["datasets"]["shapenet55"]["root"] / "shapenet_pc" / listed[0])
    assert pc.shape == (8192, 3) and pc.dtype == np.float32


def test_textured_model_loads_with_its_checkerboard(fabricated):
    out, expected = fabricated
    entry = expected["datasets"]["shapenetcore"]
    items = {it.id: it for it in catalogue("shapenetcore", out / entry["root"])}
    mesh = load_item(items[entry["textured"][0]])
    colours = np.asarray(mesh.visual.face_colors)[:, :3].astype(int)
    for c in entry["texture_colours"]:
        assert (np.abs(colours - c).max(axis=1) < 40).any(), c


# ------------------------------------------------------------------------------------------ API / CLI


def test_deterministic_per_seed(tmp_path):
    a = fab.fabricate_modelnet(tmp_path / "a" / "ModelNet10", fab.MODELNET10_CLASSES, 1, 5, "modelnet10")
    b = fab.fabricate_modelnet(tmp_path / "b" / "ModelNet10", fab.MODELNET10_CLASSES, 1, 5, "modelnet10")
    fab.fabricate_modelnet(tmp_path / "c" / "ModelNet10", fab.MODELNET10_CLASSES, 1, 6, "modelnet10")
    assert a == b
    rel = a["off_styles"]["regular"][0]
    same = (tmp_path / "a" / "ModelNet10" / rel).read_bytes() == (tmp_path / "b" / "ModelNet10" / rel).read_bytes()
    other = (tmp_path / "c" / "ModelNet10" / rel).read_bytes()
    assert same and other != (tmp_path / "a" / "ModelNet10" / rel).read_bytes()


def test_cli_refuses_a_non_empty_folder_and_bad_counts(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    assert fab.main(["--out", str(tmp_path)]) == 1
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").is_file()
    assert fab.main(["--out", str(tmp_path / "new"), "--per-class", "0"]) == 1
    assert "at least 1" in capsys.readouterr().err


def test_cli_overwrite_keeps_unrelated_files(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    (tmp_path / "ModelNet40").mkdir()
    (tmp_path / "ModelNet40" / "stale").mkdir()
    assert fab.main(["--out", str(tmp_path), "--overwrite", "--seed", "1"]) == 0
    assert "modelnet40: 40 classes" in capsys.readouterr().out
    assert (tmp_path / "keep.txt").is_file() and not (tmp_path / "ModelNet40" / "stale").exists()
    assert class_names("modelnet40", tmp_path / "ModelNet40") == sorted(fab.MODELNET40_CLASSES)


def test_yup_copy_holds_the_same_shapes_stored_y_up(tmp_path_factory):
    """``ModelNet40_yup`` is what the pipeline must see after converting ``ModelNet40`` with up_axis z."""
    from clip2point.datasets import catalogue, load_item
    from clip2point.sampling import to_y_up
    from tools.fabricate import fabricate

    out = tmp_path_factory.mktemp("fab_yup")
    fabricate(out, per_class=1, seed=3)
    z = {it.id: it for it in catalogue("modelnet10", out / "ModelNet10")}
    y = {it.id: it for it in catalogue("modelnet10", out / "ModelNet10_yup")}
    assert z.keys() == y.keys() and len(z) == 20
    for key in list(z)[:4]:
        mz, my = load_item(z[key]), load_item(y[key])
        np.testing.assert_allclose(to_y_up(np.asarray(mz.vertices), "z"), my.vertices, rtol=1e-5, atol=1e-3)


def test_split_sizes_can_differ(tmp_path_factory):
    """``test_per_class`` / ``pool_per_class`` shrink the rehearsal; the readers see exactly those counts."""
    from clip2point.io import catalogue
    from tools.fabricate import fabricate

    out = tmp_path_factory.mktemp("fab_sizes")
    exp = fabricate(out, per_class=2, seed=1, test_per_class=1, pool_per_class=1)["datasets"]
    assert exp["modelnet10"]["counts"] == {"train": 20, "test": 10}
    assert exp["scanobjectnn_obj_only"]["counts"] == {"train": 30, "test": 15}
    got = Counter(it.split for it in catalogue("modelnet10", out / "ModelNet10"))
    assert dict(got) == exp["modelnet10"]["counts"]
    got = Counter(it.split for it in catalogue("shapenetcore", out / "ShapeNetCore.v2",
                                               str(out / "ShapeNet55-34" / "ShapeNet-55")))
    assert dict(got) == exp["shapenetcore"]["counts"] == {"train": 56, "val": 56}
