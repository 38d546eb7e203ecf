"""Per-epoch resampling (issue 12, parity item 4): the sample stage's optional point pool, its shard member,
and the pre-training source's per-epoch random subsets (the released ``random_sample`` + ``pc_norm``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from pretrain_support import M, sample_ids
from pretrain_support import write_pool as write_fixed_pool

import pipeline.sample_job as sj
from clip2point import shards
from clip2point.io import Item
from clip2point.sampling import resample_generator, resample_points
from clip2point.schema import points_schema, points_to_table, table_points, table_pool
from clip2point.train.pretrain_data import PretrainBatchSampler, ShardPretrainSource, make_loader

NPTS, POOL = 32, 256


def released_random_sample_pc_norm(pool: np.ndarray, num: int, rng: np.random.Generator) -> np.ndarray:
    """Transcription of the released ``ShapeNetRender.random_sample`` then ``pc_norm``."""
    permutation = np.arange(pool.shape[0])
    rng.shuffle(permutation)
    pc = pool[permutation[:num]]
    centroid = np.mean(pc, axis=0)
    pc = pc - centroid
    m = np.max(np.sqrt(np.sum(pc**2, axis=1)))
    return pc / m


def test_subset_rule_matches_released_transcription() -> None:
    pool = np.random.default_rng(3).normal(size=(POOL, 3)).astype(np.float32)
    got = resample_points(pool, NPTS, resample_generator(7, 2, "chair/x"))
    want = released_random_sample_pc_norm(pool, NPTS, resample_generator(7, 2, "chair/x"))
    np.testing.assert_array_equal(got, want.astype(np.float32))
    assert got.shape == (NPTS, 3) and got.dtype == np.float32
    # a function of (seed, epoch, id): each one changes the draw
    for args in ((8, 2, "chair/x"), (7, 3, "chair/x"), (7, 2, "chair/y")):
        assert not np.array_equal(got, resample_points(pool, NPTS, resample_generator(*args)))


def _item(i: int = 0) -> Item:
    return Item(id=f"box{i}", split="train", label=0, label_name="box", source=f"/nowhere/box{i}.off")


def _sample(monkeypatch, shape, pool_points: int):
    monkeypatch.setattr(sj, "load_item", lambda item: shape)
    return sj.sample_item(_item(), num_points=NPTS, dense_points=400, up_axis="z", seed=5, dataset="d",
                          pool_points=pool_points)


@pytest.mark.parametrize("kind", ["mesh", "points"])
def test_pool_leaves_fps_points_byte_identical(monkeypatch, kind) -> None:
    shape = (trimesh.creation.box(extents=(2.0, 1.0, 0.5)) if kind == "mesh"
             else np.random.default_rng(0).normal(size=(600, 3)) * [3.0, 1.0, 0.5] + 4.0)
    off = _sample(monkeypatch, shape, 0)
    assert len(off) == 2 and off[1] is None
    pts, reason, pool = _sample(monkeypatch, shape, POOL)
    assert reason is None and pts.tobytes() == off[0].tobytes()
    assert pool.shape == (POOL, 3) and pool.dtype == np.float32
    # the pool is in the points' frame (y-up, same centre and scale): FPS extremes bound it closely
    assert np.abs(pool).max() <= 1.0 + 1e-4
    if kind == "points":  # a subset of the cloud itself, without replacement
        s = sj.item_seed(5, "d", "box0")
        from clip2point.sampling import normalize_unit_sphere, points_fps_raw, to_y_up, unit_sphere_frame

        raw = points_fps_raw(shape, NPTS, seed=s)
        np.testing.assert_array_equal(to_y_up(normalize_unit_sphere(raw).astype(np.float32), "z"), pts)
        c, r = unit_sphere_frame(raw)
        cloud = to_y_up(((shape - c) / r).astype(np.float32), "z")
        rows = {tuple(p) for p in cloud}
        assert all(tuple(p) in rows for p in pool) and len({tuple(p) for p in pool}) == POOL


def test_points_table_pool_column_optional() -> None:
    pts = np.random.default_rng(0).normal(size=(2, NPTS, 3)).astype(np.float32)
    args = (["a", "b"], ["train", "test"], np.array([0, 1]), ["x", "y"], ["s1", "s2"], pts)
    plain = points_to_table(*args)
    assert plain.schema == points_schema(NPTS) and "pool" not in plain.column_names
    assert table_pool(plain) is None
    pools = [np.ones((40, 3), np.float32), np.arange(150, dtype=np.float32).reshape(50, 3)]
    t = points_to_table(*args, pool=pools)
    assert t.column_names[:6] == plain.column_names and t.column_names[-1] == "pool"
    np.testing.assert_array_equal(table_points(t), pts)
    for a, b in zip(table_pool(t), pools, strict=True):
        np.testing.assert_array_equal(a, b)


def test_shard_member_round_trip_with_and_without_pool() -> None:
    s = {"id": "a/b.c", "points": np.zeros((4, 3)), "label": 2}
    plain = shards.encode_sample(s)
    assert "pool.npy" not in plain and "pool" not in shards.decode_sample("k", plain)
    pool = np.random.default_rng(0).normal(size=(9, 3)).astype(np.float32)
    with_pool = shards.encode_sample({**s, "pool": pool})
    assert {k: v for k, v in with_pool.items() if k != "pool.npy"} == plain
    np.testing.assert_array_equal(shards.decode_sample("k", with_pool)["pool"], pool)


def _pools(m: int = M) -> dict[str, np.ndarray]:
    g = np.random.default_rng(11)
    return {sid: g.normal(size=(POOL, 3)).astype(np.float32) for sid in sample_ids(m)}


def write_pool(root, ranks: int = 1, maxcount: int = 5):
    """The test_pretrain_data pool, plus a pool.npy member per training sample."""
    pools = _pools()
    orig = shards.write_shards

    def with_pool(samples, out_dir, prefix, maxcount):
        return orig(({**s, "pool": pools[s["id"]]} if s["id"] in pools else s for s in samples),
                    out_dir, prefix, maxcount)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(shards, "write_shards", with_pool)
        return write_fixed_pool(root, ranks=ranks, maxcount=maxcount), pools


def test_shard_source_resamples_per_epoch(tmp_path) -> None:
    manifest, pools = write_pool(tmp_path)
    index = shards.index_split(manifest, "train")
    assert index.has("pool.npy")
    src = ShardPretrainSource(index, resample_seed=3)
    assert src.wants_epoch and src.num_points == len(index.points(0))
    n = src.num_points
    for i in range(len(src)):
        key = str(index.keys[i])
        sid = next(s for s in pools if shards.sample_key(s) == key)
        for epoch in (0, 1):
            got = src[(i, 0, 1.0, 1.0, False, epoch)]["points"].numpy()
            want = released_random_sample_pc_norm(pools[sid], n, resample_generator(3, epoch, key))
            np.testing.assert_array_equal(got, want.astype(np.float32))
    assert not torch.equal(src[(0, 0, 1.0, 1.0, False, 0)]["points"], src[(0, 0, 1.0, 1.0, False, 1)]["points"])
    # off: the fixed points, exactly
    fixed = ShardPretrainSource(index)
    assert not fixed.wants_epoch
    np.testing.assert_array_equal(fixed[(0, 0, 1.0, 1.0, False)]["points"].numpy(), index.points(0))


def test_resampled_batches_do_not_depend_on_workers_or_layout(tmp_path) -> None:
    def batches(root, ranks, maxcount, workers):
        manifest, _ = write_pool(root, ranks=ranks, maxcount=maxcount)
        src = ShardPretrainSource(shards.index_split(manifest, "train"), resample_seed=1)
        src.fields = frozenset({"points", "labels"})
        sampler = PretrainBatchSampler(len(src), 4, seed=1, n_views=src.n_views, distance=1.0, jitter=0.1,
                                       total=8, with_epoch=src.wants_epoch)
        return [b["points"] for b in make_loader(src, sampler, workers)]

    a = batches(tmp_path / "a", 1, 5, 0)
    b = batches(tmp_path / "b", 2, 3, 2)
    assert len(a) == 8
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


def test_sampler_appends_epoch_only_when_asked() -> None:
    kw = dict(seed=0, n_views=3, distance=1.0, jitter=0.1, total=6)
    off = PretrainBatchSampler(8, 4, **kw)
    on = PretrainBatchSampler(8, 4, with_epoch=True, **kw)
    for step in range(6):
        assert [r[:5] for r in on.plan(step)] == off.plan(step)
        assert all(len(r) == 5 for r in off.plan(step))
        assert {r[5] for r in on.plan(step)} == {step // 2}


def test_resample_without_pool_is_a_clear_error(tmp_path) -> None:
    index = shards.index_split(write_fixed_pool(tmp_path), "train")
    with pytest.raises(ValueError, match="pretrain.resample needs a per-shape point pool"):
        ShardPretrainSource(index, resample_seed=0)


# ------------------------------------------------------------------------------- adapters: resample_epochs

class _Probe(torch.nn.Module):
    """A linear head over the view-mean that records which input it trained on at each call."""

    def __init__(self, k: int = 3, c: int = 4) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(c, k)
        self.seen: list[float] = []

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append(float(x[:, 0, 0].min()))
        return self.fc(x.mean(1))


def _toy(m: int = 12, k: int = 3, c: int = 4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(m, 2, c, generator=g)
    return x, torch.arange(m) % k, torch.randn(k, c, generator=g)


def test_train_epochs_uses_the_draw_of_each_epoch() -> None:
    from clip2point.fewshot import TrainConfig, train_epochs

    x, y, text = _toy()
    draws = [[torch.full_like(x, 10.0 * (k + 1))] for k in range(3)]
    model = _Probe()
    cfg = TrainConfig(batch_size=100)  # one batch per epoch
    train_epochs(model, [x], y, text, cfg, 7, torch.Generator().manual_seed(0), draws=draws)
    assert model.seen == [10.0 * ((e - 1) % 3 + 1) for e in range(1, 8)]
    with pytest.raises(ValueError, match="shapes of inputs"):
        train_epochs(model, [x], y, text, cfg, 1, torch.Generator(), draws=[[x[:3]]])


@pytest.mark.parametrize("mode", ["heldout", "no_holdout", "best_test"])
def test_one_draw_equal_to_the_fixed_features_changes_nothing(mode) -> None:
    from clip2point.fewshot import TrainConfig, fit_adapter, fit_adapter_best_test

    x, y, text = _toy(m=30)
    cfg = TrainConfig(epochs=5, batch_size=8, val_fraction=0.0 if mode == "no_holdout" else 0.3)

    def fit(draws):
        torch.manual_seed(0)
        if mode == "best_test":
            return fit_adapter_best_test(_Probe, [x], y, [x], y, text, cfg, draws=draws)
        return fit_adapter(_Probe, [x], y, text, cfg, draws=draws)

    a, b = fit(None), fit([[x.clone()]])
    assert a.best_epoch == b.best_epoch and a.history == b.history
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    c = fit([[x + 1.0]])  # another draw: another model, same held-out / test features for selection
    assert not torch.equal(c.model.fc.weight, a.model.fc.weight)


@pytest.mark.slow
def test_features_stage_encodes_resampled_training_draws(tmp_path, monkeypatch) -> None:
    import downstream_support as tsd
    import pyarrow.parquet as pq
    import yaml

    import pipeline.paths as ppaths
    from clip2point.models.clip import encode_views
    from clip2point.render.depth import DepthConfig, render_depth
    from pipeline.feature_store import FeatureStore, read_train_draws
    from stages import features as features_stage

    run_dir = tsd.make_run_dir(tmp_path, monkeypatch)
    table = run_dir["table"]
    g = np.random.default_rng(1)
    pools = [g.normal(size=(200, 3)).astype(np.float32) for _ in range(table.num_rows)]
    cols = [table.column(c).to_pylist() for c in ("id", "split")]
    with_pool = points_to_table(cols[0], cols[1], table.column("label").to_numpy(),
                                table.column("label_name").to_pylist(), ["-"] * table.num_rows,
                                table_points(table), pool=pools)
    pq.write_table(with_pool, ppaths.points_table(tsd.DATASET))
    raw = run_dir["params"]
    raw["adapter"]["resample_epochs"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    assert features_stage.main([tsd.DATASET, "--variants", "intra_cross"]) == 0
    store = FeatureStore.open(ppaths.features_dir(tsd.DATASET))
    assert store.meta["resample"] == {"draws": 2, "views": "pretrain10", "seed": 0}
    draws = store.draws("intra_cross-seed0", "pretrain10")
    assert len(draws) == 2 and draws[0].shape == store.features("clip", "pretrain10", "train").shape
    clouds = read_train_draws(ppaths.points_table(tsd.DATASET), 2, tsd.N_POINTS)
    train = [i for i, s in enumerate(cols[1]) if s == "train"]
    want0 = resample_points(pools[train[0]], tsd.N_POINTS, resample_generator(0, 0, cols[0][train[0]]))
    np.testing.assert_array_equal(clouds[0][0].numpy(), want0)
    with torch.no_grad():
        ref = encode_views(run_dir["encoders"]["intra_cross-seed0"],
                           render_depth(clouds[1], "pretrain10", 1.0, DepthConfig(image_size=16)))
    assert torch.allclose(draws[1], ref, atol=2e-3)
    assert not torch.equal(draws[0], draws[1])
    with pytest.raises(Exception, match="no resampled training features"):
        store.draws("clip", "zeroshot6")


def test_features_without_pool_fail_clearly_and_off_writes_no_draws(tmp_path, monkeypatch, capsys) -> None:
    import downstream_support as tsd
    import yaml

    import pipeline.paths as ppaths
    from pipeline.feature_store import FeatureStore
    from stages import features as features_stage

    run_dir = tsd.make_run_dir(tmp_path, monkeypatch)
    assert features_stage.main([tsd.DATASET, "--variants", "intra_cross"]) == 0
    store = FeatureStore.open(ppaths.features_dir(tsd.DATASET))
    assert "resample" not in store.meta and not list(store.root.rglob("*@resample.pt"))
    raw = run_dir["params"]
    raw["adapter"]["resample_epochs"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    assert features_stage.main([tsd.DATASET, "--variants", "intra_cross"]) != 0
    assert "needs a point pool" in capsys.readouterr().err


def test_adapter_grid_trains_on_the_draws(tmp_path) -> None:
    import dataclasses

    import downstream_support as tsd

    from pipeline import adapter_grid
    from pipeline.params import AdapterParams

    store = tsd.write_signal_store(tmp_path / "feats")
    ap = AdapterParams(k_shot=4, seeds=(0,), epochs=4, batch_size=8, val_fraction=0.25, views="pretrain10")
    grid = [r for r in adapter_grid.GRID if r.key == adapter_grid.MAIN_ROW]
    quiet = dict(log=lambda s: None)
    base, preds0, _, _ = adapter_grid.run_grid(store, "fewshot", ap, [0, 1], grid, **quiet)
    with pytest.raises(Exception, match="no resampled training features"):
        adapter_grid.run_grid(store, "fewshot", dataclasses.replace(ap, resample_epochs=1), [0, 1], grid, **quiet)
    # draw 0 = the fixed features: R=1 gives the same predictions; a noisy draw 1 changes them
    for enc in store.encoders:
        x = store.features(enc, "pretrain10", "train")
        torch.save({"train@r0": x.half(), "train@r1": torch.randn_like(x).half()},
                   store.root / enc / "pretrain10@resample.pt")
    store.meta["resample"] = {"draws": 2, "views": "pretrain10", "seed": 0}
    one, preds1, _, _ = adapter_grid.run_grid(store, "fewshot", dataclasses.replace(ap, resample_epochs=1),
                                              [0, 1], grid, **quiet)
    assert preds1 == preds0 and one["resample_epochs"] == 1 and "resample_epochs" not in base
    two, preds2, _, _ = adapter_grid.run_grid(store, "fewshot", dataclasses.replace(ap, resample_epochs=2),
                                              [0, 1], grid, **quiet)
    assert preds2 != preds0


def test_pretraining_with_resampling_is_worker_independent_and_differs_from_fixed(tmp_path, tiny) -> None:
    from pretrain_support import fake_render, make_data
    from pretrain_support import short_cfg as cfg

    from clip2point.train.pretrain import pretrain

    model, text = tiny
    _, val = make_data()
    manifest, _ = write_pool(tmp_path)
    index = shards.index_split(manifest, "train")
    fixed = pretrain(model.visual, ShardPretrainSource(index), val, text, cfg(), fake_render, progress=False)
    runs = [pretrain(model.visual, ShardPretrainSource(index, resample_seed=0), val, text, cfg(num_workers=w),
                     fake_render, progress=False) for w in (0, 2)]
    for k, v in runs[0].final_state.items():
        assert torch.equal(runs[1].final_state[k], v), k
    assert runs[0].history["loss"] == runs[1].history["loss"] != fixed.history["loss"]
