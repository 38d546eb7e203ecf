"""Pre-training throughput on this machine: samples/s and the share of step time outside the encoders.

One CLIP2Point step (``intra_cross``) = draw a batch (one random view per sample), render two depth maps per
sample on the fly at jittered distances, build CLIP inputs, E_i forward (frozen) on the RGB views, E_d
forward + backward on the 2B depth maps, Eq. 11 loss, LAMB step. Timed per part:

- ``data``: batch indexing and CLIP input construction (uint8 → normalised tensors),
- ``render``: the on-the-fly depth rendering (``ViewDepthRenderer``),
- ``encoders``: everything else (E_i / E_d forward, backward, loss, optimizer).

The share outside the encoders is (data + render) / step; the target is ≤ 10 %. Models: the miniature
``c2p-mini`` and ``ViT-B-32`` with random weights (the same compute as the real one). Synthetic clouds and
RGB (throughput does not depend on content).

Usage: ``python benchmarks/bench_pretrain.py [--steps 4] [--mini-batch 32] [--vitb-batch 8] [--threads 2]``

``--memory``: the streaming data path's peak resident memory does not grow with the pool. Fabricates two
pools of shards (``--pool`` and 8× as many samples; 10 RGB views at 224², 1024 points, val split of 16) in a
temporary folder, then runs the same ``--steps`` steps of the real :func:`pretrain` (shards indexed, samples
read on demand by ``--workers`` DataLoader workers, validation streamed) in one subprocess per pool and
prints the peak RSS of the main process and of the largest worker, and the ratio 8× / 1×. Reference, same
pools: the old path, ``shards.load_split`` of the whole train split (what the stage did before), whose peak
grows with the pool.

``--ops``: kernel-launching ops per step (by phase) and host syncs per step (logging and non-logging steps),
counted on the real :func:`pretrain` loop by ``benchmarks/count_step_ops.py`` (a dispatch hook, see
:mod:`clip2point.train.profiling`), for ``c2p-mini`` and ``ViT-B-32`` (random weights, batch 2: the counts do
not depend on the batch size), both LAMB variants; with ``--before REV`` the same counter also runs on the
code of git revision ``REV`` (a temporary worktree) and the ratios after / before are printed.

``--data-share``: the real :func:`pretrain` loop over the fabricated 1× pool with ``ViT-B-32`` (random
weights, ``pretrained`` none) and ``c2p-mini``: the share of step time spent outside the encoders (waiting
for the DataLoader + on-the-fly depth rendering), from ``PretrainResult.timings``. Target ≤ 10 %.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from clip2point.models.clip import create_clip, depth_to_clip_input, image_size, rgb_to_clip_input
from clip2point.render.depth import DepthConfig
from clip2point.render.view_depth import ViewDepthRenderer
from clip2point.render.views import VIEW_SETS
from clip2point.train.distributed import DistInfo
from clip2point.train.objectives import step_loss
from clip2point.train.optim import build_optimizer, param_groups
from clip2point.train.pretrain_data import jitter_distances
from clip2point.train.pretrain_run import DepthPretrainModel


def bench(name: str, batch: int, steps: int, pool: int = 64) -> dict[str, float]:
    torch.manual_seed(0)
    model, _ = create_clip(name, "")
    size = image_size(model.visual)
    frozen = model.visual.eval().requires_grad_(False)
    trainable = DepthPretrainModel(model.visual)
    groups = param_groups(trainable.encoder, 6e-3, 1e-4)
    groups.append({"params": [trainable.sigma], "lr": 0.05, "weight_decay": 0.0})
    opt = build_optimizer("lamb", groups, 6e-3)
    views = VIEW_SETS["pretrain10"]
    render = ViewDepthRenderer(views, DepthConfig(image_size=size, dilation=2))
    g = torch.Generator().manual_seed(0)
    pts = torch.nn.functional.normalize(torch.randn(pool, 1024, 3, generator=g), dim=-1) * 0.8
    rgb = torch.randint(0, 256, (pool, len(views), size, size, 3), generator=g, dtype=torch.uint8)
    info = DistInfo()
    t = {"data": 0.0, "render": 0.0, "step": 0.0}
    for s in range(steps + 1):  # step 0 warms up
        t0 = time.perf_counter()
        idx = torch.randint(0, pool, (batch,), generator=g)
        view = torch.randint(0, len(views), (batch,), generator=g)
        b_rgb = rgb[idx, view]
        b_pts = pts[idx]
        d1, d2 = jitter_distances(1.0, 0.1, batch, g), jitter_distances(1.0, 0.1, batch, g)
        t1 = time.perf_counter()
        dm1, dm2 = render(b_pts, view, d1), render(b_pts, view, d2)
        t2 = time.perf_counter()
        # the input conversions happen inside step_loss; time them here once more to attribute them to "data"
        rgb_to_clip_input(b_rgb, size)
        depth_to_clip_input(torch.cat([dm1, dm2]), size)
        t3 = time.perf_counter()
        loss, _ = step_loss("intra_cross", trainable, frozen, trainable.sigma,
                            {"rgb": b_rgb, "depth1": dm1, "depth2": dm2}, info, size=size, temperature=0.07)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        t4 = time.perf_counter()
        if s > 0:
            t["data"] += (t1 - t0) + (t3 - t2)
            t["render"] += t2 - t1
            t["step"] += (t1 - t0) + (t2 - t1) + (t4 - t3)  # the conversions are already inside t4 - t3
    step = t["step"] / steps
    data, rend = t["data"] / steps, t["render"] / steps
    return {"model": name, "batch": batch, "image": size, "step_s": step, "samples_per_s": batch / step,
            "data_s": data, "render_s": rend, "outside_share": (data + rend) / step}


# ------------------------------------------------------------------------------- fabricated shard pools


def _render_like(rng: np.random.Generator, views: int, size: int) -> np.ndarray:
    """(V, S, S, 3) uint8 images that compress like renders: white background, a shaded blob, some noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    out = np.empty((views, size, size, 3), np.uint8)
    colour = rng.uniform(40, 220, 3)
    for v in range(views):
        cx, cy, rx, ry = rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65), rng.uniform(0.15, 0.3), rng.uniform(
            0.15, 0.3)
        r2 = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
        shade = np.clip(1.2 - r2, 0.3, 1.0)[..., None]
        img = np.where((r2 < 1)[..., None], colour * shade + rng.normal(0, 4, (size, size, 3)), 255.0)
        out[v] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def fabricate_pool(root: Path, n: int, val: int = 16, views: int = 10, size: int = 224, points: int = 1024,
                   per_shard: int = 256, seed: int = 0) -> Path:
    """Shards + manifest of a pool of ``n`` train and ``val`` val samples with random points and RGB."""
    from clip2point import shards

    rng = np.random.default_rng(seed)

    def samples(split: str, count: int):
        for i in range(count):
            pts = rng.normal(size=(points, 3)).astype(np.float32)
            pts /= np.linalg.norm(pts, axis=1).max()
            yield {"id": f"{split}/{i:06d}", "points": pts, "label": i % 10,
                   "rgb": _render_like(rng, views, size) if split == "train" else None}

    split_info = {}
    for split, count in (("train", n), ("val", val)):
        written = shards.write_shards(samples(split, count), root, f"{split}-r000", per_shard)
        split_info[split] = {"count": count, "shards": written}
    shards.write_manifest(root / "manifest.json", {"dataset": "fab", "class_names": [f"c{k}" for k in range(10)],
                                                   "splits": split_info})
    return root / "manifest.json"


def _peak_rss_mb() -> tuple[float, float]:
    """Peak RSS (MB) of this process and of its largest (waited-for) child, e.g. a DataLoader worker."""
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return me, kids


def run_pool(manifest: str, model_name: str, steps: int, batch: int, workers: int) -> dict[str, float]:
    """``steps`` steps of the real pre-training loop on a streamed pool; timings and peak RSS."""
    from clip2point import shards
    from clip2point.configs import PretrainConfig
    from clip2point.models.clip import create_clip
    from clip2point.render.views import get_views
    from clip2point.train.pretrain import pretrain
    from clip2point.train.pretrain_data import ShardPointsSource, ShardPretrainSource, StreamingEvalSet
    from clip2point.train.pretrain_run import TextSide

    torch.manual_seed(0)
    model, _ = create_clip(model_name, "")
    size = image_size(model.visual)
    dim = int(model.text_projection.shape[1]) if hasattr(model, "text_projection") else 512
    text = TextSide(classes=torch.nn.functional.normalize(torch.randn(10, dim), dim=-1))
    t0 = time.perf_counter()
    src = ShardPretrainSource(shards.index_split(manifest, "train"))
    val_index = shards.index_split(manifest, "val")
    t_index = time.perf_counter() - t0
    dcfg = DepthConfig(image_size=size, dilation=2)
    evalset = StreamingEvalSet(ShardPointsSource(val_index), get_views("zeroshot6"), dcfg, 1.0, workers)
    cfg = PretrainConfig(variant="intra_cross", batch_size=batch, max_steps=steps, warmup_steps=1,
                         num_workers=workers, bf16=False, eval_batch_size=48, epochs=1)
    res = pretrain(model.visual, src, evalset, text, cfg, ViewDepthRenderer(get_views("pretrain10"), dcfg),
                   progress=False)
    me, kids = _peak_rss_mb()
    g = torch.Generator().manual_seed(1)
    reqs = [(int(i), int(v), 1.0, 1.0, False) for i, v in zip(torch.randint(0, len(src), (64,), generator=g),
                                                                torch.randint(0, src.n_views, (64,), generator=g),
                                                                strict=True)]
    t0 = time.perf_counter()
    for r in reqs:
        src[r]
    read_s = (time.perf_counter() - t0) / len(reqs)
    return {"samples": len(src), "index_s": t_index, "read_s_per_sample": read_s, **res.timings,
            "peak_rss_mb": me, "peak_worker_rss_mb": kids,
            "index_bytes": int(src.index.offset.nbytes + src.index.size.nbytes + src.index.keys.nbytes
                               + src.index.shard.nbytes)}


def load_whole_split(manifest: str) -> dict[str, float]:
    """The old path: the whole train split in memory (``shards.load_split``), as the stage held it."""
    from clip2point import shards

    t0 = time.perf_counter()
    raw = shards.load_split(manifest, "train")
    rgb = torch.from_numpy(raw["rgb"])
    me, _ = _peak_rss_mb()
    return {"samples": int(rgb.shape[0]), "load_s": time.perf_counter() - t0, "peak_rss_mb": me,
            "resident_rgb_mb": rgb.numel() / 2**20}


def _child(args: list[str]) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)], check=True, capture_output=True,
                         text=True, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_mode(pool: int, steps: int, batch: int, workers: int, threads: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench_pretrain_") as tmp:
        t0 = time.perf_counter()
        pools = {k: str(fabricate_pool(Path(tmp) / f"x{k}", pool * k)) for k in (1, 8)}
        disk = {k: sum(f.stat().st_size for f in Path(p).parent.iterdir()) / 2**20 for k, p in pools.items()}
        print(f"fabricated pools of {pool} and {8 * pool} samples (10 views 224², 1024 points): "
              f"{disk[1]:.0f} / {disk[8]:.0f} MB on disk, {time.perf_counter() - t0:.0f} s")
        stream = {k: _child(["stream", p, "c2p-mini", steps, batch, workers, threads]) for k, p in pools.items()}
        old = {k: _child(["old", p]) for k, p in pools.items()}
    print(f"\nstreaming: {steps} steps of pretrain(intra_cross), c2p-mini, batch {batch}, {workers} workers")
    print(f"{'pool':>6} {'index KB':>9} {'index s':>8} {'peak RSS main MB':>17} {'peak RSS worker MB':>19}")
    for k in (1, 8):
        r = stream[k]
        print(f"{r['samples']:>6} {r['index_bytes'] / 1024:>9.1f} {r['index_s']:>8.2f} {r['peak_rss_mb']:>17.0f} "
              f"{r['peak_worker_rss_mb']:>19.0f}")
    print(f"ratio 8x/1x peak RSS (main): {stream[8]['peak_rss_mb'] / stream[1]['peak_rss_mb']:.2f}x, "
          f"(worker): {stream[8]['peak_worker_rss_mb'] / max(stream[1]['peak_worker_rss_mb'], 1e-9):.2f}x")
    print("\nreference, the old path: shards.load_split of the whole train split")
    print(f"{'pool':>6} {'resident RGB MB':>16} {'peak RSS MB':>12} {'load s':>7}")
    for k in (1, 8):
        r = old[k]
        print(f"{r['samples']:>6} {r['resident_rgb_mb']:>16.0f} {r['peak_rss_mb']:>12.0f} {r['load_s']:>7.1f}")
    print(f"ratio 8x/1x peak RSS (old): {old[8]['peak_rss_mb'] / old[1]['peak_rss_mb']:.2f}x; "
          f"old / streaming at 8x: {old[8]['peak_rss_mb'] / stream[8]['peak_rss_mb']:.2f}x")


def data_share_mode(pool: int, steps: int, vitb_batch: int, mini_batch: int, workers: int, threads: int,
                    skip_vitb: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bench_pretrain_") as tmp:
        manifest = str(fabricate_pool(Path(tmp) / "pool", max(pool, 2 * max(vitb_batch, mini_batch))))
        runs = [("c2p-mini", mini_batch)] + ([] if skip_vitb else [("ViT-B-32", vitb_batch)])
        rows = [(name, b, _child(["stream", manifest, name, steps, b, workers, threads])) for name, b in runs]
    print(f"\ndata share: {steps} steps of pretrain(intra_cross) over streamed shards, {workers} workers, "
          f"{threads} threads, random weights")
    print(f"{'model':<10} {'batch':>5} {'step ms':>8} {'wait ms':>8} {'render ms':>9} {'samples/s':>9} {'outside':>8} "
          f"{'read ms/sample':>15}")
    for name, b, r in rows:
        n = r["steps_run"]
        print(f"{name:<10} {b:>5} {1000 * r['step_s'] / n:>8.0f} {1000 * r['data_wait_s'] / n:>8.1f} "
              f"{1000 * r['render_s'] / n:>9.1f} {b * n / r['step_s']:>9.1f} {100 * r['data_share']:>7.1f}% "
              f"{1000 * r['read_s_per_sample']:>15.2f}")
    print("outside = (DataLoader wait + on-the-fly depth rendering) / step time; target <= 10%")
    read = rows[0][2]["read_s_per_sample"]
    print(f"one worker reads {1 / read:.0f} samples/s (points + one 224² PNG view): a step of B samples every T s "
          f"needs num_workers >= B·{read * 1000:.2f} ms / T for the wait to vanish")


def _count(cwd: Path, model: str, batch: int, steps: int, optimizer: str, variant: str) -> dict:
    script = Path(__file__).resolve().parent / "count_step_ops.py"
    env = {**os.environ, "PYTHONPATH": str(cwd), "OMP_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, str(script), "--model", model, "--batch", str(batch), "--steps",
                          str(steps), "--optimizer", optimizer, "--variant", variant], cwd=cwd, env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def ops_mode(before: str | None, skip_vitb: bool) -> None:
    """Ops and host syncs per step, now and (with ``before``) at git revision ``before``."""
    root = Path(__file__).resolve().parents[1]
    cases = [("c2p-mini", 8, 12), *([] if skip_vitb else [("ViT-B-32", 2, 4)])]
    trees = {"now": root}
    tmp = None
    if before:
        tmp = Path(tempfile.mkdtemp(prefix="c2p-before."))
        subprocess.run(["git", "-C", str(root), "worktree", "add", "-q", "--detach", str(tmp / "tree"), before],
                       check=True)
        trees = {"before": tmp / "tree", "now": root}
    try:
        for model, batch, steps in cases:
            for opt in ("lamb", "lamb_released"):
                for variant in ("intra_cross", "cross_only"):
                    got = {k: _count(t, model, batch, steps, opt, variant) for k, t in trees.items()}
                    row = f"{model:9s} {variant:11s} {opt:13s}"
                    for k, r in got.items():
                        o, sq = r["ops_per_step"], r["syncs_per_nonlogging_step"]
                        row += (f" | {k}: ops/step {o['total']:7.1f} (optimizer {o.get('optimizer', 0):6.1f}, "
                                f"fwd+bwd {o.get('forward_backward', 0):6.1f}, render {o.get('render', 0):5.1f}), "
                                f"syncs/step {sq['total']:4.1f}")
                    if "before" in got:
                        b, n = got["before"]["ops_per_step"], got["now"]["ops_per_step"]
                        row += (f" | ratio ops {n['total'] / b['total']:.2f}, optimizer ops "
                                f"{n.get('optimizer', 0) / max(1e-9, b.get('optimizer', 0)):.3f}")
                    print(row, flush=True)
                    print("  sync sites now:", got["now"]["sync_sites"], flush=True)
    finally:
        if tmp is not None:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tmp / "tree")], check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--mini-batch", type=int, default=32)
    ap.add_argument("--vitb-batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-vitb", action="store_true")
    ap.add_argument("--memory", action="store_true", help="peak RSS on pools of 1x and 8x samples")
    ap.add_argument("--data-share", action="store_true", help="share of step time outside the encoders")
    ap.add_argument("--ops", action="store_true", help="kernel-launching ops and host syncs per step")
    ap.add_argument("--before", default=None, help="with --ops: also count at this git revision")
    ap.add_argument("--pool", type=int, default=64, help="samples of the 1x pool")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers (memory / data-share modes)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        what, *rest = json.loads(args.child)
        if what == "stream":
            manifest, model_name, steps, batch, workers, threads = rest
            torch.set_num_threads(threads)
            print(json.dumps(run_pool(manifest, model_name, steps, batch, workers)))
        else:
            print(json.dumps(load_whole_split(rest[0])))
        return
    torch.set_num_threads(args.threads)
    if args.ops:
        ops_mode(args.before, args.skip_vitb)
        return
    if args.memory or args.data_share:
        if args.memory:
            memory_mode(args.pool, args.steps, args.mini_batch, args.workers, args.threads)
        if args.data_share:
            data_share_mode(args.pool, args.steps, args.vitb_batch, args.mini_batch, args.workers, args.threads,
                            args.skip_vitb)
        return
    rows = [bench("c2p-mini", args.mini_batch, args.steps)]
    if not args.skip_vitb:
        rows.append(bench("ViT-B-32", args.vitb_batch, args.steps))
    print(f"{'model':<10} {'batch':>5} {'img':>4} {'step ms':>8} {'samples/s':>9} {'data ms':>8} "
          f"{'render ms':>9} {'outside':>8}")
    for r in rows:
        print(f"{r['model']:<10} {r['batch']:>5} {r['image']:>4} {1000 * r['step_s']:>8.0f} "
              f"{r['samples_per_s']:>9.1f} {1000 * r['data_s']:>8.1f} {1000 * r['render_s']:>9.1f} "
              f"{100 * r['outside_share']:>7.1f}%")
    if len(rows) == 2:
        print(f"ratio mini / ViT-B-32 samples/s: {rows[0]['samples_per_s'] / rows[1]['samples_per_s']:.1f}x")


if __name__ == "__main__":
    main()
