"""Stage ``features``: encode every downstream cloud once with every encoder (paper §3.3, §4).

``python -m stages.features <dataset> [--variants intra_cross cross_only rgb_control] [--batch-size B]``

Reads ``points_table(dataset)`` (all its splits), renders depth maps (``params.depth``) for the view sets the
downstream stages use (``params.adapter.views`` for the adapters, ``params.zeroshot.views`` for zero-shot),
encodes them with the run's CLIP visual encoder (key ``clip``: "without pretraining") and with every
pretrained depth encoder ``<variant>-seed<seed>`` (``params.pretrain.seeds``), and caches the L2-normalised
view features plus the class text features (``params.clip.templates``) under ``features_dir(dataset)``.
This is the only downstream stage that runs encoders: adapter parameters never trigger a re-encode.

Views that the two sets share (the same camera frame and distance, e.g. the front view, or ``(180, 0)`` and
``(0, 180)`` which put the camera at the same place with the same image-up) are rendered and encoded once.

Layout of ``features_dir(dataset)`` (read it with :class:`FeatureStore`)::

    meta.json           dataset, class_names, templates, encoders, view_sets {name: V}, splits {name: M},
                        dim, logit_scale (CLIP's), depth settings
    index.parquet       id, split, label, label_name — row order of the feature tensors within each split
    text.pt             (K, C) float32 class text features (CLIP text tower; shared by every encoder)
    <encoder>/<views>.pt  {split: (M, V, C) float16}
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

VARIANTS = ("intra_cross", "cross_only", "rgb_control")
CLIP_KEY = "clip"
STORE_DTYPE = torch.float16  # features are unit vectors; fp16 halves the cache at ~1e-3 relative error


def encoder_key(variant: str, seed: int) -> str:
    """Key of a pretrained depth encoder in the feature store, e.g. ``intra_cross-seed0``."""
    return f"{variant}-seed{seed}"


class StageError(RuntimeError):
    """Bad input for a downstream stage; ``main`` prints it as one line and exits 1."""


# ---------------------------------------------------------------------------------------------- reading


@dataclass
class FeatureStore:
    """Read access to a feature cache written by this stage."""

    root: Path
    meta: dict[str, Any]
    index: pa.Table

    @classmethod
    def open(cls, root: str | Path) -> FeatureStore:
        root = Path(root)
        if not (root / "meta.json").is_file():
            raise StageError(f"no feature cache at {root}: run `python -m stages.features <dataset>` first")
        meta = json.loads((root / "meta.json").read_text())
        return cls(root, meta, pq.read_table(root / "index.parquet"))

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    @property
    def encoders(self) -> list[str]:
        return list(self.meta["encoders"])

    @property
    def logit_scale(self) -> float:
        return float(self.meta.get("logit_scale", 100.0))

    def text(self) -> torch.Tensor:
        return torch.load(self.root / "text.pt", weights_only=True).float()

    def split(self, split: str) -> pa.Table:
        """Index rows (id, label, label_name) of one split, in feature-row order."""
        if split not in self.meta["splits"]:
            raise StageError(f"{self.root} has no '{split}' split (has: {sorted(self.meta['splits'])})")
        mask = pc.equal(self.index.column("split"), split)
        return self.index.filter(mask)

    def labels(self, split: str) -> np.ndarray:
        return self.split(split).column("label").to_numpy().astype(np.int64)

    def ids(self, split: str) -> list[str]:
        return self.split(split).column("id").to_pylist()

    def features(self, encoder: str, views: str, split: str) -> torch.Tensor:
        """``(M, V, C)`` float32 view features of one encoder, view set and split."""
        if encoder not in self.meta["encoders"]:
            raise StageError(f"{self.root} has no features of encoder '{encoder}' (has: {self.encoders})")
        if views not in self.meta["view_sets"]:
            raise StageError(f"{self.root} has no view set '{views}' (has: {sorted(self.meta['view_sets'])})")
        blob = torch.load(self.root / encoder / f"{views}.pt", weights_only=True)
        return blob[split].float()


# ---------------------------------------------------------------------------------------------- computing


def _view_keys(view_set: Any, distance: float) -> list[tuple[float, ...]]:
    """One hashable key per view: its rounded camera frame and distance (equal keys render equal maps)."""
    from clip2point.render.views import camera_frames

    frames = camera_frames(view_set.elev, view_set.azim)
    dists = view_set.dist or (distance,) * len(view_set)
    return [
        tuple(np.round(f.reshape(-1), 9).tolist()) + (round(float(d), 9),)
        for f, d in zip(frames, dists, strict=True)
    ]


def union_views(view_sets: Mapping[str, Any], distance: float) -> tuple[Any, dict[str, list[int]]]:
    """The distinct views of several view sets as one ViewSet, and each set's view positions in it."""
    from clip2point.render.views import ViewSet

    keys: list[tuple[float, ...]] = []
    elev: list[float] = []
    azim: list[float] = []
    dist: list[float] = []
    where: dict[str, list[int]] = {}
    for name, vs in view_sets.items():
        pos = []
        for i, key in enumerate(_view_keys(vs, distance)):
            if key not in keys:
                keys.append(key)
                elev.append(vs.elev[i])
                azim.append(vs.azim[i])
                dist.append(vs.dist[i] if vs.dist else distance)
            pos.append(keys.index(key))
        where[name] = pos
    return ViewSet(tuple(elev), tuple(azim), tuple(dist)), where


def compute_features(
    points: torch.Tensor,
    render: Callable[[torch.Tensor], torch.Tensor],
    where: Mapping[str, Sequence[int]],
    encoders: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
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


def read_points_table(path: Path) -> tuple[pa.Table, dict[str, torch.Tensor], list[str]]:
    """The points table, per-split clouds ``(M,N,3)`` and the class names (indexed by label).

    The sample stage already converted every dataset to the renderer's y-up frame, so the clouds are used
    as stored (rotating them again by the dataset's ``up_axis`` tipped z-up datasets over: issue 10).
    """
    from clip2point.schema import table_points

    if not path.is_file():
        raise StageError(f"points table not found: {path} (run the sample stage first)")
    table = pq.read_table(path, columns=["id", "split", "label", "label_name", "points"])
    if len(table) == 0:
        raise StageError(f"points table {path} is empty")
    names = table.column("label_name").to_pylist()
    pairs = sorted(set(zip(table.column("label").to_pylist(), names, strict=True)))
    labels = [p[0] for p in pairs]
    if labels != list(range(len(labels))):
        raise StageError(f"{path}: labels must be 0..K-1, each with one name; got {pairs[:20]}")
    class_names = [p[1] for p in pairs]
    clouds: dict[str, torch.Tensor] = {}
    for split in sorted(set(table.column("split").to_pylist())):
        rows = table.filter(pc.equal(table.column("split"), split))
        clouds[split] = torch.as_tensor(table_points(rows)).float()
    return table, clouds, class_names


def write_store(
    out: Path,
    meta: dict[str, Any],
    index: pa.Table,
    text: torch.Tensor,
    feats: Mapping[str, Mapping[str, Mapping[str, torch.Tensor]]],
) -> None:
    """Write a complete cache into ``out`` (an empty directory); ``feats[split][encoder][views]``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    pq.write_table(index, out / "index.parquet")
    torch.save(text.float().cpu().contiguous(), out / "text.pt")
    for enc in meta["encoders"]:
        (out / enc).mkdir(exist_ok=True)
        for views in meta["view_sets"]:
            torch.save({split: feats[split][enc][views] for split in feats}, out / enc / f"{views}.pt")


def build_store(
    out: Path,
    dataset: str,
    table: pa.Table,
    clouds: Mapping[str, torch.Tensor],
    class_names: Sequence[str],
    view_sets: Mapping[str, Any],
    distance: float,
    render: Callable[[torch.Tensor, Any], torch.Tensor],
    encoders: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
    text: torch.Tensor,
    batch_size: int,
    extra_meta: Mapping[str, Any] | None = None,
) -> None:
    """Compute every encoder's features of every split and write the cache to ``out``.

    ``render(points, view_set)`` renders depth maps; the union of ``view_sets`` is rendered once per batch.
    """
    union, where = union_views(view_sets, distance)
    feats: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
    index_parts = []
    for split, pts in clouds.items():
        feats[split] = compute_features(
            pts, lambda p: render(p, union), where, encoders, batch_size, desc=f"{dataset}/{split}"
        )
        rows = table.filter(pc.equal(table.column("split"), split))
        index_parts.append(rows.select(["id", "split", "label", "label_name"]))
    any_split = next(iter(feats.values()))
    dim = int(next(iter(next(iter(any_split.values())).values())).shape[-1])
    meta = {
        "dataset": dataset,
        "class_names": list(class_names),
        "encoders": list(encoders),
        "view_sets": {name: len(pos) for name, pos in where.items()},
        "rendered_views": len(union),
        "splits": {split: int(pts.shape[0]) for split, pts in clouds.items()},
        "dim": dim,
        **dict(extra_meta or {}),
    }
    write_store(out, meta, pa.concat_tables(index_parts), text, feats)


# ---------------------------------------------------------------------------------------------- main


def _load_encoders(
    params: Any, variants: Sequence[str], device: str = "cpu"
) -> tuple[dict[str, torch.nn.Module], Any, Any]:
    """The run's CLIP (model, tokenizer) and ``{key: visual encoder}`` for CLIP and every pretrained run."""
    from pipeline import models

    clip_model, tokenizer = models.load_clip(device)
    encoders: dict[str, torch.nn.Module] = {CLIP_KEY: clip_model.visual}
    for variant in variants:
        for seed in params.pretrain.seeds:
            enc = models.load_depth_encoder(variant, seed, clip_model=clip_model)
            encoders[encoder_key(variant, seed)] = enc
    return encoders, clip_model, tokenizer


def run(dataset: str, variants: Sequence[str], batch_size: int | None = None, device: str = "auto") -> Path:
    """Build the feature cache of ``dataset`` with the real encoders; returns its directory."""
    from clip2point.models.clip import encode_views, text_features
    from clip2point.render.depth import DepthConfig, render_depth
    from clip2point.render.views import get_views
    from pipeline.artifacts import atomic_dir
    from pipeline.params import load_params
    from pipeline.paths import features_dir, points_table

    params = load_params()
    ds = params.data.benchmark(dataset)
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise StageError(f"unknown pretraining variant(s) {bad}; known: {list(VARIANTS)}")
    table, clouds, class_names = read_points_table(points_table(dataset))
    wanted = dict.fromkeys([params.adapter.views, params.zeroshot.views])
    view_sets = {name: get_views(name) for name in wanted}
    d = params.depth
    cfg = DepthConfig(image_size=d.image_size, dilation=d.dilation, mode=d.mode, projection=d.projection)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    encoders, clip_model, tokenizer = _load_encoders(params, variants, device)
    bs = batch_size or params.zeroshot.batch_size
    fns = {k: (lambda depth, m=m: encode_views(m, depth, bs)) for k, m in encoders.items()}
    with torch.no_grad():
        text = text_features(clip_model, tokenizer, class_names, params.clip.templates)
        ls = getattr(clip_model, "logit_scale", None)
        scale = float(ls.exp().clamp(max=100.0)) if ls is not None else 100.0
        extra = {
            "templates": list(params.clip.templates),
            "clip_model": params.clip.model,
            "logit_scale": scale,
            "depth": {"image_size": d.image_size, "dilation": d.dilation, "mode": d.mode,
                      "projection": d.projection, "distance": d.distance},
            "up_axis": ds.up_axis,
            "pretrain_seeds": list(params.pretrain.seeds),
        }
        out = features_dir(dataset)
        with atomic_dir(out) as tmp:
            build_store(tmp, dataset, table, clouds, class_names, view_sets, d.distance,
                        lambda p, vs: render_depth(p.to(device), vs, None, cfg), fns, text, bs, extra)
    return out


def run_stage(name: str, fn: Callable[[], Any]) -> int:
    """Run a stage body: bad input → one line on stderr and exit 1 (``CLIP2POINT_DEBUG=1`` re-raises)."""
    import os

    from pipeline.params import ParamsError

    try:
        fn()
    except (StageError, ParamsError, ValueError, KeyError, OSError, RuntimeError) as e:
        if os.environ.get("CLIP2POINT_DEBUG"):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"{name}: {msg}", file=sys.stderr)
        return 1
    return 0


def _report(out: Path) -> None:
    print(f"features: wrote {out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stages.features", description=__doc__.split("\n")[0])
    ap.add_argument("dataset", help="a downstream dataset name (params.yaml data.benchmarks)")
    ap.add_argument("--variants", nargs="*", default=None,
                    help="pretraining variants to encode (default: params pretrain.variants)")
    ap.add_argument("--batch-size", type=int, default=None, help="clouds per render/encode batch")
    ap.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    args = ap.parse_args(argv)
    def _run() -> None:
        from pipeline.params import load_params

        variants = args.variants if args.variants is not None else list(load_params().pretrain.variants)
        _report(run(args.dataset, variants, args.batch_size, args.device))

    return run_stage("features", _run)


if __name__ == "__main__":
    sys.exit(main())
