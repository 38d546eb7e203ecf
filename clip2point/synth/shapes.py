"""The ten generators of the procedural benchmark and their registry (:data:`CLASSES`, :func:`register`), and
:func:`make_shape`, which finishes a generator's parts into one shape.

Each generator assembles a shape from :mod:`~clip2point.synth.primitives` with randomized proportions, part
counts and per-part colours, y-up, front facing +z. :func:`make_shape` concatenates the parts and applies a
random anisotropic stretch, overall scale and small yaw, then centres the bounding box, so that categories
are not separable by bounding-box proportions alone.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import trimesh

from clip2point import canonical
from clip2point.synth.primitives import (
    box,
    colour,
    cylinder,
    frustum,
    legs,
    logu,
    paint,
    revolve,
    rod,
    sphere,
    tube_arc,
    u,
)

Generator = Callable[[np.random.Generator], list[trimesh.Trimesh]]

#: The generator registry: class name → function(rng) → list of coloured parts.
CLASSES: dict[str, Generator] = {}


def register(name: str) -> Callable[[Generator], Generator]:
    """Decorator adding a generator to :data:`CLASSES` under ``name``."""

    def deco(fn: Generator) -> Generator:
        if name in CLASSES:
            raise ValueError(f"synth class {name!r} registered twice")
        CLASSES[name] = fn
        return fn

    return deco


# ------------------------------------------------------------------------------------------ generators


@register("airplane")
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


@register("bench")
def bench(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    """Long slatted or solid seat on legs or slab ends, optional backrest and armrests."""
    length = logu(rng, 0.7, 2.2)
    depth = u(rng, 0.25, 0.6)
    height = u(rng, 0.3, 0.55)
    t = u(rng, 0.03, 0.07)
    seat_c, leg_c = colour(rng), colour(rng)
    parts = []
    if rng.random() < 0.5:
        n = int(rng.integers(3, 6))
        gap = depth * 0.05
        w = (depth - gap * (n - 1)) / n
        for i in range(n):
            z = -depth / 2 + w / 2 + i * (w + gap)
            parts.append(box((length, t, w), (0, height - t / 2, z), seat_c))
    else:
        parts.append(box((length, t, depth), (0, height - t / 2, 0), seat_c))
    leg = u(rng, 0.04, 0.08)
    if rng.random() < 0.4:  # slab ends
        for s in (-1, 1):
            parts.append(
                box((leg, height - t, depth * 0.9), (s * (length / 2 - leg), (height - t) / 2, 0), leg_c)
            )
    else:
        xs = [-length / 2 + leg, length / 2 - leg] + ([0.0] if length > 1.4 else [])
        zs = [-depth / 2 + leg, depth / 2 - leg]
        parts += legs(rng, xs, zs, height - t, 0, leg, leg_c, rng.random() < 0.4)
    if rng.random() < 0.6:
        back_h = u(rng, 0.2, 0.5)
        n = int(rng.integers(1, 4))
        for i in range(n):
            y = height + back_h * (i + 0.7) / n
            parts.append(box((length, back_h / n * 0.6, t), (0, y, -depth / 2 + t), seat_c))
        for s in (-1, 1):
            parts.append(
                box(
                    (leg, back_h + t, leg),
                    (s * (length / 2 - leg), height + back_h / 2, -depth / 2 + t),
                    leg_c,
                )
            )
    if rng.random() < 0.3:
        arm_h = u(rng, 0.15, 0.25)
        for s in (-1, 1):
            parts.append(box((leg, leg, depth), (s * (length / 2 - leg / 2), height + arm_h, 0), leg_c))
            parts.append(
                box(
                    (leg, arm_h, leg),
                    (s * (length / 2 - leg / 2), height + arm_h / 2, depth / 2 - leg),
                    leg_c,
                )
            )
    return parts


@register("bookshelf")
def bookshelf(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    """Two sides, top, bottom, 1–6 shelves, optional back panel, rows of coloured books."""
    width = logu(rng, 0.4, 1.8)
    height = logu(rng, 0.4, 2.0)
    depth = u(rng, 0.2, 0.45)
    t = u(rng, 0.015, 0.04)
    wood = colour(rng)
    parts = [
        box((t, height, depth), (-width / 2 + t / 2, height / 2, 0), wood),
        box((t, height, depth), (width / 2 - t / 2, height / 2, 0), wood),
        box((width, t, depth), (0, height - t / 2, 0), wood),
        box((width, t, depth), (0, t / 2, 0), wood),
    ]
    if rng.random() < 0.7:
        parts.append(box((width, height, t * 0.5), (0, height / 2, -depth / 2 + t / 4), wood))
    n_shelves = int(np.clip(round(height / u(rng, 0.25, 0.45)), 1, 6))
    levels = np.linspace(t, height - t, n_shelves + 1)
    for y in levels[1:-1]:
        parts.append(box((width - 2 * t, t, depth), (0, y, 0), wood))
    fill = u(rng, 0.3, 1.0)
    for y0, y1 in zip(levels[:-1], levels[1:], strict=True):
        gap = y1 - y0 - t
        x = -width / 2 + t
        x_end = -width / 2 + t + (width - 2 * t) * fill
        while gap > 0.05:
            bw = u(rng, 0.02, 0.06)
            if x + bw > x_end:
                break
            bh = gap * u(rng, 0.6, 0.92)
            bd = depth * u(rng, 0.6, 0.9)
            parts.append(
                box((bw, bh, bd), (x + bw / 2, y0 + t / 2 + bh / 2, depth / 2 - bd / 2 - 0.005), colour(rng))
            )
            x += bw + (u(rng, 0.0, 0.01) if rng.random() < 0.8 else u(rng, 0.05, 0.15))
    return parts


@register("bottle")
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


@register("bowl")
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


@register("cone")
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


@register("cup")
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


@register("lamp")
def lamp(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    """Table lamp (base, stem, big shade), floor lamp (tall pole, small shade) or desk lamp (bent arm)."""
    kind = rng.random()
    base_c, pole_c, shade_c = colour(rng), colour(rng), colour(rng)
    parts = []
    base_r = u(rng, 0.1, 0.25)
    base_h = base_r * u(rng, 0.1, 0.4)
    if rng.random() < 0.7:
        parts.append(cylinder(base_r, base_h, (0, base_h / 2, 0), base_c, 32))
    else:
        parts.append(box((2 * base_r, base_h, 2 * base_r), (0, base_h / 2, 0), base_c))
    if kind < 0.65:  # table or floor lamp: straight pole, shade on top
        pole_h = logu(rng, 0.2, 1.6)
        pole_r = u(rng, 0.01, 0.03)
        parts.append(cylinder(pole_r, pole_h, (0, base_h + pole_h / 2, 0), pole_c, 12))
        shade_h = u(rng, 0.15, 0.4) * (0.6 if pole_h > 1.0 else 1.0)
        r_bot = shade_h * u(rng, 0.6, 1.4)
        r_top = r_bot * u(rng, 0.4, 0.95)
        y = base_h + pole_h - shade_h * 0.3
        parts.append(frustum(r_bot, r_top, shade_h, (0, y, 0), shade_c, 32))
        parts.append(sphere(min(r_top, shade_h) * 0.4, (0, y - shade_h * 0.05, 0), colour(rng), 1))
    else:  # desk lamp: two arm segments, cone head pointing down
        a1 = u(rng, 0.25, 0.6)
        a2 = u(rng, 0.25, 0.6)
        th1 = u(rng, -0.5, 0.3)
        th2 = u(rng, 0.6, 1.3)
        p0 = np.array([0, base_h, 0])
        p1 = p0 + a1 * np.array([0, canonical.cos(th1), canonical.sin(th1)])
        p2 = p1 + a2 * np.array([0, canonical.cos(th2), canonical.sin(th2)])
        r = u(rng, 0.012, 0.025)
        parts += [rod(p0, p1, r, pole_c), rod(p1, p2, r, pole_c), sphere(r * 2, p1, pole_c, 1)]
        head_h = u(rng, 0.1, 0.2)
        head = trimesh.creation.cone(radius=head_h * u(rng, 0.5, 0.9), height=head_h, sections=24)
        head.apply_transform(trimesh.transformations.rotation_matrix(np.pi * 0.9, [1, 0, 0]))
        head.apply_translation(p2 + np.array([0, 0.02, 0]))
        parts.append(paint(head, shade_c))
    return parts


@register("table")
def table(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    """Rectangular or round top on four legs, a pedestal or two trestles; optional lower shelf."""
    height = logu(rng, 0.35, 1.1)
    top_c, leg_c = colour(rng), colour(rng) if rng.random() < 0.6 else None
    leg_c = top_c if leg_c is None else leg_c
    t = u(rng, 0.025, 0.07)
    parts = []
    round_top = rng.random() < 0.3
    if round_top:
        r = u(rng, 0.25, 0.7)
        parts.append(cylinder(r, t, (0, height - t / 2, 0), top_c, 40))
        w = d = r * 2 * 0.7
    else:
        w = logu(rng, 0.5, 2.2)
        d = w * u(rng, 0.35, 1.0)
        parts.append(box((w, t, d), (0, height - t / 2, 0), top_c))
    style = rng.random()
    leg = u(rng, 0.03, 0.08)
    if style < 0.6:
        inset = u(rng, 0.0, 0.1)
        xs = [-w / 2 + leg + inset * w / 2, w / 2 - leg - inset * w / 2]
        zs = [-d / 2 + leg + inset * d / 2, d / 2 - leg - inset * d / 2]
        parts += legs(rng, xs, zs, height - t, 0, leg, leg_c, rng.random() < 0.4)
        if rng.random() < 0.3:
            parts.append(box((w * 0.9, t * 0.7, d * 0.9), (0, height * u(rng, 0.15, 0.4), 0), top_c))
    elif style < 0.85:  # pedestal
        post_r = u(rng, 0.03, 0.08)
        parts.append(cylinder(post_r, height - t, (0, (height - t) / 2, 0), leg_c, 16))
        foot_r = min(w, d) * u(rng, 0.25, 0.45)
        parts.append(cylinder(foot_r, t, (0, t / 2, 0), leg_c, 32))
    else:  # trestles
        for s in (-1, 1):
            parts.append(box((leg, height - t, d * 0.8), (s * w * 0.35, (height - t) / 2, 0), leg_c))
        parts.append(box((w * 0.7, leg, leg), (0, height * 0.3, 0), leg_c))
    return parts


@register("chair")
def chair(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    """Seat on four legs or a swivel base, a solid / slatted / spindle back, optional armrests."""
    w = u(rng, 0.35, 0.65)
    d = w * u(rng, 0.8, 1.3)
    seat_y = u(rng, 0.35, 0.55)
    t = u(rng, 0.03, 0.08)
    back_h = logu(rng, 0.2, 0.8)
    seat_c = colour(rng)
    frame_c = colour(rng) if rng.random() < 0.6 else seat_c
    leg = u(rng, 0.025, 0.06)
    parts = [box((w, t, d), (0, seat_y - t / 2, 0), seat_c)]
    if rng.random() < 0.75:
        xs = [-w / 2 + leg / 2, w / 2 - leg / 2]
        zs = [-d / 2 + leg / 2, d / 2 - leg / 2]
        parts += legs(rng, xs, zs, seat_y - t, 0, leg, frame_c, rng.random() < 0.4)
    else:  # swivel: post and star base
        post_h = seat_y - t
        parts.append(cylinder(leg * 0.8, post_h, (0, post_h / 2, 0), frame_c, 12))
        arms = int(rng.integers(4, 6))
        for k in range(arms):
            a = 2 * np.pi * k / arms
            end = np.array([canonical.cos(a), 0.03, canonical.sin(a)]) * w * 0.55
            parts.append(rod((0, 0.03, 0), end, leg * 0.6, frame_c))
    back_z = -d / 2 + t / 2
    style = rng.random()
    if style < 0.4:  # solid panel
        parts.append(box((w, back_h, t), (0, seat_y + back_h / 2, back_z), seat_c))
    else:
        for s in (-1, 1):
            parts.append(
                box((leg, back_h, leg), (s * (w / 2 - leg / 2), seat_y + back_h / 2, back_z), frame_c)
            )
        n = int(rng.integers(2, 6))
        if style < 0.7:  # horizontal slats
            for i in range(n):
                y = seat_y + back_h * (i + 1) / (n + 0.3)
                parts.append(box((w, back_h / (2.5 * n), t * 0.6), (0, y, back_z), seat_c))
        else:  # vertical spindles under a top rail
            parts.append(box((w, back_h * 0.15, t), (0, seat_y + back_h * 0.92, back_z), seat_c))
            for i in range(n):
                x = -w / 2 + w * (i + 1) / (n + 1)
                parts.append(
                    box((leg * 0.6, back_h * 0.85, leg * 0.6), (x, seat_y + back_h * 0.42, back_z), frame_c)
                )
    if rng.random() < 0.35:
        arm_y = seat_y + u(rng, 0.15, 0.3)
        for s in (-1, 1):
            x = s * (w / 2 - leg / 2)
            parts.append(box((leg * 1.2, leg, d * 0.9), (x, arm_y, 0), frame_c))
            parts.append(box((leg, arm_y - seat_y, leg), (x, (arm_y + seat_y) / 2, d * 0.4), frame_c))
    return parts


# ------------------------------------------------------------------------------------------ assembly


def _finish(parts: list[trimesh.Trimesh], rng: np.random.Generator) -> trimesh.Trimesh:
    """Concatenate parts, apply a random anisotropic stretch, overall scale and small yaw, centre, and snap the
    vertices to the canonical grid (:func:`clip2point.canonical.snap`: the same bytes on every CPU)."""
    mesh = trimesh.util.concatenate(parts)
    stretch = np.array([canonical.exp(x) for x in rng.uniform(-0.2, 0.2, 3)])
    scale = canonical.exp(rng.uniform(canonical.log(0.5), canonical.log(2.0)))
    mesh.apply_transform(np.diag([*(stretch * scale), 1.0]))
    mesh.apply_transform(trimesh.transformations.rotation_matrix(rng.uniform(-0.15, 0.15), [0, 1, 0]))
    lo, hi = mesh.bounds
    mesh.apply_translation(-(lo + hi) / 2)
    # trimesh's primitives and transforms run numpy's dispatched sin/cos and BLAS: snap their last bits away
    mesh.vertices = canonical.snap(mesh.vertices)
    return mesh


def make_shape(class_name: str, rng: np.random.Generator) -> trimesh.Trimesh:
    """One random shape of ``class_name``: y-up, centred, face-coloured."""
    try:
        gen = CLASSES[class_name]
    except KeyError:
        raise ValueError(
            f"unknown synth class {class_name!r} (known: {', '.join(sorted(CLASSES))})"
        ) from None
    return _finish(gen(rng), rng)
