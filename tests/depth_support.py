"""What the depth-projector tests share: seeded test clouds and the batched / degenerate-cloud checks (the
plain-loop twins live beside the kernel, in :mod:`clip2point.render.depth_python`)."""

from __future__ import annotations

import torch

from clip2point.render.depth import FOREGROUND_MAX, DepthConfig, depth_workspace, jittered_distances, render_depth
from clip2point.render.views import ViewSet


def unit_clouds(b: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(b, n, 3, generator=g) * torch.tensor([1.0, 0.6, 0.4])
    return p / p.norm(dim=-1, keepdim=True).amax(1, keepdim=True)


def check_batched_equals_per_cloud(cfg: DepthConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Four seeded clouds, ``pretrain10``, jittered distances: the batched render equals the per-cloud
    renders, and rendering into a reused workspace (also after a different batch) gives the same images.
    Returns ``(points, distances, workspace)``."""
    pts = unit_clouds(4, 256, seed=2)
    dist = jittered_distances(4, 1, 1.0, 0.1, torch.Generator().manual_seed(3))
    full = render_depth(pts, "pretrain10", dist, cfg)
    for i in range(4):
        assert torch.equal(full[i], render_depth(pts[i:i + 1], "pretrain10", float(dist[i, 0]), cfg)[0])
    ws = depth_workspace(4, 10, cfg.image_size)
    assert torch.equal(render_depth(pts, "pretrain10", dist, cfg, out=ws), full)
    render_depth(pts.flip(0), "pretrain10", dist, cfg, out=ws)  # overwrites the workspace fully
    assert torch.equal(render_depth(pts, "pretrain10", dist, cfg, out=ws), full)
    return pts, dist, ws


def check_degenerate_clouds(cfg: DepthConfig, extra: tuple[torch.Tensor, ...] = ()) -> None:
    """A single point, 100 equal points, a cloud outside the frame (and behind the camera), the ``extra``
    clouds and a cloud with NaN / inf points render finite images in range; the outside cloud (orthographic)
    or a point behind the front camera (perspective) draws nothing; the finite points of the NaN cloud do."""
    single = torch.tensor([[[0.3, -0.2, 0.1]]])
    equal = torch.full((1, 100, 3), 0.25)
    outside = torch.full((1, 50, 3), 10.0)  # outside the frame, and behind the camera
    with_nan = unit_clouds(1, 50, 0)
    with_nan[0, :5] = float("nan")
    with_nan[0, 5] = float("inf")
    for pts in (single, equal, outside, *extra, with_nan):
        out = render_depth(pts, "pretrain10", 1.0, cfg)
        assert torch.isfinite(out).all()
        assert ((out == 1.0) | ((out >= 0) & (out <= FOREGROUND_MAX + 1e-6))).all()
    if cfg.projection == "orthographic":  # (10, 10, 10) is outside every view's frame
        assert (render_depth(outside, "pretrain10", 1.0, cfg) == 1.0).all()
    else:  # front view, camera at z = 2: a point at z = 3 is behind it
        behind = torch.tensor([[[0.0, 0.0, 3.0]]])
        assert (render_depth(behind, ViewSet((0,), (0,)), 1.0, cfg) == 1.0).all()
    assert (render_depth(with_nan, "pretrain10", 1.0, cfg) < 1).any()
