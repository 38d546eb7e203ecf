"""Paper-scale projection: per-sample throughput of every stage's hot path at the paper profile's settings,
measured on this machine, projected to the full datasets (issue 10).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_paper_scale.py [--device cpu|cuda] [--reps 3]

Settings of configs/paper.yaml: 1,024 FPS points from a dense sample of 20,000, 10 views at 224², ViT-B-32
(random weights: the speed does not depend on them), batch 256 for pre-training (measured at a smaller
batch, per sample). Each hot path runs on small fabricated inputs in this process; the projection multiplies
the per-sample time by the paper's sample counts and epochs and divides by the stage's parallel workers
(``sample.workers`` / ``render.workers`` of the profile on a 16-core machine; one device for the encoders).
Peak resident memory of the process (``ru_maxrss``) is printed after each measurement.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

# paper sizes (§5.1): ShapeNetCore.v2 models used for pre-training (Point-BERT's ShapeNet-55 split: 41,952 train,
# 10,518 val); ModelNet40 9,843 / 2,468; ModelNet10 3,991 / 908; ScanObjectNN 2,309 / 581 (×3 variants; PB_T50_RS
# 11,416 / 2,882)
SIZES = {
    "shapenetcore": 41_952 + 10_518,
    "modelnet40": 9_843 + 2_468,
    "modelnet10": 3_991 + 908,
    "scanobjectnn (3 variants)": 2 * (2_309 + 581) + 11_416 + 2_882,
}
EPOCHS = 100
VIEWS = 10
SIZE = 224


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timeit(fn, reps: int) -> float:
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=16, help="CPU workers of the projected machine")
    args = ap.parse_args()
    dev = torch.device(args.device)
    from clip2point.models.clip import create_clip, encode_views
    from clip2point.render.depth import DepthConfig, render_depth
    from clip2point.render.rgb import make_renderer
    from clip2point.sampling import mesh_to_points
    from clip2point.synth import make_shape

    rows: list[tuple[str, float, str]] = []
    mesh = make_shape("chair", np.random.default_rng(0))
    mesh = mesh.subdivide().subdivide() if len(mesh.faces) < 20_000 else mesh
    t = timeit(lambda: mesh_to_points(mesh, 1024, 20_000, 0), args.reps)
    rows.append(("sample: dense sample + FPS, per shape", t, f"{len(mesh.faces)} faces"))
    print(f"sample      {1 / t:8.1f} shapes/s per worker   (rss {rss_mb():.0f} MB)", flush=True)

    renderer = make_renderer("pyrender")
    unit = mesh.copy()
    unit.apply_translation(-unit.bounds.mean(0))
    unit.apply_scale(0.95 / np.linalg.norm(unit.vertices, axis=1).max())
    t = timeit(lambda: renderer.render(unit, "pretrain10", SIZE), args.reps)
    rows.append(("render: 10 RGB views at 224², per shape", t, "pyrender/OSMesa"))
    print(f"render rgb  {1 / t:8.1f} shapes/s per worker   (rss {rss_mb():.0f} MB)", flush=True)

    pts = torch.from_numpy(mesh_to_points(mesh, 1024, 20_000, 0))[None].repeat(32, 1, 1).to(dev)
    cfg = DepthConfig(image_size=SIZE)
    t = timeit(lambda: render_depth(pts, "pretrain10", 1.0, cfg), args.reps) / 32
    rows.append(("depth maps: 10 views at 224², per cloud", t, "Eq. 14, R=2"))
    print(f"depth       {1 / t:8.1f} clouds/s              (rss {rss_mb():.0f} MB)", flush=True)

    model, _ = create_clip("ViT-B-32-quickgelu", "random:0", device=dev)
    visual = model.visual.eval()
    depth = render_depth(pts[:8], "pretrain10", 1.0, cfg)
    with torch.no_grad():
        t = timeit(lambda: encode_views(visual, depth, 80), args.reps) / 8
    rows.append(("features: ViT-B-32 on 10 depth views, per cloud", t, "inference"))
    print(f"features    {1 / t:8.1f} clouds/s              (rss {rss_mb():.0f} MB)", flush=True)

    visual.train()
    x = torch.randn(16, 3, SIZE, SIZE, device=dev)  # 8 samples: two depth views each
    opt = torch.optim.SGD(visual.parameters(), lr=0.0)

    def step() -> None:
        opt.zero_grad()
        out = visual(x)
        with torch.no_grad():
            visual(x[:8])  # the frozen image encoder on the RGB view
        out.float().pow(2).mean().backward()
        opt.step()

    t = timeit(step, args.reps) / 8
    rows.append(("pre-training step: 2 depth views fwd+bwd + 1 RGB fwd, per sample", t, "ViT-B-32"))
    print(f"pretrain    {1 / t:8.1f} samples/s             (rss {rss_mb():.0f} MB)", flush=True)

    per = {name: t for name, t, _ in rows}
    w = args.workers
    proj = [
        ("sample (all datasets)", sum(SIZES.values()) * per[rows[0][0]] / w),
        ("render RGB (ShapeNetCore + ModelNet)",
         (SIZES["shapenetcore"] + SIZES["modelnet40"] + SIZES["modelnet10"]) * per[rows[1][0]] / w),
        ("pre-training, one run (100 epochs on 41,952)", EPOCHS * 41_952 * per[rows[4][0]]),
        ("features (every benchmark, 2 encoders)",
         2 * sum(v for k, v in SIZES.items() if k != "shapenetcore") * per[rows[3][0]]),
    ]
    print(f"\nprojection on {args.device}, {w} CPU workers for sample/render:")
    print("| stage | measured per sample | projected wall time |")
    print("|---|---|---|")
    for name, t, note in rows:
        print(f"| {name} ({note}) | {t * 1e3:.1f} ms | |")
    for name, secs in proj:
        print(f"| {name} | | {secs / 3600:.1f} h |")
    print(f"\npeak RSS of this process: {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
