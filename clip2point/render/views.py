"""View sets, camera frames and the axis convention shared by the depth and RGB renderers (§5.2).

Angles
------
A view is an (elevation, azimuth) pair in degrees, in a **y-up** world frame, with the meaning of
pytorch3d's ``look_at_view_transform(dist, elev, azim)`` that the released implementation used: the
camera sits at

    c = d · (cos(elev)·sin(azim), sin(elev), cos(elev)·cos(azim))

and looks at the origin. So (0, 0) is the front view (camera on +z), (0, 90) the right view (camera on +x),
(90, 0) the top view, (180, 0) the back view, (270, 0) the bottom view. The released 10-view set's four
"corner" views (elev 225 / 315) are all *below* the object (sin 225° = sin 315° < 0): 225 puts the camera
behind (−z), 315 in front (+z).

Image orientation
-----------------
Each view has an orthonormal camera frame (right, up, back), ``back = c / |c|`` pointing from the object
to the camera. Image columns grow along *right*, image rows grow along *−up* (row 0 is the top of the
picture). As in pytorch3d (whose image +x is the camera's −X axis) nothing is mirrored: in the front view
world +x is on the right of the picture and +y at the top; in the back view world +x is on the left.

For a regular view ``right = normalize(forward × y)``, ``up = right × forward`` (``forward = −back``): the
picture is upright, world +y projects upwards, whatever the elevation (elev = 180 gives an upright back
view, not an upside-down one, exactly as pytorch3d's ``look_at_rotation`` with up = (0, 1, 0)).

Poles (elev ≡ ±90°): the up-vector (0, 1, 0) is parallel to the view direction and the rule above is 0/0.
pytorch3d does not special-case it: float32 rounding of cos(elev) (cos(float32(π/2)) = −4.4e−8,
cos(float32(3π/2)) = +1.2e−8) tips the camera a hair off the pole, and its eps-guarded normalisation then
picks a frame. Emulating that arithmetic for the released views gives, for all of them — (90, 0) in both
sets, (270, 0) in ``pretrain10`` and (−90, 180) in ``zeroshot6`` — **image-up = world +z** (the object's
front). We adopt that as the rule, stated exactly rather than by rounding accident: at a pole,
``up = +z`` and ``right = forward × up``; the azimuth of a pole view is ignored. Consequences: the top
view shows world +x on the *left* (you look down with the object's front at the top of the picture), the
bottom view shows +x on the right.

Shared views
------------
:func:`union_views` merges several view sets into the distinct views they hold (equal camera frame and
distance), so a consumer of two sets renders and encodes each shared view once.

Axis conversion
---------------
Renderers assume y-up. ModelNet is z-up; the one definition of the conversion is
:func:`clip2point.sampling.to_y_up` (applied by the ``sample`` stage, so the points tables are y-up);
:func:`to_y_up` and :func:`y_up_matrix` here delegate to it (the ``render`` stage rotates source meshes with
the same matrix). Note: it maps ``(x, y, z) → (x, z, −y)`` for ``"z"``; the released implementation's ModelNet
rotation is ``(x, y, z) → (−y, z, −x)``, the same up axis but turned 90° about it (which side is "front").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from clip2point import canonical
from clip2point.registry import Registry

_POLE_COS = 1e-6  # |cos(elev)| below this is a pole view (see module docstring)


@dataclass(frozen=True)
class ViewSet:
    """V views: elevation and azimuth in degrees (y-up frame), optional per-view distances.

    ``frames`` (optional): explicit (V, 3, 3) camera frames, rows (right, up, back), for views that are not
    upright cameras (PointCLIP V2's tilted views, :data:`VIEW_SETS` ``realistic10``); then ``elev`` / ``azim``
    are the camera's position angles (informative only) and :func:`view_frames` returns ``frames``.
    """

    elev: tuple[float, ...]
    azim: tuple[float, ...]
    dist: tuple[float, ...] | None = None
    frames: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "elev", tuple(float(e) for e in self.elev))
        object.__setattr__(self, "azim", tuple(float(a) for a in self.azim))
        if len(self.elev) != len(self.azim) or not self.elev:
            raise ValueError(f"ViewSet needs as many elevations as azimuths (>0), got {len(self.elev)}, "
                             f"{len(self.azim)}")
        if self.frames is not None:
            f = np.asarray(self.frames, dtype=np.float64).reshape(len(self.elev), 3, 3)
            if not np.allclose(f @ np.transpose(f, (0, 2, 1)), np.eye(3), atol=1e-9) or not np.allclose(
                    np.linalg.det(f), 1.0, atol=1e-9):
                raise ValueError("ViewSet frames must be proper rotations (rows right, up, back)")
            object.__setattr__(self, "frames", tuple(tuple(float(x) for x in m.reshape(-1)) for m in f))
        if self.dist is not None:
            object.__setattr__(self, "dist", tuple(float(d) for d in self.dist))
            if len(self.dist) != len(self.elev):
                raise ValueError(f"ViewSet has {len(self.elev)} views but {len(self.dist)} distances")
            if not all(d > 0 and math.isfinite(d) for d in self.dist):
                raise ValueError(f"ViewSet distances must be finite and > 0, got {self.dist}")

    def __len__(self) -> int:
        return len(self.elev)

    @classmethod
    def from_list(cls, views: Sequence[Sequence[float]]) -> ViewSet:
        """From ``[(elev, azim), ...]`` or ``[(elev, azim, distance), ...]`` (degrees)."""
        rows = [tuple(float(x) for x in v) for v in views]
        if not rows or any(len(r) not in (2, 3) for r in rows):
            raise ValueError("views must be a non-empty list of (elev, azim) or (elev, azim, distance)")
        if len({len(r) for r in rows}) != 1:
            raise ValueError("views must all have 2 or all have 3 entries")
        dist = tuple(r[2] for r in rows) if len(rows[0]) == 3 else None
        return cls(tuple(r[0] for r in rows), tuple(r[1] for r in rows), dist)

    def as_dict(self) -> dict:
        d = {"elev": list(self.elev), "azim": list(self.azim), "dist": None if self.dist is None else
             list(self.dist)}
        if self.frames is not None:
            d["frames"] = [list(f) for f in self.frames]
        return d

    @classmethod
    def from_frames(cls, frames: np.ndarray) -> ViewSet:
        """Views given by their (V, 3, 3) camera frames (rows right, up, back); ``elev`` / ``azim`` are the
        position angles of ``back`` (``c ∝ (cos e · sin a, sin e, cos e · cos a)``)."""
        f = np.asarray(frames, dtype=np.float64).reshape(-1, 3, 3)
        back = f[:, 2]
        elev = np.degrees(np.arcsin(np.clip(back[:, 1], -1.0, 1.0)))
        azim = np.degrees(np.arctan2(back[:, 0], back[:, 2]))
        return cls(tuple(np.round(elev, 6)), tuple(np.round(azim, 6)), None,
                   tuple(tuple(m.reshape(-1)) for m in f))


#: The released implementation's view sets (degrees, y-up): 10 views for pretraining and adapters, the 6
#: orthogonal views (front, right, back, left, top, bottom) for zero-shot (§5.2).
VIEW_SETS: Registry[ViewSet] = Registry("view set")
VIEW_SETS.register("pretrain10", ViewSet(elev=(0, 90, 180, 270, 225, 225, 315, 315, 0, 0),
                                         azim=(0, 0, 0, 0, -45, 45, -45, 45, -90, 90)))
VIEW_SETS.register("zeroshot6", ViewSet(elev=(0, 0, 0, 0, 90, -90), azim=(0, 90, 180, 270, 0, 180)))


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


def _realistic10() -> ViewSet:
    """PointCLIP V2's 10 views (:func:`realistic_rotations`: ``p' = M p`` with image rows along x', columns
    along y', depth along z'), as camera frames: right = y', up = −x', back = z' (a proper rotation: the rows
    (−up, right, back) of a right-handed frame). The released angles are applied to this project's y-up frame."""
    m = realistic_rotations()
    return ViewSet.from_frames(np.stack([m[:, 1], -m[:, 0], m[:, 2]], axis=1))


VIEW_SETS.register("realistic10", _realistic10())


def get_views(views: str | ViewSet | Sequence[Sequence[float]]) -> ViewSet:
    """A view set by name (:data:`VIEW_SETS`), as given, or from a list of (elev, azim[, distance])."""
    if isinstance(views, ViewSet):
        return views
    if isinstance(views, str):
        return VIEW_SETS.get(views)
    return ViewSet.from_list(views)


def view_frames(views: ViewSet) -> np.ndarray:
    """(V, 3, 3) float64 camera frames of a view set: its explicit ``frames``, else :func:`camera_frames`."""
    if views.frames is not None:
        return np.asarray(views.frames, dtype=np.float64).reshape(len(views), 3, 3)
    return camera_frames(views.elev, views.azim)


def view_set_rotations(views: ViewSet, dtype: torch.dtype = torch.float32,
                       device: torch.device | str | None = None) -> torch.Tensor:
    """(V, 3, 3) world → camera rotations of a view set (rows: right, up, back); see :func:`view_frames`."""
    return torch.as_tensor(view_frames(views), dtype=dtype, device=device)


def camera_frames(elev_deg: Sequence[float], azim_deg: Sequence[float]) -> np.ndarray:
    """(V, 3, 3) float64 camera frames, rows ``(right, up, back)`` in world coordinates.

    ``back`` is the unit vector from the object to the camera. The matrix is a proper rotation taking world
    coordinates to camera coordinates (OpenGL convention: the camera looks along its −z axis).
    """
    # canonical trig (clip2point.canonical): numpy's dispatched sin/cos would move the frames' last bits by CPU
    elev = np.asarray(elev_deg, dtype=np.float64).reshape(-1)
    azim = np.asarray(azim_deg, dtype=np.float64).reshape(-1)
    ce, se = (np.array([f(x) for x in elev], dtype=np.float64) for f in (canonical.cos_deg, canonical.sin_deg))
    ca, sa = (np.array([f(x) for x in azim], dtype=np.float64) for f in (canonical.cos_deg, canonical.sin_deg))
    back = np.stack([ce * sa, se, ce * ca], axis=-1)
    back /= np.sqrt((back[:, 0] * back[:, 0] + back[:, 1] * back[:, 1]) + back[:, 2] * back[:, 2])[:, None]
    pole = np.abs(ce) < _POLE_COS
    # At a pole the camera is exactly on ±y: snap it so the frame is exactly orthonormal.
    back[pole] = np.array([0.0, 1.0, 0.0]) * np.sign(se[pole])[:, None]
    fwd = -back
    right = np.cross(fwd, np.array([0.0, 1.0, 0.0]))
    right[pole] = np.cross(fwd[pole], np.array([0.0, 0.0, 1.0]))  # pole rule: image-up = world +z
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    up = np.cross(right, fwd)
    up /= np.linalg.norm(up, axis=-1, keepdims=True)
    return np.stack([right, up, back], axis=1)


def _view_keys(view_set: ViewSet, distance: float) -> list[tuple[float, ...]]:
    """One hashable key per view: its rounded camera frame and distance (equal keys render equal maps)."""
    frames = view_frames(view_set)
    dists = view_set.dist or (distance,) * len(view_set)
    return [
        tuple(np.round(f.reshape(-1), 9).tolist()) + (round(float(d), 9),)
        for f, d in zip(frames, dists, strict=True)
    ]


def union_views(view_sets: Mapping[str, ViewSet], distance: float) -> tuple[ViewSet, dict[str, list[int]]]:
    """The distinct views of several view sets as one ViewSet, and each set's view positions in it.

    Two views are the same when they have the same camera frame and distance (``distance`` for a set
    without per-view distances), e.g. ``(180, 0)`` and ``(0, 180)``: the camera at the same place with the
    same image-up renders the same depth map (Eq. 12–14), so it is rendered once.
    """
    keys: list[tuple[float, ...]] = []
    elev: list[float] = []
    azim: list[float] = []
    dist: list[float] = []
    frames: list[np.ndarray] = []
    where: dict[str, list[int]] = {}
    for name, vs in view_sets.items():
        pos = []
        vf = view_frames(vs)
        for i, key in enumerate(_view_keys(vs, distance)):
            if key not in keys:
                keys.append(key)
                elev.append(vs.elev[i])
                azim.append(vs.azim[i])
                dist.append(vs.dist[i] if vs.dist else distance)
                frames.append(vf[i])
            pos.append(keys.index(key))
        where[name] = pos
    explicit = any(vs.frames is not None for vs in view_sets.values())
    return ViewSet(tuple(elev), tuple(azim), tuple(dist),
                   tuple(tuple(f.reshape(-1)) for f in frames) if explicit else None), where


def view_rotations(
    elev_deg: Sequence[float], azim_deg: Sequence[float], dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(V, 3, 3) world → camera rotations (rows: right, up, back); see :func:`camera_frames`."""
    return torch.as_tensor(camera_frames(elev_deg, azim_deg), dtype=dtype, device=device)


def camera_poses(views: ViewSet, distances: Sequence[float]) -> np.ndarray:
    """(V, 4, 4) camera-to-world poses (OpenGL: columns right, up, back, position) at ``distances``."""
    frames = view_frames(views)
    poses = np.tile(np.eye(4), (len(views), 1, 1))
    poses[:, :3, :3] = np.transpose(frames, (0, 2, 1))
    poses[:, :3, 3] = frames[:, 2, :] * np.asarray(distances, dtype=np.float64)[:, None]
    return poses


def y_up_matrix(up_axis: str) -> np.ndarray:
    """3×3 rotation M with ``p_yup = M @ p`` for a dataset whose up axis is ``up_axis`` (see module doc)."""
    from clip2point.sampling import to_y_up as _to_y_up

    return np.asarray(_to_y_up(np.eye(3), up_axis), dtype=np.float64).T


def to_y_up(points: np.ndarray | torch.Tensor, up_axis: str) -> np.ndarray | torch.Tensor:
    """Rotate (..., 3) points from a dataset's frame into the y-up frame of the renderers."""
    m = y_up_matrix(up_axis)
    if isinstance(points, torch.Tensor):
        return points @ torch.as_tensor(m.T, dtype=points.dtype, device=points.device)
    pts = np.asarray(points)
    return (pts @ m.T).astype(pts.dtype if pts.dtype.kind == "f" else np.float32, copy=False)
