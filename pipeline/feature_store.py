"""The feature cache of a downstream dataset: per-view encoder features, written once, read by every
downstream stage (zero-shot, Eq. 15; adapters, Eq. 2–4 and 16–19).

Layout of ``pipeline.paths.features_dir(dataset)`` (read it with :class:`FeatureStore`)::

    meta.json           dataset, class_names, templates, encoders, view_sets {name: V}, splits {name: M},
                        dim, logit_scale (CLIP's), depth settings
    index.parquet       id, split, label, label_name — row order of the feature tensors within each split
    text.pt             (K, C) float32 class text features (CLIP text tower; shared by every encoder)
    <encoder>/<views>.pt  {split: (M, V, C) float16}
    <encoder>/<views>@resample.pt  {"train@r<k>": (M_train, V, C) float16}, k < R: only with
                        ``adapter.resample_epochs`` R > 0 (meta ``resample``: draws, views, seed): the
                        features of R random point draws of each training cloud from its pool
                        (:func:`read_train_draws`), rows as the ``train`` split's

Encoders are named by :class:`pipeline.keys.EncoderKey` (``clip``, ``intra_cross-seed0``, ...).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from clip2point.features import encode_splits
from clip2point.render.views import ViewSet
from pipeline.artifacts import load_torch
from pipeline.stage import StageError


@dataclass
class FeatureStore:
    """Read access to a feature cache (layout in the module docstring)."""

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
        return load_torch(self.root / "text.pt", "class text features").float()

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
        blob = load_torch(self.root / encoder / f"{views}.pt", "feature cache")
        return blob[split].float()

    def draws(self, encoder: str, views: str) -> list[torch.Tensor]:
        """The R ``(M_train, V, C)`` float32 features of the training split's resampled draws (draw k at k)."""
        info = self.meta.get("resample")
        if not info or info["views"] != views:
            raise StageError(f"{self.root} holds no resampled training features for view set '{views}' "
                             "(set adapter.resample_epochs > 0 and re-run the features stage)")
        blob = load_torch(self.root / encoder / f"{views}@resample.pt", "feature cache")
        return [blob[f"train@r{k}"].float() for k in range(int(info["draws"]))]


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
        clouds[split] = torch.from_numpy(np.array(table_points(rows), dtype=np.float32))  # a writable copy
    return table, clouds, class_names


#: base seed of the resampled training draws: draw k of sample ``id`` comes from (DRAW_SEED, k, id) only
DRAW_SEED = 0


def read_train_draws(path: Path, draws: int, num_points: int, seed: int = DRAW_SEED) -> list[torch.Tensor]:
    """``draws`` clouds ``(M_train, num_points, 3)`` of the ``train`` split, rows in table order (those of
    :func:`read_points_table`): draw k of a sample is a random subset of its pool (the released
    ``random_sample`` + ``pc_norm``, :func:`clip2point.sampling.resample_points`) from the generator of
    (seed, k, sample id)."""
    from clip2point.sampling import resample_generator, resample_points
    from clip2point.schema import table_pool

    table = pq.read_table(path)
    pools = table_pool(table)
    if pools is None:
        raise StageError(f"{path}: adapter.resample_epochs needs a point pool but the points table has none "
                         "(set sample.pool_points > 0 and re-run the sample stage)")
    rows = [i for i, s in enumerate(table.column("split").to_pylist()) if s == "train"]
    ids = table.column("id").to_pylist()
    return [torch.from_numpy(np.stack([resample_points(pools[i], num_points, resample_generator(seed, k, ids[i]))
                                       for i in rows])).float() for k in range(draws)]


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
    view_sets: Mapping[str, ViewSet],
    distance: float,
    render: Callable[[torch.Tensor, ViewSet], torch.Tensor],
    encoders: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
    text: torch.Tensor,
    batch_size: int,
    extra_meta: Mapping[str, Any] | None = None,
    draws: Sequence[torch.Tensor] | None = None,
    draw_views: str | None = None,
) -> None:
    """Compute every encoder's features of every split (:func:`clip2point.features.encode_splits`) and
    write the cache to ``out``. ``draws`` (optional): resampled training clouds, encoded for the view set
    ``draw_views`` only and written as ``<encoder>/<draw_views>@resample.pt``."""
    feats, union, where = encode_splits(clouds, view_sets, distance, render, encoders, batch_size, desc=dataset)
    index = pa.concat_tables(
        [table.filter(pc.equal(table.column("split"), split)).select(["id", "split", "label", "label_name"])
         for split in clouds]
    )
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
    if draws:
        if draw_views not in view_sets:
            raise StageError(f"resampled draws need a view set of the cache, got {draw_views!r}")
        dfeats, _, _ = encode_splits({f"train@r{k}": d for k, d in enumerate(draws)},
                                     {draw_views: view_sets[draw_views]}, distance, render, encoders, batch_size,
                                     desc=f"{dataset}/resample")
        meta["resample"] = {"draws": len(draws), "views": draw_views, "seed": DRAW_SEED}
    write_store(out, meta, index, text, feats)
    if draws:
        for enc in encoders:
            torch.save({split: dfeats[split][enc][draw_views] for split in dfeats},
                       out / enc / f"{draw_views}@resample.pt")
