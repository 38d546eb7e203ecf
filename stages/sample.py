"""Stage ``sample``: every shape of one dataset → 1,024 farthest points in the unit sphere, y-up (§5.1).

``python -m stages.sample <dataset>`` where ``<dataset>`` is the ``name`` of ``params.data.pretrain`` or of
one of ``params.data.benchmarks``. It lists the dataset with ``clip2point.io.catalogue(kind, root, variant)``,
samples every item on ``params.sample.workers`` processes (meshes: area-weighted dense sampling of
``dense_points`` then FPS to ``num_points``; point clouds: FPS subsample), rotates into the y-up frame when
dataset's ``up_axis`` is not ``y``, and writes, atomically and together:

* ``pipeline.paths.points_table(name)``: Parquet, schema ``clip2point.schema.points_schema``;
* ``pipeline.paths.rejected_table(name)``: Parquet (id, source, reason), one row per skipped item.

An unreadable or unsampleable item is skipped and recorded. The stage fails (exit 1, one line on stderr,
nothing written) when the rejected fraction exceeds ``params.sample.max_reject_fraction``; exit 2 on bad
arguments, params or dataset root.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import zlib
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import trimesh
from tqdm import tqdm

from clip2point.io import Item, ReadError, catalogue, load_item
from clip2point.sampling import SamplingError, mesh_to_points, points_to_points, to_y_up
from clip2point.schema import REJECTED_SCHEMA, points_to_table
from pipeline.artifacts import atomic_path
from pipeline.params import DatasetParams, ParamsError, load_params
from pipeline.paths import points_table, rejected_table


def item_seed(base: int, dataset: str, item_id: str) -> int:
    """Per-item sampling seed: stable across runs, worker counts and catalogue order."""
    return (zlib.crc32(f"{dataset}/{item_id}".encode()) + 1_000_003 * base) % 2**32


def sample_item(
    item: Item, *, num_points: int, dense_points: int, up_axis: str, seed: int, dataset: str
) -> tuple[np.ndarray | None, str | None]:
    """``(points (num_points, 3) float32, None)`` or ``(None, one-line reason)`` for one catalogue item."""
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


def find_dataset(name: str, data) -> DatasetParams:
    known = [data.pretrain, *data.benchmarks]
    for d in known:
        if d.name == name:
            return d
    raise KeyError(f"unknown dataset {name!r} (params.data names: {', '.join(d.name for d in known)})")


def run(dataset: DatasetParams, sample, seed: int) -> tuple[pa.Table, pa.Table]:
    """Sample every item of ``dataset``; returns (points table, rejected table)."""
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
    workers = max(1, min(sample.workers, len(items)))
    bar = dict(total=len(items), desc=f"sample {dataset.name}", unit="shape")
    if workers == 1:
        results = [fn(it) for it in tqdm(items, **bar)]
    else:
        chunk = max(1, min(16, len(items) // (workers * 8)))
        with mp.get_context("fork").Pool(workers) as pool:
            results = list(tqdm(pool.imap(fn, items, chunksize=chunk), **bar))
    ok = [(it, pts) for it, (pts, _) in zip(items, results, strict=True) if pts is not None]
    bad = [(it, reason) for it, (_, reason) in zip(items, results, strict=True) if reason is not None]
    pts = np.stack([p for _, p in ok]) if ok else np.zeros((0, sample.num_points, 3), np.float32)
    table = points_to_table(
        [it.id for it, _ in ok],
        [it.split for it, _ in ok],
        np.array([it.label for it, _ in ok], dtype=np.int32),
        [it.label_name for it, _ in ok],
        [it.source for it, _ in ok],
        pts,
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.sample", description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="name of params.data.pretrain or of one of params.data.benchmarks")
    args = parser.parse_args(argv)
    try:
        params = load_params()
        dataset = find_dataset(args.dataset, params.data)
    except (ParamsError, KeyError) as e:
        print(f"sample: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    try:
        table, rejected = run(dataset, params.sample, params.seed)
    except (ReadError, ValueError) as e:  # missing root, unknown kind / variant / up axis
        print(f"sample: {dataset.name}: {e}", file=sys.stderr)
        return 2
    total = table.num_rows + rejected.num_rows
    frac = rejected.num_rows / total
    if frac > params.sample.max_reject_fraction:
        first = rejected.column("reason")[0].as_py()
        print(
            f"sample: {dataset.name}: {rejected.num_rows} of {total} items rejected ({frac:.1%} > "
            f"max_reject_fraction {params.sample.max_reject_fraction:.1%}); nothing written; first: {first}",
            file=sys.stderr,
        )
        return 1
    out, rej = points_table(dataset.name), rejected_table(dataset.name)
    with atomic_path(out) as tmp_out, atomic_path(rej) as tmp_rej:
        pq.write_table(table, tmp_out)
        pq.write_table(rejected, tmp_rej)
    print(f"sample: {dataset.name}: {table.num_rows} shapes -> {out}; {rejected.num_rows} rejected -> {rej}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
