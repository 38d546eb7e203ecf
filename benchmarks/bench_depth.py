"""Depth rendering throughput (Eq. 14, R=2): batched kernel vs a per-view reference vs the bandwidth bound.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_depth.py [--batch 64] [--threads 2] [--device cpu]

Workload: 1,024 points × 10 views (pretrain10) × 224² per cloud, orthographic, jittered distances.
(a) reference: a straightforward per-(cloud, view) loop, each view projected and scatter-min'ed on its own
    and normalised over its own image;
(b) bound: output bytes per cloud (10·224²·4) ÷ the rate of a large tensor copy measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from clip2point.render.depth import FOREGROUND_MAX, DepthConfig, depth_workspace, render_depth
from clip2point.render.views import VIEW_SETS, view_rotations


def per_view_reference(points: torch.Tensor, dist: torch.Tensor, size: int, r: int) -> torch.Tensor:
    """One image at a time: project, dilate, scatter_reduce(amin), normalise over the image."""
    vs = VIEW_SETS["pretrain10"]
    rot = view_rotations(vs.elev, vs.azim, device=points.device)
    b = points.shape[0]
    out = torch.empty(b, len(vs), size, size, device=points.device)
    offs = torch.arange(-((r + 1) // 2 - 1), r // 2 + 1, device=points.device)
    for i in range(b):
        for v in range(len(vs)):
            d = dist[i, v]
            cam = points[i] @ rot[v].T
            z = d - cam[:, 2] / d
            col = ((cam[:, 0] / d + 1) * size / 2).floor().long()
            row = ((1 - cam[:, 1] / d) * size / 2).floor().long()
            rr = (row[:, None, None] + offs[None, :, None]).expand(-1, r, r).reshape(-1)
            cc = (col[:, None, None] + offs[None, None, :]).expand(-1, r, r).reshape(-1)
            zz = z[:, None].expand(-1, r * r).reshape(-1)
            ok = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size) & (zz > 0)
            img = torch.full((size * size,), float("inf"), device=points.device)
            img.scatter_reduce_(0, (rr * size + cc)[ok], zz[ok], reduce="amin")
            fg = torch.isfinite(img)
            zmin, zmax = img[fg].min(), img[fg].max()
            out[i, v] = torch.where(fg, (img - zmin) / zmax * FOREGROUND_MAX, 1.0).view(size, size)
    return out


def timeit(fn, reps: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (all threads of this process) per call.

    On a shared machine the wall figure depends on the other jobs; CPU seconds much less so: the ratios
    below are printed for both.
    """
    fn()
    walls, cpus = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    b, n, v, size, r = args.batch, 1024, 10, 224, 2
    pts = torch.randn(b, n, 3, generator=g)
    pts = (pts / pts.norm(dim=-1, keepdim=True).amax(1, keepdim=True)).to(dev)
    dist = (1 + (torch.rand(b, 1, generator=g) * 2 - 1) * 0.1).expand(b, v).contiguous().to(dev)
    cfg = DepthConfig(size, r)
    ws = depth_workspace(b, v, size, dev)

    t_ws = timeit(lambda: render_depth(pts, "pretrain10", dist, cfg, out=ws), args.reps)
    t_new = timeit(lambda: render_depth(pts, "pretrain10", dist, cfg), args.reps)
    nref = max(2, b // 8)
    t_ref = timeit(lambda: per_view_reference(pts[:nref], dist[:nref], size, r), max(2, args.reps // 3))
    t_ref = (t_ref[0] * b / nref, t_ref[1] * b / nref)
    ref = per_view_reference(pts[:nref], dist[:nref], size, r)
    err = (render_depth(pts[:nref], "pretrain10", dist[:nref], cfg) - ref).abs().max().item()

    big = torch.empty(64 * 1024 * 1024, device=dev)  # 256 MiB
    dst = torch.empty_like(big)
    big.fill_(1.0)
    dst.fill_(0.0)
    t_copy = timeit(lambda: dst.copy_(big), args.reps)
    out_bytes = v * size * size * 4
    print(f"device {dev}, threads {args.threads}, batch {b}: {n} pts x {v} views x {size}^2, R={r}")
    print(f"{'':28s} {'wall clouds/s':>14s} {'clouds/CPU-s':>14s}")
    rows = [("batched (reused workspace)", t_ws), ("batched (fresh output)", t_new),
            ("per-view reference", t_ref)]
    for name, (w, c) in rows:
        print(f"{name:28s} {b / w:14.1f} {b / c:14.1f}")
    bound = (big.numel() * 4 / t_copy[0] / out_bytes, big.numel() * 4 / t_copy[1] / out_bytes)
    print(f"{'bandwidth bound':28s} {bound[0]:14.1f} {bound[1]:14.1f}   (copy rate "
          f"{big.numel() * 4 / t_copy[0] / 1e9:.1f} GB/s wall, {out_bytes / 1e6:.2f} MB/cloud)")
    print(f"max |batched - reference| = {err:.2e}")
    print(f"speed-up vs reference     : {t_ref[0] / t_ws[0]:6.1f}x wall, {t_ref[1] / t_ws[1]:6.1f}x CPU")
    print(f"bound / batched           : {bound[0] * t_ws[0] / b:6.1f}x wall, "
          f"{bound[1] * t_ws[1] / b:6.1f}x CPU   (target <= 5x)")
    print(f"target >= 300 clouds/s    : {'met' if b / t_ws[0] >= 300 else 'NOT met'} (wall)")


if __name__ == "__main__":
    main()
