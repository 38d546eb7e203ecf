"""What the depth-projector tests share: the foreground scale, the plain-loop twins' projection and depth
reduction (Eq. 12 / 14) and normalisation, and seeded test clouds."""

from __future__ import annotations

import math

import numpy as np
import torch

from clip2point.render.depth import FOREGROUND_MAX, DepthConfig, depth_workspace, jittered_distances, render_depth
from clip2point.render.views import ViewSet

K = 200.0 / 255.0


def project_point(p: np.ndarray, frame: np.ndarray, d: float, cfg: DepthConfig) -> tuple[float, float, float] | None:
    """``(X, Y, z)`` of object point ``p`` seen by camera ``frame`` (right, up, back) at distance ``d``:
    image-plane coordinates in [-1, 1] (X right, Y up) and depth; ``None`` where ``z <= 0`` (dropped)."""
    right, up, back = frame
    x, y, s = p @ right, p @ up, p @ back
    if cfg.projection == "orthographic":
        z, px, py = d - s / d, x / d, y / d
    else:
        z = 2 * d - s
        if not z > 0:
            return None
        f = 1 / math.tan(math.radians(30))
        px, py = f * x / z, f * y / z
    return (px, py, z) if z > 0 else None


def pixel_depth(zs: list[float], cfg: DepthConfig) -> float:
    """One pixel's depth from the depths that reach it: the minimum (Eq. 14) or the weighted mean (Eq. 12)."""
    if cfg.mode == "min":
        return min(zs)  # Eq. 14
    return sum(z / (z + cfg.eps) for z in zs) / sum(1 / z for z in zs)  # Eq. 12


def write_normalised(img: np.ndarray, vals: dict[tuple[int, int], float]) -> None:
    """Write ``(z - z_min) / z_max * K`` at every covered pixel ``(row, col)`` of one view image."""
    if not vals:
        return
    zmin, zmax = min(vals.values()), max(vals.values())
    for (row, col), val in vals.items():
        img[row, col] = (val - zmin) / zmax * K


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
