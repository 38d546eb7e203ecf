"""Stage ``render``: points Parquet + source meshes → WebDataset shards with RGB views, plus a manifest.

    python -m stages.render <dataset_name>                 # one machine, params.render.workers processes
    torchrun --nnodes K --nproc-per-node 1 -m stages.render <dataset_name>   # K machines, shared filesystem

Reads ``pipeline.paths.points_table(name)`` (y-up, unit-sphere points; the source mesh path per row) and
writes ``pipeline.paths.shards_dir(name)``: ``<split>-r<rank>-NNNNNN.tar`` shards
(``render.samples_per_shard`` samples each, keys in :mod:`clip2point.shards`) and ``manifest.json``.
Params: ``render`` (views, image_size, workers, samples_per_shard, backend) and ``data`` (the dataset's kind
and up_axis). The work, its process pool and the multi-rank merge: :mod:`pipeline.render_job`.

Several machines: each rank (``RANK`` / ``WORLD_SIZE``, set by torchrun) renders its share into a staging
folder (run id: ``TORCHELASTIC_RUN_ID``); rank 0 waits for all parts (``CLIP2POINT_MERGE_TIMEOUT`` seconds,
default 86400), merges them and swaps the folder into place.
"""

from __future__ import annotations

import argparse
import os
import sys

from pipeline import paths
from pipeline.params import load_params
from pipeline.render_job import render
from pipeline.stage import run_main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stages.render", description=__doc__.splitlines()[0])
    ap.add_argument("dataset", help="dataset name (params.yaml data.pretrain.name or "
                    "data.benchmarks[].name)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    def body() -> None:
        render(args.dataset, load_params(), paths.shards_dir(args.dataset), rank=int(os.environ.get("RANK", 0)),
               world_size=int(os.environ.get("WORLD_SIZE", 1)),
               run_id=os.environ.get("TORCHELASTIC_RUN_ID", "default"),
               merge_timeout=float(os.environ.get("CLIP2POINT_MERGE_TIMEOUT", 86400)),
               progress=not args.no_progress)

    return run_main("render", body)


if __name__ == "__main__":
    sys.exit(main())
