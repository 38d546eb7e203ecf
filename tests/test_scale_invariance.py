"""Normalisation into the unit sphere is exact for any finite float32 input, whatever its scale and offset
(issue 22, item 3): a cloud ×2**k gives bit-identical output, ×1e30 / ×1e-30 the same within float32
rounding, an offset of 1e6 (float64) changes nothing beyond rounding; FPS picks the same points."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from clip2point.sampling import farthest_point_sample, mesh_to_points, normalize_unit_sphere, points_to_points


def _cloud(n: int = 2000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 3)) * [1.0, 0.5, 2.0] + [0.3, -0.2, 0.1]).astype(np.float32)


def _reference_normalise(pts: np.ndarray) -> np.ndarray:
    """The definition, in exact rational arithmetic on a small cloud: (p - mean) / max |p - mean|."""
    from fractions import Fraction

    rows = [[Fraction(float(v)) for v in row] for row in pts]
    n = len(rows)
    mean = [sum(r[j] for r in rows) / n for j in range(3)]
    centred = [[r[j] - mean[j] for j in range(3)] for r in rows]
    r2 = max(sum(c * c for c in row) for row in centred)
    radius = float(r2) ** 0.5
    return np.array([[float(c) / radius for c in row] for row in centred])


@pytest.mark.parametrize("k", [-100, -60, -20, -1, 1, 20, 60, 100, 125])
def test_normalise_is_bit_identical_under_power_of_two_scaling(k):
    x = _cloud()
    base = normalize_unit_sphere(x)
    scaled = (x.astype(np.float64) * 2.0**k).astype(np.float32)
    assert np.isfinite(scaled).all() and (np.ldexp(scaled.astype(np.float64), -k) == x).all()  # exact scaling
    np.testing.assert_array_equal(normalize_unit_sphere(scaled), base)
    np.testing.assert_array_equal(points_to_points(scaled, 256, seed=3), points_to_points(x, 256, seed=3))


@pytest.mark.parametrize("factor", [1e30, 1e-30, 3.4e37, 1e-37])
def test_normalise_and_fps_agree_for_huge_and_tiny_clouds(factor):
    x = _cloud()
    scaled = (x.astype(np.float64) * factor).astype(np.float32)
    assert np.isfinite(scaled).all()
    np.testing.assert_allclose(normalize_unit_sphere(scaled), normalize_unit_sphere(x), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(farthest_point_sample(scaled, 128, start=5), farthest_point_sample(x, 128, start=5))
    np.testing.assert_allclose(points_to_points(scaled, 128, seed=1), points_to_points(x, 128, seed=1), atol=1e-6)


def test_normalise_matches_the_definition():
    x = _cloud(40, seed=2)
    for factor in (1.0, 1e30, 1e-30):
        pts = (x.astype(np.float64) * factor).astype(np.float32)
        np.testing.assert_allclose(normalize_unit_sphere(pts), _reference_normalise(pts), rtol=0, atol=2e-7)


def test_offset_cloud_normalises_like_the_centred_one():
    x = _cloud().astype(np.float64)
    shifted = x + 1e6  # exact in float64 (float32 values + 2**20 need < 53 bits)
    np.testing.assert_allclose(normalize_unit_sphere(shifted), normalize_unit_sphere(x), rtol=0, atol=1e-8)
    np.testing.assert_array_equal(farthest_point_sample(shifted, 128, start=5), farthest_point_sample(x, 128, start=5))


@pytest.mark.parametrize("k", [-90, 90])
def test_mesh_sampling_is_scale_invariant(k):
    mesh = trimesh.creation.icosphere(subdivisions=2).apply_scale([1.0, 0.4, 2.0])
    big = mesh.copy().apply_scale(2.0**k)
    np.testing.assert_array_equal(mesh_to_points(big, 256, 3000, 7), mesh_to_points(mesh, 256, 3000, 7))


@pytest.mark.parametrize("k", [-100, -30, 30, 100, 125])
def test_model_input_normalisation_is_scale_invariant(k):
    """``clip2point.predict.unit_sphere`` (what ``clip2point classify`` feeds the renderer) obeys the same rule."""
    import torch

    from clip2point.predict import unit_sphere

    x = torch.from_numpy(np.stack([_cloud(1024, 0), _cloud(1024, 1)]))
    base = unit_sphere(x)
    np.testing.assert_allclose(base[0].numpy(), normalize_unit_sphere(x[0].numpy()), rtol=0, atol=1e-6)
    torch.testing.assert_close(unit_sphere(torch.ldexp(x, torch.tensor(k))), base, rtol=0, atol=0)
    for factor in (1e30, 1e-30):
        scaled = (x.double() * factor).float()
        torch.testing.assert_close(unit_sphere(scaled), base, rtol=0, atol=1e-6)
    shifted = x.double() + 1e6
    torch.testing.assert_close(unit_sphere(shifted).float(), base, rtol=0, atol=1e-6)
