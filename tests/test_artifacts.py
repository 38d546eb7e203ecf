"""Atomic writes: success renames into place, failure leaves nothing behind."""

import pytest

from pipeline.artifacts import atomic_dir, atomic_path, read_json, write_json


def test_atomic_path_success(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("hello")
        assert not target.exists()
    assert target.read_text() == "hello"
    assert list(target.parent.iterdir()) == [target]


def test_atomic_path_failure_leaves_old_content(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_dir_replaces_whole(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "stale.txt").write_text("x")
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("y")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_dir_failure(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(ValueError):
        with atomic_dir(target) as tmp:
            (tmp / "half.txt").write_text("y")
            raise ValueError
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_json_roundtrip_numpy(tmp_path):
    import numpy as np

    write_json(tmp_path / "m.json", {"a": np.float32(0.5), "b": np.arange(3)})
    assert read_json(tmp_path / "m.json") == {"a": 0.5, "b": [0, 1, 2]}


def test_torch_writes_are_byte_reproducible(tmp_path):
    """Same content → same bytes, whatever temporary name the atomic write used (DVC compares hashes)."""
    import torch

    from pipeline.artifacts import write_torch

    sd = {"w": torch.arange(6.0).view(2, 3), "b": torch.ones(2)}
    write_torch(sd, tmp_path / "a.pt")
    write_torch(sd, tmp_path / "sub" / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "sub" / "b.pt").read_bytes()
    back = torch.load(tmp_path / "a.pt", weights_only=True)
    assert torch.equal(back["w"], sd["w"]) and not list(tmp_path.glob("**/*.tmp"))
