"""Issue 22.4: the members of a shard sample are cross-checked against each other and the manifest.

Shards are built by hand here with :mod:`tarfile` in the WebDataset layout the render stage writes (one
``<key>.<ext>`` member per file, a sample's members consecutive), and a manifest as the render stage writes it
(``class_names``, ``has_rgb``, ``views``, ``num_points``). One member is then made to disagree.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from clip2point import shards

CLASSES = ["chair", "table", "lamp"]
VIEWS = "zeroshot6"  # 6 views
N_POINTS = 16


def _png(value: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _members(i: int, split: str = "train") -> dict[str, bytes]:
    """The members of sample i as the render stage writes them (keys in the tar: ``<key>.<ext>``)."""
    label = i % 3
    files = {"points.npy": _npy(np.full((N_POINTS, 3), i / 10, np.float32)), "cls": str(label).encode()}
    for v in range(6):
        files[f"rgb.{v:02d}.png"] = _png(10 * v + i)
    files["json"] = json.dumps({"id": f"{split}/m_{i:03d}.off", "label": label, "label_name": CLASSES[label],
                                "source": f"/src/m_{i:03d}.off", "split": split}, sort_keys=True).encode()
    return files


def _write(root: Path, samples: list[dict[str, bytes]], split: str = "train") -> Path:
    """One shard ``<split>-r000-000000.tar`` and its manifest; returns the manifest path."""
    root.mkdir(parents=True, exist_ok=True)
    url = f"{split}-r000-000000.tar"
    with tarfile.open(root / url, "w", format=tarfile.USTAR_FORMAT) as tar:
        for files in samples:
            key = shards.sample_key(json.loads(files["json"])["id"]) if "key" not in files else files.pop("key")
            for ext, data in files.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    manifest = {"format": shards.MANIFEST_FORMAT, "dataset": "toy", "class_names": CLASSES, "has_rgb": True,
                "views": VIEWS, "num_points": N_POINTS,
                "splits": {split: {"count": len(samples), "shards": [{"url": url, "count": len(samples)}]}}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root / "manifest.json"


def _meta(files: dict[str, bytes], **change) -> None:
    files["json"] = json.dumps({**json.loads(files["json"]), **change}, sort_keys=True).encode()


def _cls_vs_json(f):
    f["cls"] = b"2"  # the json still says label 1


def _label_name(f):
    _meta(f, label_name="lamp")  # label 1 is "table" in the manifest


def _key(f):
    f["key"] = "train_m_001_off"
    _meta(f, id="train/m_999.off")  # the json names another sample


def _split(f):
    _meta(f, split="test")


def _out_of_range(f):
    f["cls"] = b"7"
    _meta(f, label=7)


def _points(f):
    f["points.npy"] = _npy(np.zeros((N_POINTS - 4, 3), np.float32))


def _view_missing(f):
    del f["rgb.05.png"]


def _view_gap(f):
    f["rgb.07.png"] = f.pop("rgb.05.png")


CASES = {  # change to sample 1, what the error must say
    "cls_vs_json_label": (_cls_vs_json, ["cls says 2", "json label says 1"]),
    "label_name_vs_manifest": (_label_name, ["json label_name 'lamp'", "'table'", "class_names"]),
    "key_vs_json_id": (_key, ["json id 'train/m_999.off'", "train_m_001_off"]),
    "split_vs_manifest": (_split, ["json split 'test'", "'train'"]),
    "cls_outside_class_names": (_out_of_range, ["cls 7", "3 class_names"]),
    "points_vs_manifest": (_points, ["points.npy holds 12 points", "num_points 16"]),
    "views_vs_manifest": (_view_missing, ["5 RGB members", "6 views"]),
    "views_numbering": (_view_gap, ["rgb.{00,01,02,03,04,07}.png"]),
}


def _damaged(tmp_path: Path, case: str) -> tuple[Path, list[str]]:
    change, needles = CASES[case]
    samples = [_members(i) for i in range(4)]
    change(samples[1])
    return _write(tmp_path / case, samples), needles


def test_consistent_hand_built_shard_reads_whole(tmp_path):
    """The control: the same hand-built shard without a change reads whole through every reader."""
    m = _write(tmp_path, [_members(i) for i in range(4)])
    data = shards.load_split(m, "train")
    assert data["labels"].tolist() == [0, 1, 2, 0] and data["rgb"].shape == (4, 6, 4, 4, 3)
    index = shards.index_split(m, "train")
    assert [index.sample(i)["label"] for i in range(4)] == [0, 1, 2, 0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_stream_reader_refuses_a_sample_whose_members_disagree(tmp_path, case):
    """Before: read without a word (the label member won, or the sample counted with a view short)."""
    m, needles = _damaged(tmp_path, case)
    with pytest.raises(shards.ShardError) as e:
        shards.load_split(m, "train")
    msg = str(e.value)
    assert "train-r000-000000.tar" in msg and "train_m_001_off" in msg and "members disagree" in msg
    for n in needles:
        assert n in msg, (n, msg)
    assert "\n" not in msg


@pytest.mark.parametrize("case", sorted(CASES))
def test_random_access_reader_refuses_a_sample_whose_members_disagree(tmp_path, case):
    """Pre-training's reader (index_split + ShardIndex.sample): at indexing for member names, at the read of
    that sample for member contents."""
    m, needles = _damaged(tmp_path, case)
    with pytest.raises(shards.ShardError) as e:
        index = shards.index_split(m, "train")
        for i in range(len(index)):
            index.sample(i)
    msg = str(e.value)
    assert "train-r000-000000.tar" in msg and "members disagree" in msg
    for n in needles:
        assert n in msg, (n, msg)


def test_manifest_without_rgb_refuses_a_sample_with_rgb(tmp_path):
    m = _write(tmp_path, [_members(i) for i in range(2)])
    raw = json.loads(m.read_text())
    raw["has_rgb"] = False
    m.write_text(json.dumps(raw))
    with pytest.raises(shards.ShardError, match="6 RGB members .* but the manifest says 0 views"):
        shards.load_split(m, "train")
