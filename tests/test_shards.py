"""WebDataset shards: round trip, manifest, node/worker splitting, truncated shard, corrupt sample."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from clip2point import shards


def make_samples(n: int, views: int = 2, size: int = 8, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {
            "id": f"cls{i % 3}/shape.{i:03d}",  # dots and slashes must survive as ids
            "points": rng.standard_normal((16, 3)).astype(np.float32),
            "label": i % 3,
            "rgb": rng.integers(0, 256, (views, size, size, 3), dtype=np.uint8),
            "depth": rng.random((views, size, size)).astype(np.float16),
            "meta": {"split": "train", "source": f"/m/{i}.off"},
        }
        for i in range(n)
    ]


def write_split(tmp_path, samples, maxcount=4):
    written = shards.write_shards(samples, tmp_path, "train-r000", maxcount)
    manifest = {"dataset": "toy", "class_names": ["a", "b", "c"],
                "splits": {"train": {"count": len(samples), "shards": written}}}
    shards.write_manifest(tmp_path / "manifest.json", manifest)
    return written


def test_round_trip_and_bounded_shards(tmp_path):
    samples = make_samples(10)
    written = write_split(tmp_path, samples, maxcount=4)
    assert [w["count"] for w in written] == [4, 4, 2]
    assert not list(tmp_path.glob(".*.tmp"))
    data = shards.load_split(tmp_path / "manifest.json", "train")
    assert data["ids"] == [s["id"] for s in samples]
    assert data["skipped"] == 0
    np.testing.assert_array_equal(data["points"], np.stack([s["points"] for s in samples]))
    np.testing.assert_array_equal(data["labels"], [s["label"] for s in samples])
    np.testing.assert_array_equal(data["rgb"], np.stack([s["rgb"] for s in samples]))  # PNG is lossless
    np.testing.assert_array_equal(data["depth"], np.stack([s["depth"] for s in samples]))
    assert data["meta"][3]["source"] == "/m/3.off"
    m = shards.read_manifest(tmp_path / "manifest.json")
    assert m["format"] == shards.MANIFEST_FORMAT and m["class_names"] == ["a", "b", "c"]


def test_shards_are_webdataset_readable(tmp_path):
    wds = pytest.importorskip("webdataset")
    write_split(tmp_path, make_samples(5), maxcount=10)
    url = str(tmp_path / "train-r000-000000.tar")
    rows = list(wds.WebDataset(url, shardshuffle=False))
    assert len(rows) == 5
    assert {"points.npy", "cls", "rgb.00.png", "rgb.01.png", "depth.npy", "json"} <= set(rows[0])


def test_split_by_node_and_worker_partitions_shards(tmp_path):
    written = write_split(tmp_path, make_samples(23), maxcount=2)  # 12 shards
    urls = shards.manifest_urls(tmp_path / "manifest.json", "train")
    assert len(urls) == len(written) == 12
    seen: list[str] = []
    for rank in range(2):
        for worker in range(3):
            seen += shards.split_urls(urls, rank, 2, worker, 3)
    assert sorted(seen) == sorted(urls)  # every shard exactly once
    ids: list[str] = []
    for rank in range(3):
        ids += [s["id"] for s in shards.iter_shards(urls, rank=rank, world_size=3, split_by_worker=False)]
    assert sorted(ids) == sorted(s["id"] for s in make_samples(23)) and len(set(ids)) == 23


def test_dataloader_workers_split(tmp_path):
    torch = pytest.importorskip("torch")
    write_split(tmp_path, make_samples(12), maxcount=2)
    ds = shards.ShardDataset(tmp_path / "manifest.json", "train")
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2,
                                         collate_fn=lambda s: s["id"])
    ids = list(loader)
    assert sorted(ids) == sorted(s["id"] for s in make_samples(12))


def test_truncated_shard_names_the_shard(tmp_path):
    write_split(tmp_path, make_samples(6), maxcount=3)
    bad = tmp_path / "train-r000-000001.tar"
    raw = bad.read_bytes()
    bad.write_bytes(raw[: len(raw) // 3])
    urls = shards.manifest_urls(tmp_path / "manifest.json", "train")
    with pytest.raises(shards.ShardError, match="train-r000-000001.tar"):
        list(shards.iter_shards(urls, split_by_node=False, split_by_worker=False))
    with pytest.raises(shards.ShardError, match="missing.tar"):
        list(shards.iter_shards([str(tmp_path / "missing.tar")], split_by_node=False, split_by_worker=False))


def test_corrupt_sample_is_skipped_and_counted(tmp_path):
    samples = make_samples(5)
    write_split(tmp_path, samples, maxcount=10)
    path = tmp_path / "train-r000-000000.tar"
    # rewrite the shard with sample 2's points replaced by garbage
    members = []
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            members.append((m, tar.extractfile(m).read()))
    key2 = shards.sample_key(samples[2]["id"])
    with tarfile.open(path, "w") as tar:
        for m, data in members:
            if m.name == f"{key2}.points.npy":
                data = b"not an npy file"
            m.size = len(data)
            tar.addfile(m, io.BytesIO(data))
    stats = shards.ReadStats()
    got = list(shards.iter_shards([str(path)], split_by_node=False, split_by_worker=False, stats=stats))
    assert [g["id"] for g in got] == [s["id"] for i, s in enumerate(samples) if i != 2]
    assert stats.skipped == 1 and stats.samples == 4
    assert key2 in stats.errors[0] and "train-r000-000000.tar" in stats.errors[0]
    data = shards.load_split(tmp_path / "manifest.json", "train")
    assert data["skipped"] == 1 and len(data["ids"]) == 4


def test_merge_manifests():
    a = {"dataset": "x", "rank": 0, "splits": {"train": {"count": 2, "shards": [{"url": "a", "count": 2}]}}}
    b = {"dataset": "x", "rank": 1, "splits": {"train": {"count": 1, "shards": [{"url": "b", "count": 1}]},
                                               "test": {"count": 1, "shards": [{"url": "c", "count": 1}]}}}
    m = shards.merge_manifests([b, a])
    assert m["splits"]["train"]["count"] == 3
    assert m["splits"]["train"]["shards"] == [{"url": "a", "count": 2}, {"url": "b", "count": 1}]
    assert m["splits"]["test"]["count"] == 1 and "rank" not in m
