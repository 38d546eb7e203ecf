"""The ``render`` stage's work: points table + source meshes → WebDataset shards with RGB views (§5.1, §5.2).

RGB: every mesh is read (``clip2point.io.read_mesh``), rotated to y-up (the matrix of
``clip2point.sampling.to_y_up`` for the dataset's up_axis, as the ``sample`` stage did to the points) and
fitted to its points' frame (:func:`clip2point.render.rgb.align_mesh_to_points`), then rendered
orthographically at distance 1 from the view set. Datasets without meshes (``scanobjectnn``, or sources that
are not mesh files) get no RGB: their shards hold points, label and metadata. Depth maps are never stored:
every consumer renders them from the points (Eq. 12–14) with its own ``depth`` params.

Workers (:func:`iter_rgb`): a ``ProcessPoolExecutor`` (spawn) with one renderer per worker and a bounded
number of tasks in flight, results in order. Workers are recycled (bounding pyrender/OSMesa growth) by
starting a fresh pool every ``workers × MAX_TASKS_PER_CHILD`` tasks, not with the executor's own
``max_tasks_per_child``: on CPython 3.11–3.13 that option deadlocks or breaks the pool once a worker exits
at its limit with tasks queued (python/cpython#115634; here it killed the 800-shape benchmark at shape
736 = the 92nd task). A worker that dies (e.g. killed for memory) fails the stage naming the shapes it was
rendering; a mesh that fails to render fails the stage with its path.

Several machines (:func:`render`): each rank renders rows ``rank::world_size`` into a staging folder next to
the output, ``.<name>.staging-<run id>``, with its part manifest; rank 0 waits for all parts (``merge_timeout``
seconds), merges them into ``manifest.json`` and swaps the folder into place. The output directory must be
on a filesystem all ranks share. Staging folders of killed runs (another run id, older than this process) are
removed by the next run (:func:`pipeline.artifacts.remove_stale`).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import multiprocessing as mp
import time
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm

from clip2point import shards
from clip2point.schema import table_points, table_pool
from pipeline import paths
from pipeline.artifacts import atomic_dir, read_json, remove_stale, replace_dir, write_json
from pipeline.params import DatasetParams, Params
from pipeline.stage import StageError, find_dataset

MESH_SUFFIXES = (".off", ".obj", ".ply", ".stl", ".glb", ".gltf")
POINT_ONLY_KINDS = ("scanobjectnn",)
CHUNK = 8  # meshes per worker task
MAX_TASKS_PER_CHILD = 64  # tasks per worker before its pool is replaced (bounds pyrender/OSMesa growth)
RGB_DISTANCE = 1.0


def has_meshes(ds: DatasetParams, sources: list[str]) -> bool:
    """RGB is rendered only for mesh datasets (not ScanObjectNN, not point files)."""
    if ds.kind in POINT_ONLY_KINDS:
        return False
    return bool(sources) and all(Path(s.split(":")[0]).suffix.lower() in MESH_SUFFIXES for s in sources)


def render_rows(task: dict[str, Any]) -> list[list[bytes]]:
    """Worker: render each (source, points) of a task → PNG bytes per view. Runs in a pool process."""
    from clip2point.io import read_mesh
    from clip2point.render.rgb import align_mesh_to_points, process_renderer
    from clip2point.render.views import get_views, y_up_matrix

    renderer = process_renderer(task["backend"])
    views = get_views(task["views"])
    rot = y_up_matrix(task["up_axis"])
    out = []
    for source, pts in zip(task["sources"], task["points"], strict=True):
        try:
            mesh, _misfit = align_mesh_to_points(read_mesh(source), pts, rot)
            rgb = renderer.render(mesh, views, task["image_size"], distance=RGB_DISTANCE)
        except Exception as e:
            raise StageError(f"{source}: {type(e).__name__}: {e}") from None
        out.append([shards.png_bytes(v) for v in rgb])
    return out


def iter_rgb(rows: list[int], sources: list[str], points: np.ndarray, cfg: dict[str, Any], workers: int,
             fn: Callable[[dict[str, Any]], list[list[bytes]]] | None = None) -> Iterator[list[bytes]]:
    """PNG lists for ``rows`` in order, rendered by a process pool (or inline when workers == 0)."""
    tasks = []
    for i in range(0, len(rows), CHUNK):
        sel = rows[i:i + CHUNK]
        tasks.append({**cfg, "sources": [sources[j] for j in sel], "points": points[sel]})
    fn = fn or render_rows  # a module-level function (pickled by reference into spawned workers)
    if workers <= 0:
        for t in tasks:
            yield from fn(t)
        return
    per_pool = workers * MAX_TASKS_PER_CHILD  # one pool generation: each worker runs ≈ MAX_TASKS_PER_CHILD
    for start in range(0, len(tasks), per_pool):
        yield from _pool_results(tasks[start:start + per_pool], fn, workers)


def _pool_results(tasks: list[dict[str, Any]], fn: Callable[[dict[str, Any]], list[list[bytes]]],
                  workers: int) -> Iterator[list[bytes]]:
    """Run ``tasks`` on a fresh spawn pool, a bounded window in flight, results yielded in task order."""
    ex = cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
    window = 4 * workers
    pending: list[tuple[cf.Future, dict[str, Any]]] = []
    it = iter(tasks)
    try:
        for t in it:
            pending.append((ex.submit(fn, t), t))
            if len(pending) >= window:
                break
        while pending:
            fut, task = pending[0]
            try:
                res = fut.result()
            except BrokenProcessPool as e:
                src = task["sources"]
                more = f" (+{len(src) - 1} more in its task)" if len(src) > 1 else ""
                raise StageError(f"a worker process died while rendering {src[0]}{more} ({e}); "
                                 "out of memory? lower render.workers") from None
            pending.pop(0)
            nxt = next(it, None)
            if nxt is not None:
                pending.append((ex.submit(fn, nxt), nxt))
            yield from res
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def render_dataset(name: str, params: Params, out_dir: Path, rank: int = 0, world_size: int = 1,
                   progress: bool = True) -> dict[str, Any]:
    """Render this rank's share of a dataset into ``out_dir``; returns its (part) manifest."""
    ds = find_dataset(params, name)
    table_path = paths.points_table(name)
    try:
        table = pq.read_table(table_path)
    except FileNotFoundError:
        raise StageError(f"points table not found: {table_path}") from None
    except Exception as e:  # a truncated or foreign file
        raise StageError(f"cannot read {table_path}: {type(e).__name__}: {e}") from None
    rp = params.render
    ids = table.column("id").to_pylist()
    splits = table.column("split").to_pylist()
    labels = np.asarray(table.column("label").to_numpy(), dtype=np.int64)
    label_names = table.column("label_name").to_pylist()
    sources = table.column("source").to_pylist()
    points = table_points(table)
    pool = table_pool(table)  # optional resampling pool (sample.pool_points > 0): a pool.npy member
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    class_names = [""] * n_classes
    for lab, nm in zip(labels.tolist(), label_names, strict=True):
        class_names[lab] = nm
    rgb = has_meshes(ds, sources)
    order = sorted(range(len(ids)), key=lambda i: (splits[i], i))[rank::world_size]
    cfg = {"backend": rp.backend, "views": rp.views, "image_size": rp.image_size, "up_axis": ds.up_axis}
    bar = tqdm(total=len(order), desc=f"render {name} r{rank}", disable=not progress, unit="shape")
    split_info: dict[str, dict[str, Any]] = {}
    rgb_iter = iter_rgb(order, sources, points, cfg, rp.workers) if rgb else None
    by_split: dict[str, list[int]] = {}
    for i in order:
        by_split.setdefault(splits[i], []).append(i)
    try:
        for split, rows in by_split.items():
            def samples(rows: list[int] = rows, split: str = split) -> Iterator[dict[str, Any]]:
                for i in rows:
                    sample = {
                        "id": ids[i], "points": points[i], "label": int(labels[i]),
                        "rgb_png": next(rgb_iter) if rgb_iter is not None else None,
                        "meta": {"id": ids[i], "split": split, "label": int(labels[i]),
                                 "label_name": label_names[i], "source": sources[i]},
                    }
                    if pool is not None:
                        sample["pool"] = pool[i]
                    yield sample
                    bar.update(1)

            written = shards.write_shards(samples(), out_dir, f"{split}-r{rank:03d}", rp.samples_per_shard)
            split_info[split] = {"count": sum(s["count"] for s in written), "shards": written}
    finally:
        if rgb_iter is not None:
            rgb_iter.close()
        bar.close()
    manifest = {
        "dataset": name, "kind": ds.kind, "up_axis": ds.up_axis, "class_names": class_names,
        "num_points": int(points.shape[1]) if len(points) else 0,
        "views": rp.views, "image_size": rp.image_size, "has_rgb": rgb, "rgb_projection": "orthographic",
        "rgb_distance": RGB_DISTANCE, "has_depth": False, "render": dataclasses.asdict(rp),
        "world_size": world_size, "rank": rank, "splits": split_info,
    }
    if pool is not None:  # only with a pool: manifests of runs without one are unchanged
        manifest["pool_points"] = max((len(p) for p in pool), default=0)
    return manifest


def render(name: str, params: Params, final: Path, rank: int = 0, world_size: int = 1, run_id: str = "default",
           merge_timeout: float = 86400.0, progress: bool = True) -> None:
    """Render dataset ``name`` into ``final`` (shards + ``manifest.json``), alone or as one of ``world_size``
    ranks (the module docstring's merge protocol); ``final`` is replaced whole, never half-written."""
    if world_size <= 1:
        with atomic_dir(final) as tmp:
            m = render_dataset(name, params, tmp, progress=progress)
            m.pop("rank")
            shards.write_manifest(tmp / "manifest.json", m)
        return
    staging = final.parent / f".{final.name}.staging-{run_id}"
    remove_stale(final, keep=staging)  # killed runs' staging folders (another run id, older than this process)
    staging.mkdir(parents=True, exist_ok=True)
    m = render_dataset(name, params, staging, rank, world_size, progress=progress)
    write_json(staging / f"part-r{rank:03d}.json", m)
    if rank != 0:
        return
    deadline = time.time() + merge_timeout
    parts = [staging / f"part-r{r:03d}.json" for r in range(world_size)]
    while not all(p.exists() for p in parts):
        if time.time() > deadline:
            missing = [p.name for p in parts if not p.exists()]
            raise StageError(f"timed out waiting for parts {missing} in {staging}")
        time.sleep(2.0)
    shards.write_manifest(staging / "manifest.json", shards.merge_manifests([read_json(p) for p in parts]))
    for p in parts:
        p.unlink()
    replace_dir(staging, final)
