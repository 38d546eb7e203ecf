"""The slow, obviously correct twins of the depth projector (:func:`clip2point.render.depth.render_depth`).

Plain Python loops in float64 over clouds, views, points and pixels, written from the equations and not from
the kernel, so that a test comparing the two catches a kernel bug (as :func:`clip2point.sampling.
farthest_point_sample_python` does for FPS and :func:`clip2point.render.realistic.render_realistic_python`
for the realistic projection; the pytorch3d habit of a ``_python`` twin beside each kernel):

- :func:`render_depth_square_python`: the square footprint, Eq. 13 taken literally (a point at pixel ``p``
  reaches every pixel ``x̂`` with ``x̂ − R/2 <= p < x̂ + R/2`` on both axes, R = ``dilation``);
- :func:`render_depth_disc_python`: the disc footprint of the released pytorch3d rasterizer
  (``rasterize_points_python``: a point reaches every pixel whose centre lies strictly within ``radius``);
- both share the projection (:func:`project_point`), the reduction of the depths that reach one pixel (the
  minimum, Eq. 14, or the weighted mean, Eq. 12: :func:`pixel_depth`) and the normalisation to
  ``(z − z_min) / z_max · 200/255`` over the covered pixels, background 1 (:func:`write_normalised`).

For tests and for checking a new kernel: far too slow for anything else (seconds for a few hundred points).
"""

from __future__ import annotations

import math

import numpy as np

from clip2point.render.depth import DepthConfig
from clip2point.render.views import ViewSet, camera_frames

#: the foreground's largest value, 200/255 (stated here on its own, not imported from the kernel: a changed
#: constant there shows as a mismatch)
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


def render_depth_square_python(points: np.ndarray, views: ViewSet, dist: np.ndarray,
                               cfg: DepthConfig) -> np.ndarray:
    """(B, V, S, S) depth images of clouds ``points`` (B, N, 3) at distances ``dist`` (B, V), square
    footprint of side ``cfg.dilation`` (Eq. 13 literally)."""
    b = points.shape[0]
    size, r = cfg.image_size, cfg.dilation
    frames = camera_frames(views.elev, views.azim)
    out = np.ones((b, len(views), size, size))
    for bi in range(b):
        for vi in range(len(views)):
            d = float(dist[bi, vi])
            cells: dict[tuple[int, int], list[float]] = {}
            for p in points[bi].astype(np.float64):
                projected = project_point(p, frames[vi], d, cfg)
                if projected is None:
                    continue
                px, py, z = projected
                pc = math.floor((px + 1) * size / 2)  # the point's pixel (column)
                pr = math.floor((1 - py) * size / 2)  # (row)
                for hr in range(pr - r, pr + r + 1):
                    for hc in range(pc - r, pc + r + 1):
                        # Eq. 13: x̂ − R/2 <= p < x̂ + R/2 on both axes
                        if hr - r / 2 <= pr < hr + r / 2 and hc - r / 2 <= pc < hc + r / 2:
                            if 0 <= hr < size and 0 <= hc < size:
                                cells.setdefault((hr, hc), []).append(z)
            write_normalised(out[bi, vi], {key: pixel_depth(zs, cfg) for key, zs in cells.items()})
    return out


def render_depth_disc_python(points: np.ndarray, views: ViewSet, dist: np.ndarray,
                             cfg: DepthConfig) -> np.ndarray:
    """(B, V, S, S) depth images of clouds ``points`` (B, N, 3) at distances ``dist`` (B, V), disc footprint
    of radius ``cfg.radius`` (NDC), pixel by pixel over every point as pytorch3d's
    ``rasterize_points_python`` (one point per pixel, its z-buffer)."""
    b = points.shape[0]
    size, r2 = cfg.image_size, cfg.radius ** 2
    frames = camera_frames(views.elev, views.azim)
    out = np.ones((b, len(views), size, size))
    for bi in range(b):
        for vi in range(len(views)):
            d = float(dist[bi, vi])
            # (X, Y, z) of the kept points (the kernel drops z <= 0; pytorch3d: z < 0)
            proj = [q for p in points[bi].astype(np.float64) if (q := project_point(p, frames[vi], d, cfg))]
            vals = {}
            for yi in range(size):  # row 0 at the top
                yf = 1 - (2 * yi + 1) / size  # pixel-centre Y (pytorch3d's PixToNonSquareNdc of row H-1-yi)
                for xi in range(size):
                    xf = (2 * xi + 1) / size - 1  # pixel-centre X, X pointing right
                    hits = [z for (px, py, z) in proj if (px - xf) ** 2 + (py - yf) ** 2 < r2]
                    if hits:
                        vals[yi, xi] = pixel_depth(hits, cfg)  # Eq. 14: the z-buffer, points_per_pixel 1
            write_normalised(out[bi, vi], vals)
    return out


def render_depth_python(points: np.ndarray, views: ViewSet, dist: np.ndarray, cfg: DepthConfig) -> np.ndarray:
    """The twin of ``render_depth(points, views, dist, cfg)`` for the footprint ``cfg`` names."""
    if cfg.footprint == "disc":
        return render_depth_disc_python(points, views, dist, cfg)
    return render_depth_square_python(points, views, dist, cfg)
