"""The parts the procedural shapes are built of: trimesh primitives (boxes, cylinders, rods, spheres,
surfaces of revolution, frusta, swept tubes) painted with one face colour each, y-up (as ShapeNet), and the
samplers of their proportions (:func:`u`, :func:`logu`).

trimesh features used: ``creation.box/cylinder/cone/icosphere/revolve`` (numpy only) and
``creation.sweep_polygon`` (needs shapely, for cup handles).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import trimesh

from clip2point import canonical

#: The part colours (RGB); :func:`colour` jitters them.
PALETTE = np.array(
    [
        (200, 30, 30), (230, 120, 20), (240, 200, 40), (60, 160, 60), (30, 100, 50), (40, 90, 200),
        (20, 40, 110), (120, 60, 170), (220, 100, 160), (120, 75, 40), (170, 120, 70), (210, 180, 140),
        (245, 245, 240), (160, 160, 165), (70, 70, 75), (25, 25, 25), (40, 170, 190), (150, 190, 60),
    ],
    dtype=np.float64,
)  # fmt: skip

#: Maps +z onto +y (trimesh's primitives are z-up).
TO_Y_UP = trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0])


def colour(rng: np.random.Generator) -> np.ndarray:
    """A random palette colour with a little jitter, RGBA uint8."""
    base = PALETTE[rng.integers(len(PALETTE))] + rng.normal(0, 12, 3)
    return np.append(np.clip(base, 0, 255), 255).astype(np.uint8)


def paint(mesh: trimesh.Trimesh, rgba: np.ndarray) -> trimesh.Trimesh:
    """Give every face of ``mesh`` the colour ``rgba``."""
    mesh.visual = trimesh.visual.ColorVisuals(mesh, face_colors=np.tile(rgba, (len(mesh.faces), 1)))
    return mesh


def box(extents: Sequence[float], center: Sequence[float], rgba: np.ndarray) -> trimesh.Trimesh:
    m = trimesh.creation.box(extents=extents)
    m.apply_translation(center)
    return paint(m, rgba)


def cylinder(radius: float, height: float, center: Sequence[float], rgba: np.ndarray, sections: int = 24):
    """Vertical (y-axis) cylinder centred at ``center``."""
    m = trimesh.creation.cylinder(radius=radius, height=height, sections=sections)
    m.apply_transform(TO_Y_UP)
    m.apply_translation(center)
    return paint(m, rgba)


def rod(p0: Sequence[float], p1: Sequence[float], radius: float, rgba: np.ndarray, sections: int = 12):
    """Cylinder between two points."""
    m = trimesh.creation.cylinder(radius=radius, segment=np.array([p0, p1], dtype=float), sections=sections)
    return paint(m, rgba)


def sphere(radius: float, center: Sequence[float], rgba: np.ndarray, subdivisions: int = 2):
    m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    m.apply_translation(center)
    return paint(m, rgba)


def revolve(profile: np.ndarray, rgba: np.ndarray, base: Sequence[float] = (0, 0, 0), sections: int = 32):
    """Surface of revolution about the vertical axis of a ``(radius, height)`` profile that starts and ends
    on the axis (so the result is closed)."""
    m = trimesh.creation.revolve(np.asarray(profile, dtype=float), sections=sections)
    m.apply_transform(TO_Y_UP)
    m.apply_translation(base)
    return paint(m, rgba)


def frustum(
    r_bottom: float, r_top: float, height: float, base: Sequence[float], rgba: np.ndarray, sections=32
):
    """Closed truncated cone standing on ``base``."""
    prof = [(0, 0), (r_bottom, 0), (r_top, height), (0, height)]
    return revolve(np.array(prof), rgba, base, sections)


def tube_arc(center: Sequence[float], radius: float, thickness: float, rgba: np.ndarray, span=np.pi):
    """A round tube bent along a half circle in the x-y plane, opening towards -x (a cup handle)."""
    from shapely.geometry import Point

    t = np.linspace(-span / 2, span / 2, 14)
    path = np.column_stack([radius * np.array([canonical.cos(x) for x in t]),
                            radius * np.array([canonical.sin(x) for x in t]), np.zeros_like(t)])
    m = trimesh.creation.sweep_polygon(Point(0, 0).buffer(thickness, quad_segs=3), path)
    m.apply_translation(center)
    return paint(m, rgba)


def u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def logu(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Log-uniform in [lo, hi]: broad ranges of proportions without favouring the large end."""
    return canonical.exp(rng.uniform(canonical.log(lo), canonical.log(hi)))


def legs(rng, xs, zs, y_top, y_bottom, thick, rgba, round_legs) -> list[trimesh.Trimesh]:
    """A leg at every (x, z) from ``y_bottom`` to ``y_top``: a square box, or a cylinder when ``round_legs``."""
    """One leg (box, or round when ``round_legs``) at every (x, z), from ``y_bottom`` to ``y_top``."""
    parts = []
    h = y_top - y_bottom
    for x in xs:
        for z in zs:
            if round_legs:
                parts.append(cylinder(thick / 2, h, (x, y_bottom + h / 2, z), rgba, sections=12))
            else:
                parts.append(box((thick, h, thick), (x, y_bottom + h / 2, z), rgba))
    return parts
