"""Stage ``clip_bootstrap``: the run's CLIP (§3.1) → ``pipeline.paths.clip_dir()``.

``clip.pretrained`` empty: train the miniature CLIP ``clip.model`` on the pre-training pool's RGB renders
with captions from ``bootstrap.caption_templates``, select on the pool's validation split (RGB zero-shot),
and write ``weights.pt`` + ``clip.json``. ``clip.pretrained`` set (``openai``, ``random[:seed]`` or a
checkpoint path): check the weights load, write the pointer only (:mod:`pipeline.clip_job`).

Either way it then reports the CLIP's RGB zero-shot accuracy on the pool's validation split (streamed).
It reads only the pre-training pool: the same CLIP on each benchmark is measured by that benchmark's
``rgb_zeroshot@<ds>`` stage, so adding a benchmark never reruns this stage or pre-training.

Usage: ``python -m stages.clip_bootstrap [--no-progress] [--device cpu|cuda]``
Metrics (headline: the RGB zero-shot on the pool's val split): ``pipeline.paths.metrics_file("clip_bootstrap")``;
details (mode, selection curve, ...): ``details_file("clip_bootstrap")``; curves: ``plots_dir("clip_bootstrap")``;
wall times (``train_wall_s`` of the bootstrap, ``wall_s`` of the stage): ``stage_timings_file("clip_bootstrap")``,
not an output.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from pipeline import paths
from pipeline.artifacts import write_json
from pipeline.clip_job import bootstrap
from pipeline.headline import headline
from pipeline.params import load_params
from pipeline.stage import run_main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)

    def body() -> None:
        t0 = time.perf_counter()
        result, timings = bootstrap(load_params(), args.device, progress=not args.no_progress)
        write_json(paths.details_file("clip_bootstrap"), result)
        write_json(paths.metrics_file("clip_bootstrap"), headline("clip_bootstrap", result))
        timings["wall_s"] = round(time.perf_counter() - t0, 1)
        write_json(paths.stage_timings_file("clip_bootstrap"), timings)
        print(f"clip_bootstrap: done -> {paths.clip_dir()}", file=sys.stderr)

    return run_main("clip_bootstrap", body)


if __name__ == "__main__":
    sys.exit(main())
