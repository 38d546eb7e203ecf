"""preflight, clip_bootstrap in pointer mode and rgb_zeroshot@<ds> on tiny shards with seeded random weights."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

import pipeline.params as pparams
import pipeline.paths as ppaths
from clip2point import shards

CLASSES = ["red", "green", "blue"]


def _write_pool(name: str, splits: dict[str, int], rng: np.random.Generator) -> None:
    out = ppaths.shards_dir(name)
    info = {}
    for split, n in splits.items():
        samples = []
        for i in range(n):
            label = i % len(CLASSES)
            rgb = np.full((2, 32, 32, 3), 40, np.uint8)
            rgb[:, 8:24, 8:24, label] = 230
            samples.append({"id": f"{split}/{i}", "points": rng.normal(size=(16, 3)).astype(np.float32),
                            "label": label, "rgb": rgb})
        info[split] = {"count": n, "shards": shards.write_shards(samples, out, split, maxcount=4)}
    shards.write_manifest(ppaths.manifest(name), {"dataset": name, "class_names": CLASSES, "splits": info})


@pytest.fixture
def run_dir(tmp_path, monkeypatch, repo_params):
    raw = repo_params
    raw["clip"] = {"model": "c2p-tiny", "pretrained": "random:0", "templates": ["image of a {}."]}
    raw["data"]["pretrain"] = {"name": "pool", "kind": "synth", "root": str(tmp_path / "m"), "up_axis": "y"}
    raw["data"]["benchmarks"] = {"bench": {"kind": "synth", "root": str(tmp_path / "b"), "up_axis": "y"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("CLIP2POINT_PARAMS", str(tmp_path / "params.yaml"))
    monkeypatch.setenv("CLIP2POINT_DATA", str(tmp_path / "data"))
    rng = np.random.default_rng(0)
    _write_pool("pool", {"train": 6, "val": 5}, rng)
    _write_pool("bench", {"train": 3, "test": 7}, rng)
    return {"tmp": tmp_path, "raw": raw}


def test_pointer_mode_writes_every_declared_output(run_dir):
    """Regression (issue 10): pointer mode returned before the plots output existed; DVC then failed."""
    from stages import clip_bootstrap

    assert clip_bootstrap.main(["--no-progress"]) == 0
    assert ppaths.plots_dir("clip_bootstrap").is_dir()
    assert any(ppaths.plots_dir("clip_bootstrap").rglob("*.tsv"))
    m = yaml.safe_load(ppaths.details_file("clip_bootstrap").read_text())
    assert m["mode"] == "pointer" and m["pretrained"] == "random:0"
    assert set(m["zeroshot"]) == {"pool/val"} and m["zeroshot"]["pool/val"]["n"] == 5
    assert yaml.safe_load((ppaths.clip_dir() / "clip.json").read_text())["pretrained"] == "random:0"


def test_rgb_zeroshot_stage_streams_one_benchmark(run_dir):
    """The benchmark's own stage measures the CLIP on its test renders, exactly as a direct computation."""
    import torch

    from clip2point.models.clip import create_clip, text_features
    from clip2point.train.bootstrap import RgbSet, rgb_zero_shot
    from stages import clip_bootstrap, rgb_zeroshot

    assert clip_bootstrap.main(["--no-progress"]) == 0
    assert rgb_zeroshot.main(["bench"]) == 0
    got = yaml.safe_load(ppaths.metrics_file("rgb_zeroshot/bench").read_text())["zeroshot"]["bench/test"]
    split = shards.load_split(ppaths.manifest("bench"), "test")
    model, tok = create_clip("c2p-tiny", "random:0")
    ref = rgb_zero_shot(model.visual, RgbSet(torch.from_numpy(split["rgb"]), torch.from_numpy(split["labels"])),
                        text_features(model, tok, CLASSES, ["image of a {}."]))
    assert got["n"] == 7 and got["chance"] == pytest.approx(1 / 3)
    assert got["rgb_per_view"] == pytest.approx(ref["per_view"]) and got["rgb_multi_view"] == pytest.approx(
        ref["multi_view"])


@pytest.mark.parametrize(("clip", "needle"), [
    ({"model": "ViT-B-32", "pretrained": "/no/such/vit.pt"}, "CLIP checkpoint not found: /no/such/vit.pt"),
    ({"model": "ViT-B-32", "pretrained": "openai"}, "not in open_clip's cache"),
    ({"model": "ViT-Q-7", "pretrained": "openai"}, "unknown CLIP model 'ViT-Q-7'"),
])
def test_preflight_fails_in_seconds_on_missing_weights(run_dir, capsys, clip, needle, monkeypatch):
    from stages import preflight

    monkeypatch.setenv("HF_HOME", str(run_dir["tmp"] / "hf"))  # an empty cache, whatever this machine has
    raw = dict(run_dir["raw"], clip={**run_dir["raw"]["clip"], **clip})
    pparams.params_file().write_text(yaml.safe_dump(raw))
    assert preflight.main([]) == 1
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and not ppaths.preflight_file().exists()


def test_preflight_names_a_missing_dataset_root(run_dir, capsys):
    from stages import preflight

    (run_dir["tmp"] / "m").mkdir()  # the pool's synth root (the synth stage does not write it: it must exist)
    raw = dict(run_dir["raw"])
    raw["data"] = {**raw["data"], "benchmarks": {"mn40": {"kind": "modelnet40", "root": "/no/ModelNet40",
                                                           "up_axis": "z"}}}
    pparams.params_file().write_text(yaml.safe_dump(raw))
    assert preflight.main([]) == 1
    assert "dataset 'mn40': root /no/ModelNet40 does not exist" in capsys.readouterr().err
    raw["data"]["benchmarks"] = {}
    pparams.params_file().write_text(yaml.safe_dump(raw))
    assert preflight.main([]) == 0 and yaml.safe_load(ppaths.preflight_file().read_text()) == {"ok": True}


def test_rgb_zeroshot_records_a_point_dataset_as_skipped(run_dir):
    """ScanObjectNN has no meshes, so no RGB renders: the stage records why and succeeds (the rehearsal
    stopped here before)."""
    from stages import clip_bootstrap, rgb_zeroshot

    out = ppaths.shards_dir("bench")
    samples = [{"id": f"test/{i}", "points": np.zeros((16, 3), np.float32), "label": i % 3} for i in range(4)]
    info = {"test": {"count": 4, "shards": shards.write_shards(samples, out, "test", maxcount=4)}}
    shards.write_manifest(ppaths.manifest("bench"), {"dataset": "bench", "class_names": CLASSES, "splits": info})
    assert clip_bootstrap.main(["--no-progress"]) == 0
    assert rgb_zeroshot.main(["bench"]) == 0
    got = yaml.safe_load(ppaths.metrics_file("rgb_zeroshot/bench").read_text())["zeroshot"]["bench/test"]
    assert "has no RGB renders" in got["skipped"]


def test_bootstrap_mode_keeps_wall_clock_out_of_the_metrics(run_dir):
    """Issue 18: the bootstrap's wall time made clip_bootstrap.json differ on every run; it is in the timings."""
    import json

    from stages import clip_bootstrap

    raw = run_dir["raw"]
    raw["clip"]["pretrained"] = ""
    raw["bootstrap"].update(epochs=1, batch_size=4, warmup_steps=1)
    (run_dir["tmp"] / "params.yaml").write_text(yaml.safe_dump(raw))
    assert clip_bootstrap.main(["--no-progress"]) == 0
    text = ppaths.metrics_file("clip_bootstrap").read_text()
    details = ppaths.details_file("clip_bootstrap").read_text()
    assert json.loads(details)["mode"] == "bootstrap" and "wall" not in text and "wall" not in details
    timings = json.loads(ppaths.stage_timings_file("clip_bootstrap").read_text())
    assert timings["train_wall_s"] >= 0 and timings["wall_s"] >= 0


def test_rgb_zeroshot_on_an_undecodable_png_fails_in_one_line_and_writes_nothing(run_dir, capsys):
    """Issue 22.6: a test sample whose PNG no longer decodes gave partial metrics, then a TypeError (an int
    added to a str in the print line); now one ShardError line naming shard and sample, and no metrics."""
    from stages import clip_bootstrap, rgb_zeroshot

    assert clip_bootstrap.main(["--no-progress"]) == 0
    out = ppaths.shards_dir("bench")
    good = np.full((2, 32, 32, 3), 40, np.uint8)
    samples = [{"id": f"test/{i}", "points": np.zeros((16, 3), np.float32), "label": i % 3,
                "rgb_png": [shards.png_bytes(v) for v in good]} for i in range(5)]
    samples[3]["rgb_png"] = [samples[3]["rgb_png"][0], b"\x89PNG\r\n\x1a\n not a png any more"]
    info = {"test": {"count": 5, "shards": shards.write_shards(samples, out, "test", maxcount=8)}}
    shards.write_manifest(ppaths.manifest("bench"), {"dataset": "bench", "class_names": CLASSES, "splits": info})
    capsys.readouterr()
    assert rgb_zeroshot.main(["bench"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "test-000000.tar" in err and "sample test_3" in err
    assert not ppaths.metrics_file("rgb_zeroshot/bench").exists()


@pytest.mark.parametrize("where", ["pretrain", "benchmark"])
def test_preflight_names_a_missing_synth_root_the_synth_stage_does_not_write(run_dir, capsys, where):
    """Issue 22.11: a synth-kind root that nothing writes passed preflight; DVC then failed ``sample@…`` with a
    raw ``[Errno 2]``. The roots the synth stage writes may be missing (they are its outputs)."""
    from stages import preflight

    raw = dict(run_dir["raw"])
    pool = {"name": "pool", "kind": "synth", "root": str(ppaths.synth_root("pretrain")), "up_axis": "y"}
    bench = {"kind": "synth", "root": str(ppaths.synth_root("benchmark")), "up_axis": "y"}
    raw["data"] = {"pretrain": pool, "benchmarks": {"bench": bench}}
    pparams.params_file().write_text(yaml.safe_dump(raw))
    assert preflight.main([]) == 0  # both roots are the synth stage's outputs, not written yet
    typo = str(run_dir["tmp"] / "data" / "synth" / "benchmrk")
    if where == "pretrain":
        raw["data"]["pretrain"] = {**pool, "root": typo}
    else:
        raw["data"]["benchmarks"] = {"bench": {**bench, "root": typo}}
    pparams.params_file().write_text(yaml.safe_dump(raw))
    capsys.readouterr()
    assert preflight.main([]) == 1
    err = capsys.readouterr().err.strip()
    name = "pool" if where == "pretrain" else "bench"
    assert f"dataset '{name}': root {typo} does not exist, and the synth stage does not write it" in err
    assert "\n" not in err
