"""Generators of the object classes: the airplane, and the turned (revolved) bottle, bowl, cone and cup.

Profiles revolved about y, tubes and boxes from :mod:`~clip2point.synth.primitives`; the generator contract
(the part list, its frame and the order of ``rng`` calls, which is part of the data) is that of
:mod:`~clip2point.synth.shapes`, where they are registered.
"""

from __future__ import annotations

import numpy as np
import trimesh

from clip2point import canonical
from clip2point.synth.primitives import box, colour, cylinder, frustum, logu, paint, revolve, tube_arc, u


def airplane(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    """Fuselage along z with nose and tail cones, swept wings, tailplane, fin, optional engines."""
    length = u(rng, 0.8, 2.0)
    r = length * u(rng, 0.035, 0.08)
    body_c, wing_c, tail_c = colour(rng), colour(rng), colour(rng)
    body = trimesh.creation.cylinder(radius=r, height=length * 0.7, sections=20)
    parts = [paint(body, body_c)]
    nose = trimesh.creation.cone(radius=r, height=length * u(rng, 0.08, 0.18), sections=20)
    nose.apply_translation((0, 0, length * 0.35))
    tail = trimesh.creation.cone(radius=r, height=length * u(rng, 0.12, 0.25), sections=20)
    tail.apply_transform(trimesh.transformations.rotation_matrix(np.pi, [1, 0, 0]))
    tail.apply_translation((0, 0, -length * 0.35))
    parts += [paint(nose, body_c), paint(tail, body_c)]
    span = length * logu(rng, 0.6, 1.6)
    chord = length * u(rng, 0.1, 0.3)
    sweep = u(rng, 0.0, 0.6)
    wing_y = u(rng, -0.6, 0.6) * r
    wing_z = length * u(rng, -0.05, 0.12)
    thick = max(r * 0.25, 0.01)
    for side in (-1, 1):
        w = trimesh.creation.box(extents=(span / 2, thick, chord))
        w.apply_translation((side * span / 4, 0, 0))
        w.apply_transform(trimesh.transformations.rotation_matrix(side * sweep, [0, 1, 0]))
        w.apply_translation((0, wing_y, wing_z))
        parts.append(paint(w, wing_c))
    if rng.random() < 0.6:
        n_eng = 1 if rng.random() < 0.6 else 2
        for side in (-1, 1):
            for k in range(n_eng):
                x = side * span * (0.15 + 0.15 * k)
                z = wing_z - x * side * canonical.tan(sweep) + chord * 0.5
                parts.append(
                    paint(
                        trimesh.creation.cylinder(
                            radius=r * 0.45, height=chord * 1.1, sections=12
                        ).apply_translation((x, wing_y - r * 0.6, z)),
                        colour(rng),
                    )
                )
    tspan = span * u(rng, 0.25, 0.45)
    tchord = chord * u(rng, 0.4, 0.7)
    for side in (-1, 1):
        t = trimesh.creation.box(extents=(tspan / 2, thick, tchord))
        t.apply_translation((side * tspan / 4, r * 0.3, -length * 0.45))
        parts.append(paint(t, tail_c))
    fin_h = r * u(rng, 2.0, 5.0)
    fin = trimesh.creation.box(extents=(thick, fin_h, tchord * 1.2))
    fin.apply_translation((0, r * 0.5 + fin_h / 2, -length * 0.47))
    parts.append(paint(fin, tail_c))
    return parts


def bottle(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    """Revolved body with shoulder, neck and lip, plus a cap (or a square body with a round neck)."""
    radius = u(rng, 0.1, 0.25)
    body_h = radius * logu(rng, 2.5, 6.5)
    neck_r = radius * u(rng, 0.22, 0.45)
    shoulder_h = radius * u(rng, 0.3, 1.2)
    neck_h = radius * u(rng, 0.4, 2.5)
    glass, cap_c = colour(rng), colour(rng)
    parts = []
    if rng.random() < 0.2:  # square body
        parts.append(box((2 * radius, body_h, 2 * radius * u(rng, 0.5, 1.0)), (0, body_h / 2, 0), glass))
        parts.append(frustum(radius * 0.9, neck_r, shoulder_h, (0, body_h, 0), glass, 24))
    else:
        s = np.linspace(0, 1, 8)
        shoulder = [
            (neck_r + (radius - neck_r) * canonical.cos(si * np.pi / 2), body_h + shoulder_h * si) for si in s
        ]
        prof = [(0, 0), (radius * 0.9, 0), (radius, radius * 0.1)] + shoulder
        prof += [(neck_r, body_h + shoulder_h + neck_h), (0, body_h + shoulder_h + neck_h)]
        parts.append(revolve(np.array(prof), glass))
        if rng.random() < 0.4:  # label band
            band_h = body_h * u(rng, 0.3, 0.6)
            parts.append(cylinder(radius * 1.01, band_h, (0, body_h * 0.45, 0), colour(rng), 32))
    top = body_h + shoulder_h + neck_h
    cap_h = neck_r * u(rng, 0.6, 2.0)
    parts.append(cylinder(neck_r * 1.15, cap_h, (0, top + cap_h / 2 - cap_h * 0.3, 0), cap_c, 20))
    return parts


def _bowl_profile(
    r_top: float, r_base: float, height: float, wall: float, k: float, n: int = 10
) -> np.ndarray:
    """Closed (radius, height) profile of a bowl: outer wall up to the rim, inner wall back to the axis."""
    s = np.linspace(0, 1, n)
    outer = [(r_base + (r_top - r_base) * si ** (1 / k), height * si) for si in s]
    inner_top = r_top - wall
    inner_base = max(r_base - wall, 0.0)
    inner = [
        (inner_base + (inner_top - inner_base) * si ** (1 / k), wall + (height - wall) * si) for si in s[::-1]
    ]
    return np.array([(0, 0)] + outer + inner + [(0, wall)])


def bowl(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    """Revolved open bowl (outer and inner wall), optional foot ring."""
    r_top = u(rng, 0.2, 0.5)
    height = r_top * logu(rng, 0.4, 1.1)
    r_base = r_top * u(rng, 0.25, 0.6)
    wall = r_top * u(rng, 0.03, 0.08)
    col = colour(rng)
    foot = 0.0
    parts = []
    if rng.random() < 0.5:
        foot = height * u(rng, 0.05, 0.15)
        parts.append(
            cylinder(r_base * 0.9, foot, (0, foot / 2, 0), colour(rng) if rng.random() < 0.5 else col, 32)
        )
    body = revolve(_bowl_profile(r_top, r_base, height, wall, u(rng, 1.5, 3.0)), col, (0, foot, 0))
    if rng.random() < 0.7:  # a glaze of another colour inside: faces whose normal points towards the axis
        radial = body.triangles_center * [1, 0, 1]
        # a tolerance, not < 0: flat faces' products are ±1e-17 whose sign follows the CPU's last bits
        inner = (body.face_normals * radial).sum(1) < -1e-9
        fc = np.array(body.visual.face_colors)
        fc[inner] = colour(rng)
        body.visual = trimesh.visual.ColorVisuals(body, face_colors=fc)
    parts.append(body)
    return parts


def cone(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    """A plain cone, a truncated cone, or a traffic cone (square base, striped body)."""
    radius = u(rng, 0.1, 0.4)
    kind = rng.random()
    height = radius * (logu(rng, 2.0, 4.0) if kind < 0.45 else logu(rng, 0.8, 4.0))
    col = colour(rng)
    parts = []
    y0 = 0.0
    if kind < 0.45:  # traffic cone
        base = radius * u(rng, 2.0, 2.3)
        bt = height * u(rng, 0.03, 0.06)
        parts.append(box((base, bt, base), (0, bt / 2, 0), col))
        y0 = bt
    tip = radius * u(rng, 0.02, 0.15) if kind < 0.75 else radius * u(rng, 0.2, 0.45)
    parts.append(frustum(radius, tip, height, (0, y0, 0), col, 32))
    if kind < 0.45 or rng.random() < 0.3:
        stripe = colour(rng)
        for k in range(int(rng.integers(1, 3))):
            f0 = 0.3 + 0.3 * k
            h = height * 0.12
            r0 = radius + (tip - radius) * f0 + 0.003
            r1 = radius + (tip - radius) * (f0 + 0.12) + 0.003
            parts.append(frustum(r0, r1, h, (0, y0 + height * f0, 0), stripe, 32))
    return parts


def cup(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    """Open revolved cup with near-vertical walls, usually a handle, sometimes a saucer."""
    r_top = u(rng, 0.12, 0.3)
    height = r_top * logu(rng, 0.9, 3.0)
    r_base = r_top * u(rng, 0.7, 1.0)
    wall = r_top * u(rng, 0.05, 0.1)
    col = colour(rng)
    s = np.linspace(0, 1, 2)
    outer = [(r_base + (r_top - r_base) * si, height * si) for si in s]
    inner = [(r_base - wall + (r_top - r_base) * si, wall + (height - wall) * si) for si in s[::-1]]
    prof = np.array([(0, 0)] + outer + inner + [(0, wall)])
    y0 = 0.0
    parts = []
    if rng.random() < 0.25:  # saucer
        sr = r_top * u(rng, 1.5, 2.0)
        st = height * 0.05
        parts.append(cylinder(sr, st, (0, st / 2, 0), colour(rng), 32))
        y0 = st
    parts.append(revolve(prof, col, (0, y0, 0)))
    if rng.random() < 0.85:
        hr = height * u(rng, 0.2, 0.35)
        r_mid = (r_top + r_base) / 2
        parts.append(tube_arc((r_mid - hr * 0.1, y0 + height * 0.55, 0), hr, hr * u(rng, 0.12, 0.22), col))
    return parts
