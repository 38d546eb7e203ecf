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
"""

from __future__ import annotations

import argparse
import time

import torch

from clip2point.models.clip import create_clip, depth_to_clip_input, image_size, rgb_to_clip_input
from clip2point.render.depth import DepthConfig
from clip2point.render.views import VIEW_SETS
from clip2point.train.distributed import DistInfo
from clip2point.train.optim import build_optimizer, param_groups
from clip2point.train.pretrain import DepthPretrainModel, ViewDepthRenderer, _jitter, step_loss


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
        d1, d2 = _jitter(1.0, 0.1, batch, g), _jitter(1.0, 0.1, batch, g)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--mini-batch", type=int, default=32)
    ap.add_argument("--vitb-batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-vitb", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
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
