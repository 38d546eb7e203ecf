"""PointCLIP V2's *realistic projection*: points → a coarse 3-D grid → densified, smoothed depth images.

The projection family's second member beside :mod:`clip2point.render.depth` (CLIP2Point's rasterised
Eqs. 12–14). Every number below is transcribed from the public PointCLIP V2 code
(``yangyangyang127/PointCLIP_V2``, ``zeroshot_cls/trainers/mv_utils_zs.py``: the ``params`` dict,
``points2grid``, ``Grid2Image``, ``get3DGaussianKernel``, ``Realistic_Projection``; ``zeroshot.py``:
``real_proj``) and is a field of :class:`RealisticConfig` with the released value as its default.

Per cloud and view (:func:`realistic_rotations` gives the 10 view rotations):

1. **Rotate**: ``p' = R₂ R₁ p`` with ``R = Rx(a) · Ry(b) · Rz(c)`` for Euler angles ``(a, b, c)``:
   ``R₁`` from :data:`REALISTIC_VIEWS` (eight views around the object with ``c = π/2``: ``a`` = π/4, 3π/4,
   5π/4, 7π/4, 0, π/2, π, 3π/2; two with ``(a, b) = (0, ∓π/2)``) and ``R₂`` from :data:`REALISTIC_TILTS`
   (``b`` = π/9 for the first eight, π/15 for the last two: "a bias to reveal more surface"). The released
   code also subtracts a translation (−0.5, −0.5, −1.5); step 2 re-centres every cloud, so it cancels
   exactly and is not applied here.
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
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

#: R₁'s Euler angles (a, b, c) in radians, one row per view (``Realistic_Projection._views``).
REALISTIC_VIEWS: tuple[tuple[float, float, float], ...] = (
    (1 * math.pi / 4, 0.0, math.pi / 2),
    (3 * math.pi / 4, 0.0, math.pi / 2),
    (5 * math.pi / 4, 0.0, math.pi / 2),
    (7 * math.pi / 4, 0.0, math.pi / 2),
    (0 * math.pi / 2, 0.0, math.pi / 2),
    (1 * math.pi / 2, 0.0, math.pi / 2),
    (2 * math.pi / 2, 0.0, math.pi / 2),
    (3 * math.pi / 2, 0.0, math.pi / 2),
    (0.0, -math.pi / 2, math.pi / 2),
    (0.0, math.pi / 2, math.pi / 2),
)
#: R₂'s Euler angles per view (``Realistic_Projection._views_bias``).
REALISTIC_TILTS: tuple[tuple[float, float, float], ...] = (
    *((0.0, math.pi / 9, 0.0),) * 8,
    *((0.0, math.pi / 15, 0.0),) * 2,
)


@dataclass(frozen=True)
class RealisticConfig:
    """The realistic projection's settings; defaults are the released ``params`` (see the module docstring)."""

    image_size: int = 224
    resolution: int = 112
    depth: int = 8
    obj_ratio: float = 0.8
    depth_bias: float = 0.2
    densify: int = 7
    densify_pad: int = 2
    smooth: int = 3
    smooth_z: int = 1
    sigma_xy: float = 3.0
    sigma_z: float = 1.0

    def __post_init__(self) -> None:
        checks = {
            "image_size": 1 <= int(self.image_size) <= 8192,
            "resolution": 4 <= int(self.resolution) <= 2048,
            "depth": 3 <= int(self.depth) <= 256,
            "obj_ratio": 0.0 < float(self.obj_ratio) <= 1.0,
            "depth_bias": 0.0 <= float(self.depth_bias) <= 10.0,
            "densify": int(self.densify) >= 1 and int(self.densify) % 2 == 1,
            "densify_pad": 0 <= int(self.densify_pad) <= int(self.densify) // 2,
            "smooth": int(self.smooth) >= 1 and int(self.smooth) % 2 == 1,
            "smooth_z": int(self.smooth_z) >= 1 and int(self.smooth_z) % 2 == 1,
            "sigma_xy": float(self.sigma_xy) > 0.0,
            "sigma_z": float(self.sigma_z) > 0.0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"realistic projection: invalid {name} = {getattr(self, name)!r}")
        if self.layer_size < 1:
            raise ValueError(f"realistic projection: resolution {self.resolution} too small for densify "
                             f"{self.densify} with padding {self.densify_pad}")

    @property
    def layer_size(self) -> int:
        """The side of a densified layer: ``resolution + 2·densify_pad − densify + 1`` (110 by default)."""
        return int(self.resolution) + 2 * int(self.densify_pad) - int(self.densify) + 1


def euler_matrix(a: float, b: float, c: float) -> np.ndarray:
    """``Rx(a) · Ry(b) · Rz(c)`` (float64), the released ``euler2mat`` convention."""
    ca, sa, cb, sb, cc, sc = math.cos(a), math.sin(a), math.cos(b), math.sin(b), math.cos(c), math.sin(c)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, ca, -sa], [0.0, sa, ca]])
    ry = np.array([[cb, 0.0, sb], [0.0, 1.0, 0.0], [-sb, 0.0, cb]])
    rz = np.array([[cc, -sc, 0.0], [sc, cc, 0.0], [0.0, 0.0, 1.0]])
    return rx @ ry @ rz


def realistic_rotations() -> np.ndarray:
    """(10, 3, 3) float64 rotations ``R₂ R₁`` per view: rotated points are ``p' = (R₂ R₁) p``."""
    return np.stack([euler_matrix(*t) @ euler_matrix(*v) for v, t in zip(REALISTIC_VIEWS, REALISTIC_TILTS,
                                                                          strict=True)])


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
    grid = torch.zeros(m, dep * res * res, dtype=points.dtype, device=points.device)
    grid.scatter_reduce_(1, idx, zv, reduce="amax", include_self=True)
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


def render_realistic(points: torch.Tensor, cfg: RealisticConfig | None = None) -> torch.Tensor:
    """(B, 10, image_size, image_size) float32 realistic-projection images of clouds (B, N, 3).

    Values in [0, 1], background 1.0; one channel (three identical channels in the released code). Runs on
    the points' device; the grid costs B·10·depth·res² floats (4 MB per cloud at the defaults).
    """
    cfg = cfg or RealisticConfig()
    if points.ndim != 3 or points.shape[-1] != 3 or points.shape[1] == 0:
        raise ValueError(f"points must be (B, N, 3) with N > 0, got {tuple(points.shape)}")
    pts = points.float()
    b, nv = pts.shape[0], len(REALISTIC_VIEWS)
    rot = torch.as_tensor(realistic_rotations(), dtype=pts.dtype, device=pts.device)
    rotated = torch.einsum("bnk,vjk->bvnj", pts, rot).reshape(b * nv, -1, 3)
    img = _image(_grid(rotated, cfg), cfg)
    size = int(cfg.image_size)
    if img.shape[-1] != size:
        img = F.interpolate(img[:, None], size=(size, size), mode="bilinear", align_corners=True)[:, 0]
    return img.reshape(b, nv, size, size)


def render_realistic_python(points: np.ndarray, cfg: RealisticConfig | None = None) -> np.ndarray:
    """The slow twin of :func:`render_realistic` for one cloud (N, 3): plain loops in float64, (10, S, S)."""
    cfg = cfg or RealisticConfig()
    res, dep, size = int(cfg.resolution), int(cfg.depth), int(cfg.image_size)
    k, pad, ks, kz = int(cfg.densify), int(cfg.densify_pad), int(cfg.smooth), int(cfg.smooth_z)
    lay = cfg.layer_size
    gauss = smoothing_kernel(cfg)
    pts = [tuple(float(c) for c in p) for p in np.asarray(points, dtype=np.float64)]
    out = np.empty((len(REALISTIC_VIEWS), size, size))
    for view, rot in enumerate(realistic_rotations()):
        rotated = [tuple(sum(rot[i][j] * p[j] for j in range(3)) for i in range(3)) for p in pts]
        hi = [max(p[a] for p in rotated) for a in range(3)]
        lo = [min(p[a] for p in rotated) for a in range(3)]
        centre = [(hi[a] + lo[a]) / 2 for a in range(3)]
        extent = max(max(hi[a] - lo[a] for a in range(3)), 1e-300)
        grid = [[[0.0] * res for _ in range(res)] for _ in range(dep)]  # [layer][x][y]
        for p in rotated:
            x = (p[0] - centre[0]) / extent * 2 * cfg.obj_ratio
            y = (p[1] - centre[1]) / extent * 2 * cfg.obj_ratio
            z = (p[2] - centre[2]) / extent * 2
            gx = min(max(math.ceil((x + 1) / 2 * res), 1), res - 2)
            gy = min(max(math.ceil((y + 1) / 2 * res), 1), res - 2)
            zv = ((z + 1) / 2 + cfg.depth_bias) / (1 + cfg.depth_bias) * (dep - 2)
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
