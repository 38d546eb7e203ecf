"""The Parquet schemas of the pipeline, defined once.

Points table (one row per shape, written by the ``sample`` stage):

=============  ==============================================  =====================================
column         type                                            meaning
=============  ==============================================  =====================================
id             string                                          unique shape id within the dataset
split          string                                          train / val / test
label          int32                                           index into the dataset's class list
label_name     string                                          class name
source         string                                          path of the source mesh / file
points         fixed_size_list<float32>[num_points * 3]        xyz, row-major, centred, unit sphere
pool           list<float32> (optional)                        resampling pool, xyz row-major, in the
                                                               frame of ``points``; only when
                                                               ``sample.pool_points`` > 0
=============  ==============================================  =====================================

Rejected table (items skipped by a batch stage): id, source, reason.

Predictions table (evaluation stages, one row per test sample and method run): id, label, pred, prob (the
top-1 probability), method (the table row, e.g. ``with_pretraining`` or ``dual_path@clip+intra_cross``),
seed (-1: none), encoder (the encoder key(s), ``+``-joined), dataset, label_name, pred_name.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

POINTS_COLUMNS = ("id", "split", "label", "label_name", "source", "points")


def points_schema(num_points: int, with_pool: bool = False) -> pa.Schema:
    """Schema of a points table whose clouds hold ``num_points`` points each (and, ``with_pool``, the
    optional variable-length ``pool`` column)."""
    fields = [
        ("id", pa.string()),
        ("split", pa.string()),
        ("label", pa.int32()),
        ("label_name", pa.string()),
        ("source", pa.string()),
        ("points", pa.list_(pa.float32(), num_points * 3)),
    ]
    if with_pool:
        fields.append(("pool", pa.list_(pa.float32())))
    return pa.schema(fields, metadata={b"num_points": str(num_points).encode()})


REJECTED_SCHEMA = pa.schema([("id", pa.string()), ("source", pa.string()), ("reason", pa.string())])

PREDICTION_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("label", pa.int32()),
        ("pred", pa.int32()),
        ("prob", pa.float32()),
        ("method", pa.string()),
        ("seed", pa.int32()),
        ("encoder", pa.string()),
        ("dataset", pa.string()),
        ("label_name", pa.string()),
        ("pred_name", pa.string()),
    ]
)


def points_to_table(
    ids: list[str],
    splits: list[str],
    labels: np.ndarray,
    label_names: list[str],
    sources: list[str],
    points: np.ndarray,
    pool: list[np.ndarray] | None = None,
) -> pa.Table:
    """Build a points table; ``points`` is (M, N, 3) float32; ``pool`` (optional): M arrays (P_i, 3)."""
    points = np.ascontiguousarray(points, dtype=np.float32)
    if points.ndim != 3 or points.shape[2] != 3:
        raise ValueError(f"points must be (M, N, 3), got shape {points.shape}")
    m, n, _ = points.shape
    flat = pa.FixedSizeListArray.from_arrays(pa.array(points.reshape(-1)), n * 3)
    arrays = [
        pa.array(ids, pa.string()),
        pa.array(splits, pa.string()),
        pa.array(np.asarray(labels, dtype=np.int32)),
        pa.array(label_names, pa.string()),
        pa.array(sources, pa.string()),
        flat,
    ]
    if pool is not None:
        if len(pool) != m:
            raise ValueError(f"pool has {len(pool)} entries for {m} shapes")
        rows = [np.ascontiguousarray(p, dtype=np.float32).reshape(-1) for p in pool]
        offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int32)
        values = np.concatenate(rows) if rows else np.zeros(0, np.float32)
        arrays.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.float32())))
    return pa.Table.from_arrays(arrays, schema=points_schema(n, with_pool=pool is not None))


def table_points(table: pa.Table) -> np.ndarray:
    """The ``points`` column of a points table as a (M, N, 3) float32 array (zero-copy where possible)."""
    col = table.column("points").combine_chunks()
    width = col.type.list_size
    if width % 3:
        raise ValueError(f"points column width {width} is not a multiple of 3")
    values = col.flatten().to_numpy(zero_copy_only=False)
    return values.reshape(len(table), width // 3, 3).astype(np.float32, copy=False)


def table_pool(table: pa.Table) -> list[np.ndarray] | None:
    """The optional ``pool`` column as M float32 arrays (P_i, 3); ``None`` when the table has none."""
    if "pool" not in table.column_names:
        return None
    col = table.column("pool").combine_chunks()
    offsets = col.offsets.to_numpy()
    values = col.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return [values[offsets[i] : offsets[i + 1]].reshape(-1, 3) for i in range(len(col))]
