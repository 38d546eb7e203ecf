"""The procedural benchmark: registry, determinism, mesh validity, upright frame, bbox-1NN baseline."""

from __future__ import annotations

import numpy as np
import pytest

from clip2point.io import read_mesh, write_off
from clip2point.synth import CLASSES, generate_pool, make_shape, shape_rng


def test_registry_covers_params_classes(repo_params):
    classes = repo_params["synth"]["classes"]
    assert len(classes) >= 10
    assert set(classes) <= set(CLASSES)


def test_deterministic_per_seed():
    a = list(generate_pool(["chair", "cup"], {"train": 2, "val": 1}, (3, 0)))
    b = list(generate_pool(["chair", "cup"], {"train": 2, "val": 1}, (3, 0)))
    c = list(generate_pool(["chair", "cup"], {"train": 2, "val": 1}, (3, 1)))
    assert [(s, n, i) for s, n, i, _ in a] == [
        ("train", "chair", 1), ("train", "chair", 2), ("val", "chair", 3),
        ("train", "cup", 1), ("train", "cup", 2), ("val", "cup", 3),
    ]  # fmt: skip
    for (_, _, _, m1), (_, _, _, m2), (_, _, _, m3) in zip(a, b, c, strict=True):
        np.testing.assert_array_equal(m1.vertices, m2.vertices)
        np.testing.assert_array_equal(m1.visual.face_colors, m2.visual.face_colors)
        assert m1.vertices.shape != m3.vertices.shape or not np.allclose(m1.vertices, m3.vertices)
    # a shape does not depend on which other classes are generated
    alone = list(generate_pool(["cup"], {"train": 2, "val": 1}, (3, 0)))
    np.testing.assert_array_equal(alone[0][3].vertices, a[3][3].vertices)


def test_unknown_class():
    with pytest.raises(ValueError, match="unknown synth class"):
        list(generate_pool(["spaceship"], {"train": 1}, 0))


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_every_class_valid_coloured_centred(name):
    meshes = [make_shape(name, shape_rng(11, name, i)) for i in range(12)]
    n_colours = []
    for m in meshes:
        assert len(m.faces) > 0 and np.isfinite(m.vertices).all()
        assert m.area > 0
        assert m.visual.kind == "face"
        n_colours.append(len(np.unique(m.visual.face_colors, axis=0)))
        lo, hi = m.bounds
        np.testing.assert_allclose((lo + hi) / 2, 0, atol=1e-9)
        # every part is a closed primitive: the union of parts has every edge shared by exactly two faces
        assert m.is_watertight
    assert max(n_colours) >= 2  # per-part colours


def test_upright_y_up():
    # cones and bottles narrow towards +y; tables carry their largest upward-facing area near the top
    for name in ("cone", "bottle"):
        for i in range(8):
            m = make_shape(name, shape_rng(5, name, i))
            v = m.vertices
            y0, y1 = v[:, 1].min(), v[:, 1].max()
            top = v[v[:, 1] > y1 - 0.15 * (y1 - y0)]
            bottom = v[v[:, 1] < y0 + 0.15 * (y1 - y0)]
            assert np.ptp(top[:, 0]) < np.ptp(bottom[:, 0]), (name, i)
    for i in range(8):
        m = make_shape("table", shape_rng(5, "table", i))
        up = m.face_normals[:, 1] > 0.9
        y = m.triangles_center[:, 1]
        high = up & (y > m.bounds[0, 1] + 0.7 * m.extents[1])
        assert m.area_faces[high].sum() > 0.5 * m.area_faces[up].sum()


def test_off_round_trip_keeps_colours(tmp_path):
    m = make_shape("bookshelf", shape_rng(0, "bookshelf", 1))
    write_off(m, tmp_path / "b.off")
    back = read_mesh(tmp_path / "b.off")
    np.testing.assert_allclose(back.vertices, m.vertices, atol=1e-5)
    np.testing.assert_array_equal(back.visual.face_colors, m.visual.face_colors)


def _one_nn_accuracy(train_x, train_y, test_x, test_y) -> float:
    d = ((test_x[:, None, :] - train_x[None, :, :]) ** 2).sum(-1)
    return float((train_y[d.argmin(1)] == test_y).mean())


def test_bbox_nearest_neighbour_baseline_below_70_percent():
    """Categories must not be separable by bounding-box proportions alone (issue 2)."""
    classes = sorted(CLASSES)
    train = list(generate_pool(classes, {"train": 25}, (123, 0)))
    test = list(generate_pool(classes, {"test": 15}, (123, 1)))

    def feats(pool, mode):
        x = np.array([m.extents for *_, m in pool])
        if mode == "ratio":  # what survives unit-sphere normalisation
            x = x / x.max(1, keepdims=True)
        elif mode == "sorted":  # orientation-free proportions
            x = np.sort(x, 1) / x.max(1, keepdims=True)
        return x, np.array([n for _, n, _, _ in pool])

    chance = 1 / len(classes)
    for mode in ("raw", "ratio", "sorted"):
        acc = _one_nn_accuracy(*feats(train, mode), *feats(test, mode))
        print(f"bbox-1NN ({mode} extents): {acc:.1%} (chance {chance:.1%})")
        assert acc < 0.70, (mode, acc)
    # the same classifier does separate the classes when given a feature that carries the label
    x, y = feats(train, "raw")
    xt, yt = feats(test, "raw")
    code = {c: i for i, c in enumerate(classes)}
    acc = _one_nn_accuracy(np.c_[x, [code[c] * 10 for c in y]], y, np.c_[xt, [code[c] * 10 for c in yt]], yt)
    assert acc == 1.0
