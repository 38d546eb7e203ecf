"""clip2point.files: the one atomic-file primitive and the one JSON fallback that every writer of the library
and the pipeline goes through (issue 20)."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from clip2point.files import atomic_file, json_default


def test_success_renames_and_failure_leaves_the_old_file(tmp_path):
    p = tmp_path / "sub" / "out.bin"
    with atomic_file(p) as tmp:
        assert tmp.parent == p.parent and tmp.name.startswith(".out.bin.") and tmp.suffix == ".tmp"
        assert tmp.exists() and not p.exists()  # nothing at the target until the block succeeds
        tmp.write_bytes(b"one")
    assert p.read_bytes() == b"one"
    with pytest.raises(KeyboardInterrupt), atomic_file(p) as tmp:
        tmp.write_bytes(b"tw")
        raise KeyboardInterrupt
    assert p.read_bytes() == b"one" and sorted(x.name for x in p.parent.iterdir()) == ["out.bin"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_the_file_gets_the_mode_open_would_give(tmp_path, umask):
    old = os.umask(umask)
    try:
        with atomic_file(tmp_path / "a", tmp_dir=tmp_path / "scratch", fsync=True) as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o666 & ~umask


def test_a_tmp_dir_on_another_filesystem_falls_back_to_the_targets_folder(tmp_path, monkeypatch):
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    real = os.replace

    def cross_device(a, b):
        if Path(a).parent == scratch:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real(a, b)

    monkeypatch.setattr(os, "replace", cross_device)
    with atomic_file(out / "w.pt", tmp_dir=scratch) as tmp:
        tmp.write_bytes(b"weights")
    assert (out / "w.pt").read_bytes() == b"weights"
    assert [p.name for p in out.iterdir()] == ["w.pt"] and not list(scratch.iterdir())


def test_json_default_numbers_arrays_and_paths():
    obj = {"f": np.float32(0.5), "i": np.int64(3), "t": torch.tensor(2.5), "a": np.arange(3), "p": Path("x/y")}
    assert json.loads(json.dumps(obj, default=json_default)) == {"f": 0.5, "i": 3, "t": 2.5, "a": [0, 1, 2],
                                                                 "p": "x/y"}
    with pytest.raises(TypeError, match="not JSON serialisable: set"):
        json.dumps({"s": {1}}, default=json_default)
