"""Disc footprint of the depth projector (the released pytorch3d rasterizer): the plain-loop twin
(:mod:`clip2point.render.depth_python`), hand cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from depth_support import check_batched_equals_per_cloud, check_degenerate_clouds, unit_clouds

import clip2point.render.depth as depth_mod
from clip2point.render.depth import (
    FOREGROUND_MAX,
    DepthConfig,
    disc_window,
    jittered_distances,
    render_depth,
)
from clip2point.render.depth_python import K, render_depth_disc_python
from clip2point.render.views import VIEW_SETS, ViewSet

FRONT = ViewSet((0,), (0,))


def disc(size: int, radius: float, **kw) -> DepthConfig:
    return DepthConfig(size, footprint="disc", radius=radius, **kw)


def centre_point(size: int, row: int, col: int, pz: float = 0.0) -> list[float]:
    """Object point whose front-view orthographic (d = 1) projection is the centre of pixel (row, col)."""
    return [(2 * col + 1) / size - 1, 1 - (2 * row + 1) / size, pz]


def covered(img: torch.Tensor) -> set[tuple[int, int]]:
    return {(int(i), int(j)) for i, j in torch.nonzero(img < 1).tolist()}


# ----------------------------------------------------------------------------------------------------------
# hand-computed cases
# ----------------------------------------------------------------------------------------------------------
def test_point_on_a_pixel_centre_covers_centres_strictly_within_r():
    # 16², r = 0.3 NDC = 2.4 px: offsets with di² + dj² < 5.76 → the 5×5 block without its corners (8 > 5.76)
    pts = torch.tensor([[centre_point(16, 8, 8)]])
    img = render_depth(pts, FRONT, 1.0, disc(16, 0.3))[0, 0]
    expected = {(8 + di, 8 + dj) for di in range(-2, 3) for dj in range(-2, 3) if abs(di) + abs(dj) < 4}
    assert len(expected) == 21 and covered(img) == expected
    assert (img[img < 1] == 0).all()  # one point: (z − z_min)/z_max = 0


def test_centres_exactly_at_r_are_excluded():
    # 8², r = 0.25 NDC = exactly one pixel: the four neighbours' centres lie at exactly r → not covered
    pts = torch.tensor([[centre_point(8, 4, 4)]])
    assert covered(render_depth(pts, FRONT, 1.0, disc(8, 0.25))[0, 0]) == {(4, 4)}
    assert covered(render_depth(pts, FRONT, 1.0, disc(8, 0.2501))[0, 0]) == {(4, 4), (3, 4), (5, 4), (4, 3), (4, 5)}
    # a point halfway between the centres of (3, 4) and (4, 4), r = half a pixel: both at exactly r → empty
    half = torch.tensor([[[0.125, 0.0, 0.0]]])
    assert (render_depth(half, FRONT, 1.0, disc(8, 0.125))[0, 0] == 1.0).all()
    assert covered(render_depth(half, FRONT, 1.0, disc(8, 0.126))[0, 0]) == {(3, 4), (4, 4)}


def test_small_radius_point_off_centre_covers_nothing():
    # 16², r = 0.05 = 0.4 px: a point at a pixel corner is √½ px from every centre
    pts = torch.tensor([[[0.0, 0.0, 0.8], centre_point(16, 2, 2)]])  # nearer (z 0.2) but invisible
    img = render_depth(pts, FRONT, 1.0, disc(16, 0.05))[0, 0]
    assert covered(img) == {(2, 2)}
    assert img[2, 2].item() == 0.0  # z_min is the covered point's depth, not the invisible nearer point's


@pytest.mark.parametrize("mode", ["min", "weighted"])
def test_nearer_point_wins_on_overlap(mode):
    # 16², r = 0.2 = 1.6 px: each point covers the 3×3 block round its pixel (2 < 2.56 < 4).
    # A at (8, 6), z = 1 − 0.5 = 0.5; B at (8, 8), z = 1 + 0.5 = 1.5; column 7 is covered by both.
    pts = torch.tensor([[centre_point(16, 8, 6, 0.5), centre_point(16, 8, 8, -0.5)]])
    img = render_depth(pts, FRONT, 1.0, disc(16, 0.2, mode=mode))[0, 0]
    assert covered(img) == {(i, j) for i in (7, 8, 9) for j in range(5, 10)}
    both = 0.0 if mode == "min" else (0.75 - 0.5) / 1.5 * K  # Eq. 12: (1 + 1) / (1/0.5 + 1/1.5) = 0.75
    for i in (7, 8, 9):
        assert img[i, 5].item() == pytest.approx(0.0, abs=1e-7)
        assert img[i, 6].item() == pytest.approx(0.0, abs=1e-7)
        assert img[i, 7].item() == pytest.approx(both, abs=1e-6)
        assert img[i, 8].item() == pytest.approx((1.5 - 0.5) / 1.5 * K, abs=1e-6)
        assert img[i, 9].item() == pytest.approx((1.5 - 0.5) / 1.5 * K, abs=1e-6)


def test_disc_window():
    assert disc_window(0.02, 224) == 5  # 2.24 px: at most 5 centres per axis
    assert disc_window(0.25, 8) == 2  # exactly one pixel: an open interval of length 2 holds 2 integers
    assert disc_window(0.001, 16) == 1


# ----------------------------------------------------------------------------------------------------------
# batched kernel == plain-loop twin
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["min", "weighted"])
@pytest.mark.parametrize("projection", ["orthographic", "perspective"])
@pytest.mark.parametrize("size, radius", [(16, 0.05), (23, 0.13), (20, 0.3)])
def test_matches_reference(mode, projection, size, radius):
    pts = unit_clouds(1, 40, seed=size)
    views = VIEW_SETS["zeroshot6"]
    dist = jittered_distances(1, 6, 1.0, 0.1, torch.Generator().manual_seed(size))
    cfg = disc(size, radius, mode=mode, projection=projection)
    got = render_depth(pts, views, dist, cfg)
    ref = render_depth_disc_python(pts.numpy(), views, dist.numpy(), cfg)
    assert got.shape == (1, 6, size, size) and got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy() < 1, ref < 1)
    np.testing.assert_allclose(got.numpy(), ref, atol=2e-6)


@pytest.mark.parametrize("mode", ["min", "weighted"])
def test_matches_reference_pretrain_views_batch(mode):
    pts = unit_clouds(2, 30, seed=7)
    views = VIEW_SETS["pretrain10"]
    dist = jittered_distances(2, 10, 1.0, 0.1, torch.Generator().manual_seed(8))
    cfg = disc(18, 0.15, mode=mode)
    got = render_depth(pts, views, dist, cfg)
    np.testing.assert_allclose(got.numpy(), render_depth_disc_python(pts.numpy(), views, dist.numpy(), cfg), atol=2e-6)


@pytest.mark.parametrize("mode", ["min", "weighted"])
@pytest.mark.parametrize("projection", ["orthographic", "perspective"])
def test_matches_reference_with_points_outside_the_frame(mode, projection):
    pts = unit_clouds(1, 60, seed=5) * 1.4  # partly outside [−1, 1]², and behind the camera at d = 0.9
    views = VIEW_SETS["zeroshot6"]
    dist = np.full((1, 6), 0.9)
    cfg = disc(20, 0.12, mode=mode, projection=projection)
    got = render_depth(pts, views, torch.tensor(dist), cfg)
    np.testing.assert_allclose(got.numpy(), render_depth_disc_python(pts.numpy(), views, dist, cfg), atol=2e-6)


@pytest.mark.parametrize("mode", ["min", "weighted"])
def test_matches_reference_radius_wider_than_the_frame(mode):
    pts = unit_clouds(1, 12, seed=3)
    cfg = disc(10, 1.5, mode=mode)  # 7.5 px: the candidate window (15) is wider than the image
    got = render_depth(pts, VIEW_SETS["zeroshot6"], 1.0, cfg)
    ref = render_depth_disc_python(pts.numpy(), VIEW_SETS["zeroshot6"], np.ones((1, 6)), cfg)
    np.testing.assert_allclose(got.numpy(), ref, atol=2e-6)


@pytest.mark.parametrize("mode", ["min", "weighted"])
def test_chunking_does_not_change_the_result(mode, monkeypatch):
    pts = unit_clouds(3, 50, seed=11)
    dist = jittered_distances(3, 1, 1.0, 0.1, torch.Generator().manual_seed(12))
    cfg = disc(24, 0.1, mode=mode)
    assert disc_window(cfg.radius, cfg.image_size) == 3
    full = render_depth(pts, "pretrain10", dist, cfg)
    # k = 3 candidates per axis, so a view has 50 · 9 candidates: one point per step, 7 points per step,
    # one view per step, 3 views per step (the last step partial), all 30 views in one step
    for chunk in (1, 7 * 9, 50 * 9 + 1, 3 * 50 * 9, 1 << 20):
        monkeypatch.setattr(depth_mod, "DISC_CHUNK", chunk)
        again = render_depth(pts, "pretrain10", dist, cfg)
        if mode == "min":
            assert torch.equal(again, full)
        else:  # summation order differs
            torch.testing.assert_close(again, full, atol=1e-6, rtol=0)


def test_batched_equals_per_cloud_and_workspace_reuse():
    pts, dist, _ = check_batched_equals_per_cloud(disc(48, 0.05))
    with pytest.raises(ValueError, match="out must be a 1-D float32 tensor"):
        render_depth(pts, "pretrain10", dist, disc(48, 0.05), out=torch.empty(10))


def test_value_range_and_normalisation():
    out = render_depth(unit_clouds(3, 512, seed=4), "pretrain10", 1.0, disc(64, 0.04))
    fg = out < 1
    assert fg.any(-1).any(-1).all()
    assert ((out == 1.0) | fg).all()
    assert (out[fg] >= 0).all() and (out[fg] <= FOREGROUND_MAX + 1e-6).all()
    per_view_min = torch.where(fg, out, torch.tensor(2.0)).amin((-1, -2))
    assert torch.equal(per_view_min, torch.zeros_like(per_view_min))  # z_min maps to exactly 0


@pytest.mark.parametrize("mode", ["min", "weighted"])
@pytest.mark.parametrize("projection", ["orthographic", "perspective"])
def test_degenerate_clouds_are_finite(mode, projection):
    huge = torch.full((1, 5, 3), 1e30)
    check_degenerate_clouds(disc(32, 0.1, mode=mode, projection=projection), extra=(huge,))


# ----------------------------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------------------------
def test_square_footprint_is_the_default_and_ignores_radius():
    pts = unit_clouds(2, 100, seed=1)
    base = render_depth(pts, "pretrain10", 1.0, DepthConfig(32, 2))
    assert DepthConfig().footprint == "square" and DepthConfig().radius == 0.02
    assert torch.equal(render_depth(pts, "pretrain10", 1.0, DepthConfig(32, 2, footprint="square", radius=0.7)), base)
    assert not torch.equal(render_depth(pts, "pretrain10", 1.0, disc(32, 0.02)), base)


def test_bad_footprint_and_radius_messages():
    with pytest.raises(ValueError, match=r"^depth: 'footprint' must be one of square, disc; got 'circle'$"):
        DepthConfig(footprint="circle")
    for bad, rule in ((0.0, "> 0.0"), (-0.1, "> 0.0"), (float("nan"), "a number > 0.0"),
                      (float("inf"), "<= 2.0"), (2.5, "<= 2.0")):
        with pytest.raises(ValueError, match=rf"^depth: 'radius' must be {rule}; got {bad}$"):
            DepthConfig(footprint="disc", radius=bad)
    for bad in ("0.02", True):
        with pytest.raises(ValueError, match=r"^depth: 'radius' must be a number > 0.0; got "):
            DepthConfig(footprint="disc", radius=bad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mode", ["min", "weighted"])
def test_cuda_matches_cpu(mode):
    pts = unit_clouds(3, 300, seed=6)
    dist = jittered_distances(3, 1, 1.0, 0.1, torch.Generator().manual_seed(6))
    cfg = disc(64, 0.03, mode=mode)
    cpu = render_depth(pts, "pretrain10", dist, cfg)
    gpu = render_depth(pts.cuda(), "pretrain10", dist.cuda(), cfg).cpu()
    torch.testing.assert_close(gpu, cpu, atol=2e-6, rtol=0)
