"""Generators of the furniture classes: bench, bookshelf, lamp, table and chair, each ``fn(rng) -> parts``.

Legs, slabs, slats and shelves from :mod:`~clip2point.synth.primitives`; the contract every generator keeps
(y-up, front facing +z, coloured parts, a fixed order of ``rng`` calls) is stated in
:mod:`~clip2point.synth.shapes`, which registers them.
"""

from __future__ import annotations

import numpy as np
import trimesh

from clip2point import canonical
from clip2point.synth.primitives import box, colour, cylinder, frustum, legs, logu, paint, rod, sphere, u


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
