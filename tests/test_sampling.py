"""clip2point.sampling: FPS against its plain python twin, surface sampling, normalisation, axes, errors."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from clip2point.sampling import (
    SamplingError,
    farthest_point_sample,
    farthest_point_sample_python,
    mesh_to_points,
    normalize_unit_sphere,
    points_to_points,
    sample_surface,
    to_y_up,
)


def test_python_fps_twin_on_a_hand_worked_line():
    # points on a line at 0, 1, 3, 10, 6: from 0 the farthest is 10; then min distances are 1, 3, 4 (to 6: 6 from
    # 0, 4 from 10) -> 6; then 1 (dist 1) vs 3 (dist 3) -> 3; then 1
    line = np.array([[0.0, 0, 0], [1, 0, 0], [3, 0, 0], [10, 0, 0], [6, 0, 0]])
    np.testing.assert_array_equal(farthest_point_sample_python(line, 5, start=0), [0, 3, 4, 2, 1])


@pytest.mark.parametrize(
    "cloud",
    ["gaussian", "uniform_big", "planar", "clustered"],
)
def test_fps_matches_python_twin(cloud):
    rng = np.random.default_rng(0)
    if cloud == "gaussian":
        pts, k = rng.normal(size=(3000, 3)), 256
    elif cloud == "uniform_big":
        pts, k = rng.uniform(-1, 1, size=(20000, 3)), 512
    elif cloud == "planar":
        pts, k = np.column_stack([rng.uniform(size=(4000, 2)), np.zeros(4000)]), 200
    else:
        centres = rng.normal(size=(8, 3)) * 5
        pts, k = (centres[rng.integers(0, 8, 5000)] + rng.normal(scale=0.1, size=(5000, 3))), 300
    pts = pts.astype(np.float32)
    idx = farthest_point_sample(pts, k, start=0)
    assert idx.dtype == np.int64 and idx.shape == (k,)
    assert len(np.unique(idx)) == k
    # fpsample's kd-line variant picks its own first point (see the docstring); from there the sequence must
    # be exactly the greedy FPS sequence.
    ref = farthest_point_sample_python(pts, k, int(idx[0]))
    np.testing.assert_array_equal(idx, ref)


def test_fps_coverage_beats_random():
    # an independent property: the FPS covering radius is far below a random subset's
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(1)
    pts = rng.uniform(size=(10000, 3))
    fps = pts[farthest_point_sample(pts, 256)]
    rnd = pts[rng.choice(len(pts), 256, replace=False)]
    assert cKDTree(fps).query(pts)[0].max() < 0.6 * cKDTree(rnd).query(pts)[0].max()


def test_fps_errors():
    pts = np.zeros((10, 3))
    with pytest.raises(SamplingError, match="fewer points"):
        farthest_point_sample(pts, 11)
    bad = np.random.default_rng(0).normal(size=(10, 3))
    bad[3, 1] = np.nan
    with pytest.raises(SamplingError, match="non-finite"):
        farthest_point_sample(bad, 5)
    with pytest.raises(SamplingError, match="shape"):
        farthest_point_sample(np.zeros((10, 2)), 5)
    # k == n is allowed and returns a permutation
    p = np.random.default_rng(2).normal(size=(16, 3))
    assert sorted(farthest_point_sample(p, 16).tolist()) == list(range(16))


def test_sample_surface_on_surface_and_area_weighted():
    rng = np.random.default_rng(3)
    box = trimesh.creation.box(extents=(1, 1, 1))
    pts = sample_surface(box, 5000, rng)
    assert pts.shape == (5000, 3)
    assert np.allclose(np.abs(pts).max(axis=1), 0.5)  # every point on a face of the cube
    # two triangles with areas 1 and 3: the larger gets ~75% of the points
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0], [10, 0, 0], [13, 0, 0], [10, 2, 0]], float)
    mesh = trimesh.Trimesh(v, [[0, 1, 2], [3, 4, 5]], process=False)
    pts = sample_surface(mesh, 20000, rng)
    frac = (pts[:, 0] >= 10).mean()
    assert abs(frac - 0.75) < 4 * np.sqrt(0.75 * 0.25 / 20000)
    # uniform within a triangle: mean is the centroid
    np.testing.assert_allclose(pts[pts[:, 0] >= 10].mean(axis=0), v[3:].mean(axis=0), atol=0.03)


def test_normalize_unit_sphere_independent():
    rng = np.random.default_rng(4)
    pts = rng.normal(size=(500, 3)) * [3, 1, 0.2] + [10, -4, 2]
    out = normalize_unit_sphere(pts)
    centred = pts - pts.mean(0)
    expected = centred / np.linalg.norm(centred, axis=1).max()
    np.testing.assert_allclose(out, expected)
    assert np.isclose(np.linalg.norm(out, axis=1).max(), 1.0)
    with pytest.raises(SamplingError, match="degenerate"):
        normalize_unit_sphere(np.ones((5, 3)))


def test_mesh_to_points_deterministic_and_in_unit_sphere():
    mesh = trimesh.creation.capsule(height=2.0, radius=0.3)
    a = mesh_to_points(mesh, 256, 4000, seed=7)
    b = mesh_to_points(mesh, 256, 4000, seed=7)
    c = mesh_to_points(mesh, 256, 4000, seed=8)
    assert a.dtype == np.float32 and a.shape == (256, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.isclose(np.linalg.norm(a, axis=1).max(), 1.0, atol=1e-5)
    np.testing.assert_allclose(a.mean(0), 0, atol=1e-5)
    # the capsule's long axis (z) stays the long axis
    assert np.ptp(a[:, 2]) > 2 * np.ptp(a[:, 0])


def test_mesh_errors():
    with pytest.raises(SamplingError, match="empty mesh"):
        mesh_to_points(trimesh.Trimesh(), 16, 100, 0)
    v = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2]], float)  # collinear: zero area
    with pytest.raises(SamplingError, match="zero surface area"):
        mesh_to_points(trimesh.Trimesh(v, [[0, 1, 2], [0, 2, 1]], process=False), 16, 100, 0)
    v = np.array([[0, 0, 0], [1, 0, 0], [0, np.inf, 0]], float)
    with pytest.raises(SamplingError, match="non-finite"):
        mesh_to_points(trimesh.Trimesh(v, [[0, 1, 2]], process=False), 16, 100, 0)


def test_points_to_points():
    rng = np.random.default_rng(5)
    pts = rng.normal(size=(100, 3))
    out = points_to_points(pts, 32, seed=1)
    assert out.shape == (32, 3) and out.dtype == np.float32
    assert np.isclose(np.linalg.norm(out, axis=1).max(), 1.0, atol=1e-5)
    # taking all points is a permutation of the normalised cloud
    full = points_to_points(pts, 100, seed=1)
    expected = normalize_unit_sphere(pts).astype(np.float32)
    np.testing.assert_allclose(np.sort(full, axis=0), np.sort(expected, axis=0), atol=1e-6)
    with pytest.raises(SamplingError, match="fewer points"):
        points_to_points(pts[:10], 32)
    padded = points_to_points(pts[:10], 32, allow_fewer=True)
    assert padded.shape == (32, 3)
    assert len(np.unique(padded, axis=0)) <= 10
    bad = pts.copy()
    bad[0, 0] = np.nan
    with pytest.raises(SamplingError, match="non-finite"):
        points_to_points(bad, 32)


def test_to_y_up():
    rng = np.random.default_rng(6)
    pts = rng.normal(size=(20, 3))
    np.testing.assert_array_equal(to_y_up(pts, "y"), pts)
    for axis, up in (("z", 2), ("x", 0)):
        m = to_y_up(np.eye(3), axis)  # rows: images of the basis vectors
        assert np.isclose(np.linalg.det(m), 1.0)  # a rotation, never a mirror
        np.testing.assert_allclose(m[up], [0, 1, 0])  # the old up axis becomes +y
        np.testing.assert_allclose(to_y_up(pts, axis), pts @ m)
        # lengths preserved
        np.testing.assert_allclose(np.linalg.norm(to_y_up(pts, axis), axis=1), np.linalg.norm(pts, axis=1))
    with pytest.raises(ValueError):
        to_y_up(pts, "w")


def test_z_released_is_the_released_codes_modelnet_rotation():
    """Transcription of the released rule: row vectors times Rx(+90°) then Ry(−90°) (pytorch3d's
    axis_angle_to_matrix gives the right-handed rotation matrices written out below)."""
    import math

    def rx(a: float) -> np.ndarray:
        c, s = math.cos(a), math.sin(a)
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])

    def ry(a: float) -> np.ndarray:
        c, s = math.cos(a), math.sin(a)
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])

    pts = np.random.default_rng(0).normal(size=(50, 3))
    np.testing.assert_allclose(to_y_up(pts, "z_released"), pts @ rx(math.pi / 2) @ ry(-math.pi / 2), atol=1e-12)
    # same up axis as "z": the z coordinate becomes the height; the two differ by a turn about y
    np.testing.assert_allclose(to_y_up(pts, "z_released")[:, 1], to_y_up(pts, "z")[:, 1])
    assert not np.allclose(to_y_up(pts, "z_released"), to_y_up(pts, "z"))
