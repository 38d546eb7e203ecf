"""PointCLIP V2's *realistic projection*: points → a coarse 3-D grid → densified, smoothed depth images.

The projection family's second member beside :mod:`clip2point.render.depth` (CLIP2Point's rasterised
Eqs. 12–14). Every number below is transcribed from the public PointCLIP V2 code
(``yangyangyang127/PointCLIP_V2``, ``zeroshot_cls/trainers/mv_utils_zs.py``: the ``params`` dict,
``points2grid``, ``Grid2Image``, ``get3DGaussianKernel``, ``Realistic_Projection``; ``zeroshot.py``:
``real_proj``) and is a field of :class:`clip2point.configs.RealisticConfig` (``DepthConfig.realistic``)
with the released value as its default. It is ``DepthConfig.projection = "realistic"`` of
:func:`clip2point.render.depth.render_depth`, so it renders any view set.

Per cloud and view:

1. **Rotate** into the view's frame ``p' = M p``, ``M`` = rows (−up, right, back) of the camera frame
   (:func:`clip2point.render.views.view_frames`): image rows follow x' (downwards), columns y', the grid's
   depth axis z' (towards the camera). PointCLIP V2's own 10 views are the view set ``realistic10``
   (:func:`clip2point.render.views.realistic_rotations`: ``M = R₂ R₁`` from its Euler angles). The released
   code also subtracts a translation (−0.5, −0.5, −1.5) after rotating; step 2 re-centres every cloud, so
   it cancels exactly and is not applied here. For the same reason the camera distance has no effect.
2. **Normalise** (``points2grid``): centre ``(max + min)/2`` per axis, divide by the largest axis extent, ×2
   (the cloud's longest side spans [−1, 1]); ``x, y`` ×= ``obj_ratio`` (0.8).
3. **Grid** (``resolution`` = 112, ``depth`` = 8): ``gx = ⌈(x + 1)/2 · res⌉``, ``gy = ⌈(y + 1)/2 · res⌉``
   clipped to [1, res − 2]; ``zv = ((z + 1)/2 + depth_bias)/(1 + depth_bias) · (depth − 2)`` with
   ``depth_bias`` 0.2, the value written, clipped to [1, depth − 2]; its layer ``gz = ⌈zv⌉`` (see below).
   Scatter-max of ``zv`` into a zero grid (``bg_clr`` 0). The grid is stored (layer, x, y): image rows
   follow x', columns y' (the released ``permute(0, 1, 3, 2)``).
4. **Densify**: 3-D max-pool, kernel (1, ``densify``, ``densify``) = (1, 7, 7), stride 1, padding
   (0, ``densify_pad``, ``densify_pad``) = (0, 2, 2) (padding never wins a max): a res × res layer becomes
   (res − 2) × (res − 2), 110² in the released setting.
5. **Smooth**: a fixed 3-D convolution, kernel (``smooth_z``, ``smooth``, ``smooth``) = (1, 3, 3), zero
   padding (0, 1, 1), no bias, weights a normalised Gaussian: ``g(i, j, k) ∝ exp(−(i² + j²)/(2σ_xy²)) ·
   exp(−k²/(2σ_z²))`` for offsets from the kernel centre, σ_xy = 3, σ_z = 1 (with a depth-1 kernel σ_z
   has no effect), divided by its sum.
6. **Squeeze**: max over layers; divide by the image's max; ``1 − img`` (background 1, nearest-to-the-grid-
   top points darkest); the released code repeats it to three channels (done on the model side here).
7. **Resize** bilinearly (``align_corners=True``) to ``image_size`` (224 for CLIP).

One deliberate difference: the layer index ``gz`` is clipped to [1, depth − 2] like the value. In exact
arithmetic ``zv`` ∈ [1, depth − 2] and the clip changes nothing; in float32 the cloud's extreme point can
land a hair above ``depth − 2`` and the released code then writes it one layer further than exact arithmetic
says (a rounding accident, whose effect after step 5 depends on the platform's last bits).

An empty image (max 0: cannot happen for a non-empty cloud, every point writes a value ≥ 1) stays background.
:func:`render_realistic_python` is the slow, obviously-correct twin (plain loops, float64) that the tests
compare with :func:`render_realistic`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from clip2point.configs import DepthConfig, RealisticConfig
from clip2point.render.views import ViewSet, get_views, view_frames


def projection_matrices(views: ViewSet | str) -> np.ndarray:
    """(V, 3, 3) float64 ``M`` per view: rows (−up, right, back) of its camera frame (step 1)."""
    f = view_frames(get_views(views))
    return np.stack([-f[:, 1], f[:, 0], f[:, 2]], axis=1)


def smoothing_kernel(cfg: RealisticConfig) -> np.ndarray:
    """The (smooth_z, smooth, smooth) normalised Gaussian of step 5 (float64)."""
    r, rz = int(cfg.smooth) // 2, int(cfg.smooth_z) // 2
    xy = np.exp(-(np.arange(-r, r + 1, dtype=np.float64) ** 2) / (2.0 * cfg.sigma_xy ** 2))
    z = np.exp(-(np.arange(-rz, rz + 1, dtype=np.float64) ** 2) / (2.0 * cfg.sigma_z ** 2))
    k = z[:, None, None] * xy[None, :, None] * xy[None, None, :]
    return k / k.sum()


def _grid(points: torch.Tensor, cfg: RealisticConfig) -> torch.Tensor:
    """Steps 2–3 for rotated clouds (M, N, 3): the (M, depth, res, res) grid, layers × x × y."""
    m = points.shape[0]
    res, dep = int(cfg.resolution), int(cfg.depth)
    hi, lo = points.amax(dim=1, keepdim=True), points.amin(dim=1, keepdim=True)
    centre = (hi + lo) / 2
    extent = (hi - lo).amax(dim=-1, keepdim=True).clamp_min(torch.finfo(points.dtype).tiny)
    p = (points - centre) / extent * 2.0
    x, y, z = p[..., 0] * cfg.obj_ratio, p[..., 1] * cfg.obj_ratio, p[..., 2]
    gx = ((x + 1) / 2 * res).ceil().clamp(1, res - 2)
    gy = ((y + 1) / 2 * res).ceil().clamp(1, res - 2)
    zv = ((z + 1) / 2 + cfg.depth_bias) / (1 + cfg.depth_bias) * (dep - 2)
    gz = zv.ceil().clamp(1, dep - 2)
    zv = zv.clamp(1, dep - 2)
    idx = (gz * res * res + gx * res + gy).long()  # (layer, x, y) layout: the released permute folded in
    finite = torch.isfinite(x) & torch.isfinite(y) & torch.isfinite(zv)
    idx = torch.where(finite, idx, 0)  # a non-finite point writes nothing (value 0 into slot 0)
    grid = torch.zeros(m, dep * res * res, dtype=points.dtype, device=points.device)
    grid.scatter_reduce_(1, idx, torch.where(finite, zv, 0.0), reduce="amax", include_self=True)
    return grid.view(m, dep, res, res)


def _image(grid: torch.Tensor, cfg: RealisticConfig) -> torch.Tensor:
    """Steps 4–6 for grids (M, depth, res, res): (M, L, L) images in [0, 1]."""
    k, pad = int(cfg.densify), int(cfg.densify_pad)
    m, dep, res, _ = grid.shape
    # The (1, k, k) max-pool as a k×1 then a 1×k pass: a window's max is the max of its rows' maxima, so this
    # is exact, and ~2× faster on CPU than max_pool3d's k² window (benchmarks/bench_depth.py)
    x = F.max_pool2d(grid.reshape(m * dep, 1, res, res), (k, 1), stride=1, padding=(pad, 0))
    x = F.max_pool2d(x, (1, k), stride=1, padding=(0, pad))
    x = x.reshape(m, 1, dep, x.shape[-2], x.shape[-1])
    w = torch.as_tensor(smoothing_kernel(cfg), dtype=grid.dtype, device=grid.device)[None, None]
    x = F.conv3d(x, w, padding=(int(cfg.smooth_z) // 2, int(cfg.smooth) // 2, int(cfg.smooth) // 2))
    img = x.amax(dim=2)[:, 0]  # (M, L, L)
    peak = img.amax(dim=(-2, -1), keepdim=True)
    return torch.where(peak > 0, 1.0 - img / torch.where(peak > 0, peak, 1.0), torch.ones_like(img))


def render_realistic(points: torch.Tensor, views: ViewSet | str = "realistic10",
                     cfg: DepthConfig | None = None) -> torch.Tensor:
    """(B, V, image_size, image_size) float32 realistic-projection images of clouds (B, N, 3).

    Values in [0, 1], background 1.0; one channel (three identical channels in the released code). Runs on
    the points' device; the grid costs B·V·depth·res² floats (4 MB per cloud and view at the defaults).
    ``cfg``: a :class:`DepthConfig` (``image_size`` and ``realistic`` are used).
    """
    cfg = cfg or DepthConfig(projection="realistic")
    if points.ndim != 3 or points.shape[-1] != 3 or points.shape[1] == 0:
        raise ValueError(f"points must be (B, N, 3) with N > 0, got {tuple(points.shape)}")
    pts = points.float()
    rot = torch.as_tensor(projection_matrices(views), dtype=pts.dtype, device=pts.device)
    b, nv = pts.shape[0], rot.shape[0]
    with torch.autocast(pts.device.type, enabled=False):  # geometry at full precision
        rotated = torch.einsum("bnk,vjk->bvnj", pts, rot).reshape(b * nv, -1, 3)
        img = _image(_grid(rotated, cfg.realistic), cfg.realistic)
        size = int(cfg.image_size)
        if img.shape[-1] != size:
            img = F.interpolate(img[:, None], size=(size, size), mode="bilinear", align_corners=True)[:, 0]
    return img.reshape(b, nv, size, size)


def project_realistic(points: torch.Tensor, views: ViewSet | str, distance: float | torch.Tensor | None,
                      cfg: DepthConfig, out: torch.Tensor | None = None) -> torch.Tensor:
    """The ``realistic`` entry of :data:`clip2point.configs.PROJECTIONS`: :func:`render_realistic` with
    ``cfg.realistic`` (``distance`` and the workspace ``out`` unused: each view is re-centred)."""
    return render_realistic(points, views, cfg)


def render_realistic_python(points: np.ndarray, views: ViewSet | str = "realistic10",
                            cfg: DepthConfig | None = None) -> np.ndarray:
    """The slow twin of :func:`render_realistic` for one cloud (N, 3): plain loops in float64, (V, S, S)."""
    cfg = cfg or DepthConfig(projection="realistic")
    rc = cfg.realistic
    res, dep, size = int(rc.resolution), int(rc.depth), int(cfg.image_size)
    k, pad, ks, kz = int(rc.densify), int(rc.densify_pad), int(rc.smooth), int(rc.smooth_z)
    lay = rc.layer_size
    gauss = smoothing_kernel(rc)
    pts = [tuple(float(c) for c in p) for p in np.asarray(points, dtype=np.float64)]
    mats = projection_matrices(views)
    out = np.empty((len(mats), size, size))
    for view, rot in enumerate(mats):
        rotated = [tuple(sum(rot[i][j] * p[j] for j in range(3)) for i in range(3)) for p in pts]
        hi = [max(p[a] for p in rotated) for a in range(3)]
        lo = [min(p[a] for p in rotated) for a in range(3)]
        centre = [(hi[a] + lo[a]) / 2 for a in range(3)]
        extent = max(max(hi[a] - lo[a] for a in range(3)), 1e-300)
        grid = [[[0.0] * res for _ in range(res)] for _ in range(dep)]  # [layer][x][y]
        for p in rotated:
            x = (p[0] - centre[0]) / extent * 2 * rc.obj_ratio
            y = (p[1] - centre[1]) / extent * 2 * rc.obj_ratio
            z = (p[2] - centre[2]) / extent * 2
            gx = min(max(math.ceil((x + 1) / 2 * res), 1), res - 2)
            gy = min(max(math.ceil((y + 1) / 2 * res), 1), res - 2)
            zv = ((z + 1) / 2 + rc.depth_bias) / (1 + rc.depth_bias) * (dep - 2)
            gz = min(max(math.ceil(zv), 1), dep - 2)
            zv = min(max(zv, 1.0), dep - 2.0)
            grid[gz][gx][gy] = max(grid[gz][gx][gy], zv)
        pooled = [[[max(grid[d][i + a - pad][j + c - pad]
                        for a in range(k) for c in range(k)
                        if 0 <= i + a - pad < res and 0 <= j + c - pad < res)
                    for j in range(lay)] for i in range(lay)] for d in range(dep)]

        def at(d: int, i: int, j: int, grid: list = pooled) -> float:
            return grid[d][i][j] if 0 <= d < dep and 0 <= i < lay and 0 <= j < lay else 0.0

        image = [[max(sum(gauss[c][a][e] * at(d + c - kz // 2, i + a - ks // 2, j + e - ks // 2)
                          for c in range(kz) for a in range(ks) for e in range(ks))
                      for d in range(dep))
                  for j in range(lay)] for i in range(lay)]
        peak = max(max(row) for row in image)
        image = [[1.0 - v / peak if peak > 0 else 1.0 for v in row] for row in image]
        for i in range(size):
            for j in range(size):
                out[view, i, j] = _bilinear(image, lay, i, j, size)
    return out


def _bilinear(image: list[list[float]], n: int, i: int, j: int, size: int) -> float:
    """``image`` (n × n) sampled at output pixel (i, j) of a size × size bilinear resize, corners aligned."""
    if size == n:
        return image[i][j]
    si = i * (n - 1) / (size - 1) if size > 1 else 0.0
    sj = j * (n - 1) / (size - 1) if size > 1 else 0.0
    i0, j0 = min(int(si), n - 1), min(int(sj), n - 1)
    i1, j1 = min(i0 + 1, n - 1), min(j0 + 1, n - 1)
    fi, fj = si - i0, sj - j0
    top = image[i0][j0] * (1 - fj) + image[i0][j1] * fj
    bottom = image[i1][j0] * (1 - fj) + image[i1][j1] * fj
    return top * (1 - fi) + bottom * fi
