"""Sampling throughput and FPS speed (§5.1: "we sample the farthest 1,024 points").

Prints, in one process on the same inputs:

* ``mesh_to_points`` throughput on synthetic benchmark meshes (meshes/s, one process), with the default
  params (20,000 dense points → 1,024 FPS points);
* farthest point sampling of 1,024 out of 100,000 points: fpsample's bucket kd-line variant (the one the
  pipeline uses) against the library's plain python twin (``farthest_point_sample_python``, vectorised per step),
  and the ratio.

Usage: ``.venv/bin/python benchmarks/bench_sampling.py [--meshes 100] [--repeats 3] [--threads 1]``
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
import torch
from _timing import best_of

from clip2point.sampling import farthest_point_sample, farthest_point_sample_python, mesh_to_points, sample_surface
from clip2point.synth import CLASSES, make_shape, shape_rng


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--meshes", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--num-points", type=int, default=1024)
    ap.add_argument("--dense", type=int, default=20000)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")

    names = sorted(CLASSES)
    meshes = [
        make_shape(names[i % len(names)], shape_rng(0, names[i % len(names)], i)) for i in range(args.meshes)
    ]
    faces = np.mean([len(m.faces) for m in meshes])
    t = best_of(lambda: [mesh_to_points(m, args.num_points, args.dense, i) for i, m in enumerate(meshes)], 1)
    print(
        f"mesh_to_points: {len(meshes)} synth meshes (mean {faces:.0f} faces), {args.dense} dense -> "
        f"{args.num_points} FPS: {len(meshes) / t:.1f} meshes/s "
        f"({1000 * t / len(meshes):.1f} ms/mesh, 1 process)"
    )

    rng = np.random.default_rng(0)
    big = make_shape("chair", shape_rng(0, "chair", 999))
    pts = sample_surface(big, 100_000, rng).astype(np.float32)
    t_fp = best_of(lambda: farthest_point_sample(pts, args.num_points), args.repeats)
    idx = farthest_point_sample(pts, args.num_points)
    t_ref = best_of(lambda: farthest_point_sample_python(pts, args.num_points, int(idx[0])), args.repeats)
    same = bool((farthest_point_sample_python(pts, args.num_points, int(idx[0])) == idx).all())
    print(f"FPS 100,000 -> {args.num_points} points (surface of a synth chair), best of {args.repeats}:")
    print(f"  fpsample bucket kd-line : {1000 * t_fp:8.1f} ms")
    print(f"  python twin (numpy)     : {1000 * t_ref:8.1f} ms")
    print(f"  ratio (reference / fpsample): {t_ref / t_fp:.1f}x; identical indices: {same}")


if __name__ == "__main__":
    main()
