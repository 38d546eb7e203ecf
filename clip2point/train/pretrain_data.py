"""Pre-training data (paper §3.2.1): random-access sample sources, a seed-only step sampler, DataLoaders.

Each pre-training step takes a global batch of B samples and, per sample, one random view of the training
view set (its RGB render I_i goes to E_i) and two jittered camera distances d1, d2 (the depth maps
D_{i,d1}, D_{i,d2} are rendered on the fly from the points, never read from disk).

Order. :class:`PretrainBatchSampler` draws everything random about a step from ``(seed, epoch)`` and
``(seed, step)`` alone: epoch ``e``'s order is ``randperm(M)`` seeded by ``seed·7919 + e`` over sample
*indices*, and a shard source's index ``i`` is the ``i``-th sample in sorted-key order
(:func:`clip2point.shards.index_split`), so the order depends on the seed, the epoch and the set of sample
ids only: not on how samples are laid out in shards, nor on how many ranks rendered them. Global batch
``s`` of an epoch is ``perm[s·B:(s+1)·B]``; under DDP rank ``r`` takes rows ``[r·B/W, (r+1)·B/W)`` of every
global batch (the layout :func:`clip2point.train.distributed.gather_with_grad` assumes), so one process and
``W`` processes see the same global batches, row for row, and a run resumed at step ``k`` continues with
step ``k``'s batch. Random access by index (rather than a shuffle buffer over a shard stream) is what makes
the order a function of the seed alone; it costs one seek per member read.

Memory. A shard source holds a :class:`~clip2point.shards.ShardIndex` (tens of bytes per sample) and
reads a sample's points and its one requested RGB view when a DataLoader worker asks for it: resident
memory does not grow with the pool. The validation split is streamed the same way
(:class:`StreamingEvalSet`): points are read per batch and their multi-view depth maps rendered per batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from clip2point.shards import ShardIndex

#: One sample of one step: (sample index, view, d1, d2, flip), and the epoch appended when the source
#: resamples its points per epoch (:attr:`PretrainSource.wants_epoch`).
Request = tuple[int, int, float, float, bool] | tuple[int, int, float, float, bool, int]


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of step ``step``'s draws (views, distances, flips)."""
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step) + 7)


def jitter_distances(base: float, jitter: float, n: int, g: torch.Generator) -> Tensor:
    """Distances d·(1 + U(−jitter, jitter)) (§5.2: range [0.9, 1.1) for jitter 0.1), one per sample."""
    # the same draw as render.depth.jittered_distances(n, 1, ...)
    return base * (1.0 + (2.0 * torch.rand(n, generator=g) - 1.0) * jitter)


def step_draws(seed: int, step: int, batch_size: int, n_views: int, distance: float,
               jitter: float) -> dict[str, Tensor]:
    """Step ``step``'s draws for the *global* batch: ``view`` (B,), distances ``d1``, ``d2`` (B,) for
    D_{i,d1}, D_{i,d2} (§3.2.1) and ``flip`` (B,) (horizontal flips of ``rgb_control``)."""
    g = step_generator(seed, step)
    view = torch.randint(0, n_views, (batch_size,), generator=g)
    d1 = jitter_distances(distance, jitter, batch_size, g)
    d2 = jitter_distances(distance, jitter, batch_size, g)
    flip = torch.rand(batch_size, generator=g) < 0.5
    return {"view": view, "d1": d1, "d2": d2, "flip": flip}


def epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    """Epoch ``epoch``'s order of the ``n`` sample indices: a function of (seed, epoch, n) only."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(int(seed) * 7919 + int(epoch)))


class PretrainBatchSampler(Sampler[list[Request]]):
    """This rank's requests of steps ``start … total-1`` (one list per step; see the module docstring).

    ``steps_per_epoch = n // batch_size`` (the remainder of each epoch's permutation is dropped).
    """

    def __init__(self, n: int, batch_size: int, *, seed: int, n_views: int, distance: float, jitter: float,
                 total: int, start: int = 0, rank: int = 0, world: int = 1, with_epoch: bool = False) -> None:
        if batch_size % world:
            raise ValueError(f"batch_size {batch_size} does not divide by world size {world}")
        if n // batch_size < 1:
            raise ValueError(f"batch_size {batch_size} exceeds the {n} training samples")
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside world size {world}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.n_views, self.distance, self.jitter = n_views, distance, jitter
        self.total, self.start, self.rank, self.world = total, start, rank, world
        self.steps_per_epoch = n // batch_size
        self.with_epoch = with_epoch  # append the epoch to each request (per-epoch resampling)
        self._perm: tuple[int, Tensor] | None = None

    def global_plan(self, step: int) -> list[Request]:
        """The global batch of ``step`` (all ranks' requests, rank 0's first)."""
        epoch, i = divmod(step, self.steps_per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, epoch_permutation(self.n, self.seed, epoch))
        idx = self._perm[1][i * self.batch_size : (i + 1) * self.batch_size]
        dr = step_draws(self.seed, step, self.batch_size, self.n_views, self.distance, self.jitter)
        reqs = list(zip(idx.tolist(), dr["view"].tolist(), dr["d1"].tolist(), dr["d2"].tolist(),
                        dr["flip"].tolist(), strict=True))
        return [(*r, epoch) for r in reqs] if self.with_epoch else reqs

    def plan(self, step: int) -> list[Request]:
        """This rank's rows of step ``step``'s global batch."""
        per = self.batch_size // self.world
        return self.global_plan(step)[self.rank * per : (self.rank + 1) * per]

    def __iter__(self) -> Iterator[list[Request]]:
        for step in range(self.start, self.total):
            yield self.plan(step)

    def __len__(self) -> int:
        return max(0, self.total - self.start)


class PretrainSource(Dataset):
    """Samples of the pre-training pool by request ``(index, view, d1, d2, flip)``.

    Subclasses implement :meth:`item` (points (N,3) float32, RGB of one view (H,W,3) uint8, label).
    ``fields`` says which of ``points`` / ``rgb`` / ``labels`` a step needs (an objective without depth
    maps reads no points; a run with the frozen-feature cache reads, and decodes, no RGB).
    """

    n_views: int = 0
    #: True when :meth:`item` needs the epoch (per-epoch resampling): the sampler then appends it.
    wants_epoch: bool = False

    def __init__(self) -> None:
        self.fields: frozenset[str] = frozenset({"points", "rgb", "labels"})
        self.epoch = 0  # the epoch of the request being served (set by __getitem__)

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def item(self, index: int, view: int) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, req: Request) -> dict[str, Any]:
        index, view, d1, d2, flip = req[:5]
        if len(req) > 5:
            self.epoch = int(req[5])  # type: ignore[misc]
        out = self.item(int(index), int(view))
        out.update(index=int(index), view=int(view), d1=d1, d2=d2, flip=bool(flip))
        return out


class TensorPretrainSource(PretrainSource):
    """A pool held in memory (tests, small pools): ``points`` (M,N,3), ``rgb`` (M,V,H,W,3), ``labels`` (M,);
    index ``i`` is row ``i`` (sort rows by sample id for an order that matches a shard source's)."""

    def __init__(self, points: Tensor, rgb: Tensor, labels: Tensor) -> None:
        super().__init__()
        self.points, self.rgb, self.labels = points, rgb, labels
        self.n_views = int(rgb.shape[1])

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def item(self, index: int, view: int) -> dict[str, Any]:
        out: dict[str, Any] = {"rgb": self.rgb[index, view]} if "rgb" in self.fields else {}
        if "points" in self.fields:
            out["points"] = self.points[index]
        if "labels" in self.fields:
            out["label"] = self.labels[index]
        return out


class ShardPretrainSource(PretrainSource):
    """The pool's training split read on demand from its shards (see :func:`clip2point.shards.index_split`):
    per request, the sample's points (if needed), its label and the one requested RGB view.

    ``resample_seed`` (per-epoch resampling, the released ``ShapeNetRender.__getitem__``): instead of the
    fixed points, a fresh random ``num_points`` subset of the sample's ``pool.npy`` for every epoch
    (:func:`clip2point.sampling.resample_points`, generator from (seed, epoch, sample key) only, so the draw
    does not depend on worker count, rank or order). ``num_points`` defaults to the fixed points' count."""

    def __init__(self, index: ShardIndex, resample_seed: int | None = None, num_points: int = 0) -> None:
        super().__init__()
        self.index = index
        self.n_views = index.rgb_views
        if self.n_views < 1:
            raise ValueError(f"the pre-training shards ({index.urls[0] if index.urls else 'none'}, …) hold no "
                             "RGB views: image–depth pre-training needs them")
        self.resample_seed = resample_seed
        self.num_points = num_points
        if resample_seed is not None:
            if not index.has("pool.npy"):
                raise ValueError("pretrain.resample needs a per-shape point pool but the shards hold none "
                                 "(set sample.pool_points > 0, then re-run sample and render)")
            if self.num_points <= 0 and len(index):
                self.num_points = len(index.points(0))
            self.wants_epoch = True

    def __len__(self) -> int:
        return len(self.index)

    def item(self, index: int, view: int) -> dict[str, Any]:
        if not 0 <= view < self.n_views:
            raise IndexError(f"view {view} outside the {self.n_views} RGB views")
        resample = self.resample_seed is not None and "points" in self.fields
        with_rgb = "rgb" in self.fields
        s = self.index.sample(index, views=[view], with_rgb=with_rgb,
                              with_points="points" in self.fields and not resample)
        out: dict[str, Any] = {"label": torch.tensor(s["label"])}
        if with_rgb:
            out["rgb"] = torch.from_numpy(s["rgb"][0])
        if resample:
            from clip2point.sampling import resample_generator, resample_points

            g = resample_generator(int(self.resample_seed), self.epoch, s["key"])  # type: ignore[arg-type]
            out["points"] = torch.from_numpy(resample_points(self.index.pool(index), self.num_points, g))
        elif s["points"] is not None:
            out["points"] = torch.from_numpy(s["points"])
        return out


def collate_requests(items: list[dict[str, Any]]) -> dict[str, Tensor]:
    """Stack a step's samples: ``rgb`` (b,H,W,3) uint8, ``points`` (b,N,3), ``labels`` (b,), ``index``,
    ``view`` (b,) int64, ``d1``, ``d2`` (b,) float32, ``flip`` (b,) bool."""
    out: dict[str, Tensor] = {
        "index": torch.tensor([it["index"] for it in items], dtype=torch.int64),
        "view": torch.tensor([it["view"] for it in items], dtype=torch.int64),
        "d1": torch.tensor([it["d1"] for it in items], dtype=torch.float32),
        "d2": torch.tensor([it["d2"] for it in items], dtype=torch.float32),
        "flip": torch.tensor([it["flip"] for it in items], dtype=torch.bool),
    }
    if "rgb" in items[0]:
        out["rgb"] = torch.stack([it["rgb"] for it in items])
    if "points" in items[0]:
        out["points"] = torch.stack([it["points"] for it in items])
    if "label" in items[0]:
        out["labels"] = torch.stack([torch.as_tensor(it["label"], dtype=torch.int64) for it in items])
    return out


def make_loader(source: Dataset, sampler: Sampler, num_workers: int = 0, pin_memory: bool = False,
                collate=collate_requests) -> DataLoader:
    """A DataLoader over ``source`` fed by a batch sampler, with ``num_workers`` worker processes."""
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    return DataLoader(source, batch_sampler=sampler, num_workers=num_workers, collate_fn=collate,
                      pin_memory=pin_memory, generator=torch.Generator().manual_seed(0),
                      prefetch_factor=2 if num_workers > 0 else None)


# --------------------------------------------------------------------------------------------- evaluation


class ShardPointsSource(Dataset):
    """Points and label of each sample of a split (no RGB), by index in sorted-key order."""

    def __init__(self, index: ShardIndex) -> None:
        self.index = index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        s = self.index.sample(i, with_rgb=False)
        return {"points": torch.from_numpy(s["points"]), "label": torch.tensor(s["label"])}


class _Rows(Sampler[list[int]]):
    def __init__(self, rows: list[int], batch: int) -> None:
        self.rows, self.batch = rows, batch

    def __iter__(self) -> Iterator[list[int]]:
        for i in range(0, len(self.rows), self.batch):
            yield self.rows[i : i + self.batch]

    def __len__(self) -> int:
        return -(-len(self.rows) // self.batch)


def _collate_points(items: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {"points": torch.stack([it["points"] for it in items]),
            "labels": torch.stack([it["label"] for it in items]).long()}


@dataclass
class StreamingEvalSet:
    """A selection split streamed from its points: multi-view depth maps (Eq. 15's views, base distance)
    rendered per batch, never held whole. ``source[i]`` gives ``{"points", "label"}``."""

    source: Dataset
    view_set: Any
    depth_cfg: Any
    distance: float
    num_workers: int = 0

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]

    def batches(self, samples_per_batch: int, rank: int = 0, world: int = 1,
                device: torch.device | str = "cpu") -> Iterator[tuple[Tensor, Tensor]]:
        """(depth (b,V,H,W) on ``device``, labels (b,)) over this rank's rows ``rank::world``."""
        from clip2point.render.depth import render_depth

        rows = list(range(rank, len(self), world))
        loader = DataLoader(self.source, batch_sampler=_Rows(rows, max(1, samples_per_batch)),
                            num_workers=self.num_workers, collate_fn=_collate_points)
        for b in loader:
            depth = render_depth(b["points"].to(device), self.view_set, float(self.distance), self.depth_cfg)
            yield depth, b["labels"]


def sorted_rows(ids: list[str] | np.ndarray) -> list[int]:
    """Row order that sorts ``ids`` by their shard keys (to give an in-memory pool a shard source's order)."""
    from clip2point.shards import sample_key

    return sorted(range(len(ids)), key=lambda i: sample_key(str(ids[i])))
