"""From meshes and raw clouds to the network's input: 1,024 farthest points in the unit sphere (§5.1, §5.2).

Pipeline of :func:`mesh_to_points` (the paper "sample[s] the farthest 1,024 points of corresponding 3D
models", §5.1): area-weighted dense surface sampling (:func:`sample_surface`), farthest point sampling
(:func:`farthest_point_sample`, fpsample's bucket kd-line "QuickFPS"), then centring and scaling into the
unit sphere (:func:`normalize_unit_sphere`). Clouds that already are points go through
:func:`points_to_points` (FPS subsample + normalisation).

Axis convention (defined here, once): the whole pipeline works **y-up** (ShapeNet's and the synthetic
benchmark's convention; the renderer's view sets assume it). :func:`to_y_up` converts a dataset's native
up axis (ModelNet's aligned release is z-up) and is applied by the ``sample`` stage, so every points table
is y-up.
"""

from __future__ import annotations

import math

import numpy as np
import trimesh

UP_AXES = ("y", "z", "x", "z_released")


class SamplingError(ValueError):
    """A shape cannot be sampled: empty mesh, zero area, non-finite coordinates, too few points."""


def to_y_up(points: np.ndarray, up_axis: str) -> np.ndarray:
    """Rotate ``(..., 3)`` points from a frame whose up axis is ``up_axis`` into the y-up frame.

    ``"y"``: unchanged. ``"z"`` (ModelNet aligned): a -90° rotation about x, ``(x, y, z) → (x, z, -y)``.
    ``"x"``: a +90° rotation about z, ``(x, y, z) → (-y, x, z)``. ``"z_released"``: the released CLIP2Point
    code's ModelNet rotation (``render/render.py``: ``points @ Rx(90°) @ Ry(−90°)``, row vectors),
    ``(x, y, z) → (−y, z, −x)``: the same up axis as ``"z"``, turned 90° about it, so the four corner
    views look at other quadrants (docs/parity.md). All are proper rotations (det +1), so shapes are
    never mirrored.
    """
    pts = np.asarray(points)
    if up_axis == "y":
        return pts
    if up_axis == "z":
        return np.stack([pts[..., 0], pts[..., 2], -pts[..., 1]], axis=-1)
    if up_axis == "x":
        return np.stack([-pts[..., 1], pts[..., 0], pts[..., 2]], axis=-1)
    if up_axis == "z_released":
        return np.stack([-pts[..., 1], pts[..., 2], -pts[..., 0]], axis=-1)
    raise ValueError(f"unknown up axis {up_axis!r} (expected one of {UP_AXES})")


def _check_mesh(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    verts = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    if len(verts) == 0 or len(faces) == 0:
        raise SamplingError(f"empty mesh ({len(verts)} vertices, {len(faces)} faces)")
    if not np.isfinite(verts).all():
        raise SamplingError("non-finite vertex coordinates (NaN/inf)")
    return verts, faces


def sample_surface(mesh: trimesh.Trimesh, n_dense: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n_dense`` points uniformly over the surface area of ``mesh`` (float64, (n_dense, 3)).

    Faces are picked with probability proportional to their area, then a point is drawn uniformly in the
    triangle with the square-root barycentric trick. Zero-area faces are never picked.
    """
    verts, faces = _check_mesh(mesh)
    tri = verts[faces]
    areas = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    total = areas.sum()
    if not np.isfinite(total) or total <= 0:
        raise SamplingError("zero surface area (all faces degenerate)")
    cdf = np.cumsum(areas)
    face = np.searchsorted(cdf, rng.random(n_dense) * cdf[-1], side="right")
    face = np.minimum(face, len(faces) - 1)
    r1 = np.sqrt(rng.random(n_dense))
    r2 = rng.random(n_dense)
    a, b, c = tri[face, 0], tri[face, 1], tri[face, 2]
    return (1 - r1)[:, None] * a + (r1 * (1 - r2))[:, None] * b + (r1 * r2)[:, None] * c


def _kd_height(n: int) -> int:
    """Bucket height for fpsample's kd-line FPS (bucket size 2**h), following its guidance by workload."""
    h = 9 if n >= 500_000 else 7 if n >= 50_000 else 5 if n >= 2_000 else 3
    while h > 1 and 2**h > n:
        h -= 1
    return h


def farthest_point_sample(points: np.ndarray, k: int, start: int = 0) -> np.ndarray:
    """Indices (int64, (k,)) of ``k`` farthest points of ``points`` (N, 3), in selection order.

    Uses ``fpsample.bucket_fps_kdline_sampling`` (QuickFPS, exact FPS on float32 coordinates). Note, measured
    with fpsample 1.0.2: its ``start_idx`` is taken in the library's internal kd-tree order, so the first
    returned index is a deterministic function of ``start`` and the points but generally not ``start``
    itself; the rest is the exact greedy FPS sequence from that first point (tests/test_sampling.py checks
    this against a plain torch reference).
    """
    import fpsample

    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise SamplingError(f"expected (N, 3) points, got shape {pts.shape}")
    n = len(pts)
    if k < 1:
        raise SamplingError(f"number of points to sample must be >= 1, got {k}")
    if n < k:
        raise SamplingError(f"fewer points than requested ({n} < {k})")
    if not np.isfinite(pts).all():
        raise SamplingError("non-finite coordinates (NaN/inf)")
    if not 0 <= start < n:
        raise SamplingError(f"start index {start} out of range for {n} points")
    pts32 = _fps_coordinates(pts)
    if k == n:
        idx = fpsample.fps_sampling(pts32, k, start_idx=start)
    else:
        idx = fpsample.bucket_fps_kdline_sampling(pts32, k, h=_kd_height(n), start_idx=start)
    return np.asarray(idx, dtype=np.int64)


def _fps_coordinates(pts: np.ndarray) -> np.ndarray:
    """The float32 coordinates FPS runs on: ``pts`` scaled by a power of two (exact) so the largest
    |coordinate| is in [0.5, 1), so squared distances neither overflow (a cloud ×1e30) nor underflow
    (×1e-30) in float32, and a cloud ×2**k gives the same coordinates bit for bit. A cloud far off the origin
    (box centre beyond its own extent, e.g. an offset of 1e6) is first centred on its box centre in float64,
    so the float32 cast keeps its shape; FPS is invariant under both, up to those roundings."""
    p = np.asarray(pts, dtype=np.float64)
    lo, hi = p.min(axis=0), p.max(axis=0)
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    if np.abs(mid).max() > half.max():
        p = p - mid
    return np.ascontiguousarray(_pow2_rescale(p)[0], dtype=np.float32)


def _pow2_rescale(p: np.ndarray) -> tuple[np.ndarray, int]:
    """``(p * 2**-e, e)`` with the largest |value| of ``p`` (float64) in [0.5, 1): exact (a power of two).
    An all-zero ``p`` is returned as it is with ``e = 0``."""
    m = float(np.abs(p).max())
    if not m > 0:
        return p, 0
    e = math.frexp(m)[1]
    return np.ldexp(p, -e), e


def farthest_point_sample_python(points: np.ndarray, k: int, start: int = 0) -> np.ndarray:
    """The slow, obviously correct twin of :func:`farthest_point_sample` (greedy FPS in float64).

    Starts at ``start``; each step lowers every point's squared distance to the chosen set by its distance to
    the last chosen point and takes the argmax (ties: the lowest index). Tests and the sampling benchmark
    compare the fast kernel against it.
    """
    pts = np.asarray(points, dtype=np.float64)
    chosen = np.empty(k, dtype=np.int64)
    dist = np.full(len(pts), np.inf)
    chosen[0] = start
    for i in range(1, k):
        dist = np.minimum(dist, ((pts - pts[chosen[i - 1]]) ** 2).sum(axis=1))
        chosen[i] = int(np.argmax(dist))
    return chosen


def normalize_unit_sphere(points: np.ndarray) -> np.ndarray:
    """Centre on the centroid and scale so the farthest point lies on the unit sphere (same dtype).

    The frame is :func:`unit_sphere_frame`'s (exact power-of-two rescaling, float64), so the result is the
    same for any finite input whatever its scale: a cloud ×2**k gives bit-identical output, ×1e30 or ×1e-30
    (float32) the same within float32 rounding."""
    pts = np.asarray(points)
    if len(pts) == 0:
        raise SamplingError("empty point cloud")
    if not np.isfinite(pts).all():
        raise SamplingError("non-finite coordinates (NaN/inf)")
    p64, e = _pow2_rescale(np.asarray(pts, dtype=np.float64))
    centre, radius = _frame(p64)
    return ((p64 - centre) / radius).astype(pts.dtype, copy=False)


def _frame(p64: np.ndarray) -> tuple[np.ndarray, float]:
    """Centroid ``(1, 3)`` and radius of float64 points whose largest |value| is in [0.5, 1) (or all zero)."""
    centre = p64.mean(axis=0, keepdims=True)
    c = p64 - centre
    radius = math.sqrt(float(((c[:, 0] * c[:, 0] + c[:, 1] * c[:, 1]) + c[:, 2] * c[:, 2]).max()))
    if not radius > 0:
        raise SamplingError("degenerate point cloud (all points coincide)")
    return centre, radius


def _checked_points(points: np.ndarray) -> np.ndarray:
    """``points`` as float64, checked to be a non-empty, finite ``(N, 3)`` cloud (else :class:`SamplingError`)."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
        raise SamplingError(f"expected non-empty (N, 3) points, got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise SamplingError("non-finite coordinates (NaN/inf)")
    return pts


def points_to_points(
    points: np.ndarray, num_points: int, seed: int = 0, allow_fewer: bool = False
) -> np.ndarray:
    """FPS-subsample an existing cloud to ``num_points`` and normalise it: (num_points, 3) float32.

    A cloud with fewer than ``num_points`` points raises :class:`SamplingError`, unless ``allow_fewer``,
    in which case points are repeated (drawn with replacement, seeded) to reach ``num_points``.
    """
    pts = _checked_points(points)
    rng = np.random.default_rng(seed)
    if len(pts) < num_points:
        if not allow_fewer:
            raise SamplingError(f"fewer points than requested ({len(pts)} < {num_points})")
        extra = rng.integers(0, len(pts), num_points - len(pts))
        pts = np.concatenate([pts, pts[extra]])
        sel = np.arange(num_points)
    else:
        sel = farthest_point_sample(pts, num_points, start=int(rng.integers(len(pts))))
    return normalize_unit_sphere(pts[sel]).astype(np.float32)


def mesh_to_points(mesh: trimesh.Trimesh, num_points: int, n_dense: int, seed: int) -> np.ndarray:
    """Dense area-weighted surface sample, FPS to ``num_points``, unit sphere: (num_points, 3) float32.

    Deterministic for a given ``seed``. ``n_dense`` below ``num_points`` is raised to ``num_points``.
    """
    rng = np.random.default_rng(seed)
    dense = sample_surface(mesh, max(n_dense, num_points), rng)
    sel = farthest_point_sample(dense, num_points, start=int(rng.integers(len(dense))))
    return normalize_unit_sphere(dense[sel]).astype(np.float32)


# ------------------------------------------------------------------------------------------ resampling pool
#
# The released CLIP2Point code draws a fresh random 1,024-point subset of every shape on each read (its
# ``random_sample``: a shuffled permutation, the first N points, then ``pc_norm``). The ``sample`` stage can
# store, next to the fixed FPS points, a *pool* of points per shape to draw such subsets from
# (``sample.pool_points``); :func:`resample_points` is the released draw.

#: Mixed into an item's seed for its pool draws, so the FPS points' draws are untouched.
POOL_SEED_TAG = 0x504F4F4C


def unit_sphere_frame(points: np.ndarray) -> tuple[np.ndarray, float]:
    """``(centre (1, 3) float64, radius)`` of :func:`normalize_unit_sphere` for ``points``: that function's
    output is ``(points - centre) / radius`` (computed after the same exact power-of-two rescaling)."""
    p64, e = _pow2_rescale(np.asarray(points, dtype=np.float64))
    centre, radius = _frame(p64)
    return np.ldexp(centre, e), math.ldexp(radius, e)


def mesh_fps_raw(mesh: trimesh.Trimesh, num_points: int, n_dense: int, seed: int) -> np.ndarray:
    """The un-normalised FPS points of :func:`mesh_to_points` (float64): same draws, same selection."""
    rng = np.random.default_rng(seed)
    dense = sample_surface(mesh, max(n_dense, num_points), rng)
    return dense[farthest_point_sample(dense, num_points, start=int(rng.integers(len(dense))))]


def points_fps_raw(points: np.ndarray, num_points: int, seed: int = 0) -> np.ndarray:
    """The un-normalised FPS points of :func:`points_to_points` (float64, no ``allow_fewer``)."""
    pts = _checked_points(points)
    rng = np.random.default_rng(seed)
    if len(pts) < num_points:
        raise SamplingError(f"fewer points than requested ({len(pts)} < {num_points})")
    return pts[farthest_point_sample(pts, num_points, start=int(rng.integers(len(pts))))]


def mesh_pool(mesh: trimesh.Trimesh, pool_points: int, seed: int) -> np.ndarray:
    """``pool_points`` area-weighted uniform surface points of ``mesh`` (float64), from their own generator
    (``seed`` mixed with :data:`POOL_SEED_TAG`)."""
    return sample_surface(mesh, pool_points, np.random.default_rng((int(seed), POOL_SEED_TAG)))


def points_pool(points: np.ndarray, pool_points: int, seed: int) -> np.ndarray:
    """A random subset of ``pool_points`` of ``points`` without replacement (all of them, in their order,
    when there are no more than that), float64."""
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) <= pool_points:
        return pts
    sel = np.random.default_rng((int(seed), POOL_SEED_TAG)).choice(len(pts), pool_points, replace=False)
    return pts[np.sort(sel)]


def pc_norm(pc: np.ndarray) -> np.ndarray:
    """The released ``pc_norm``: subtract the centroid, divide by the largest point norm (same dtype)."""
    centroid = np.mean(pc, axis=0)
    pc = pc - centroid
    m = np.max(np.sqrt(np.sum(pc**2, axis=1)))
    return pc / m


def resample_generator(seed: int, epoch: int, sample_id: str) -> np.random.Generator:
    """The generator of one draw: a function of (seed, epoch or draw index, sample id) alone."""
    import zlib

    return np.random.default_rng((int(seed), int(epoch), zlib.crc32(str(sample_id).encode())))


def resample_points(pool: np.ndarray, num_points: int, rng: np.random.Generator) -> np.ndarray:
    """The released ``random_sample`` + ``pc_norm``: shuffle a permutation of the pool's indices, keep the
    first ``num_points`` points, centre and scale into the unit sphere. (num_points, 3) float32."""
    pool = np.asarray(pool, dtype=np.float32)
    if len(pool) < num_points:
        raise SamplingError(f"pool of {len(pool)} points is smaller than {num_points}")
    permutation = np.arange(len(pool))
    rng.shuffle(permutation)
    return pc_norm(pool[permutation[:num_points]]).astype(np.float32)
