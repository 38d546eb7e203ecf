"""Issue 22, items 9, 12 and 14: artifacts that do not load are one line naming the file; a killed stage's
temporaries are removed by the next run of that stage; outputs follow the umask."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
import torch

from clip2point.train import checkpoint as ckpt
from pipeline import artifacts
from pipeline.artifacts import ArtifactError, atomic_dir, atomic_path, load_torch, remove_stale, write_json


def _age(p: Path, seconds: float = 3600.0) -> None:
    """Make ``p`` look as if a run killed ``seconds`` ago left it."""
    t = time.time() - seconds
    os.utime(p, (t, t))


# --- 22.9: truncated artifacts ----------------------------------------------------------------------------

def test_truncated_text_features_are_one_line_naming_the_file(tmp_path):
    """A cut ``text.pt`` gave torch's RuntimeError traceback; every artifact load now goes through one reader."""
    from pipeline.feature_store import FeatureStore

    p = tmp_path / "text.pt"
    artifacts.write_torch(torch.ones(3, 4), p)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    store = FeatureStore(tmp_path, {"class_names": ["a"], "encoders": [], "view_sets": {}, "splits": {}}, None)
    with pytest.raises(ArtifactError) as e:
        store.text()
    msg = str(e.value)
    assert str(p) in msg and "truncated or corrupt" in msg and "\n" not in msg


def test_every_artifact_torch_load_goes_through_the_one_reader():
    """No pipeline or stage module calls ``torch.load`` itself (a new one would bring the traceback back)."""
    root = Path(__file__).resolve().parents[1]
    offenders = [str(p.relative_to(root)) for d in ("pipeline", "stages") for p in (root / d).glob("*.py")
                 if p.name != "artifacts.py" and "torch.load(" in p.read_text()]
    assert offenders == []


def test_truncated_checkpoint_is_one_line_naming_the_file(tmp_path):
    p = tmp_path / "last.pt"
    ckpt.save_atomic({"step": 3, "w": torch.zeros(100)}, p)
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(ckpt.CheckpointError) as e:
        ckpt.read_checkpoint(p)
    assert str(p) in str(e.value) and "truncated or corrupt" in str(e.value)


def test_load_torch_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="feature cache not found"):
        load_torch(tmp_path / "nope.pt", "feature cache")


# --- 22.12: stale temporaries ----------------------------------------------------------------------------

def test_a_killed_runs_temporaries_are_removed_by_the_next_write_of_that_output(tmp_path):
    """``kill -9`` inside atomic_dir / atomic_path left ``.<name>.*.tmp`` for good."""
    out = tmp_path / "synth_benchmark"
    stale_dir = tmp_path / ".synth_benchmark.k1ll3d.tmp"
    stale_dir.mkdir()
    (stale_dir / "text.pt").write_bytes(b"half")
    stale_old = tmp_path / ".synth_benchmark.old"
    stale_old.mkdir()
    stale_file = tmp_path / ".metrics.json.zz.tmp"
    stale_file.write_text("{")
    other = tmp_path / ".other_dataset.abc.tmp"  # another output's temporary: not this stage's to remove
    other.mkdir()
    fresh = tmp_path / ".synth_benchmark.live.tmp"  # younger than this process: a live writer's
    fresh.mkdir()
    for p in (stale_dir, stale_old, stale_file, other):
        _age(p)
    os.utime(fresh, (time.time() + 60, time.time() + 60))
    with atomic_dir(out) as tmp:
        (tmp / "meta.json").write_text("{}")
    write_json(tmp_path / "metrics.json", {"acc": 1.0})
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["synth_benchmark", "metrics.json", other.name, fresh.name])


def test_render_staging_of_a_killed_multi_rank_run_is_removed(tmp_path):
    final = tmp_path / "synth_benchmark"
    dead = tmp_path / ".synth_benchmark.staging-oldrun"
    dead.mkdir()
    _age(dead)
    mine = tmp_path / ".synth_benchmark.staging-thisrun"
    mine.mkdir()
    _age(mine)  # even if a slower rank made it earlier, the current run's folder is kept
    assert remove_stale(final, keep=mine) == [dead]
    assert mine.is_dir() and not dead.exists()


# --- 22.14: modes follow the umask -----------------------------------------------------------------------

@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_outputs_follow_the_umask(tmp_path, umask):
    """mkstemp / mkdtemp made every output 0600 and every folder 0700, whatever the umask."""
    f = tmp_path / "a.json"
    write_json(f, {"x": 1})
    with atomic_path(tmp_path / "b.bin") as tmp:
        tmp.write_bytes(b"x")
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "inside.txt").write_text("x")
    ckpt.write_bytes_atomic(b"abc", tmp_path / "c.pt")
    ckpt.save_atomic({"a": torch.zeros(2)}, tmp_path / "e.pt", tmp_dir=tmp_path / "ck")
    for name in ("a.json", "b.bin", "c.pt", "e.pt", "d/inside.txt"):
        assert _mode(tmp_path / name) == 0o666 & ~umask, name
    assert _mode(tmp_path / "d") == 0o777 & ~umask
