"""The work of the ``image_features`` stage: the frozen-image-feature cache of the pre-training pool.

CLIP's image encoder E_i is frozen during pre-training and the RGB views are fixed renders, so E_i's
feature of a (sample, view) is the same on every step, run and seed: it is computed once here, per (CLIP
weights, pool, view set, image size, precision) — exactly the stage's DVC dependencies — and
``intra_cross`` / ``cross_only`` pre-training reads it instead of decoding and encoding RGB renders
(``rgb_control`` trains E_i, so it keeps the images).

Layout (``paths.image_features_dir(pool)``): ``features.pt``, a (M, V, C) float32 tensor in the training
split's index order (sorted sample keys, :func:`clip2point.shards.index_split`), unnormalised, as
:func:`clip2point.train.objectives.frozen_image_features` returns it; ``meta.json``: the keys' digest, M, V,
C, the precision, the CLIP pointer. :func:`load` checks all of them against the run that reads it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from pipeline import paths
from pipeline.artifacts import load_torch
from pipeline.stage import StageError

FEATURES = "features.pt"
META = "meta.json"


def keys_digest(keys: Any) -> str:
    """sha256 of the training split's sample keys in index order."""
    return hashlib.sha256("\n".join(str(k) for k in keys).encode()).hexdigest()


def compute(frozen: torch.nn.Module, index: Any, precision: str, device: torch.device, batch_size: int = 256,
            progress: bool = True) -> torch.Tensor:
    """(M, V, C) E_i features of every sample and RGB view of a shard index, at ``precision``."""
    from clip2point.models.clip import image_size
    from clip2point.precision import encoder_precision
    from clip2point.train.objectives import frozen_image_features

    frozen = frozen.to(device).eval()
    size = image_size(frozen)
    n, v = len(index), index.rgb_views
    per = max(1, batch_size // max(1, v))
    out: list[torch.Tensor] = []
    for start in tqdm(range(0, n, per), desc="image features", unit="batch", disable=not progress,
                      leave=False):
        rows = range(start, min(n, start + per))
        rgb = torch.from_numpy(np.stack([index.sample(i, with_points=False)["rgb"] for i in rows]))
        flat = rgb.reshape(-1, *rgb.shape[2:]).to(device)
        with encoder_precision(device, precision):
            f = frozen_image_features(frozen, flat, size)
        out.append(f.float().cpu().view(rgb.shape[0], v, -1))
    return torch.cat(out) if out else torch.zeros(0, v, 0)


def write(pool: str, features: torch.Tensor, keys: Any, precision: str, clip: dict[str, Any]) -> Path:
    """Write the cache atomically (a temporary folder renamed over ``image_features_dir(pool)``)."""
    from clip2point.train.checkpoint import save_atomic
    from pipeline.artifacts import atomic_dir

    out = paths.image_features_dir(pool)
    meta = {"pool": pool, "split": "train", "samples": int(features.shape[0]), "views": int(features.shape[1]),
            "dim": int(features.shape[2]), "precision": precision, "keys_sha256": keys_digest(keys), "clip": clip}
    with atomic_dir(out) as tmp:
        save_atomic(features.contiguous(), tmp / FEATURES)
        (tmp / META).write_text(json.dumps(meta, indent=2) + "\n")
    return out


def load(pool: str, keys: Any, n_views: int, precision: str, clip: dict[str, Any]) -> torch.Tensor | None:
    """The cache of ``pool`` if it was written (None otherwise); a cache of another pool order, view count,
    precision or CLIP is refused in one line naming its folder."""
    d = paths.image_features_dir(pool)
    if not (d / META).is_file():
        return None
    meta = json.loads((d / META).read_text())
    want = {"keys_sha256": keys_digest(keys), "views": n_views, "precision": precision, "clip": clip}
    bad = [k for k, v in want.items() if meta.get(k) != v]
    if bad:
        raise StageError(f"frozen image features {d} do not belong to this run ({', '.join(bad)} differ): "
                         "rerun `dvc repro image_features`")
    feats = load_torch(d / FEATURES, "frozen image features")
    if tuple(feats.shape[:2]) != (meta["samples"], n_views):
        raise StageError(f"frozen image features {d / FEATURES}: shape {tuple(feats.shape)} does not match "
                         f"its meta.json ({meta['samples']} samples, {n_views} views)")
    return feats
