"""Depth rendering throughput: square footprint (Eq. 14, R=2), disc footprint (released, r=0.02 NDC) and PointCLIP
V2's realistic projection (112² × 8 grid, 10 views, resized to 224²).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_depth.py [--batch 64] [--threads 2] [--device cpu]

Workload: 1,024 points × 10 views (pretrain10) × 224² per cloud, orthographic, jittered distances.
For each footprint, the batched kernel (reused workspace / fresh output) against
(a) reference: a straightforward per-(cloud, view) loop, each view projected and scatter-min'ed on its own
    (disc: every point's ⌈r·W⌉² candidate pixels, masked) and normalised over its own image;
(realistic: its plain-loop twin ``render_realistic_python`` on one cloud, max |difference| printed)
(b) bound: output bytes per cloud (10·224²·4) ÷ the rate of a large tensor copy measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from clip2point.render.depth import FOREGROUND_MAX, DepthConfig, depth_workspace, disc_window, render_depth
from clip2point.render.realistic import render_realistic, render_realistic_python
from clip2point.render.views import VIEW_SETS, view_rotations


def _min_depth_image(rr: torch.Tensor, cc: torch.Tensor, zz: torch.Tensor, ok: torch.Tensor, size: int) -> torch.Tensor:
    """Scatter the kept candidates (``ok``) as a min-z buffer at pixel ``(rr, cc)``, then normalise (Eq. 14)."""
    img = torch.full((size * size,), float("inf"), device=zz.device)
    img.scatter_reduce_(0, (rr * size + cc)[ok], zz[ok], reduce="amin")
    fg = torch.isfinite(img)
    zmin, zmax = img[fg].min(), img[fg].max()
    return torch.where(fg, (img - zmin) / zmax * FOREGROUND_MAX, 1.0).view(size, size)


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
            out[i, v] = _min_depth_image(rr, cc, zz, ok, size)
    return out


def per_view_disc_reference(points: torch.Tensor, dist: torch.Tensor, size: int, radius: float) -> torch.Tensor:
    """One image at a time: project, all ⌈r·W⌉² candidates per point, mask the disc, scatter_reduce(amin)."""
    vs = VIEW_SETS["pretrain10"]
    rot = view_rotations(vs.elev, vs.azim, device=points.device)
    b = points.shape[0]
    out = torch.empty(b, len(vs), size, size, device=points.device)
    k = disc_window(radius, size)
    rho = radius * size / 2
    offs = torch.arange(k, device=points.device)
    for i in range(b):
        for v in range(len(vs)):
            d = dist[i, v]
            cam = points[i] @ rot[v].T
            z = d - cam[:, 2] / d
            u = (cam[:, 0] / d + 1) * size / 2
            w = (1 - cam[:, 1] / d) * size / 2
            c0 = (u - 0.5 - rho).floor().long() + 1
            r0 = (w - 0.5 - rho).floor().long() + 1
            cc = (c0[:, None, None] + offs[None, None, :]).expand(-1, k, k).reshape(-1)
            rr = (r0[:, None, None] + offs[None, :, None]).expand(-1, k, k).reshape(-1)
            uu = u[:, None].expand(-1, k * k).reshape(-1)
            ww = w[:, None].expand(-1, k * k).reshape(-1)
            zz = z[:, None].expand(-1, k * k).reshape(-1)
            hit = (cc + 0.5 - uu) ** 2 < rho * rho - (rr + 0.5 - ww) ** 2
            ok = hit & (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size) & (zz > 0)
            out[i, v] = _min_depth_image(rr, cc, zz, ok, size)
    return out


def timeit(fns: dict, reps: int) -> dict:
    """Per function: median wall seconds, median CPU seconds (all threads of this process), best wall seconds.

    The functions run interleaved (one call of each per round) so that they see the same machine load. On a
    shared machine the wall figure depends on the other jobs; CPU seconds much less so: the ratios below are
    printed for both.
    """
    for fn in fns.values():
        fn()
    walls: dict = {name: [] for name in fns}
    cpus: dict = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            walls[name].append(time.perf_counter() - t)
            cpus[name].append(time.process_time() - c)
    return {name: (statistics.median(walls[name]), statistics.median(cpus[name]), min(walls[name])) for name in fns}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--radius", type=float, default=0.02)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    b, n, v, size, r = args.batch, 1024, 10, 224, 2
    pts = torch.randn(b, n, 3, generator=g)
    pts = (pts / pts.norm(dim=-1, keepdim=True).amax(1, keepdim=True)).to(dev)
    dist = (1 + (torch.rand(b, 1, generator=g) * 2 - 1) * 0.1).expand(b, v).contiguous().to(dev)
    cfg_sq = DepthConfig(size, r)
    cfg_disc = DepthConfig(size, footprint="disc", radius=args.radius)
    cfg_real = DepthConfig(size, projection="realistic")
    ws = depth_workspace(b, v, size, dev)
    nref = max(2, b // 8)  # the references are timed on this many clouds

    big = torch.empty(64 * 1024 * 1024, device=dev)  # 256 MiB
    dst = torch.empty_like(big)
    big.fill_(1.0)
    dst.fill_(0.0)
    cfgs = {"square R=2": cfg_sq, f"disc r={args.radius:g}": cfg_disc}
    fns = {}
    for name, cfg in cfgs.items():
        fns[(name, "batched (reused workspace)")] = lambda cfg=cfg: render_depth(pts, "pretrain10", dist, cfg, out=ws)
        fns[(name, "batched (fresh output)")] = lambda cfg=cfg: render_depth(pts, "pretrain10", dist, cfg)
    fns[("realistic 112x8", "batched (fresh output)")] = lambda: render_realistic(pts, "realistic10", cfg_real)
    fns["copy"] = lambda: dst.copy_(big)
    times = timeit(fns, args.reps)
    refs = {"square R=2": lambda p, d: per_view_reference(p, d, size, r),
            f"disc r={args.radius:g}": lambda p, d: per_view_disc_reference(p, d, size, args.radius)}
    ref_times = timeit({name: (lambda fn=fn: fn(pts[:nref], dist[:nref])) for name, fn in refs.items()},
                       max(2, args.reps // 3))
    checks = {}
    for name, cfg in cfgs.items():
        ref = refs[name](pts[:nref], dist[:nref])
        got = render_depth(pts[:nref], "pretrain10", dist[:nref], cfg)
        checks[name] = ((got - ref).abs().max().item(), int(((got < 1) != (ref < 1)).sum()))

    t_copy = times.pop("copy")
    out_bytes = v * size * size * 4
    bound = [big.numel() * 4 / t / out_bytes for t in t_copy]
    print(f"device {dev}, threads {args.threads}, batch {b}: {n} pts x {v} views x {size}^2, orthographic, "
          f"{args.reps} interleaved rounds")
    print(f"{'':40s} {'wall clouds/s':>14s} {'clouds/CPU-s':>14s} {'best wall':>10s}")
    for (name, label), (w, c, best) in times.items():
        print(f"{name + ': ' + label:40s} {b / w:14.1f} {b / c:14.1f} {b / best:10.1f}")
    for name, (w, c, best) in ref_times.items():
        print(f"{name + ': per-view reference':40s} {nref / w:14.1f} {nref / c:14.1f} {nref / best:10.1f}")
    print(f"{'bandwidth bound':40s} {bound[0]:14.1f} {bound[1]:14.1f} {bound[2]:10.1f}   (copy rate "
          f"{big.numel() * 4 / t_copy[0] / 1e9:.1f} GB/s wall, {out_bytes / 1e6:.2f} MB/cloud)")
    for name in cfgs:
        w, c, _ = times[(name, "batched (reused workspace)")]
        err, flips = checks[name]
        print(f"{name}: max |batched - reference| = {err:.2e}, coverage mismatches {flips}; speed-up vs reference "
              f"{ref_times[name][0] * b / nref / w:.1f}x wall; bound / batched {bound[0] * w / b:.1f}x wall, "
              f"{bound[1] * c / b:.1f}x CPU; >= 300 clouds/s: {'met' if b / w >= 300 else 'NOT met'} (median wall)")
    t0 = time.perf_counter()
    twin = render_realistic_python(pts[0].cpu().numpy(), "realistic10", cfg_real)
    t_twin = time.perf_counter() - t0
    rw = times[("realistic 112x8", "batched (fresh output)")]
    err = float(abs(render_realistic(pts[:1], "realistic10", cfg_real)[0].cpu().numpy() - twin).max())
    print(f"realistic 112x8: max |batched - loop twin| = {err:.2e} (1 cloud); loop twin {1 / t_twin:.3f} clouds/s; "
          f"speed-up {t_twin * b / rw[0]:.0f}x wall")
    sq, dc = (times[(name, "batched (reused workspace)")] for name in cfgs)
    print(f"disc / square time (reused workspace): {dc[0] / sq[0]:.2f}x wall, {dc[1] / sq[1]:.2f}x CPU, "
          f"{dc[2] / sq[2]:.2f}x best wall")
    print(f"realistic / square time: {rw[0] / sq[0]:.2f}x wall, {rw[1] / sq[1]:.2f}x CPU")


if __name__ == "__main__":
    main()
