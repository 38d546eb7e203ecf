"""Multi-view features of point clouds: render depth maps (Eq. 12–14), encode every view (§3.3, §4).

The downstream tasks never train an encoder, so the view features ``{F_v^D}_{v=1}^N`` of every cloud are
computed once per encoder and reused by zero-shot (Eq. 15) and every adapter (Eq. 2–4, 16–19).
:func:`encode_splits` renders the union of several view sets once per batch (views the sets share are
rendered and encoded once, :func:`clip2point.render.views.union_views`) and slices each set out of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from tqdm import tqdm

from clip2point.render.views import ViewSet, union_views

#: features are unit vectors; fp16 halves the cache at ~1e-3 relative error
STORE_DTYPE = torch.float16

Encoder = Callable[[torch.Tensor], torch.Tensor]


def compute_features(
    points: torch.Tensor,
    render: Callable[[torch.Tensor], torch.Tensor],
    where: Mapping[str, Sequence[int]],
    encoders: Mapping[str, Encoder],
    batch_size: int,
    desc: str = "encode",
) -> dict[str, dict[str, torch.Tensor]]:
    """Render ``points (M,N,3)`` batch by batch, encode with every encoder, slice per view set.

    ``render``: points ``(B,N,3)`` → depth ``(B,U,H,W)`` over the union of views; ``where[name]`` lists the
    union positions of view set ``name``; ``encoders[key]``: depth ``(B,U,H,W)`` → ``(B,U,C)``.
    Returns ``{encoder: {view_set: (M,V,C) STORE_DTYPE}}``.
    """
    chunks: dict[str, list[torch.Tensor]] = {k: [] for k in encoders}
    for i in tqdm(range(0, points.shape[0], batch_size), desc=desc, leave=False):
        depth = render(points[i : i + batch_size])
        for key, enc in encoders.items():
            chunks[key].append(enc(depth).float().cpu())
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, parts in chunks.items():
        full = torch.cat(parts) if parts else torch.zeros(0, 0, 0)
        out[key] = {name: full[:, list(pos)].to(STORE_DTYPE).contiguous() for name, pos in where.items()}
    return out


def encode_splits(
    clouds: Mapping[str, torch.Tensor],
    view_sets: Mapping[str, ViewSet],
    distance: float,
    render: Callable[[torch.Tensor, ViewSet], torch.Tensor],
    encoders: Mapping[str, Encoder],
    batch_size: int,
    desc: str = "encode",
) -> tuple[dict[str, dict[str, dict[str, torch.Tensor]]], ViewSet, dict[str, list[int]]]:
    """Every encoder's features of every split's clouds for every view set.

    ``render(points, view_set)`` renders depth maps; the union of ``view_sets`` is rendered once per batch.
    Returns ``feats[split][encoder][view_set]`` ``(M,V,C)``, the union ViewSet and each set's positions in it.
    """
    union, where = union_views(view_sets, distance)
    feats = {
        split: compute_features(pts, lambda p: render(p, union), where, encoders, batch_size,
                                desc=f"{desc}/{split}")
        for split, pts in clouds.items()
    }
    return feats, union, where
