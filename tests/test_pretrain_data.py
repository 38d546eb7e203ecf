"""Streaming pre-training data: seed-only order, shard-layout independence, DDP slices, workers, streamed eval."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from pretrain_support import M, fake_render, make_data, sample_ids, write_pool  # noqa: F401
from pretrain_support import short_cfg as cfg

from clip2point import shards
from clip2point.configs import PretrainConfig
from clip2point.models.clip import create_clip, text_features
from clip2point.train.distributed import DistInfo
from clip2point.train.pretrain import pretrain
from clip2point.train.pretrain_data import (
    PretrainBatchSampler,
    ShardPointsSource,
    ShardPretrainSource,
    StreamingEvalSet,
    TensorPretrainSource,
    collate_requests,
    make_loader,
    sorted_rows,
)
from clip2point.train.pretrain_run import TextSide


def sorted_memory_pool(m: int = M) -> TensorPretrainSource:
    """The same pool in memory, rows in sorted-key order (a shard source's index order)."""
    data, _ = make_data(m=m)
    rows = torch.tensor(sorted_rows(sample_ids(m)))
    return TensorPretrainSource(data.points[rows], data.rgb[rows], data.labels[rows])


def test_sampler_global_batches_are_split_across_ranks_and_resume_exactly() -> None:
    kw = dict(seed=3, n_views=10, distance=1.0, jitter=0.1, total=9)
    one = PretrainBatchSampler(20, 8, **kw)
    plans = list(one)
    assert len(plans) == 9 == len(one) and all(len(p) == 8 for p in plans)
    assert one.steps_per_epoch == 2
    epoch0 = [r[0] for p in plans[:2] for r in p]
    assert len(set(epoch0)) == 16  # no sample twice within an epoch
    assert [r[0] for r in plans[2]] != [r[0] for r in plans[0]]  # a new order each epoch
    for world in (2, 4):
        ranks = [list(PretrainBatchSampler(20, 8, rank=r, world=world, **kw)) for r in range(world)]
        for s in range(9):
            assert sum((ranks[r][s] for r in range(world)), []) == plans[s]  # contiguous rows, rank order
    assert list(PretrainBatchSampler(20, 8, start=5, **kw)) == plans[5:]
    with pytest.raises(ValueError, match="batch_size 8 does not divide by world size 3"):
        PretrainBatchSampler(20, 8, world=3, **kw)
    with pytest.raises(ValueError, match="batch_size 8 exceeds the 5 training samples"):
        PretrainBatchSampler(5, 8, **kw)


def test_shard_source_matches_memory_pool_and_workers(tmp_path) -> None:
    src = ShardPretrainSource(shards.index_split(write_pool(tmp_path, ranks=2, maxcount=3), "train"))
    mem = sorted_memory_pool()
    assert len(src) == M and src.n_views == 10
    sampler = PretrainBatchSampler(M, 8, seed=0, n_views=10, distance=1.0, jitter=0.1, total=4)
    for workers in (0, 2):
        for step, batch in enumerate(make_loader(src, sampler, num_workers=workers)):
            idx, view = batch["index"], batch["view"]
            assert idx.tolist() == [r[0] for r in sampler.plan(step)]
            assert torch.equal(batch["points"], mem.points[idx])
            assert torch.equal(batch["rgb"], mem.rgb[idx, view])
            assert torch.equal(batch["labels"], mem.labels[idx])
    src.fields = frozenset({"labels"})  # an objective without depth maps reads no points
    assert "points" not in collate_requests([src[(0, 1, 1.0, 1.0, False)]])


def test_training_does_not_depend_on_shard_layout_or_workers(tiny, tmp_path) -> None:
    """Same sample ids, laid out by 1 or 3 render ranks with other shard sizes, read with 0 or 2 workers,
    or held in memory in sorted-id order: bit-identical training."""
    model, text = tiny
    _, val = make_data()
    ref = pretrain(model.visual, sorted_memory_pool(), val, text, cfg(), fake_render, progress=False)
    for ranks, maxcount, workers in ((1, 5, 0), (3, 2, 2)):
        index = shards.index_split(write_pool(tmp_path / f"{ranks}", ranks=ranks, maxcount=maxcount), "train")
        got = pretrain(model.visual, ShardPretrainSource(index), val, text, cfg(num_workers=workers),
                       fake_render, progress=False)
        for k, v in ref.final_state.items():
            assert torch.equal(got.final_state[k], v), (ranks, k)
        assert got.history["loss"] == ref.history["loss"]


def test_streamed_eval_equals_in_memory_eval(tiny, tmp_path) -> None:
    from clip2point.render.depth import DepthConfig
    from clip2point.render.views import get_views
    from clip2point.train.selection import render_eval_set, streaming_zero_shot_accuracy, zero_shot_accuracy

    model, text = tiny
    index = shards.index_split(write_pool(tmp_path, ranks=2, maxcount=3), "val")
    views, dcfg = get_views("zeroshot6"), DepthConfig(image_size=32, dilation=1)
    points = torch.stack([torch.from_numpy(index.points(i)) for i in range(len(index))])
    labels = torch.tensor([index.sample(i, with_rgb=False)["label"] for i in range(len(index))])
    ref = render_eval_set(points, labels, views, dcfg, 1.0)
    stream = StreamingEvalSet(ShardPointsSource(index), views, dcfg, 1.0)
    depth = torch.cat([d for d, _ in stream.batches(3)])
    assert torch.equal(depth, ref.depth)
    for bs in (6, 64):
        assert streaming_zero_shot_accuracy(model.visual, stream, text.classes, bs) == \
            zero_shot_accuracy(model.visual, ref, text.classes, bs)[0]
    # and a pre-training run selects identically on either
    data = sorted_memory_pool()
    a = pretrain(model.visual, data, ref, text, cfg(max_steps=2), fake_render, progress=False)
    b = pretrain(model.visual, data, stream, text, cfg(max_steps=2), fake_render, progress=False)
    assert a.metrics["val_zeroshot_curve"] == b.metrics["val_zeroshot_curve"]


# ---- two gloo processes over streamed shards = one process --------------------------------------------


def _loop(manifest: str, info: DistInfo) -> dict:
    from clip2point.render.depth import DepthConfig
    from clip2point.render.views import get_views

    torch.manual_seed(0)
    model, tok = create_clip("c2p-tiny", "")
    text = TextSide(classes=text_features(model, tok, ["a", "b", "c", "d"], ["image of a {}."]))
    src = ShardPretrainSource(shards.index_split(manifest, "train"))
    val = StreamingEvalSet(ShardPointsSource(shards.index_split(manifest, "val")), get_views("zeroshot6"),
                           DepthConfig(image_size=32, dilation=1), 1.0)
    c = PretrainConfig(max_steps=3, batch_size=8, optimizer="sgd", lr=0.05, sigma_lr=0.05, warmup_steps=0,
                       temperature=0.1, eval_batch_size=12, eval_every=1)
    res = pretrain(model.visual, src, val, text, c, fake_render, info=info, progress=False)
    return {"state": res.final_state, "curve": res.metrics["val_zeroshot_curve"], "loss": res.history["loss"]}


def _worker(rank: int, world: int, port: int, manifest: str, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.save(_loop(manifest, DistInfo(rank=rank, world=world)), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_on_streamed_shards_match_one_process(tmp_path) -> None:
    manifest = str(write_pool(tmp_path / "pool", ranks=2, maxcount=3, val=7))  # 7: ranks evaluate 4 + 3
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(2, port, manifest, str(tmp_path)), nprocs=2, join=True)
    ref = _loop(manifest, DistInfo())
    for r in range(2):
        got = torch.load(tmp_path / f"rank{r}.pt", weights_only=False)
        assert got["curve"] == ref["curve"]
        assert np.allclose(got["loss"], ref["loss"], atol=1e-5)
        for k, v in ref["state"].items():
            assert torch.allclose(got["state"][k], v, atol=1e-5, rtol=1e-4), (r, k)
