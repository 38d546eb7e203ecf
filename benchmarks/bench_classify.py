"""Per-file latency of ``clip2point classify`` and the share of it spent outside the image encoder.

For each model (the run's miniature ``c2p-mini`` and ViT-B-32, both with random weights: the cost does not
depend on the values) it times, in one process, on a 1,024-point cloud and the 6 zero-shot views:

* ``encoder``: the reference, 6 forwards of the visual encoder on ready CLIP inputs;
* ``file``: one file end to end as ``classify`` does it (read + FPS/normalise, render, CLIP inputs, encode,
  Eq. 15, top-k), batch of 1;
* ``batched``: per-file cost when 16 files go through in one batch, against ``encoder_batched``, the
  per-file share of one encoder forward on the batch's 96 inputs;
* ``load``: model creation + text features, paid once per invocation.

Timings are the best of ``--repeat`` interleaved runs (robust to other processes on a shared machine).

Run: ``.venv/bin/python benchmarks/bench_classify.py [--repeat 10] [--models c2p-mini,ViT-B-32]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from cli.bundle import build_bundle, classify_clouds
from cli.encoders import load_encoders
from cli.inputs import load_cloud
from cli.settings import run_settings
from clip2point.models.clip import depth_to_clip_input, image_size

LABELS = ["airplane", "bench", "bookshelf", "bottle", "bowl", "chair", "cone", "cup", "lamp", "table"]


def _interleaved_min(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Best-of-``repeat`` seconds of each function, run in turn so that load from other processes on a
    shared machine hits all of them alike (the minimum is the least disturbed run)."""
    for fn in fns.values():  # warm-up
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def bench(model: str, files: list[str], repeat: int) -> dict[str, float]:
    settings = run_settings()
    t0 = time.perf_counter()
    enc = load_encoders(model, "", None)
    bundle = build_bundle(enc, LABELS, settings, 6, "y")
    load = time.perf_counter() - t0

    visual = enc.visuals[enc.zero_shot_key]
    cloud = load_cloud(files[0], settings.num_points, settings.n_dense)
    depth = bundle.render(torch.from_numpy(cloud)[None])  # (1, 6, H, W)
    x = depth_to_clip_input(depth[0], image_size(visual))
    xb = x.repeat(len(files), 1, 1, 1)  # the batch's 16 x 6 CLIP inputs

    def encoder() -> None:
        with torch.no_grad():
            visual(x)

    def encoder_batch() -> None:
        with torch.no_grad():
            visual(xb)

    def one_file() -> None:
        c = load_cloud(files[0], settings.num_points, settings.n_dense)
        classify_clouds(c[None], bundle, 5)

    def batch() -> None:
        clouds = np.stack([load_cloud(f, settings.num_points, settings.n_dense) for f in files])
        classify_clouds(clouds, bundle, 5)

    fns = {"encoder": encoder, "file": one_file, "encoder_batch": encoder_batch, "batch": batch}
    t = _interleaved_min(fns, repeat)
    n = len(files)
    return {"load": load, "encoder": t["encoder"], "file": t["file"],
            "encoder_batched": t["encoder_batch"] / n, "batched": t["batch"] / n}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--models", default="c2p-mini,ViT-B-32")
    ap.add_argument("--files", type=int, default=16, help="files in the batched measurement")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        files = []
        for i in range(args.files):
            pts = rng.normal(size=(1024, 3)).astype(np.float32)
            pts /= np.linalg.norm(pts, axis=1, keepdims=True)  # a 1,024-point sphere surface
            pts *= rng.uniform(0.5, 1.5, size=(1, 3)).astype(np.float32)
            files.append(str(Path(d) / f"cloud{i:02d}.npy"))
            np.save(files[-1], pts)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; 1,024 points, 6 views")
        print(f"{'model':<10} {'load+text':>10} {'encoder x6':>11} {'per file':>9} {'outside enc':>12} "
              f"{'per file (batch of ' + str(args.files) + ')':>26} {'outside enc':>12}")  # fmt: skip
        for model in args.models.split(","):
            r = bench(model, files, args.repeat)
            out1 = 1 - r["encoder"] / r["file"]
            outb = 1 - r["encoder_batched"] / r["batched"]
            print(f"{model:<10} {r['load']:>9.2f}s {r['encoder']:>10.3f}s {r['file']:>8.3f}s {out1:>11.0%} "
                  f"{r['batched']:>25.3f}s {outb:>11.0%}")  # fmt: skip


if __name__ == "__main__":
    main()
