"""Pools of procedural shapes, deterministic per seed: :func:`generate_pool` derives one ``numpy`` generator per
shape from ``(seed..., crc32(class), index)`` (:func:`shape_rng`), so a shape does not change when other
classes or counts change."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence

import numpy as np
import trimesh

from clip2point.synth.shapes import CLASSES, make_shape


def shape_rng(seed: int | Sequence[int], class_name: str, index: int) -> np.random.Generator:
    """The generator of shape ``index`` of ``class_name``: independent of other classes and counts."""
    seeds = [seed] if isinstance(seed, int) else list(seed)
    return np.random.default_rng(np.random.SeedSequence([*seeds, zlib.crc32(class_name.encode()), index]))


def generate_pool(
    classes: Sequence[str], per_split: dict[str, int], seed: int | Sequence[int]
) -> Iterator[tuple[str, str, int, trimesh.Trimesh]]:
    """Yield ``(split, class_name, index, mesh)`` for every class and split, ``per_split[split]`` per class.

    ``index`` runs from 1 across the splits of a class (train first, in ``per_split`` order), so file names
    ``<class>_<index:04d>`` are unique within a pool. Pools built with different ``seed`` (e.g.
    ``(synth.seed, 0)`` for pre-training, ``(synth.seed, 1)`` for the benchmark) are disjoint.
    """
    for name in classes:
        if name not in CLASSES:
            raise CLASSES.unknown(name)
    for name in classes:
        index = 0
        for split, count in per_split.items():
            for _ in range(count):
                index += 1
                yield split, name, index, make_shape(name, shape_rng(seed, name, index))
