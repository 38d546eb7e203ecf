"""Zero-shot accuracy of the run's CLIP on RGB renders, streamed from a dataset's shards.

Memory is bounded by ``chunk`` samples whatever the split's size (ShapeNet's validation RGB at 224² is
≈ 31 GB: it is never held at once). Used by ``clip_bootstrap`` (the pre-training pool's validation split)
and by ``rgb_zeroshot@<benchmark>`` (each benchmark's test split, in that benchmark's own stage, so adding
a benchmark never invalidates the CLIP).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from clip2point import shards
from clip2point.models.clip import text_features
from clip2point.train.bootstrap import RgbSet, rgb_zero_shot
from pipeline import paths


class NoRgbError(ValueError):
    """The split has no RGB renders (a point-cloud dataset such as ScanObjectNN: nothing to render from)."""


def stream_rgb_zero_shot(model: nn.Module, tokenizer: Any, dataset: str, split: str,
                         templates: list[str], chunk: int = 64) -> dict[str, Any]:
    """``{n, chance, rgb_per_view, rgb_multi_view}`` over a whole split, read ``chunk`` samples at a time.

    Raises ``ValueError`` when the split is empty or has no RGB renders, :class:`shards.ShardError` when a
    shard cannot be read whole, holds another number of samples than the manifest says, or holds a sample
    that does not decode (an accuracy over the samples that happen to decode is never reported).
    """
    m = shards.read_manifest(paths.manifest(dataset))
    names = list(m.get("class_names", []))
    text = text_features(model, tokenizer, names, templates)
    stats = shards.ReadStats()
    n = 0
    per_view = multi = 0.0
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal n, per_view, multi
        if batch[0]["rgb"] is None:
            raise NoRgbError(f"{dataset}/{split} has no RGB renders (a point-cloud dataset: no meshes to render)")
        rgb = torch.from_numpy(np.stack([s["rgb"] for s in batch]))
        labels = torch.tensor([s["label"] for s in batch], dtype=torch.long)
        acc = rgb_zero_shot(model.visual, RgbSet(rgb, labels), text, batch_size=chunk)
        per_view += acc["per_view"] * len(batch)
        multi += acc["multi_view"] * len(batch)
        n += len(batch)
        batch.clear()

    urls = shards.manifest_urls(m, split)
    for sample in shards.iter_shards(urls, stats=stats, counts=shards.manifest_counts(m, split),
                                     expect=shards.expectation(m, split)):
        if stats.skipped:
            break
        batch.append(sample)
        if len(batch) == chunk:
            flush()
    if stats.skipped:
        raise shards.ShardError(stats.errors[0])
    if batch:
        flush()
    if n == 0:
        raise ValueError(f"{dataset}/{split} is empty in {paths.manifest(dataset)}")
    return {"n": n, "chance": 1.0 / len(names), "rgb_per_view": per_view / n, "rgb_multi_view": multi / n}
