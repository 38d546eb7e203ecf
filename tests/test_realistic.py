"""PointCLIP V2's realistic projection (clip2point.render.realistic): the fast kernel against its loop twin,
and each released fact against a transcription written here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from clip2point.configs import PROJECTIONS, DepthConfig, RealisticConfig
from clip2point.render.depth import render_depth
from clip2point.render.realistic import projection_matrices, render_realistic, render_realistic_python, smoothing_kernel
from clip2point.render.views import (
    REALISTIC_TILTS,
    REALISTIC_VIEWS,
    VIEW_SETS,
    ViewSet,
    euler_matrix,
    realistic_rotations,
    union_views,
    view_frames,
)

SMALL = DepthConfig(image_size=24, projection="realistic", realistic=RealisticConfig(resolution=16, depth=8))


def _cloud(seed: int, n: int = 150) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 3)) * np.array([1.0, 0.6, 0.3])).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_kernel_equals_its_loop_twin(seed: int) -> None:
    pts = _cloud(seed)
    fast = render_realistic(torch.from_numpy(pts)[None], "realistic10", SMALL)[0].numpy()
    slow = render_realistic_python(pts, "realistic10", SMALL)
    assert fast.shape == slow.shape == (10, 24, 24)
    np.testing.assert_allclose(fast, slow, atol=2e-5)


def test_twin_without_resize_and_other_kernel_sizes() -> None:
    rc = RealisticConfig(resolution=16, depth=6, densify=5, densify_pad=1, smooth=5, smooth_z=3, sigma_xy=1.5,
                         sigma_z=0.7)
    assert rc.layer_size == 14
    cfg = DepthConfig(image_size=14, projection="realistic", realistic=rc)  # no resize: the twin's identity path
    pts = _cloud(7, 80)
    np.testing.assert_allclose(render_realistic(torch.from_numpy(pts)[None], "pretrain10", cfg)[0].numpy(),
                               render_realistic_python(pts, "pretrain10", cfg), atol=2e-5)


def test_released_defaults() -> None:
    cfg = RealisticConfig()
    assert (cfg.resolution, cfg.depth, cfg.obj_ratio, cfg.depth_bias) == (112, 8, 0.8, 0.2)
    assert (cfg.densify, cfg.densify_pad, cfg.smooth, cfg.smooth_z, cfg.sigma_xy, cfg.sigma_z) == (7, 2, 3, 1, 3, 1)
    assert cfg.layer_size == 110  # 112 + 2·2 − 7 + 1
    assert DepthConfig().realistic == cfg
    out = render_realistic(torch.from_numpy(_cloud(3, 500))[None])
    assert out.shape == (1, 10, 224, 224) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_smoothing_kernel_is_the_normalised_gaussian() -> None:
    k = smoothing_kernel(RealisticConfig())
    assert k.shape == (1, 3, 3)
    g = np.array([[math.exp(-(i * i + j * j) / 18.0) for j in (-1, 0, 1)] for i in (-1, 0, 1)])
    np.testing.assert_allclose(k[0], g / g.sum(), rtol=1e-12)


def test_view_rotations_transcribe_the_released_euler_angles() -> None:
    def rx(t):
        return np.array([[1, 0, 0], [0, math.cos(t), -math.sin(t)], [0, math.sin(t), math.cos(t)]])

    def ry(t):
        return np.array([[math.cos(t), 0, math.sin(t)], [0, 1, 0], [-math.sin(t), 0, math.cos(t)]])

    def rz(t):
        return np.array([[math.cos(t), -math.sin(t), 0], [math.sin(t), math.cos(t), 0], [0, 0, 1]])

    azimuths = [k * math.pi / 4 for k in (1, 3, 5, 7)] + [k * math.pi / 2 for k in range(4)]
    first = [rx(a) @ rz(math.pi / 2) for a in azimuths] + [ry(-math.pi / 2) @ rz(math.pi / 2),
                                                           ry(math.pi / 2) @ rz(math.pi / 2)]
    tilts = [ry(math.pi / 9)] * 8 + [ry(math.pi / 15)] * 2
    want = np.stack([t @ f for t, f in zip(tilts, first, strict=True)])
    np.testing.assert_allclose(realistic_rotations(), want, atol=1e-12)
    assert len(REALISTIC_VIEWS) == len(REALISTIC_TILTS) == 10
    r = euler_matrix(0.3, -0.2, 1.1)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)


def test_invariant_to_translation_and_scale() -> None:
    """Step 2 re-centres and rescales each rotated cloud, so the released translation cancels."""
    pts = torch.from_numpy(_cloud(5, 300))[None]
    base = render_realistic(pts, "realistic10", SMALL)
    moved = render_realistic(pts * 4.0 + torch.tensor([3.0, -2.0, 0.5]), "realistic10", SMALL)
    assert float((base - moved).abs().max()) < 1e-4


def test_a_single_point_gives_a_finite_image() -> None:
    out = render_realistic(torch.zeros(1, 1, 3), "realistic10", SMALL)
    assert torch.isfinite(out).all() and float(out.min()) < 1.0


def test_batched_equals_one_cloud_at_a_time() -> None:
    pts = torch.from_numpy(np.stack([_cloud(s, 120) for s in range(3)]))
    batched = render_realistic(pts, "realistic10", SMALL)
    for i in range(3):
        torch.testing.assert_close(batched[i], render_realistic(pts[i:i + 1], "realistic10", SMALL)[0])


@pytest.mark.parametrize("field,value", [("resolution", 2), ("densify", 4), ("densify_pad", 9), ("obj_ratio", 0.0),
                                         ("sigma_xy", -1.0)])
def test_bad_settings_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        RealisticConfig(**{field: value})
    with pytest.raises(ValueError, match=field):
        DepthConfig(realistic={field: value})


def test_bad_points_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="points must be"):
        render_realistic(torch.zeros(2, 0, 3))


def test_realistic10_frames_are_the_released_rotations() -> None:
    """Step 1: the view set's camera frames give back M = R₂ R₁ as rows (−up, right, back)."""
    np.testing.assert_allclose(projection_matrices("realistic10"), realistic_rotations(), atol=1e-12)
    f = view_frames(VIEW_SETS["realistic10"])
    np.testing.assert_allclose(np.linalg.det(f), 1.0, atol=1e-12)


def test_an_upright_view_maps_rows_down_and_columns_right() -> None:
    """Front view (elev 0, azim 0: right = +x, up = +y): a point added high up changes pixels in the top
    half only, one added on the right changes pixels in the right half only."""
    cfg = DepthConfig(image_size=16, projection="realistic", realistic=RealisticConfig(resolution=16, depth=8,
                                                                                      densify=1, densify_pad=0))
    base = np.array([[-1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [1.0, -1.0, 0.0], [-1.0, 1.0, 0.0]], np.float32)
    front = ViewSet(elev=(0.0,), azim=(0.0,))

    def changed(extra: list[float]) -> torch.Tensor:
        pts = torch.from_numpy(np.concatenate([base, [extra]]).astype(np.float32))[None]
        diff = render_realistic(pts, front, cfg)[0, 0] != render_realistic(torch.from_numpy(base)[None], front,
                                                                           cfg)[0, 0]
        return torch.nonzero(diff)

    top, right = changed([0.0, 0.7, 0.0]), changed([0.7, 0.0, 0.0])
    assert len(top) and len(right)
    assert int(top[:, 0].max()) < 8 and int(right[:, 1].min()) >= 8


def test_render_depth_dispatches_to_the_realistic_projection() -> None:
    assert set(PROJECTIONS) == {"orthographic", "perspective", "realistic"}
    pts = torch.from_numpy(_cloud(8, 100))[None]
    got = render_depth(pts, "pretrain10", 1.3, SMALL)
    torch.testing.assert_close(got, render_realistic(pts, "pretrain10", SMALL))


def test_union_keeps_explicit_frames() -> None:
    union, where = union_views({"a": VIEW_SETS["realistic10"], "b": VIEW_SETS["zeroshot6"]}, 1.0)
    assert len(union) == 16 and where["a"] == list(range(10))
    np.testing.assert_allclose(view_frames(union)[:10], view_frames(VIEW_SETS["realistic10"]), atol=1e-12)
    np.testing.assert_allclose(view_frames(union)[10:], view_frames(VIEW_SETS["zeroshot6"]), atol=1e-12)


def test_a_frame_that_is_not_a_rotation_is_refused() -> None:
    with pytest.raises(ValueError, match="proper rotations"):
        ViewSet.from_frames(np.eye(3)[None] * 2)


def test_family_silhouette_check_passes_members_and_catches_a_flip() -> None:
    """The rehearsal's check (tools.rehearsal.check_family_silhouettes): every member agrees with
    CLIP2Point's square min maps better as drawn than in any other orientation; realistic maps flipped upside
    down (a row-order bug) or transposed (a swapped grid layout) do not."""
    from pipeline.family import FAMILY, member_depth
    from tools.rehearsal import MIN_IOU_FAMILY, ORIENTATION_MARGIN, silhouette_agreement

    rng = np.random.default_rng(0)
    shapes = []
    for _ in range(6):  # corner tetrahedra: asymmetric in every view (V2's densify blurs an L into a blob)
        q = rng.uniform(0, 1, size=(6000, 3))
        p = q[q.sum(1) < 1][:600]
        p = p - p.mean(0)
        shapes.append(p / np.linalg.norm(p, axis=1).max())
    pts = torch.from_numpy(np.stack(shapes).astype(np.float32))
    base = DepthConfig(image_size=64)
    ref = render_depth(pts, "pretrain10", 1.0, member_depth("clip2point", base)).numpy() < 1
    for name in FAMILY:
        agree, _, other = silhouette_agreement(ref, render_depth(pts, "pretrain10", 1.0,
                                                                 member_depth(name, base)).numpy() < 1)
        assert agree >= MIN_IOU_FAMILY and agree >= other + ORIENTATION_MARGIN, (name, agree, other)
    real = render_depth(pts, "pretrain10", 1.0, member_depth("pointclip_v2", base)).numpy() < 1
    for wrong in (real[:, :, ::-1, :], real.transpose(0, 1, 3, 2)):
        agree, _, other = silhouette_agreement(ref, np.ascontiguousarray(wrong))
        assert agree < other + ORIENTATION_MARGIN
