"""Points → multi-view depth maps (paper §3.2.2, Eq. 12–14), batched over clouds × views, CPU and CUDA.

Projection (per view, camera frame from :mod:`clip2point.render.views`; a point p has camera coordinates
``x = p·right``, ``y = p·up``, ``s = p·back``):

* ``orthographic`` (default, the released implementation): the object is scaled by 1/d and seen by an
  orthographic camera at distance d whose frame spans [−1, 1]² (a unit-sphere object fills the frame at d
  = 1): ``X = x/d``, ``Y = y/d``, depth ``z = d − s/d``.
* ``perspective`` (Eq. 13's ⌈x/z⌉): pinhole camera at distance ``D = PERSPECTIVE_DISTANCE_FACTOR · d`` =
  2d with focal length ``f = PERSPECTIVE_FOCAL`` = 1/tan(30°) = √3 (a 60° field of view, the released
  implementation's RGB camera at 2d): ``z = D − s``, ``X = f·x/z``, ``Y = f·y/z``. At d = 1 the unit
  sphere's silhouette (half-angle asin(1/2) = 30°) exactly touches the frame edge.

Pixels: ``u = (X + 1)·W/2``, ``v = (1 − Y)·H/2`` (row 0 at the top); a point's pixel is ``(⌊v⌋, ⌊u⌋)``, the
0-based form of Eq. 13's ⌈·⌉. Dilation R (Eq. 13): a point in pixel p covers every pixel p̂ with
``p̂ − R/2 ≤ p < p̂ + R/2`` per axis, i.e. offsets ``−(⌈R/2⌉−1) … ⌊R/2⌋`` (R = 2: the pixel, its right
and lower neighbours; R = 1: the pixel alone). Points with z ≤ 0 (behind the camera; with orthographic at
d < 1 this can cut the nearest tip of a unit-sphere object, as pytorch3d's rasterizer does in the
released implementation) and pixels outside the frame are dropped.

Pixel value: ``min`` (Eq. 14, default) the smallest z covering the pixel; ``weighted`` (Eq. 12)
``Σ z/(z+ε) / Σ 1/z``. Then per view (the released convention): foreground ``(z − z_min)/z_max ·
200/255`` with z_min, z_max the min / max over the view's foreground pixels, background 1.0. The map has
one channel; expanding to 3 channels and CLIP mean/std belong to the model side.

Implementation (``min``): one fill of the output with 1.0, then O(N·V·R²) work: per-point values
pre-normalised with the max over *points*, ``scatter_reduce(amin)`` into the maps, a gather of the
written pixels to find the max over *pixels*, and an ``index_put`` that rescales those pixels exactly
(the normalisation is affine and increasing per view, so it commutes with the min). No Python loop over
points or views.

Footprint (``DepthConfig.footprint``): ``square`` is Eq. 13's R×R block above. ``disc`` is the released
implementation's footprint (pytorch3d ``PointsRasterizer``, ``radius`` in NDC units, 0.02 there): pixel
``(i, j)`` has its centre at ``X_c = (2j + 1)/W − 1``, ``Y_c = 1 − (2i + 1)/H`` and is covered by a point at
``(X, Y)`` iff ``(X − X_c)² + (Y − Y_c)² < r²`` (strict: a centre at exactly r is not covered), i.e. in
pixels ``(u − j − ½)² + (v − i − ½)² < (r·W/2)²`` (evaluated in float32 pixel units). ``min`` keeps the
nearest z (pytorch3d's ``points_per_pixel = 1`` z-buffer), ``weighted`` applies Eq. 12 over the points
covering the pixel; the per-view normalisation is the same. A point may cover no pixel (``r·W/2 < √½``). Candidates: the
``⌈r·W⌉ × ⌈r·W⌉`` pixels whose centres can lie within r, tested exactly, processed in chunks of whole
views (:data:`DISC_CHUNK` candidates per step, so the step's arrays stay in cache) into a scratch image
with a one-pixel border that absorbs out-of-frame candidates.
"""

from __future__ import annotations

import math

import torch

from clip2point.configs import FOOTPRINTS, PROJECTIONS, DepthConfig
from clip2point.render.views import ViewSet, get_views, view_set_rotations

FOREGROUND_MAX = 200.0 / 255.0
BACKGROUND = 1.0
PERSPECTIVE_DISTANCE_FACTOR = 2.0
PERSPECTIVE_FOCAL = 1.0 / math.tan(math.radians(30.0))
DISC_CHUNK = 1 << 20  # disc candidates per step (whole views; fewer points when one view exceeds it)
_DISC_ENCODE = 0.4  # disc ``min``: per-view scaled depths lie in (0, 0.4], below the background 1.0


def disc_window(radius: float, image_size: int) -> int:
    """Candidate pixels per axis for the disc footprint: at most ⌈2ρ⌉ centres lie strictly within
    ρ = r·W/2 pixels of a point along one axis (an open interval of length 2ρ)."""
    return max(1, math.ceil(radius * image_size))


def dilation_offsets(r: int) -> range:
    """Pixel offsets covered by a point along one axis for dilation rate R (Eq. 13)."""
    return range(-((r + 1) // 2 - 1), r // 2 + 1)


def _distances(distance: float | torch.Tensor | None, views: ViewSet, b: int, device: torch.device,
               ) -> torch.Tensor:
    if distance is None:
        distance = 1.0 if views.dist is None else torch.tensor(views.dist)
    d = torch.as_tensor(distance, dtype=torch.float32, device=device)
    if d.ndim == 1 and d.shape[0] == len(views):
        d = d[None, :]
    return d.expand(b, len(views)) if d.ndim < 2 or d.shape != (b, len(views)) else d


def _orthographic(x: torch.Tensor, y: torch.Tensor, s: torch.Tensor,
                  d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Orthographic camera at distance d (module docstring): NDC ``(x/d, y/d)``, depth ``d − s/d``."""
    inv = 1.0 / d
    return x * inv, y * inv, d - s * inv


def _perspective(x: torch.Tensor, y: torch.Tensor, s: torch.Tensor,
                 d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pinhole camera at 2d, focal √3 (module docstring): NDC ``f·(x, y)/z``, depth ``z = 2d − s``."""
    z = PERSPECTIVE_DISTANCE_FACTOR * d - s
    k = PERSPECTIVE_FOCAL / torch.where(z > 0, z, torch.ones_like(z))
    return x * k, y * k, z


#: The rasterised projections' camera models: camera coordinates (x, y, s) and distance d → NDC (X, Y), depth z.
CAMERAS = {"orthographic": _orthographic, "perspective": _perspective}


def project(points: torch.Tensor, views: ViewSet | str, distance: float | torch.Tensor | None,
            cfg: DepthConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Continuous pixel coordinates ``(u, v)`` and depth ``z`` of every point in every view, each (B, V, N),
    for a rasterised projection (:data:`CAMERAS`).

    Non-finite inputs give ``z = nan`` (dropped by the renderer).
    """
    views = get_views(views)
    b = points.shape[0]
    rot = view_set_rotations(views, dtype=points.dtype, device=points.device)
    cam = torch.einsum("bnk,vjk->bvnj", points, rot)  # (B, V, N, 3): x, y, s
    d = _distances(distance, views, b, points.device).to(points.dtype)[:, :, None]
    x, y, s = cam.unbind(-1)
    px, py, z = CAMERAS[cfg.projection](x, y, s, d)
    size = cfg.image_size
    u = (px + 1.0) * (0.5 * size)
    v = (1.0 - py) * (0.5 * size)
    return u, v, z


def depth_workspace(b: int, v: int, image_size: int,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """A reusable 1-D float32 buffer for :func:`render_depth`'s ``out`` (B·V·H·W + 1 elements).

    Reusing it across batches avoids re-faulting fresh pages for every output (the dominant cost on CPU).
    """
    return torch.empty(b * v * image_size * image_size + 1, dtype=torch.float32, device=device)


def render_depth(points: torch.Tensor, views: ViewSet | str = "pretrain10",
                 distance: float | torch.Tensor | None = None, cfg: DepthConfig | None = None,
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """Depth maps (B, V, H, W) float32 of point clouds (B, N, 3); see the module docstring.

    ``cfg.projection`` picks the renderer from :data:`clip2point.configs.PROJECTIONS`: ``orthographic`` /
    ``perspective`` (Eq. 12–14, rasterised) or ``realistic`` (PointCLIP V2, :mod:`clip2point.render.realistic`).
    ``distance``: a float, a (B, V) / (V,) / (B, 1) tensor, or None (the view set's distances, else 1.0).
    ``out``: optional workspace from :func:`depth_workspace` (``min`` mode); the result is then a view
    into it, overwritten by the next call that uses the same workspace. ``cfg.footprint`` picks Eq. 13's
    square block or the released disc (see the module docstring).
    """
    cfg = cfg or DepthConfig()
    views = get_views(views)
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must be (B, N, 3), got {tuple(points.shape)}")
    return PROJECTIONS.get(cfg.projection)(points, views, distance, cfg, out)


def render_rasterised(points: torch.Tensor, views: ViewSet, distance: float | torch.Tensor | None,
                      cfg: DepthConfig, out: torch.Tensor | None) -> torch.Tensor:
    """Eq. 12–14 through a camera of :data:`CAMERAS` (``orthographic`` / ``perspective``), each point drawn with
    the footprint ``cfg.footprint`` of :data:`clip2point.configs.FOOTPRINTS`."""
    points = points.float() if points.dtype not in (torch.float32, torch.float64) else points
    u, v, z = project(points, views, distance, cfg)
    return FOOTPRINTS.get(cfg.footprint)(u, v, z.float(), cfg, out)


def rasterise_disc(u: torch.Tensor, v: torch.Tensor, z: torch.Tensor, cfg: DepthConfig,
                   out: torch.Tensor | None) -> torch.Tensor:
    """The released disc footprint of ``cfg.radius`` NDC units around each projected point (u, v, z: (B,V,N))."""
    b, nv, n = z.shape
    return _render_disc(u.float(), v.float(), z, b, nv, n, int(cfg.image_size), float(cfg.radius), cfg, out)


def rasterise_square(u: torch.Tensor, v: torch.Tensor, z: torch.Tensor, cfg: DepthConfig,
                     out: torch.Tensor | None) -> torch.Tensor:
    """Eq. 13's R × R block (R = ``cfg.dilation``) around each projected point's pixel, then Eq. 14 (``min``)
    or Eq. 12 (``weighted``) per pixel; u, v, z: (B,V,N)."""
    b, nv, n = z.shape
    size, r = int(cfg.image_size), int(cfg.dilation)
    dev = z.device
    valid_pt = z > 0  # False for nan
    lim = float(size + r + 2)
    # clamped before the integer cast (no overflow); NaN casts to garbage, but then z is NaN: invalid
    col0 = u.clamp_(-lim, lim).floor_().long()  # (B, V, N)
    row0 = v.clamp_(-lim, lim).floor_().long()
    span = dilation_offsets(r)
    lo, hi = span[0], span[-1]
    offs = torch.arange(lo, hi + 1, device=dev)  # built on the device: no host→device copy per call
    base = torch.arange(b * nv, device=dev).view(b, nv, 1) * (size * size)
    pix0 = base + row0 * size + col0  # (B, V, N)
    pix_offs = (offs[:, None] * size + offs[None, :]).reshape(-1)  # (R*R,)
    total = b * nv * size * size
    # One path for every cloud: per-pixel in-frame masks even when every block is in the frame (a test
    # for "all inside" would make the host wait for the device on every call; the maps are the same)
    cols = col0[..., None] + offs  # (B, V, N, R)
    rows = row0[..., None] + offs
    col_ok = (cols >= 0) & (cols < size)
    row_ok = (rows >= 0) & (rows < size)
    valid_e = (row_ok[..., :, None] & col_ok[..., None, :]) & valid_pt[..., None, None]  # (B,V,N,R,R)
    valid_e = valid_e.reshape(b, nv, n * r * r)
    idx = (pix0[..., None] + pix_offs).reshape(b, nv, n * r * r)
    flat_idx = torch.where(valid_e, idx, total).reshape(-1)  # invalid → a dummy slot past the end
    if cfg.mode == "min":
        return _render_min(z, valid_e, flat_idx, b, nv, n, size, r, out)
    return _render_weighted(z, valid_e, flat_idx, b, nv, n, size, r, cfg.eps)


def _render_min(z: torch.Tensor, valid_e: torch.Tensor | None, flat_idx: torch.Tensor, b: int, nv: int,
                n: int, size: int, r: int, out: torch.Tensor | None) -> torch.Tensor:
    """Eq. 14 with the per-view normalisation, in O(B·V·(H·W + N·R²)); ``valid_e`` None: all valid."""
    rr = r * r
    length = b * nv * size * size + 1
    inf = float("inf")  # a Python scalar: no host→device copy
    if valid_e is None:
        zmin, zmax_pts = z.amin(-1), z.amax(-1)
        has = torch.ones_like(zmin, dtype=torch.bool)
    else:
        vis = valid_e.view(b, nv, n, rr).any(-1)  # the point covers at least one in-frame pixel
        zmin = torch.where(vis, z, inf).amin(-1)  # (B, V): min over points = min over pixels
        zmax_pts = torch.where(vis, z, -inf).amax(-1)
        has = vis.any(-1)
        zmin = torch.where(has, zmin, torch.zeros_like(zmin))
        zmax_pts = torch.where(has, zmax_pts, torch.ones_like(zmax_pts))
    # pre-normalised values in [0, 200/255]: below the background 1.0, so amin against it picks foreground
    t = (z - zmin[..., None]) * (FOREGROUND_MAX / zmax_pts)[..., None]
    t_e = t[..., None].expand(b, nv, n, rr).reshape(-1)
    if out is None:
        buf = torch.full((length,), BACKGROUND, dtype=torch.float32, device=z.device)
    else:
        if out.dtype != torch.float32 or out.ndim != 1 or out.numel() < length or out.device != z.device:
            raise ValueError(f"out must be a 1-D float32 tensor of >= {length} elements on {z.device}")
        buf = out[:length].fill_(BACKGROUND)
    buf.scatter_reduce_(0, flat_idx, t_e, reduce="amin", include_self=True)
    g = buf[flat_idx].view(b, nv, n * rr)  # per-entry value of the pixel it covers
    gm = g if valid_e is None else torch.where(valid_e, g, -inf)
    tmax_pix = gm.amax(-1).clamp_min(0.0)
    tmax_pix = torch.where(has, tmax_pix, torch.zeros_like(tmax_pix))
    zmax_pix = zmin + tmax_pix * (zmax_pts / FOREGROUND_MAX)  # max over foreground pixels of the raw depth
    scale = torch.where(has, zmax_pts / zmax_pix.clamp_min(torch.finfo(torch.float32).tiny),
                        torch.ones_like(zmax_pts))
    buf.index_put_((flat_idx,), (g * scale[..., None]).reshape(-1))
    return buf[:-1].view(b, nv, size, size)


def _render_weighted(z: torch.Tensor, valid_e: torch.Tensor, flat_idx: torch.Tensor, b: int, nv: int, n:
int,
                     size: int, r: int, eps: float) -> torch.Tensor:
    """Eq. 12 (Σ z/(z+ε) / Σ 1/z per pixel) with the per-view normalisation."""
    rr = r * r
    zs = torch.where(z > 0, z, torch.ones_like(z))
    num_e = (zs / (zs + eps))[..., None].expand(b, nv, n, rr).reshape(-1)
    den_e = (1.0 / zs)[..., None].expand(b, nv, n, rr).reshape(-1)
    length = b * nv * size * size + 1
    num = torch.zeros(length, dtype=torch.float32, device=z.device).index_add_(0, flat_idx, num_e)
    den = torch.zeros(length, dtype=torch.float32, device=z.device).index_add_(0, flat_idx, den_e)
    num, den = num[:-1].view(b, nv, -1), den[:-1].view(b, nv, -1)
    fg = den > 0
    val = num / torch.where(fg, den, torch.ones_like(den))
    inf = float("inf")  # a Python scalar: no host→device copy
    zmin = torch.where(fg, val, inf).amin(-1, keepdim=True)
    zmax = torch.where(fg, val, -inf).amax(-1, keepdim=True)
    has = fg.any(-1, keepdim=True)
    zmin = torch.where(has, zmin, torch.zeros_like(zmin))
    zmax = torch.where(has, zmax, torch.ones_like(zmax)).clamp_min(torch.finfo(torch.float32).tiny)
    out = torch.where(fg, (val - zmin) / zmax * FOREGROUND_MAX, torch.full_like(val, BACKGROUND))
    return out.view(b, nv, size, size)


def _render_disc(u: torch.Tensor, v: torch.Tensor, z: torch.Tensor, b: int, nv: int, n: int, size: int,
                 radius: float, cfg: DepthConfig, out: torch.Tensor | None) -> torch.Tensor:
    """Disc footprint (released pytorch3d rasterizer, module docstring) with Eq. 14 / Eq. 12 per pixel.

    Views are processed in groups of whole views (at most :data:`DISC_CHUNK` candidates per step unless a
    single view has more, then its points are split). Per step: the ``k × k`` candidate centres of every
    point (``k`` = :func:`disc_window`, the first at column ``⌊u − ½ − ρ⌋ + 1``, row likewise), the test
    ``dx² < ρ² − dy²`` in float32 pixel units (ρ = r·W/2), candidates outside the frame sent to a one-pixel
    border of a scratch image, then ``scatter_reduce`` (``min``) or two ``scatter_add`` (``weighted``)
    along its pixel axis. Per group: the per-view normalisation, written once to the output.
    """
    dev = z.device
    bv, length = b * nv, b * nv * size * size
    rho = radius * size / 2.0
    # ρ² in float32, filled on the device (a fill kernel: no host→device copy per call)
    rho2 = torch.full((), rho * rho, dtype=torch.float32, device=dev)
    k = disc_window(radius, size)
    sp = size + 2  # scratch row: a one-pixel border on each side
    z = z.reshape(bv, n)
    ok = z > 0  # False for nan
    far = -float(k + 4)  # z <= 0 or non-finite: a finite spot off the frame (NaN would break the int cast)
    u = torch.where(ok, u.reshape(bv, n), far)
    v = torch.where(ok, v.reshape(bv, n), far)
    lim = float(size + k + 4)
    # first candidate column / row: the smallest c with c + ½ − u > −ρ
    c0 = (u - (0.5 + rho)).clamp_(-lim, lim).floor_().add_(1.0)
    r0 = (v - (0.5 + rho)).clamp_(-lim, lim).floor_().add_(1.0)
    fx = ((c0 + 0.5) - u)[:, None, :]  # (BV, 1, N): offset of the first candidate centre, in pixels
    fy = ((r0 + 0.5) - v)[:, None, :]
    c1 = (c0.long() + 1)[:, None, :]  # scratch column of the first candidate
    r1 = ((r0.long() + 1) * sp)[:, None, :]  # scratch offset of its row
    ar = torch.arange(k, dtype=torch.float32, device=dev).view(1, k, 1)
    arl = torch.arange(k, device=dev).view(1, k, 1)
    arl_rows = arl * sp
    ok &= (c0 > -k) & (c0 < size) & (r0 > -k) & (r0 < size)  # some candidate in the frame
    if cfg.mode == "min":
        # per-view scaled depth t = z·0.4/max z: the normalisation (z − z_min)/z_max is then done in t
        zmax = torch.where(ok, z, 0.0).amax(-1, keepdim=True)
        scaled = z * (_DISC_ENCODE / torch.where(zmax > 0, zmax, 1.0))
        vals_p = torch.where(ok, scaled, 2.0)[:, None, None, :]  # 2.0: never below the background 1.0
        res = torch.empty(length, dtype=torch.float32, device=dev) if out is None else _checked_out(out, length, dev)
    else:
        zs = torch.where(ok, z, 1.0)
        num_p = torch.where(ok, zs / (zs + cfg.eps), 0.0)[:, None, None, :]  # Eq. 12 numerator terms
        den_p = torch.where(ok, 1.0 / zs, 0.0)[:, None, None, :]
        res = torch.empty(length, dtype=torch.float32, device=dev)
    res3 = res.view(bv, size, size)
    per_view = n * k * k
    g = max(1, min(bv, DISC_CHUNK // per_view))
    pc = n if per_view <= DISC_CHUNK else max(1, DISC_CHUNK // (k * k))
    scratch = torch.empty(g, sp * sp, dtype=torch.float32, device=dev)
    scratch2 = torch.empty_like(scratch) if cfg.mode == "weighted" else scratch
    for g0 in range(0, bv, g):
        g1 = min(bv, g0 + g)
        gb, gb2 = scratch[: g1 - g0], scratch2[: g1 - g0]
        gb.fill_(BACKGROUND if cfg.mode == "min" else 0.0)
        if cfg.mode == "weighted":
            gb2.fill_(0.0)
        for p0 in range(0, n, pc):
            sl = (slice(g0, g1), slice(None), slice(p0, p0 + pc))
            dx2 = (fx[sl] + ar).square_()  # (G, k, P) squared candidate-centre offsets per axis
            dy = fy[sl] + ar
            h2 = torch.addcmul(rho2, dy, dy, value=-1.0)  # ρ² − dy²
            cover = dx2[:, None, :, :] < h2[:, :, None, :]  # (G, k_row, k_col, P)
            cols = (c1[sl] + arl).clamp_(0, size + 1)  # outside the frame → the border
            rows = (r1[sl] + arl_rows).clamp_(0, (size + 1) * sp)
            idx = (rows[:, :, None, :] + cols[:, None, :, :]).reshape(g1 - g0, -1)
            if cfg.mode == "min":
                vals = torch.where(cover, vals_p[sl[0], :, :, sl[2]], 2.0)
                gb.scatter_reduce_(1, idx, vals.reshape(g1 - g0, -1), reduce="amin", include_self=True)
            else:
                gb.scatter_add_(1, idx, torch.where(cover, num_p[sl[0], :, :, sl[2]], 0.0).reshape(g1 - g0, -1))
                gb2.scatter_add_(1, idx, torch.where(cover, den_p[sl[0], :, :, sl[2]], 0.0).reshape(g1 - g0, -1))
        inner = gb.view(g1 - g0, sp, sp)[:, 1:-1, 1:-1]
        if cfg.mode == "min":
            _normalise_disc_min(inner, res3[g0:g1])
        else:
            _normalise_weighted(inner, gb2.view(g1 - g0, sp, sp)[:, 1:-1, 1:-1], res3[g0:g1])
    return res.view(b, nv, size, size)


def _checked_out(out: torch.Tensor, length: int, device: torch.device) -> torch.Tensor:
    if out.dtype != torch.float32 or out.ndim != 1 or out.numel() < length or out.device != device:
        raise ValueError(f"out must be a 1-D float32 tensor of >= {length} elements on {device}")
    return out[:length]


def _normalise_disc_min(t: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Per view (G, H, W): scaled depths t ∈ (0, 0.4] (background 1.0) → ``(t − t_min)/t_max · 200/255``.

    t is z times a per-view constant, so this is the module's ``(z − z_min)/z_max`` over the view's
    foreground pixels. ``frac`` maps the background 1.0 to 0 for the max; the background ends above 1 after
    the affine map ((1 − t_min)·(200/255)/t_max ≥ 0.6·0.78/0.4 > 1) and the final clamp sets it to 1.0.
    """
    tmin = t.amin((1, 2), keepdim=True)
    work = t.frac()
    tmax = work.amax((1, 2), keepdim=True)
    has = tmin < 1.0
    tmin = torch.where(has, tmin, 0.0)
    scale = torch.where(has, FOREGROUND_MAX / tmax.clamp_min(torch.finfo(torch.float32).tiny), 1.0)
    torch.sub(t, tmin, out=work).mul_(scale)
    return torch.clamp(work, max=BACKGROUND, out=dst)


def _normalise_weighted(num: torch.Tensor, den: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Eq. 12 per pixel (Σ z/(z+ε) / Σ 1/z) and the per-view normalisation, (G, H, W) → ``dst``."""
    fg = den > 0
    val = num / torch.where(fg, den, 1.0)
    inf = float("inf")
    zmin = torch.where(fg, val, inf).amin((1, 2), keepdim=True)
    zmax = torch.where(fg, val, -inf).amax((1, 2), keepdim=True)
    has = fg.any(2, keepdim=True).any(1, keepdim=True)
    zmin = torch.where(has, zmin, 0.0)
    zmax = torch.where(has, zmax, 1.0).clamp_min(torch.finfo(torch.float32).tiny)
    return dst.copy_(torch.where(fg, (val - zmin) / zmax * FOREGROUND_MAX, BACKGROUND))


def jittered_distances(b: int, v: int, base: float = 1.0, jitter: float = 0.1,
                       generator: torch.Generator | None = None, device: torch.device | str | None = None,
                       ) -> torch.Tensor:
    """(B, V) pretraining distances ``base · (1 + U(−jitter, jitter))`` (§5.2: [0.9, 1.1) at d = 1).

    ``v = 1`` gives one distance per cloud (the released implementation), broadcast over views by
    :func:`render_depth`. Call twice for the two independent renders of intra-modality learning (Eq. 5–7).
    """
    dev = generator.device if generator is not None and device is None else device
    u = torch.rand((b, v), generator=generator, device=dev)
    return base * (1.0 + (2.0 * u - 1.0) * jitter)

