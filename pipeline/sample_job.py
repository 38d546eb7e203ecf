"""The ``sample`` stage's work: every item of a dataset → ``num_points`` farthest points in the unit sphere,
y-up (§5.1), on a process pool; unreadable or unsampleable items are rejected with a one-line reason.

Meshes: area-weighted dense sampling of ``dense_points``, then farthest point sampling to ``num_points``;
point clouds: FPS subsample (:mod:`clip2point.sampling`). Each item has its own seed (:func:`item_seed`), so
the result does not depend on worker count or catalogue order.
"""

from __future__ import annotations

import multiprocessing as mp
import zlib
from functools import partial

import numpy as np
import pyarrow as pa
import trimesh
from tqdm import tqdm

from clip2point.io import Item, ReadError, catalogue, load_item
from clip2point.sampling import (
    SamplingError,
    mesh_fps_raw,
    mesh_pool,
    mesh_to_points,
    normalize_unit_sphere,
    points_fps_raw,
    points_pool,
    points_to_points,
    to_y_up,
    unit_sphere_frame,
)
from clip2point.schema import REJECTED_SCHEMA, points_to_table
from pipeline.params import DatasetParams, SampleParams


def item_seed(base: int, dataset: str, item_id: str) -> int:
    """Per-item sampling seed: stable across runs, worker counts and catalogue order."""
    return (zlib.crc32(f"{dataset}/{item_id}".encode()) + 1_000_003 * base) % 2**32


def sample_item(
    item: Item, *, num_points: int, dense_points: int, up_axis: str, seed: int, dataset: str, pool_points: int = 0
) -> tuple[np.ndarray | None, str | None] | tuple[np.ndarray | None, str | None, np.ndarray | None]:
    """``(points (num_points, 3) float32, None)`` or ``(None, one-line reason)`` for one catalogue item.

    With ``pool_points`` > 0, a third element: the item's resampling pool (P, 3) float32 (``None`` on a
    rejection), in the frame of the points (same centre and scale, y-up); the points are unchanged."""
    if pool_points > 0:
        return _sample_item_pool(item, num_points=num_points, dense_points=dense_points, up_axis=up_axis,
                                 seed=seed, dataset=dataset, pool_points=pool_points)
    try:
        shape = load_item(item)
        s = item_seed(seed, dataset, item.id)
        if isinstance(shape, trimesh.Trimesh):
            pts = mesh_to_points(shape, num_points, dense_points, s)
        else:
            pts = points_to_points(shape, num_points, seed=s)
        return np.ascontiguousarray(to_y_up(pts, up_axis), dtype=np.float32), None
    except ReadError as e:
        return None, str(e)
    except SamplingError as e:
        return None, " ".join(f"{item.source}: {e}".split())


def _sample_item_pool(
    item: Item, *, num_points: int, dense_points: int, up_axis: str, seed: int, dataset: str, pool_points: int
) -> tuple[np.ndarray | None, str | None, np.ndarray | None]:
    """:func:`sample_item` with a pool: the same FPS points (same draws), and the pool from its own seed."""
    try:
        shape = load_item(item)
        s = item_seed(seed, dataset, item.id)
        if isinstance(shape, trimesh.Trimesh):
            raw = mesh_fps_raw(shape, num_points, dense_points, s)
            pool = mesh_pool(shape, pool_points, s)
        else:
            raw = points_fps_raw(shape, num_points, seed=s)
            pool = points_pool(shape, pool_points, s)
        pts = normalize_unit_sphere(raw).astype(np.float32)
        centre, radius = unit_sphere_frame(raw)
        pool = ((pool - centre) / radius).astype(np.float32)
        return (np.ascontiguousarray(to_y_up(pts, up_axis), dtype=np.float32), None,
                np.ascontiguousarray(to_y_up(pool, up_axis), dtype=np.float32))
    except ReadError as e:
        return None, str(e), None
    except SamplingError as e:
        return None, " ".join(f"{item.source}: {e}".split()), None


def sample_dataset(dataset: DatasetParams, sample: SampleParams, seed: int) -> tuple[pa.Table, pa.Table]:
    """Sample every item of ``dataset`` on ``sample.workers`` processes; returns (points table, rejected
    table) (``clip2point.schema``). ``ReadError`` / ``ValueError``: missing root, unknown kind or variant."""
    items = catalogue(dataset.kind, dataset.root, dataset.variant)
    if not items:
        raise ReadError(dataset.root, f"no items found for kind {dataset.kind!r}")
    fn = partial(
        sample_item,
        num_points=sample.num_points,
        dense_points=sample.dense_points,
        up_axis=dataset.up_axis,
        seed=seed,
        dataset=dataset.name,
    )
    if sample.pool_points > 0:
        if sample.pool_points < sample.num_points:
            raise ValueError(f"sample.pool_points {sample.pool_points} is below sample.num_points "
                             f"{sample.num_points} (0 turns the pool off)")
        fn = partial(fn, pool_points=sample.pool_points)
    workers = max(1, min(sample.workers, len(items)))
    bar = dict(total=len(items), desc=f"sample {dataset.name}", unit="shape")
    if workers == 1:
        results = [fn(it) for it in tqdm(items, **bar)]
    else:
        chunk = max(1, min(16, len(items) // (workers * 8)))
        with mp.get_context("fork").Pool(workers) as pool:
            results = list(tqdm(pool.imap(fn, items, chunksize=chunk), **bar))
    pools = [r[2] for r in results if r[0] is not None] if sample.pool_points > 0 else None
    ok = [(it, r[0]) for it, r in zip(items, results, strict=True) if r[0] is not None]
    bad = [(it, r[1]) for it, r in zip(items, results, strict=True) if r[1] is not None]
    pts = np.stack([p for _, p in ok]) if ok else np.zeros((0, sample.num_points, 3), np.float32)
    table = points_to_table(
        [it.id for it, _ in ok],
        [it.split for it, _ in ok],
        np.array([it.label for it, _ in ok], dtype=np.int32),
        [it.label_name for it, _ in ok],
        [it.source for it, _ in ok],
        pts,
        pool=pools,
    )
    rejected = pa.table(
        {
            "id": [it.id for it, _ in bad],
            "source": [it.source for it, _ in bad],
            "reason": [r for _, r in bad],
        },
        schema=REJECTED_SCHEMA,
    )
    return table, rejected
