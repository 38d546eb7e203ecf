"""Stage ``pretrain``: CLIP2Point image–depth pre-training (§3.2.1) → ``paths.pretrain_dir(variant, seed)``.

Variants (``pipeline.keys.VARIANTS``): ``intra_cross`` (CLIP2Point, Eq. 11), ``cross_only`` (§5.6 ablation,
Eq. 10), ``rgb_control`` (equal-compute control: CLIP's image encoder trained further on RGB with the
image–text objective). Selection by zero-shot accuracy (Eq. 15) on depth maps of the pre-training pool's
*validation* split, never a benchmark test split. The work, streaming and resume: :mod:`pipeline.pretrain_job`.

Usage::

    python -m stages.pretrain --variant intra_cross --seed 0 [--fresh] [--keep-checkpoint] [--no-progress]
    torchrun --nproc_per_node 2 -m stages.pretrain --variant intra_cross --seed 0     # DDP (gloo / NCCL)

A run that finds a resume checkpoint of its own params (``paths.checkpoint_file``, outside the DVC outputs)
resumes from it (``--resume`` is accepted and is the default); ``--fresh`` deletes it first. It is removed on
success unless ``--keep-checkpoint``. Writes ``encoder.pt`` + ``encoder.json``; headline metrics
``metrics_file(pretrain_key)`` (selection accuracy and σ: what ``dvc metrics diff`` compares), the details
(curves, σ trajectory, settings) in ``details_file(pretrain_key)``; wall times, throughput and
resume facts in ``paths.timings_file`` (not a DVC output); dvclive curves ``plots_dir(pretrain_key)``.
"""

from __future__ import annotations

import argparse
import sys
import time

from clip2point.train.distributed import cleanup, init_distributed
from clip2point.train.pretrain import TrainingDiverged
from pipeline.headline import headline
from pipeline.keys import VARIANTS
from pipeline.params import load_params
from pipeline.paths import checkpoint_dir, checkpoint_file, details_file, metrics_file, pretrain_key, timings_file
from pipeline.pretrain_job import run_tag, summary, train, write_json
from pipeline.stage import run_main

__all__ = ["checkpoint_dir", "checkpoint_file", "main", "run_tag", "timings_file"]


def run(variant: str, seed: int, device: str | None, fresh: bool, keep_checkpoint: bool, progress: bool) -> None:
    info = init_distributed(device)
    t0 = time.perf_counter()
    try:
        metrics, timings = train(load_params(), variant, seed, info, resume=not fresh,
                                 keep_checkpoint=keep_checkpoint, progress=progress)
        if info.is_main:
            timings["wall_s"] = round(time.perf_counter() - t0, 1)
            key = pretrain_key(variant, seed)
            write_json(details_file(key), metrics, variant, seed)
            write_json(metrics_file(key), headline(key, metrics), variant, seed)
            write_json(timings_file(variant, seed), timings, variant, seed)
            print(f"pretrain {variant} seed {seed}: {summary(metrics, timings)}", file=sys.stderr)
    finally:
        cleanup()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stages.pretrain", description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=VARIANTS, default="intra_cross")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true",
                    help="continue from a matching resume checkpoint (the default; kept for compatibility)")
    ap.add_argument("--fresh", action="store_true", help="delete the run's resume checkpoint and start over")
    ap.add_argument("--keep-checkpoint", action="store_true", help="keep last.pt after success")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    args = ap.parse_args(argv)
    return run_main(f"pretrain {args.variant} seed {args.seed}",
                    lambda: run(args.variant, args.seed, args.device, args.fresh, args.keep_checkpoint,
                                not args.no_progress),
                    user_errors=(TrainingDiverged,))


if __name__ == "__main__":
    sys.exit(main())
