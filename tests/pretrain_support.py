"""Shared pre-training fixtures: a tiny depth splatter, a four-class blob pool in memory and as shards.

Imported by the pre-training tests (``from pretrain_support import …``); the tiny CLIP and its text side are
the ``tiny`` fixture of ``conftest.py``.
"""

from __future__ import annotations

import math

import torch

from clip2point import shards
from clip2point.configs import PretrainConfig
from clip2point.train.pretrain_data import TensorPretrainSource
from clip2point.train.selection import EvalSet

SIZE = 32


def fake_render(points: torch.Tensor, view_idx: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
    """A tiny orthographic min-depth splatter: rotate about y by 36°·view, scale by 1/distance."""
    ang = view_idx.float() * (2 * math.pi / 10)
    c, s = torch.cos(ang)[:, None], torch.sin(ang)[:, None]
    x = c * points[..., 0] + s * points[..., 2]
    z = -s * points[..., 0] + c * points[..., 2]
    y = points[..., 1]
    d = distance.view(-1, 1).float()
    col = ((x / d + 1) * SIZE / 2).long().clamp(0, SIZE - 1)
    row = ((1 - y / d) * SIZE / 2).long().clamp(0, SIZE - 1)
    depth = ((z / d + 1) / 2).clamp(0, 1) * 200 / 255
    b = points.shape[0]
    flat = torch.full((b, SIZE * SIZE), 1.0)
    flat.scatter_reduce_(1, row * SIZE + col, depth, reduce="amin")
    return flat.view(b, SIZE, SIZE)


def make_data(m: int = 16, n: int = 128, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(m) % 4
    # four classes of anisotropic blobs, so depth maps and "RGB" renders carry the class
    scales = torch.tensor([[0.8, 0.2, 0.2], [0.2, 0.8, 0.2], [0.2, 0.2, 0.8], [0.5, 0.5, 0.5]])
    points = torch.randn(m, n, 3, generator=g) * scales[labels][:, None, :]
    rgb = torch.empty(m, 10, SIZE, SIZE, 3, dtype=torch.uint8)
    for v in range(10):
        dm = fake_render(points, torch.full((m,), v), torch.ones(m))
        tint = torch.stack([labels == k for k in range(3)], -1).float() * 80
        rgb[:, v] = ((1 - dm)[..., None] * 170 + tint[:, None, None, :]).clamp(0, 255).to(torch.uint8)
    val_depth = torch.stack([fake_render(points, torch.full((m,), v), torch.ones(m)) for v in (0, 5)], 1)
    return TensorPretrainSource(points, rgb, labels), EvalSet(depth=val_depth, labels=labels)



M = 16


def sample_ids(m: int = M) -> list[str]:
    return [f"c{i % 4}/obj.{(i * 7) % m:03d}" for i in range(m)]


def write_pool(root, ranks: int = 1, maxcount: int = 5, m: int = M, val: int = 8):
    """The make_data() pool as shards, laid out as ``ranks`` render ranks would (merged manifest)."""
    data, _ = make_data(m=m)
    ids = sample_ids(m)
    samples = [{"id": ids[i], "points": data.points[i].numpy(), "label": int(data.labels[i]),
                "rgb": data.rgb[i].numpy()} for i in range(m)]
    vdata, _ = make_data(m=val, seed=1)
    vsamples = [{"id": f"val/{i:03d}", "points": vdata.points[i].numpy(), "label": int(vdata.labels[i])}
                for i in range(val)]
    parts = []
    for r in range(ranks):
        mine, vmine = samples[::-1][r::ranks], vsamples[r::ranks]
        parts.append({"dataset": "toy", "rank": r, "class_names": ["a", "b", "c", "d"], "splits": {
            "train": {"count": len(mine), "shards": shards.write_shards(mine, root, f"train-r{r:03d}", maxcount)},
            "val": {"count": len(vmine), "shards": shards.write_shards(vmine, root, f"val-r{r:03d}", maxcount)}}})
    shards.write_manifest(root / "manifest.json", shards.merge_manifests(parts))
    return root / "manifest.json"


def pretrain_cfg(**kw) -> PretrainConfig:
    """A 2-epoch run of batch 8 on the blob pool (LAMB, warmup 1, τ 0.1, σ lr 0.05); ``kw`` overrides."""
    return PretrainConfig(**{**dict(epochs=2, batch_size=8, lr=3e-3, warmup_steps=1, temperature=0.1, sigma_lr=0.05,
                                    optimizer="lamb", eval_batch_size=64), **kw})


def short_cfg(**kw) -> PretrainConfig:
    """:func:`pretrain_cfg` capped at 5 steps."""
    return pretrain_cfg(**{"max_steps": 5, **kw})
