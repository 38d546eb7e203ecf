"""Stage ``contact_sheet``: a PNG for people — per class a few shapes, RGB views beside their depth maps.

    python -m stages.contact_sheet [dataset_name]     # default: params.data.pretrain.name

Reads ``pipeline.paths.manifest(name)`` and its shards (the first split in manifest order that has samples,
``train`` preferred), takes ``render.contact_sheet_per_class`` shapes per class, renders their depth maps
from the stored points with ``params.depth`` (image size, dilation, mode, projection, distance) at the
manifest's view set, and writes ``pipeline.paths.contact_sheet()`` atomically. One row per shape: the
class name, then the RGB views (if the dataset has them), then the depth views. A separate stage from
``render`` so that changing depth params redraws the sheet without re-rendering RGB.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch

from clip2point import shards
from clip2point.render.depth import render_depth
from clip2point.report import contact_sheet
from pipeline import paths
from pipeline.artifacts import atomic_path
from pipeline.params import load_params
from pipeline.stage import depth_config, one_argument_main


def pick(manifest: dict[str, Any], split: str, per_class: int) -> dict[int, list[dict[str, Any]]]:
    """Up to ``per_class`` samples of each class from one split (in shard order)."""
    taken: dict[int, list[dict[str, Any]]] = {}
    for s in shards.iter_shards(shards.manifest_urls(manifest, split), counts=shards.manifest_counts(manifest, split),
                                expect=shards.expectation(manifest, split)):
        row = taken.setdefault(s["label"], [])
        if len(row) < per_class:
            row.append(s)
    return taken


def run(dataset: str | None) -> None:
    params = load_params()
    name = dataset or params.data.pretrain.name
    manifest = shards.read_manifest(paths.manifest(name))
    splits = [s for s in manifest["splits"] if manifest["splits"][s]["count"] > 0]
    if not splits:
        raise shards.ShardError(f"manifest {paths.manifest(name)}: no samples")
    split = "train" if "train" in splits else splits[0]
    taken = pick(manifest, split, params.render.contact_sheet_per_class)
    cfg = depth_config(params.depth)
    names = manifest.get("class_names") or []
    rows = []
    for label in sorted(taken):
        samples = taken[label]
        pts = torch.from_numpy(np.stack([s["points"] for s in samples]))
        depth = render_depth(pts, manifest["views"], params.depth.distance, cfg).numpy()
        for s, dm in zip(samples, depth, strict=True):
            rows.append((names[label] if label < len(names) else str(label), s["rgb"], dm))
    if not rows:
        raise shards.ShardError(f"manifest {paths.manifest(name)}: split {split!r} yielded no samples")
    with atomic_path(paths.contact_sheet()) as tmp:
        contact_sheet(rows).save(tmp, format="PNG")


def main(argv: list[str] | None = None) -> int:
    return one_argument_main("contact_sheet", __doc__, argv, run, default=None, user_errors=(KeyError,),
                             help="dataset name (default: data.pretrain.name)")


if __name__ == "__main__":
    sys.exit(main())
