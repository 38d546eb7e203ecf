"""Stage ``pretrain`` end to end on a tiny streamed pool: reproducible bytes, timings kept out of the metrics,
automatic resume from a checkpoint outside the DVC outputs (after an injected kill and a real ``kill -9``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from pretrain_support import write_pool

import clip2point.train.pretrain as pretrain_mod
import pipeline.params as pparams
import pipeline.paths as ppaths
from stages import pretrain as stage

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--variant", "intra_cross", "--seed", "0", "--no-progress", "--device", "cpu"]


class Interrupt(Exception):
    pass


def _params(tmp_path: Path, **pretrain) -> Path:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"]["pretrain"] = {"name": "toy", "kind": "synth", "root": str(tmp_path / "meshes"), "up_axis": "y"}
    raw["depth"]["image_size"] = 32
    raw["pretrain"].update({"epochs": 3, "batch_size": 8, "lr": 3e-3, "warmup_steps": 1, "temperature": 0.1,
                            "ckpt_every": 1, "num_workers": 0, "seeds": [0], **pretrain})
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(raw))
    return f


@pytest.fixture
def ws(tmp_path, monkeypatch):
    """A workspace: params.yaml, a 16-sample pool (+8 val) as shards, a c2p-tiny CLIP as the run's CLIP."""
    monkeypatch.setenv("CLIP2POINT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("CLIP2POINT_PARAMS", str(_params(tmp_path)))
    write_pool(ppaths.shards_dir("toy"), ranks=2, maxcount=3)
    from clip2point.models.clip import create_clip

    torch.manual_seed(0)
    model, _ = create_clip("c2p-tiny", "")
    d = ppaths.clip_dir()
    d.mkdir(parents=True)
    torch.save(model.state_dict(), d / "weights.pt")
    (d / "clip.json").write_text(json.dumps({"model": "c2p-tiny", "pretrained": "", "weights": "weights.pt"}))
    return tmp_path


def _outputs(variant: str = "intra_cross") -> dict:
    out = ppaths.pretrain_dir(variant, 0)
    curves = {}
    plots = ppaths.plots_dir(ppaths.pretrain_key(variant, 0))
    for f in sorted(plots.rglob("*.tsv")):  # dvclive: timestamp, step, value; timestamps differ by nature
        rows = [line.split("\t") for line in f.read_text().splitlines()]
        curves[str(f.relative_to(plots))] = [r[1:] for r in rows]
    ck = ppaths.checkpoint_file(variant, 0)
    return {
        "encoder": (out / "encoder.pt").read_bytes(),
        "meta": (out / "encoder.json").read_bytes(),
        "metrics": ppaths.metrics_file(ppaths.pretrain_key(variant, 0)).read_text(),
        "details": ppaths.details_file(ppaths.pretrain_key(variant, 0)).read_text(),
        "timings": json.loads(ppaths.timings_file(variant, 0).read_text()),
        "curves": curves,
        "model": torch.load(ck, weights_only=False)["model"] if ck.exists() else None,
        "out_files": sorted(p.name for p in out.iterdir()),
    }


def _dvc_deletes_outputs(variant: str = "intra_cross") -> None:
    """What ``dvc repro`` does before rerunning the stage: remove its outs, metrics and plots."""
    shutil.rmtree(ppaths.pretrain_dir(variant, 0), ignore_errors=True)
    ppaths.metrics_file(ppaths.pretrain_key(variant, 0)).unlink(missing_ok=True)
    ppaths.details_file(ppaths.pretrain_key(variant, 0)).unlink(missing_ok=True)
    shutil.rmtree(ppaths.plots_dir(ppaths.pretrain_key(variant, 0)), ignore_errors=True)


def _kill_after(monkeypatch, k: int) -> None:
    real = pretrain_mod.pretrain

    def killed(*a, on_step=None, **kw):
        def step(s, sc):
            on_step(s, sc)
            if s == k:
                raise Interrupt

        return real(*a, on_step=step, **kw)

    monkeypatch.setattr(pretrain_mod, "pretrain", killed)


@pytest.mark.slow
def test_stage_writes_reproducible_bytes_and_keeps_timings_out_of_metrics(ws) -> None:
    assert stage.main(ARGS) == 0
    first = _outputs()
    metrics = json.loads(first["details"])  # the superset of the headline metrics
    assert not {k for k in metrics if "wall" in k or "per_s" in k or k == "world_size"}
    t = first["timings"]
    assert t["train_wall_s"] > 0 and t["wall_s"] > 0 and t["resumed_from_step"] == 0 and 0 <= t["data_share"] <= 1
    assert t["train_samples"] == 16 and t["val_samples"] == 8
    assert first["out_files"] == ["encoder.json", "encoder.pt"]  # no temporaries, no checkpoint in the output
    assert not ppaths.checkpoint_file("intra_cross", 0).exists()  # removed on success
    assert not list(ppaths.data_root().rglob("*.tmp"))
    _dvc_deletes_outputs()
    assert stage.main(ARGS) == 0
    second = _outputs()
    for k in ("encoder", "meta", "metrics", "details", "curves"):
        assert first[k] == second[k], k


@pytest.mark.slow
def test_killed_run_resumes_automatically_after_dvc_deleted_its_outputs(ws, monkeypatch) -> None:
    assert stage.main([*ARGS, "--keep-checkpoint"]) == 0
    ref = _outputs()
    shutil.rmtree(ppaths.checkpoint_dir("intra_cross", 0))
    _dvc_deletes_outputs()
    with monkeypatch.context() as m:
        _kill_after(m, 3)  # mid-epoch 2 of 3 (2 steps per epoch)
        with pytest.raises(Interrupt):
            stage.main(ARGS)
    assert torch.load(ppaths.checkpoint_file("intra_cross", 0), weights_only=False)["step"] == 3
    _dvc_deletes_outputs()
    # a temporary left by a kill during a write, inside the (re-created) output and the checkpoint folder
    ppaths.pretrain_dir("intra_cross", 0).mkdir(parents=True)
    (ppaths.pretrain_dir("intra_cross", 0) / ".encoder.pt.k1ll.tmp").write_bytes(b"half")
    (ppaths.checkpoint_dir("intra_cross", 0) / ".last.pt.k1ll.tmp").write_bytes(b"half")
    assert stage.main([*ARGS, "--keep-checkpoint"]) == 0  # no --resume: automatic
    got = _outputs()
    assert got["timings"]["resumed_from_step"] == 3 and got["timings"]["steps_run"] == 3
    assert got["model"].keys() == ref["model"].keys()
    for k, v in ref["model"].items():
        assert torch.equal(got["model"][k], v), k  # byte-identical final weights
    for k in ("encoder", "meta", "metrics", "curves", "out_files"):
        assert got[k] == ref[k], k
    assert not list(ppaths.data_root().rglob("*.tmp"))


@pytest.mark.slow
def test_checkpoint_of_other_params_is_not_resumed(ws, monkeypatch, tmp_path) -> None:
    with monkeypatch.context() as m:
        _kill_after(m, 3)
        with pytest.raises(Interrupt):
            stage.main(ARGS)
    assert ppaths.checkpoint_file("intra_cross", 0).exists()
    monkeypatch.setenv("CLIP2POINT_PARAMS", str(_params(tmp_path, lr=1e-3)))
    assert stage.main(ARGS) == 0
    t = _outputs()["timings"]
    assert t["resumed_from_step"] == 0 and t["steps_run"] == 6 and "another configuration" in t["resume_note"]


@pytest.mark.slow  # a subprocess run of 60 steps, killed, then resumed
def test_kill_9_then_rerun_ends_like_an_uninterrupted_run(ws, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CLIP2POINT_PARAMS", str(_params(tmp_path, epochs=30)))  # 60 steps
    args = ["--variant", "cross_only", "--seed", "0", "--no-progress", "--device", "cpu", "--keep-checkpoint"]
    assert stage.main(args) == 0
    ref = _outputs("cross_only")
    shutil.rmtree(ppaths.checkpoint_dir("cross_only", 0))
    _dvc_deletes_outputs("cross_only")
    env = {**os.environ, "CLIP2POINT_DATA": str(ppaths.data_root()), "CLIP2POINT_PARAMS": str(pparams.params_file()),
           "OMP_NUM_THREADS": str(torch.get_num_threads())}  # the reference's threads: the same float sums
    proc = subprocess.Popen([sys.executable, "-m", "stages.pretrain", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = ppaths.checkpoint_file("cross_only", 0)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:  # kill once a checkpoint of step >= 3 is there
        if ck.exists() and torch.load(ck, weights_only=False)["step"] >= 3:
            break
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    step = torch.load(ck, weights_only=False)["step"]
    assert 3 <= step < 60
    _dvc_deletes_outputs("cross_only")
    assert stage.main(args) == 0
    got = _outputs("cross_only")
    assert got["timings"]["resumed_from_step"] >= step
    for k, v in ref["model"].items():
        assert torch.equal(got["model"][k], v), k
    for k in ("encoder", "meta", "metrics", "curves", "out_files"):
        assert got[k] == ref[k], k
