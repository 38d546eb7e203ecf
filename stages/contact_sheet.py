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

import argparse
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw

from clip2point import shards
from clip2point.render.depth import DepthConfig, render_depth
from pipeline import paths
from pipeline.artifacts import atomic_path
from pipeline.params import load_params

THUMB = 64
LABEL_W = 110


def pick(manifest: dict, split: str, per_class: int) -> dict:
    """Up to ``per_class`` samples of each class from one split (in shard order)."""
    taken: dict[int, list[dict]] = {}
    for s in shards.iter_shards(shards.manifest_urls(manifest, split), split_by_node=False,
                                split_by_worker=False):
        row = taken.setdefault(s["label"], [])
        if len(row) < per_class:
            row.append(s)
    return taken


def compose(rows: list[tuple[str, np.ndarray | None, np.ndarray]], thumb: int = THUMB) -> Image.Image:
    """Rows of (label, rgb (V,H,W,3) uint8 or None, depth (V,H,W) float in [0,1]) → one image."""
    nv = rows[0][2].shape[0]
    has_rgb = any(r[1] is not None for r in rows)
    cols = nv * (2 if has_rgb else 1)
    sheet = Image.new("RGB", (LABEL_W + cols * thumb + (8 if has_rgb else 0), len(rows) * thumb), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, rgb, depth) in enumerate(rows):
        y = i * thumb
        draw.text((4, y + thumb // 2 - 6), label[:16], fill=(0, 0, 0))
        x = LABEL_W
        if has_rgb:
            for v in range(nv):
                if rgb is not None:
                    sheet.paste(Image.fromarray(rgb[v]).resize((thumb, thumb)), (x, y))
                x += thumb
            x += 8
        for v in range(nv):
            g = (np.clip(depth[v], 0, 1) * 255).astype(np.uint8)
            sheet.paste(Image.fromarray(g).convert("RGB").resize((thumb, thumb)), (x, y))
            x += thumb
    return sheet


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stages.contact_sheet", description=__doc__.splitlines()[0])
    ap.add_argument("dataset", nargs="?", default=None, help="dataset name (default: data.pretrain.name)")
    args = ap.parse_args(argv)
    try:
        params = load_params()
        name = args.dataset or params.data.pretrain.name
        manifest = shards.read_manifest(paths.manifest(name))
        splits = [s for s in manifest["splits"] if manifest["splits"][s]["count"] > 0]
        if not splits:
            raise shards.ShardError(f"manifest {paths.manifest(name)}: no samples")
        split = "train" if "train" in splits else splits[0]
        taken = pick(manifest, split, params.render.contact_sheet_per_class)
        d = params.depth
        cfg = DepthConfig(image_size=d.image_size, dilation=d.dilation, mode=d.mode,
        projection=d.projection)
        names = manifest.get("class_names") or []
        rows = []
        for label in sorted(taken):
            samples = taken[label]
            pts = torch.from_numpy(np.stack([s["points"] for s in samples]))
            depth = render_depth(pts, manifest["views"], d.distance, cfg).numpy()
            for s, dm in zip(samples, depth, strict=True):
                rows.append((names[label] if label < len(names) else str(label), s["rgb"], dm))
        if not rows:
            raise shards.ShardError(f"manifest {paths.manifest(name)}: split {split!r} yielded no samples")
        with atomic_path(paths.contact_sheet()) as tmp:
            compose(rows).save(tmp, format="PNG")
    except (shards.ShardError, ValueError, KeyError) as e:
        print(f"contact_sheet: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
