"""Stage ``image_features``: the frozen-image-feature cache of the pre-training pool (§3.2.1's F^I_i).

E_i (CLIP's image encoder) is frozen in image–depth pre-training, so its features of the pool's fixed RGB
views are computed once here, at ``pretrain.precision``, and read by every ``intra_cross`` / ``cross_only``
run and seed instead of decoding and encoding RGB renders on every step. The work:
:mod:`pipeline.image_feature_job`.

Usage: ``python -m stages.image_features [--device cpu|cuda] [--no-progress]``
"""

from __future__ import annotations

import argparse
import sys

import torch

from pipeline import image_feature_job as job
from pipeline import paths
from pipeline.models import load_clip, read_clip_pointer
from pipeline.params import load_params
from pipeline.stage import StageError, run_main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stages.image_features", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    def body() -> None:
        from clip2point import shards

        params = load_params()
        pool = params.data.pretrain.name
        try:
            index = shards.index_split(shards.read_manifest(paths.manifest(pool)), "train")
        except (shards.ShardError, KeyError, OSError) as e:
            raise StageError(f"cannot read the pre-training pool '{pool}': {str(e).splitlines()[0]}") from None
        if index.rgb_views < 1:
            raise StageError(f"pre-training pool '{pool}' holds no RGB views: nothing to cache")
        model, _ = load_clip(args.device)
        dev = torch.device(args.device)
        feats = job.compute(model.visual, index, params.pretrain.precision, dev,
                            progress=not args.no_progress)
        out = job.write(pool, feats, index.keys, params.pretrain.precision, read_clip_pointer())
        print(f"image_features: {pool}/train: {feats.shape[0]} samples × {feats.shape[1]} views × "
              f"{feats.shape[2]} at {params.pretrain.precision} -> {out}", file=sys.stderr)

    return run_main("image_features", body)


if __name__ == "__main__":
    sys.exit(main())
