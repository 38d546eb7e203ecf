"""The registry of the procedural benchmark's generators (:data:`CLASSES`, :func:`register`), the ten
classes registered in it, and :func:`make_shape`, which finishes a generator's parts into one shape.

The generators live in :mod:`~clip2point.synth.furniture` (bench, bookshelf, lamp, table, chair) and
:mod:`~clip2point.synth.objects` (airplane, bottle, bowl, cone, cup). Each assembles a shape from
:mod:`~clip2point.synth.primitives` with randomized proportions, part counts and per-part colours, y-up, front
facing +z. :func:`make_shape` concatenates the parts and applies a random anisotropic stretch, overall scale
and small yaw, then centres the bounding box, so that categories are not separable by bounding-box
proportions alone.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import trimesh

from clip2point import canonical
from clip2point.registry import Registry
from clip2point.synth import furniture, objects

Generator = Callable[[np.random.Generator], list[trimesh.Trimesh]]

#: The generator registry: class name → function(rng) → list of coloured parts.
CLASSES: Registry[Generator] = Registry("synth class")


def register(name: str) -> Callable[[Generator], Generator]:
    """Decorator adding a generator to :data:`CLASSES` under ``name``."""
    return CLASSES.register(name)


# ------------------------------------------------------------------------------------------ the ten classes

#: registered in this order, that of :data:`CLASSES` (the order the generators had when they were one module)
for _name, _generator in (
    ("airplane", objects.airplane),
    ("bench", furniture.bench),
    ("bookshelf", furniture.bookshelf),
    ("bottle", objects.bottle),
    ("bowl", objects.bowl),
    ("cone", objects.cone),
    ("cup", objects.cup),
    ("lamp", furniture.lamp),
    ("table", furniture.table),
    ("chair", furniture.chair),
):
    register(_name)(_generator)
del _name, _generator


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
    return _finish(CLASSES.get(class_name)(rng), rng)
