"""Stage ``sample``: every shape of one dataset → 1,024 farthest points in the unit sphere, y-up (§5.1).

``python -m stages.sample <dataset>`` where ``<dataset>`` is the ``name`` of ``params.data.pretrain`` or of
one of ``params.data.benchmarks``. It lists the dataset with ``clip2point.io.catalogue(kind, root, variant)``,
samples every item on ``params.sample.workers`` processes (:mod:`pipeline.sample_job`), rotates into the y-up
frame when the dataset's ``up_axis`` is not ``y``, and writes, atomically and together:

* ``pipeline.paths.points_table(name)``: Parquet, schema ``clip2point.schema.points_schema``;
* ``pipeline.paths.rejected_table(name)``: Parquet (id, source, reason), one row per skipped item.

An unreadable or unsampleable item is skipped and recorded. The stage fails (exit 1, one line on stderr,
nothing written) when the rejected fraction exceeds ``params.sample.max_reject_fraction``; exit 2 on bad
arguments, params or dataset root.
"""

from __future__ import annotations

import sys

import pyarrow.parquet as pq

from clip2point.io import ReadError
from pipeline.artifacts import atomic_path
from pipeline.params import load_params
from pipeline.paths import points_table, rejected_table
from pipeline.sample_job import sample_dataset
from pipeline.stage import StageError, find_dataset, one_argument_main


def run(name: str) -> None:
    params = load_params()
    dataset = find_dataset(params, name)
    try:
        table, rejected = sample_dataset(dataset, params.sample, params.seed)
    except (ReadError, ValueError) as e:  # missing root, unknown kind / variant / up axis
        raise StageError(f"{dataset.name}: {e}") from None
    total = table.num_rows + rejected.num_rows
    frac = rejected.num_rows / total
    if frac > params.sample.max_reject_fraction:
        first = rejected.column("reason")[0].as_py()
        raise StageError(
            f"{dataset.name}: {rejected.num_rows} of {total} items rejected ({frac:.1%} > "
            f"max_reject_fraction {params.sample.max_reject_fraction:.1%}); nothing written; first: {first}",
            exit_code=1,
        )
    out, rej = points_table(dataset.name), rejected_table(dataset.name)
    with atomic_path(out) as tmp_out, atomic_path(rej) as tmp_rej:
        pq.write_table(table, tmp_out)
        pq.write_table(rejected, tmp_rej)
    print(f"sample: {dataset.name}: {table.num_rows} shapes -> {out}; {rejected.num_rows} rejected -> {rej}")


def main(argv: list[str] | None = None) -> int:
    return one_argument_main("sample", __doc__, argv, run, code=2,
                             help="name of params.data.pretrain or of one of params.data.benchmarks")


if __name__ == "__main__":
    sys.exit(main())
