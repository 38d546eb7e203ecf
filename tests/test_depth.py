"""Depth projector (Eq. 12–14) and view conventions: hand-computed cases, the plain-loop twin
(:mod:`clip2point.render.depth_python`), edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from depth_support import check_batched_equals_per_cloud, check_degenerate_clouds, unit_clouds

from clip2point.render.depth import (
    FOREGROUND_MAX,
    DepthConfig,
    jittered_distances,
    render_depth,
)
from clip2point.render.depth_python import K, render_depth_python, render_depth_square_python
from clip2point.render.views import (
    VIEW_SETS,
    ViewSet,
    camera_frames,
    get_views,
    to_y_up,
    view_rotations,
    y_up_matrix,
)


# ----------------------------------------------------------------------------------------------------------
# hand-computed cases
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "r, rows, cols", [(1, [4], [4]), (2, [4, 5], [4, 5]), (4, [3, 4, 5, 6], [3, 4, 5, 6])]
)
def test_isolated_point_covers_r_by_r_block(r, rows, cols):
    # origin, front view, 8×8, orthographic d=1: u = v = (0 + 1) · 8/2 = 4 → pixel (4, 4)
    out = render_depth(torch.zeros(1, 1, 3), ViewSet((0,), (0,)), 1.0, DepthConfig(8, r))[0, 0]
    expected = torch.ones(8, 8)
    for i in rows:
        for j in cols:
            expected[i, j] = 0.0  # a single point: (z − z_min)/z_max = 0
    assert torch.equal(out, expected)


def test_min_vs_weighted_two_points_in_one_pixel():
    # front view: depth z = d − p_z. Pixel A holds z = 0.5 and 1.5, pixel B holds z = 0.2.
    pts = torch.tensor([[[0.01, 0.01, 0.5], [0.01, 0.01, -0.5], [0.6, 0.6, 0.8]]])
    cfg = DepthConfig(16, 1)
    a = (math.floor((1 - 0.01) * 8), math.floor(1.01 * 8))
    bpix = (math.floor((1 - 0.6) * 8), math.floor(1.6 * 8))
    m = render_depth(pts, ViewSet((0,), (0,)), 1.0, cfg)[0, 0]
    # min (Eq. 14): A = 0.5, B = 0.2 → z_min = 0.2, z_max = 0.5
    assert m[a].item() == pytest.approx((0.5 - 0.2) / 0.5 * K, abs=1e-6)
    assert m[bpix].item() == pytest.approx(0.0, abs=1e-7)
    w = render_depth(pts, ViewSet((0,), (0,)), 1.0, DepthConfig(16, 1, mode="weighted"))[0, 0]
    # weighted (Eq. 12): A = (1 + 1) / (1/0.5 + 1/1.5) = 0.75, B = 0.2 → z_max = 0.75
    assert w[a].item() == pytest.approx((0.75 - 0.2) / 0.75 * K, abs=1e-6)
    assert w[bpix].item() == pytest.approx(0.0, abs=1e-7)
    assert (m == 1.0).sum().item() == 16 * 16 - 2 and (w == 1.0).sum().item() == 16 * 16 - 2


def _pixel_of(img: torch.Tensor, value_mask) -> tuple[int, int]:
    idx = torch.nonzero(value_mask(img))
    assert len(idx) == 1, idx
    return int(idx[0, 0]), int(idx[0, 1])


@pytest.mark.parametrize(
    "elev, azim, point, side",
    [
        (0, 0, (0.5, 0, 0), "right"),  # front view: +x on the right
        (0, 0, (0, 0.5, 0), "top"),  # +y up
        (0, 180, (0.5, 0, 0), "left"),  # back view: +x on the left
        (0, 90, (0, 0, 0.5), "left"),  # right view (camera on +x): +z on the left
        (90, 0, (0, 0, 0.5), "top"),  # top view, pole rule: image-up = +z
        (90, 0, (0.5, 0, 0), "left"),  # … and +x on the left
        (270, 0, (0, 0, 0.5), "top"),  # bottom view: +z up, +x right
        (270, 0, (0.5, 0, 0), "right"),
        (-90, 180, (0.5, 0, 0), "right"),  # zeroshot6 bottom view = pretrain10 bottom view
        (180, 0, (0, 0.5, 0), "top"),  # elev 180 is an upright back view
    ],
)
def test_orientation(elev, azim, point, side):
    size = 20
    pts = torch.tensor([[point, point]], dtype=torch.float32)
    img = render_depth(pts, ViewSet((elev,), (azim,)), 1.0, DepthConfig(size, 1))[0, 0]
    row, col = _pixel_of(img, lambda x: x < 1)
    centre = size // 2
    expect = {"right": (centre, 15), "left": (centre, 5), "top": (5, centre)}[side]
    assert (row, col) == expect


def test_nearest_point_is_darkest_in_a_corner_view():
    # pretrain10 view 4 (elev 225, azim −45): camera at (0.5, −0.707, −0.5); the point toward it is nearest
    views = VIEW_SETS["pretrain10"]
    cam = camera_frames(views.elev, views.azim)[4, 2]
    assert np.allclose(cam, [0.5, -math.sqrt(0.5), -0.5])
    pts = torch.tensor([[list(0.5 * cam), list(-0.5 * cam), [0.3, 0.3, 0.3]]], dtype=torch.float32)
    img = render_depth(pts, views, 1.0, DepthConfig(32, 1))[0, 4]
    near = _pixel_of(img, lambda x: x == 0)
    assert near == (16, 16)  # on the optical axis, both ±cam points land in the centre pixel, nearest wins


def test_perspective_projection_hand_computed_and_unit_sphere_fits():
    size = 100
    # camera at D = 2d = 2; point (0.5, 0, 0): z = 2, X = √3 · 0.5 / 2 → u = (1 + X) · 50
    pts = torch.tensor([[[0.5, 0.0, 0.0], [0.5, 0.0, 0.0]]])
    img = render_depth(pts, ViewSet((0,), (0,)), 1.0, DepthConfig(size, 1, projection="perspective"))[0, 0]
    col = math.floor((1 + math.sqrt(3) * 0.25) * 50)
    assert _pixel_of(img, lambda x: x < 1) == (50, col)
    # the unit sphere's silhouette touches but stays inside the frame at d = 1
    g = torch.Generator().manual_seed(0)
    sphere = F.normalize(torch.randn(1, 4000, 3, generator=g), dim=-1)
    d = render_depth(sphere, "zeroshot6", 1.0, DepthConfig(64, 1, projection="perspective"))
    fg = d < 1
    assert fg.any(-1).any(-1).all()
    assert fg[..., 0, :].sum() + fg[..., -1, :].sum() + fg[..., :, 0].sum() + fg[..., :, -1].sum() > 0
    # orthographic at d = 2 halves the object: it then spans the central half of the frame
    o = render_depth(sphere, ViewSet((0,), (0,)), 2.0, DepthConfig(64, 1))[0, 0] < 1
    cols = torch.nonzero(o.any(0)).flatten()
    assert cols.min().item() >= 15 and cols.max().item() <= 48


def test_far_distance_shrinks_orthographic_view():
    pts = torch.tensor([[[0.8, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    a = render_depth(pts, ViewSet((0,), (0,)), 1.0, DepthConfig(40, 1))[0, 0]
    b = render_depth(pts, ViewSet((0,), (0,)), 2.0, DepthConfig(40, 1))[0, 0]
    assert torch.nonzero(a < 1)[:, 1].max().item() == math.floor(1.8 * 20)
    assert torch.nonzero(b < 1)[:, 1].max().item() == math.floor(1.4 * 20)


# ----------------------------------------------------------------------------------------------------------
# batched kernel == plain-loop twin
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["min", "weighted"])
@pytest.mark.parametrize("projection", ["orthographic", "perspective"])
@pytest.mark.parametrize("r", [1, 2, 3])
def test_matches_reference(mode, projection, r):
    pts = unit_clouds(2, 60, seed=r)
    views = VIEW_SETS["pretrain10"]
    dist = jittered_distances(2, 10, 1.0, 0.1, torch.Generator().manual_seed(1))
    cfg = DepthConfig(24, r, mode=mode, projection=projection)
    got = render_depth(pts, views, dist, cfg)
    ref = render_depth_square_python(pts.numpy(), views, dist.numpy(), cfg)
    assert got.shape == (2, 10, 24, 24) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), ref, atol=2e-6)


def test_matches_reference_with_points_outside_the_frame():
    pts = unit_clouds(1, 80, seed=5) * 1.4  # partly outside [−1, 1]², and behind the camera at d = 0.9
    views = VIEW_SETS["zeroshot6"]
    dist = np.full((1, 6), 0.9)
    cfg = DepthConfig(20, 2)
    got = render_depth(pts, views, torch.tensor(dist), cfg)
    np.testing.assert_allclose(got.numpy(), render_depth_square_python(pts.numpy(), views, dist, cfg), atol=2e-6)


def test_the_twin_follows_the_footprint():
    """``render_depth_python`` is the twin of ``render_depth`` whatever ``cfg.footprint`` says."""
    pts, views, dist = unit_clouds(1, 40, seed=6), VIEW_SETS["zeroshot6"], np.ones((1, 6))
    for cfg in (DepthConfig(12, 2), DepthConfig(12, footprint="disc", radius=0.15)):
        got = render_depth(pts, views, torch.tensor(dist), cfg)
        np.testing.assert_allclose(got.numpy(), render_depth_python(pts.numpy(), views, dist, cfg), atol=2e-6)


def test_batched_equals_per_cloud_and_workspace_reuse():
    check_batched_equals_per_cloud(DepthConfig(48, 2))


def test_value_range_and_normalisation():
    out = render_depth(unit_clouds(3, 512, seed=4), "pretrain10", 1.0, DepthConfig(64, 2))
    fg = out < 1
    assert fg.any(-1).any(-1).all()
    assert (out[fg] >= 0).all() and (out[fg] <= FOREGROUND_MAX + 1e-6).all()
    per_view_min = torch.where(fg, out, torch.tensor(2.0)).amin((-1, -2))
    assert torch.allclose(per_view_min, torch.zeros_like(per_view_min))  # z_min maps to 0 in every view


# ----------------------------------------------------------------------------------------------------------
# degenerate clouds
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["min", "weighted"])
@pytest.mark.parametrize("projection", ["orthographic", "perspective"])
def test_degenerate_clouds_are_finite(mode, projection):
    check_degenerate_clouds(DepthConfig(32, 2, mode=mode, projection=projection))


# ----------------------------------------------------------------------------------------------------------
# views and distances
# ----------------------------------------------------------------------------------------------------------
def test_view_sets_and_rotations():
    assert VIEW_SETS["pretrain10"].elev == (0, 90, 180, 270, 225, 225, 315, 315, 0, 0)
    assert VIEW_SETS["pretrain10"].azim == (0, 0, 0, 0, -45, 45, -45, 45, -90, 90)
    assert VIEW_SETS["zeroshot6"].elev == (0, 0, 0, 0, 90, -90)
    assert VIEW_SETS["zeroshot6"].azim == (0, 90, 180, 270, 0, 180)
    for vs in VIEW_SETS.values():
        rot = view_rotations(vs.elev, vs.azim, dtype=torch.float64)
        eye = torch.eye(3, dtype=torch.float64).expand_as(rot)
        assert torch.allclose(rot @ rot.transpose(1, 2), eye, atol=1e-12)
        assert torch.allclose(torch.linalg.det(rot), torch.ones(len(vs), dtype=torch.float64))
    listed = get_views([(0, 0, 1.5), (30, 60, 2.0)])
    assert listed.dist == (1.5, 2.0) and len(listed) == 2
    with pytest.raises(ValueError):
        get_views("nope")


def _pytorch3d_look_at_float32(elev, azim):
    """pytorch3d's published look_at_view_transform arithmetic (float32), re-derived for this check."""
    e = math.pi / 180.0 * torch.tensor(elev, dtype=torch.float32)
    a = math.pi / 180.0 * torch.tensor(azim, dtype=torch.float32)
    c = torch.stack([torch.cos(e) * torch.sin(a), torch.sin(e), torch.cos(e) * torch.cos(a)], 1)
    up = torch.tensor([[0.0, 1.0, 0.0]]).expand_as(c)
    z = F.normalize(-c, eps=1e-5)
    x = F.normalize(torch.linalg.cross(up, z), eps=1e-5)
    y = F.normalize(torch.linalg.cross(z, x), eps=1e-5)
    close = torch.isclose(x, torch.tensor(0.0), atol=5e-3).all(1, keepdim=True)
    x = torch.where(close, F.normalize(torch.linalg.cross(y, z), eps=1e-5), x)
    return x, y, z  # pytorch3d view axes: +X is image-left, +Y image-up, +Z forward


@pytest.mark.parametrize("name", ["pretrain10", "zeroshot6"])
def test_frames_match_released_pytorch3d_convention(name):
    vs = VIEW_SETS[name]
    x, y, z = _pytorch3d_look_at_float32(list(vs.elev), list(vs.azim))
    fr = camera_frames(vs.elev, vs.azim)
    np.testing.assert_allclose(fr[:, 0], -x.numpy(), atol=1e-4)  # image-right = −X
    np.testing.assert_allclose(fr[:, 1], y.numpy(), atol=1e-4)
    np.testing.assert_allclose(fr[:, 2], -z.numpy(), atol=1e-4)


def test_to_y_up_delegates_to_sampling():
    from clip2point.sampling import to_y_up as sampling_to_y_up

    rng = np.random.default_rng(0)
    p = rng.standard_normal((7, 3))
    for axis in ("y", "z"):
        np.testing.assert_allclose(to_y_up(p, axis), sampling_to_y_up(p, axis), atol=1e-12)
        t = to_y_up(torch.tensor(p), axis)
        np.testing.assert_allclose(t.numpy(), sampling_to_y_up(p, axis), atol=1e-12)
        m = y_up_matrix(axis)
        assert np.isclose(np.linalg.det(m), 1.0)  # a rotation, never a mirror
    np.testing.assert_allclose(to_y_up(np.array([[0.0, 0.0, 1.0]]), "z"), [[0.0, 1.0, 0.0]])  # z-up → y-up
    with pytest.raises(ValueError):
        to_y_up(p, "w")


def test_jittered_distances():
    g = torch.Generator().manual_seed(0)
    d = jittered_distances(1000, 2, 1.0, 0.1, g)
    assert d.shape == (1000, 2)
    assert d.min() >= 0.9 and d.max() < 1.1
    assert d.min() < 0.91 and d.max() > 1.09  # spread over the whole range
    assert not torch.equal(d[:, 0], d[:, 1])  # two independent draws per sample
    assert torch.equal(jittered_distances(5, 1, 2.0, 0.1, torch.Generator().manual_seed(7)),
                       jittered_distances(5, 1, 2.0, 0.1, torch.Generator().manual_seed(7)))


def test_config_validation():
    with pytest.raises(ValueError):
        DepthConfig(mode="mean")
    with pytest.raises(ValueError):
        DepthConfig(projection="fisheye")
    with pytest.raises(ValueError):
        render_depth(torch.zeros(4, 3), "pretrain10")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    pts = unit_clouds(3, 512, seed=9)
    dist = jittered_distances(3, 10, 1.0, 0.1, torch.Generator().manual_seed(2))
    for mode in ("min", "weighted"):
        cfg = DepthConfig(64, 2, mode=mode)
        cpu = render_depth(pts, "pretrain10", dist, cfg)
        gpu = render_depth(pts.cuda(), "pretrain10", dist.cuda(), cfg).cpu()
        torch.testing.assert_close(gpu, cpu, atol=1e-5, rtol=0)
