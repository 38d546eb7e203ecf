"""Meshes → RGB views (the image side of the image–depth pairs, §3.2.1 / §5.1), behind a small interface.

Framing matches :mod:`clip2point.render.depth` view for view: the same camera frames
(:func:`clip2point.render.views.camera_poses`, same up-vector and pole rule), and

* ``orthographic`` (default): an orthographic camera whose frame spans [−d, d]² in the camera plane,
  which is the
  depth projector's "scale by 1/d, frame [−1, 1]²";
* ``perspective``: a 60° field-of-view pinhole at distance 2d, the depth projector's perspective mode.

Shading: a directional head-light along the view direction plus ambient light, the mesh's own face / vertex
colours or texture (trimesh visuals; ShapeNet materials arrive through trimesh), flat normals, both faces
drawn (ShapeNet normals are inconsistent), white background. The mesh must already be in the y-up unit
frame of its points (see :func:`align_mesh_to_points`).

Backend: pyrender on OSMesa (``PYOPENGL_PLATFORM=osmesa``, set here if unset, before pyrender is
imported; EGL serves GPU hosts). Creating an OSMesa context per scene leaks about 40 MB, so a
:class:`PyrenderRenderer` keeps ONE ``OffscreenRenderer`` and ONE scene for its lifetime and only adds /
removes the mesh, camera and light nodes (pyrender frees a removed mesh's GL buffers at the next render).
pyrender keys its compiled shader programs by ``OpenGL.contextdata.getContext()``, which under OSMesa is a
new pointer object on every call, so it recompiled its shaders on every ``render`` and llvmpipe kept each
compiled copy: ≈ 3 MB per view, 12 GB in a worker after ~340 shapes (the OOM that killed the 800-shape
benchmark). :func:`stable_program_cache` keys programs by shaders and defines alone (one renderer owns one
context). Use one renderer per worker process (:func:`process_renderer`); the render stage still recycles its
workers (a fresh pool every few hundred shapes) to bound whatever remains.
"""

from __future__ import annotations

import math
import os
from typing import Protocol, runtime_checkable

import numpy as np
import trimesh

from clip2point import canonical
from clip2point.registry import Registry
from clip2point.render.depth import PERSPECTIVE_DISTANCE_FACTOR
from clip2point.render.views import ViewSet, camera_poses, get_views

PROJECTIONS = ("orthographic", "perspective")
_ORTHO_CAMERA_DISTANCE = 4.0  # any value > 1 + margin: orthographic framing does not depend on it


def _load_llvm_users_in_safe_order() -> None:
    """Import triton (through ``torch._dynamo``) before the OSMesa context exists.

    Both triton and Mesa's llvmpipe (behind OSMesa) carry their own LLVM. Measured here: once an OSMesa
    context is created, a later ``import triton`` (torchvision and open_clip trigger it through
    ``torch._dynamo``) dies with a segmentation fault; in the other order both work. So any process that
    renders RGB and may later touch a CLIP model loads triton first.
    """
    try:
        import torch._dynamo  # noqa: F401
    except Exception:  # pragma: no cover - torch without dynamo/triton: nothing to order
        pass


def stable_program_cache(offscreen: object) -> None:
    """Make ``offscreen`` (a ``pyrender.OffscreenRenderer``) compile each shader program once.

    pyrender's cache key includes ``OpenGL.contextdata.getContext()``; under OSMesa that is a fresh
    ``OSMesaContext_pointer`` per call, so the key never repeats (measured: 51 programs after 51 renders,
    +3.0 MB resident per render, in Mesa's JIT, not in Python's heap). Wrapping ``get_program`` with a
    key of (shaders, defines) is exact for a renderer that owns a single context, as ours does; the programs
    and hence the pixels are the same. Written here, not upstream: pyrender is unmaintained.
    """
    cache = offscreen._renderer._program_cache  # pyrender.shader_program.ShaderProgramCache
    inner_get, inner_clear = cache.get_program, cache.clear
    programs: dict[tuple, object] = {}

    def get_program(vertex_shader: str, fragment_shader: str, geometry_shader: str | None = None,
                    defines: dict | None = None) -> object:
        key = (vertex_shader, fragment_shader, geometry_shader, tuple(sorted((defines or {}).items())))
        if key not in programs:
            programs[key] = inner_get(vertex_shader, fragment_shader, geometry_shader, defines)
        return programs[key]

    def clear() -> None:
        programs.clear()
        inner_clear()

    cache.get_program, cache.clear = get_program, clear


@runtime_checkable
class RgbRenderer(Protocol):
    """A mesh renderer: ``render(mesh, views, image_size) -> uint8 (V, H, W, 3)``."""

    def render(self, mesh: trimesh.Trimesh, views: ViewSet | str, image_size: int, distance: float = 1.0,
               projection: str = "orthographic") -> np.ndarray: ...

    def close(self) -> None: ...


class PyrenderRenderer:
    """pyrender / OSMesa backend; reuses one offscreen context and one scene across calls."""

    def __init__(self, ambient: float = 0.45, light_intensity: float = 2.5) -> None:
        self.ambient = float(ambient)
        self.light_intensity = float(light_intensity)
        self._renderer = None
        self._scene = None
        self.calls = 0

    def _ensure(self, image_size: int):
        _load_llvm_users_in_safe_order()
        # headless OpenGL: OSMesa unless the user chose a platform (``PYOPENGL_PLATFORM=egl`` on GPU machines);
        # set on first use, not at import (importing the library changes no environment)
        os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
        import pyrender

        if self._renderer is None:
            self._renderer = pyrender.OffscreenRenderer(image_size, image_size)
            stable_program_cache(self._renderer)
            self._scene = pyrender.Scene(bg_color=[1.0, 1.0, 1.0, 1.0], ambient_light=[self.ambient] * 3)
        elif self._renderer.viewport_width != image_size or self._renderer.viewport_height != image_size:
            self._renderer.viewport_width = image_size
            self._renderer.viewport_height = image_size
        return pyrender

    def render(self, mesh: trimesh.Trimesh, views: ViewSet | str, image_size: int, distance: float = 1.0,
               projection: str = "orthographic") -> np.ndarray:
        """(V, H, W, 3) uint8 renders of ``mesh`` (y-up, unit frame) from ``views``."""
        if projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {PROJECTIONS}, got {projection!r}")
        views = get_views(views)
        pyrender = self._ensure(int(image_size))
        scene = self._scene
        pmesh = pyrender.Mesh.from_trimesh(mesh, smooth=False)
        if projection == "orthographic":
            camera = pyrender.OrthographicCamera(xmag=distance, ymag=distance, znear=0.05,
                                                 zfar=2 * _ORTHO_CAMERA_DISTANCE)
            poses = camera_poses(views, [_ORTHO_CAMERA_DISTANCE] * len(views))
        else:
            cam_dist = PERSPECTIVE_DISTANCE_FACTOR * distance
            camera = pyrender.PerspectiveCamera(yfov=math.radians(60.0), aspectRatio=1.0, znear=0.01,
                                                zfar=cam_dist + 10.0)
            poses = camera_poses(views, [cam_dist] * len(views))
        light = pyrender.DirectionalLight(color=np.ones(3), intensity=self.light_intensity)
        nodes = [scene.add(pmesh), scene.add(camera, pose=poses[0]), scene.add(light, pose=poses[0])]
        out = np.empty((len(views), image_size, image_size, 3), dtype=np.uint8)
        flags = pyrender.RenderFlags.SKIP_CULL_FACES
        try:
            for i, pose in enumerate(poses):
                scene.set_pose(nodes[1], pose)
                scene.set_pose(nodes[2], pose)
                color, _ = self._renderer.render(scene, flags=flags)
                out[i] = color[..., :3]
        finally:
            for node in nodes:
                scene.remove_node(node)
        self.calls += 1
        return out

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.delete()
        self._renderer = None
        self._scene = None


#: RGB renderers by name (``render.backend``).
BACKENDS: Registry[type[RgbRenderer]] = Registry("RGB backend")
BACKENDS.register("pyrender", PyrenderRenderer)


def make_renderer(backend: str = "pyrender", **kwargs: float) -> RgbRenderer:
    """A renderer by backend name (``pyrender``)."""
    return BACKENDS.get(backend)(**kwargs)


_PROCESS_RENDERERS: dict[str, RgbRenderer] = {}


def process_renderer(backend: str = "pyrender") -> RgbRenderer:
    """The one renderer of this process for ``backend`` (created on first use, then reused)."""
    if backend not in _PROCESS_RENDERERS:
        _PROCESS_RENDERERS[backend] = make_renderer(backend)
    return _PROCESS_RENDERERS[backend]


def align_mesh_to_points(mesh: trimesh.Trimesh, points: np.ndarray,
                         rotation: np.ndarray | None = None) -> tuple[trimesh.Trimesh, float]:
    """Put ``mesh`` in the frame of its sampled ``points`` (N, 3); returns (mesh copy, relative misfit).

    The points table stores clouds centred and scaled into the unit sphere (y-up), not the transform, so the
    similarity is recovered from bounding boxes: optional ``rotation`` (3×3, e.g. the dataset's y-up
    conversion) first, then the scale of the bounding-box diagonals and the offset of the box centres.
    FPS keeps the extreme points, so the fit is within a few percent; the misfit (max per-axis extent
    error / diagonal) is returned so a caller can flag a mesh whose frame disagrees with its points.
    """
    out = mesh.copy()
    verts = np.asarray(out.vertices, dtype=np.float64)
    if rotation is not None:
        verts = verts @ np.asarray(rotation, dtype=np.float64).T
    pts = np.asarray(points, dtype=np.float64)
    lo_m, hi_m = verts.min(0), verts.max(0)
    lo_p, hi_p = pts.min(0), pts.max(0)
    diag_m = canonical.norm3(hi_m - lo_m)  # not np.linalg.norm: a 1-D norm is a BLAS dot, CPU-dependent
    diag_p = canonical.norm3(hi_p - lo_p)
    scale = diag_p / diag_m if diag_m > 0 else 1.0
    verts = (verts - (lo_m + hi_m) / 2) * scale + (lo_p + hi_p) / 2
    out.vertices = verts
    misfit = float(np.abs((hi_m - lo_m) * scale - (hi_p - lo_p)).max() / max(diag_p, 1e-12))
    return out, misfit


def foreground_mask(rgb: np.ndarray, threshold: int = 250) -> np.ndarray:
    """Non-background pixels of white-background renders (..., H, W, 3) → bool (..., H, W)."""
    return (np.asarray(rgb) < threshold).any(-1)
