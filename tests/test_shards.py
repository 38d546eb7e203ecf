"""WebDataset-layout shards: round trip, the bytes written, manifest, DataLoader workers, truncated shard, corrupt
sample."""

from __future__ import annotations

import io
import os
import stat
import tarfile

import numpy as np
import pytest
import torch

from clip2point import shards


def make_samples(n: int, views: int = 2, size: int = 8, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {
            "id": f"cls{i % 3}/shape.{i:03d}",  # dots and slashes must survive as ids
            "points": rng.standard_normal((16, 3)).astype(np.float32),
            "label": i % 3,
            "rgb": rng.integers(0, 256, (views, size, size, 3), dtype=np.uint8),
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
    assert data["meta"][3]["source"] == "/m/3.off"
    m = shards.read_manifest(tmp_path / "manifest.json")
    assert m["format"] == shards.MANIFEST_FORMAT and m["class_names"] == ["a", "b", "c"]


def test_shard_bytes_are_a_plain_ustar_tar_of_the_encoded_members(tmp_path):
    """The render stage's shards must not change by a byte (DVC would re-run everything downstream): each
    shard is a USTAR tar of every sample's members in :func:`encode_sample` order, mtime 0, mode 0644,
    owner 0 and no owner names, closed with the end-of-archive marker; transcribed here with tarfile."""
    samples = make_samples(7)
    samples[3]["pool"] = np.ones((5, 3), np.float32)
    written = shards.write_shards(samples, tmp_path, "train-r000", maxcount=3)
    assert [w["count"] for w in written] == [3, 3, 1]
    for n, w in enumerate(written):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for smp in samples[3 * n: 3 * n + 3]:
                for ext, data in shards.encode_sample(smp).items():
                    info = tarfile.TarInfo(f"{shards.sample_key(smp['id'])}.{ext}")
                    info.size, info.mtime, info.mode = len(data), 0, 0o644
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    tar.addfile(info, io.BytesIO(data))
        assert (tmp_path / w["url"]).read_bytes() == buf.getvalue(), w["url"]
    assert list(shards.encode_sample(samples[3])) == ["points.npy", "cls", "rgb.00.png", "rgb.01.png", "pool.npy",
                                                      "json"]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_shards_and_manifest_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        written = write_split(tmp_path, make_samples(2))
    finally:
        os.umask(old)
    for name in (written[0]["url"], "manifest.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


def test_a_failed_write_leaves_the_complete_shards_and_no_temporary(tmp_path):
    def samples():
        yield from make_samples(5)
        raise RuntimeError("renderer died")

    with pytest.raises(RuntimeError, match="renderer died"):
        shards.write_shards(samples(), tmp_path, "train-r000", maxcount=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train-r000-000000.tar"]
    ids = [s["id"] for s in shards.iter_shards([str(tmp_path / "train-r000-000000.tar")], counts=[4])]
    assert ids == [s["id"] for s in make_samples(4)]


class _Keys(torch.utils.data.Dataset):
    """Sample keys and labels read through a :class:`shards.ShardIndex` (as pre-training's source does)."""

    def __init__(self, index):
        self.index = index

    def __len__(self):
        return len(self.index)

    def __getitem__(self, i):
        s = self.index.sample(i, with_rgb=False)
        return s["key"], s["label"]


def test_dataloader_workers_read_every_sample_through_the_index(tmp_path):
    """DataLoader workers get the pickled index and read their samples on demand, each exactly once."""
    samples = make_samples(12)
    write_split(tmp_path, samples, maxcount=2)
    index = shards.index_split(tmp_path / "manifest.json", "train")
    loader = torch.utils.data.DataLoader(_Keys(index), batch_size=None, num_workers=2)
    got = sorted((key, int(label)) for key, label in loader)
    assert got == sorted((shards.sample_key(s["id"]), s["label"]) for s in samples)


def test_truncated_shard_names_the_shard(tmp_path):
    write_split(tmp_path, make_samples(6), maxcount=3)
    bad = tmp_path / "train-r000-000001.tar"
    raw = bad.read_bytes()
    bad.write_bytes(raw[: len(raw) // 3])
    urls = shards.manifest_urls(tmp_path / "manifest.json", "train")
    with pytest.raises(shards.ShardError, match="train-r000-000001.tar"):
        list(shards.iter_shards(urls))
    with pytest.raises(shards.ShardError, match="missing.tar"):
        list(shards.iter_shards([str(tmp_path / "missing.tar")]))


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
    got = list(shards.iter_shards([str(path)], stats=stats))
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


# ---- nothing read silently short (truncated fixtures) and random access -------------------------------


def _members(path):
    with tarfile.open(path) as tar:
        return tar.getmembers()


def test_cut_at_member_boundary_is_an_error_not_a_shorter_shard(tmp_path):
    write_split(tmp_path, make_samples(8), maxcount=4)
    bad = tmp_path / "train-r000-000000.tar"
    members = _members(bad)
    first_of_sample_3 = next(m for m in members if m.name.startswith(shards.sample_key(make_samples(8)[3]["id"])))
    bad.write_bytes(bad.read_bytes()[: first_of_sample_3.offset])  # three whole samples, then nothing
    for read in (lambda: shards.load_split(tmp_path / "manifest.json", "train"),
                 lambda: shards.index_split(tmp_path / "manifest.json", "train"),
                 lambda: list(shards.iter_shards([str(bad)]))):
        with pytest.raises(shards.ShardError, match="train-r000-000000.tar.*member boundary"):
            read()


def test_shard_with_fewer_samples_than_the_manifest_names_both_counts(tmp_path):
    samples = make_samples(8)
    write_split(tmp_path, samples, maxcount=4)
    # a complete, valid tar that holds 3 samples where the manifest says 4
    shards.write_shards(samples[:3], tmp_path / "short", "x", maxcount=10)
    (tmp_path / "short" / "x-000000.tar").replace(tmp_path / "train-r000-000001.tar")
    for read in (lambda: shards.load_split(tmp_path / "manifest.json", "train"),
                 lambda: shards.index_split(tmp_path / "manifest.json", "train")):
        with pytest.raises(shards.ShardError, match=r"train-r000-000001.tar: holds 3 samples but the manifest "
                                                    r"says 4"):
            read()


def test_cut_inside_a_header_names_the_shard(tmp_path):
    write_split(tmp_path, make_samples(8), maxcount=4)
    bad = tmp_path / "train-r000-000001.tar"
    fifth = _members(bad)[5]
    bad.write_bytes(bad.read_bytes()[: fifth.offset + 100])
    with pytest.raises(shards.ShardError, match="train-r000-000001.tar: truncated inside a tar header"):
        shards.load_split(tmp_path / "manifest.json", "train")
    with pytest.raises(shards.ShardError, match="train-r000-000001.tar: truncated inside a tar header"):
        shards.index_split(tmp_path / "manifest.json", "train")
    bad.write_bytes(bad.read_bytes()[:100])  # inside the very first header
    with pytest.raises(shards.ShardError, match="train-r000-000001.tar"):
        shards.index_split(tmp_path / "manifest.json", "train")


def test_cut_inside_member_data_names_the_member(tmp_path):
    write_split(tmp_path, make_samples(4), maxcount=4)
    bad = tmp_path / "train-r000-000000.tar"
    m = _members(bad)[2]
    bad.write_bytes(bad.read_bytes()[: m.offset_data + m.size // 2])
    with pytest.raises(shards.ShardError, match=f"train-r000-000000.tar.*{m.name}"):
        shards.index_split(tmp_path / "manifest.json", "train")


def _layout(root, samples, ranks: int, maxcount: int):
    """Write ``samples`` as ``ranks`` render ranks would (interleaved, reversed), with a merged manifest."""
    parts = []
    for r in range(ranks):
        mine = samples[::-1][r::ranks]
        written = shards.write_shards(mine, root, f"train-r{r:03d}", maxcount)
        parts.append({"dataset": "toy", "rank": r, "class_names": ["a", "b", "c"],
                      "splits": {"train": {"count": len(mine), "shards": written}}})
    shards.write_manifest(root / "manifest.json", shards.merge_manifests(parts))
    return root / "manifest.json"


def test_index_is_sorted_by_key_and_independent_of_layout(tmp_path):
    samples = make_samples(11, views=3)
    a = shards.index_split(_layout(tmp_path / "a", samples, 1, 4), "train")
    b = shards.index_split(_layout(tmp_path / "b", samples, 3, 2), "train")
    keys = sorted(shards.sample_key(s["id"]) for s in samples)
    assert list(a.keys) == keys and list(b.keys) == keys
    assert a.rgb_views == 3 and a.skipped == 0
    by_key = {shards.sample_key(s["id"]): s for s in samples}
    for i in range(len(samples)):
        sa, sb = a.sample(i), b.sample(i, views=[2, 0])
        ref = by_key[keys[i]]
        np.testing.assert_array_equal(sa["points"], ref["points"])
        np.testing.assert_array_equal(sa["rgb"], ref["rgb"])
        np.testing.assert_array_equal(sb["rgb"], ref["rgb"][[2, 0]])
        assert sa["label"] == sb["label"] == ref["label"]
        assert b.sample(i, with_rgb=False, with_points=False)["rgb"] is None


def test_index_duplicate_key_and_undecodable_sample(tmp_path):
    samples = make_samples(4)
    write_split(tmp_path, samples + [dict(samples[1])], maxcount=3)
    with pytest.raises(shards.ShardError, match=f"{shards.sample_key(samples[1]['id'])} appears twice"):
        shards.index_split(tmp_path / "manifest.json", "train")
    bad = make_samples(2)
    bad[1]["rgb_png"] = [b"not a png", b"not a png"]
    del bad[1]["rgb"]
    write_split(tmp_path / "c", bad, maxcount=3)
    index = shards.index_split(tmp_path / "c" / "manifest.json", "train")
    i = list(index.keys).index(shards.sample_key(bad[1]["id"]))
    with pytest.raises(shards.ShardError, match=f"train-r000-000000.tar: sample {index.keys[i]} does not decode"):
        index.sample(i)


def test_corrupt_header_in_the_middle_names_the_shard(tmp_path):
    write_split(tmp_path, make_samples(4), maxcount=4)
    bad = tmp_path / "train-r000-000000.tar"
    raw = bytearray(bad.read_bytes())
    at = _members(bad)[7].offset
    raw[at + 10] ^= 0x55  # a name byte: the header checksum no longer matches
    bad.write_bytes(bytes(raw))
    with pytest.raises(shards.ShardError, match=f"train-r000-000000.tar: corrupt tar header at byte {at}"):
        shards.index_split(tmp_path / "manifest.json", "train")


def test_pax_tar_with_long_names_is_indexed(tmp_path):
    samples = make_samples(3)
    long_id = "x" * 120  # a key longer than USTAR's 100-character name field: pax headers
    samples[1]["id"] = long_id
    with tarfile.open(tmp_path / "p.tar", "w", format=tarfile.PAX_FORMAT) as tar:
        for smp in samples:
            for ext, data in shards.encode_sample(smp).items():
                info = tarfile.TarInfo(f"{shards.sample_key(smp['id'])}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    manifest = {"dataset": "t", "splits": {"train": {"count": 3, "shards": [{"url": "p.tar", "count": 3}]}}}
    shards.write_manifest(tmp_path / "manifest.json", manifest)
    index = shards.index_split(tmp_path / "manifest.json", "train")
    assert long_id in list(index.keys) and len(index) == 3
    i = list(index.keys).index(long_id)
    np.testing.assert_array_equal(index.sample(i)["rgb"], samples[1]["rgb"])
