"""RGB rendering throughput (pyrender / OSMesa): views per second, one reused renderer, one process.

Also measures, in the same process, pyrender's own shader cache (a renderer without
``clip2point.render.rgb.stable_program_cache``, which recompiles its programs on every render under OSMesa)
against ours: views per second and resident memory gained per view.

    PYOPENGL_PLATFORM=osmesa .venv/bin/python benchmarks/bench_rgb.py [--size 224] [--meshes 6]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import numpy as np  # noqa: E402
import trimesh  # noqa: E402

from clip2point.render import rgb  # noqa: E402
from clip2point.render.rgb import make_renderer  # noqa: E402
from clip2point.shards import png_bytes  # noqa: E402


def meshes(k: int) -> list[trimesh.Trimesh]:
    out = []
    for i in range(k):
        m = trimesh.creation.icosphere(subdivisions=2 + i % 3, radius=0.9)  # 320 … 5,120 faces
        m.vertices *= np.array([1.0, 0.5 + 0.1 * i, 0.7])
        m.visual.face_colors = np.random.default_rng(i).integers(0, 255, (len(m.faces), 4))
        out.append(m)
    return out


def rss_mb() -> float:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def cache_comparison(ms: list[trimesh.Trimesh], size: int, rounds: int = 3) -> None:
    """Views/s and MB resident per view: pyrender's per-call shader cache vs the stable one."""
    stable = rgb.stable_program_cache
    res = {}
    for name in ("pyrender cache", "stable cache"):
        if name == "pyrender cache":
            rgb.stable_program_cache = lambda offscreen: None
        try:
            r = make_renderer("pyrender")
            r.render(ms[0], "pretrain10", size)  # context creation
        finally:
            rgb.stable_program_cache = stable
        m0, t = rss_mb(), time.perf_counter()
        for _ in range(rounds):
            for m in ms:
                r.render(m, "pretrain10", size)
        dt, dm = time.perf_counter() - t, rss_mb() - m0
        n = 10 * rounds * len(ms)
        res[name] = (n / dt, dm / n)
        r.close()
        print(f"{name:15s}: {n / dt:7.1f} views/s, {dm / n:+.2f} MB resident per view ({n} views)")
    print(f"stable / pyrender speed: {res['stable cache'][0] / res['pyrender cache'][0]:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--meshes", type=int, default=6)
    args = ap.parse_args()
    r = make_renderer("pyrender")
    ms = meshes(args.meshes)
    r.render(ms[0], "pretrain10", args.size)  # context creation
    t = time.perf_counter()
    imgs = [r.render(m, "pretrain10", args.size) for m in ms]
    t_render = time.perf_counter() - t
    t = time.perf_counter()
    for im in imgs:
        for v in im:
            png_bytes(v)
    t_png = time.perf_counter() - t
    nviews = 10 * len(ms)
    faces = [len(m.faces) for m in ms]
    print(f"pyrender/OSMesa {args.size}^2, {len(ms)} meshes ({min(faces)}-{max(faces)} faces) x 10 views")
    print(f"render     : {nviews / t_render:7.1f} views/s ({1000 * t_render / nviews:.1f} ms/view)")
    png_ms = 1000 * t_png / nviews
    print(f"+ PNG      : {nviews / (t_render + t_png):7.1f} views/s ({png_ms:.1f} ms/view PNG)")
    r.close()
    cache_comparison(ms, args.size)


if __name__ == "__main__":
    main()
