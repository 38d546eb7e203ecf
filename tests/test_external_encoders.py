"""``pretrain.external``: a released CLIP2Point checkpoint as a DAG input (issue 19 item 3).

A fake checkpoint in the released key layout (``module.point_model.*`` beside ``module.image_model.*`` and
``module.weights``, as ``torch.save(DataParallel(model).state_dict())`` writes it) around a tiny QuickGELU CLIP
goes through ``external_encoder`` → ``features`` → ``zeroshot`` → ``fewshot`` to its own rows and report labels.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from cli_support import TINY_QUICK, register_tiny_quickgelu
from downstream_support import DATASET, points_table, use_workspace
from released_support import randomised

import pipeline.params as pparams
import pipeline.paths as ppaths
from clip2point.models.released import ReleasedCheckpointError
from pipeline import models as pmodels
from pipeline.feature_store import FeatureStore
from pipeline.keys import EncoderKey
from pipeline.params import ParamsError, params_from_dict

ROOT = Path(__file__).resolve().parents[1]
NAME = "rel"


def _raw() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def _released_file(path: Path, model: str, seed: int = 3, prefix: str = "point_model.") -> Path:
    """A released pre-training checkpoint around ``model``'s visual tower (random, seeded weights)."""
    import open_clip

    visual = randomised(open_clip.create_model(model, pretrained=None).visual, seed, std=(0.02, 0.5))
    state = {f"module.{prefix}{k}": v for k, v in visual.state_dict().items()}
    state |= {f"module.image_model.{k}": v.clone() for k, v in visual.state_dict().items()}
    state["module.weights"] = torch.ones(2)
    torch.save(state, path)
    return path


# ---------------------------------------------------------------- keys and params


def test_released_key_round_trips_and_is_no_variant_seed_key():
    key = EncoderKey.released("seed3")  # a name that looks like a seed still is a released key
    assert str(key) == "released-seed3" and EncoderKey.parse(str(key)) == key and key.is_released
    assert key.source() == {"variant": "released", "name": "seed3"}
    assert not EncoderKey.parse("intra_cross-seed3").is_released
    for bad in ("released-a-b", "released-", "released-seed-1"):
        with pytest.raises(ValueError):
            EncoderKey.parse(bad)
    with pytest.raises(ValueError):
        EncoderKey("released", 3)


def test_params_external_validated(tmp_path):
    ck = tmp_path / "best_eval.pth"
    ck.write_bytes(b"x")
    raw = _raw()
    raw["pretrain"]["external"] = {"mine": str(ck)}
    assert params_from_dict(raw).pretrain.external == {"mine": str(ck)}
    assert params_from_dict(_raw()).pretrain.external == {}
    for external, words in (({"bad-name": str(ck)}, "letters, digits and underscores"),
                            ({"clip": str(ck)}, "taken by the run's CLIP"),
                            ({"intra_cross": str(ck)}, "taken by a pre-training variant"),
                            ({"gone": str(tmp_path / "none.pth")}, "checkpoint file not found"),
                            ({"folder": str(tmp_path)}, "checkpoint file not found"),
                            ({"num": 3}, "must be the path of a checkpoint file")):
        raw["pretrain"]["external"] = external
        with pytest.raises(ParamsError) as e:
            params_from_dict(raw)
        assert words in str(e.value) and "pretrain.external" in str(e.value)


# ---------------------------------------------------------------- the preflight check


def test_check_external_checkpoint_one_line_each(tmp_path, monkeypatch):
    register_tiny_quickgelu(monkeypatch)
    good = _released_file(tmp_path / "good.pth", TINY_QUICK)
    pmodels.check_external_checkpoint(NAME, good, TINY_QUICK)  # fits: no error

    def err(path, model=TINY_QUICK) -> str:
        with pytest.raises(ReleasedCheckpointError) as e:
            pmodels.check_external_checkpoint(NAME, path, model)
        msg = str(e.value)
        assert "\n" not in msg and f"pretrain.external.{NAME}" in msg and len(msg) < 600
        return msg

    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    assert "cannot read released checkpoint" in err(junk)
    other = tmp_path / "other.pth"
    torch.save({"module.encoder.conv1.weight": torch.zeros(1)}, other)
    assert "outside the released CLIP2Point/DPA modules" in err(other)
    # the embedded default's CLIP (c2p-mini) is another architecture: name what the checkpoint needs
    msg = err(good, "c2p-mini")
    assert f"CLIP '{TINY_QUICK}'" in msg and "clip.model is 'c2p-mini'" in msg
    assert f"set clip.model: {TINY_QUICK}" in msg
    # same architecture, but GELU: the released weights need QuickGELU
    assert "QuickGELU" in err(good, "c2p-tiny")


def test_preflight_refuses_a_bad_checkpoint(tmp_path, monkeypatch, capsys):
    from stages import preflight

    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    raw = _raw()
    raw["pretrain"]["external"] = {NAME: str(junk)}
    use_workspace(monkeypatch, tmp_path, raw)
    (tmp_path / "data").mkdir()
    assert preflight.main([]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("preflight: pretrain.external.rel") and "cannot read" in err and "\n" not in err
    assert not ppaths.preflight_file().exists()


# ---------------------------------------------------------------- end to end on a tiny run


@pytest.fixture
def tiny_run(tmp_path, monkeypatch):
    """A tiny run: the points of a 4-class benchmark, the run's CLIP (``c2p-tiny-quickgelu``, random) in
    ``data/models/clip`` and a released checkpoint ``rel`` of other weights; no pre-training runs."""
    register_tiny_quickgelu(monkeypatch)
    from clip2point.models.clip import create_clip

    ck = _released_file(tmp_path / "best_eval.pth", TINY_QUICK)
    raw = _raw()
    raw["data"]["benchmarks"] = {DATASET: {"kind": "synth", "root": str(tmp_path / "meshes"), "up_axis": "y"}}
    raw["clip"]["model"] = TINY_QUICK
    raw["depth"]["image_size"] = 16
    raw["pretrain"].update({"seeds": [0], "external": {NAME: str(ck)}})
    raw["adapter"].update({"k_shot": 4, "seeds": [0, 1], "epochs": 4, "val_fraction": 0.25})
    raw["zeroshot"]["batch_size"] = 16
    use_workspace(monkeypatch, tmp_path, raw)
    ppaths.points_table(DATASET).parent.mkdir(parents=True)
    pq.write_table(points_table(), ppaths.points_table(DATASET))
    torch.manual_seed(0)
    clip_model, _ = create_clip(TINY_QUICK)
    d = ppaths.clip_dir()
    d.mkdir(parents=True)
    torch.save(clip_model.state_dict(), d / pmodels.CLIP_WEIGHTS)
    (d / pmodels.CLIP_POINTER).write_text(json.dumps({"model": TINY_QUICK, "pretrained": "",
                                                      "weights": pmodels.CLIP_WEIGHTS}))
    return {"ckpt": ck, "raw": raw, "tmp": tmp_path}


def test_released_checkpoint_gets_its_own_rows(tiny_run, capsys):
    from clip2point.models.clip import encode_views
    from clip2point.render.depth import DepthConfig, render_depth
    from clip2point.schema import table_points
    from pipeline import run_report
    from stages import external_encoder, features, fewshot, zeroshot

    key = str(EncoderKey.released(NAME))
    assert external_encoder.main([NAME]) == 0
    meta = json.loads((ppaths.external_dir(NAME) / pmodels.ENCODER_META).read_text())
    assert meta["checkpoint"] == str(tiny_run["ckpt"]) and meta["key"] == key
    assert features.main([DATASET, "--variants"]) == 0
    store = FeatureStore.open(ppaths.features_dir(DATASET))
    assert store.encoders == ["clip", key]
    # the cached features are those of the checkpoint's point_model weights, not of the run's CLIP
    ck = torch.load(tiny_run["ckpt"], weights_only=True)
    clip_model, _ = pmodels.load_clip()
    released = copy.deepcopy(clip_model.visual)
    released.load_state_dict({k[len("module.point_model."):]: v for k, v in ck.items()
                              if k.startswith("module.point_model.")})
    table = pq.read_table(ppaths.points_table(DATASET))
    test = table.filter(pa.compute.equal(table.column("split"), "test"))
    pts = torch.from_numpy(table_points(test).copy())
    with torch.no_grad():
        ref = encode_views(released.eval(), render_depth(pts, "zeroshot6", 1.0, DepthConfig(image_size=16)))
    got = store.features(key, "zeroshot6", "test")
    assert torch.allclose(got, ref, atol=2e-3)
    assert not torch.allclose(got, store.features("clip", "zeroshot6", "test"), atol=1e-2)

    assert zeroshot.main([DATASET]) == 0
    zs = json.loads((ppaths.results_dir("zeroshot") / DATASET / "details.json").read_text())
    assert set(zs["rows"]) == {"without_pretraining", key} and zs["rows"][key]["encoder"] == key
    assert fewshot.main(["--mode", "fewshot", DATASET]) == 0
    fs = json.loads((ppaths.results_dir("fewshot") / DATASET / "details.json").read_text())
    single, dual = f"global_view@{key}", f"dual_path@clip+{key}"
    assert {single, dual} <= set(fs["rows"])
    assert fs["rows"][dual]["seeds"]["seed1"]["encoders"] == ["clip", key]
    assert "released checkpoint (rel)" in fs["rows"][single]["note"]
    assert fewshot.main(["--mode", "supervised", DATASET]) == 0
    sup = json.loads((ppaths.results_dir("supervised") / DATASET / "details.json").read_text())
    assert {single, dual} <= set(sup["rows"]) and sup["rows"][single]["seeds"]["seed0"]["n_train"] == 4 * 10

    from stages import family

    raw = copy.deepcopy(tiny_run["raw"])
    raw["pretrain"]["variants"] = ["cross_only"]  # this tiny run pre-trains nothing: no intra_cross column
    pparams.params_file().write_text(yaml.safe_dump(raw))
    assert family.main([DATASET]) == 0  # the projection family gets a released-checkpoint column
    fam = json.loads(ppaths.details_file(f"family/{DATASET}").read_text())
    assert all(key in r and "without_pretraining" in r for r in fam["rows"].values())

    out = tiny_run["tmp"] / "report"
    out.mkdir()
    md = "\n".join(run_report._dataset_section(pparams.load_params(), DATASET, out))
    fam_head = next(line for line in md.splitlines() if line.startswith("| row | projection"))
    assert "released checkpoint (rel)" in fam_head
    zs_line = next(line for line in md.splitlines() if line.startswith("| released checkpoint (rel)"))
    assert f"{100 * zs['rows'][key]['acc']:.2f}" in zs_line
    assert any(single in line and "released checkpoint (rel)" in line for line in md.splitlines())


def test_released_checkpoint_refused_by_its_stage_in_one_line(tiny_run, capsys):
    from stages import external_encoder

    torch.save({"module.point_model.conv1.weight": torch.zeros(1)}, tiny_run["ckpt"])
    assert external_encoder.main([NAME]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("external_encoder: pretrain.external.rel") and "\n" not in err
    assert not ppaths.external_dir(NAME).exists()


# ---------------------------------------------------------------- through dvc


def _sh(cmd: list[str], cwd: Path, env: dict) -> str:
    import subprocess

    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{' '.join(cmd)}: {res.stdout[-2000:]}{res.stderr[-2000:]}"
    return res.stdout


@pytest.mark.slow
def test_released_checkpoint_through_dvc_repro(tmp_path, monkeypatch):
    """A copy of the repository with ``pretrain.external: {rel: ck/best_eval.pth}``: ``dvc repro`` of
    preflight → external_encoder@rel → features → zeroshot gives the checkpoint its own row; a changed
    checkpoint file reruns external_encoder@rel and then features (through ``data/models``); an empty mapping
    has no external stage and no such row."""
    import os
    import shutil
    import subprocess
    import sys

    register_tiny_quickgelu(monkeypatch)
    from clip2point.models.clip import MINI_CONFIGS

    repo = tmp_path / "repo"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (ROOT / f).is_file() and not f.startswith(("data/", "docs/")):
            (repo / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / f, repo / f)
    (repo / "clip2point/models/configs" / f"{TINY_QUICK}.json").write_text(
        json.dumps({**MINI_CONFIGS["c2p-tiny"], "quick_gelu": True}))  # a shipped config in this copy only
    raw = _raw()
    raw["clip"]["model"] = TINY_QUICK
    raw["depth"]["image_size"] = 16
    raw["pretrain"].update({"variants": ["intra_cross"], "seeds": [0], "external": {NAME: "ck/best_eval.pth"}})
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    # what the skipped upstream stages would write: the run's CLIP, one pre-trained encoder, the benchmark's points
    (repo / "ck").mkdir()
    ck = _released_file(repo / "ck/best_eval.pth", TINY_QUICK, seed=3)
    monkeypatch.setenv("CLIP2POINT_DATA", str(repo / "data"))
    torch.manual_seed(0)
    import open_clip

    clip_model = open_clip.create_model(TINY_QUICK)
    d = ppaths.clip_dir()
    d.mkdir(parents=True)
    torch.save(clip_model.state_dict(), d / pmodels.CLIP_WEIGHTS)
    (d / pmodels.CLIP_POINTER).write_text(json.dumps({"model": TINY_QUICK, "pretrained": "",
                                                      "weights": pmodels.CLIP_WEIGHTS}))
    enc = ppaths.pretrain_dir("intra_cross", 0)
    enc.mkdir(parents=True)
    torch.save(randomised(copy.deepcopy(clip_model.visual), 9, std=(0.02, 0.5)).state_dict(), enc / "encoder.pt")
    bench = raw["data"]["benchmarks"]
    ds = next(iter(bench))
    ppaths.points_table(ds).parent.mkdir(parents=True)
    pq.write_table(points_table(), ppaths.points_table(ds))

    env = {**os.environ, "PYTHONPATH": str(repo), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYOPENGL_PLATFORM": "osmesa", "OMP_NUM_THREADS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("CLIP2POINT_DATA", None)
    env.pop("CLIP2POINT_PARAMS", None)
    _sh(["git", "init", "-q"], repo, env)
    _sh(["git", "add", "-A"], repo, env)
    _sh(["git", "commit", "-qm", "copy"], repo, env)
    dvc = [str(Path(sys.executable).parent / "dvc")]
    stages = ["preflight", f"external_encoder@{NAME}", f"features@{ds}", f"zeroshot@{ds}"]
    _sh([*dvc, "repro", "-s", *stages], repo, env)
    key = str(EncoderKey.released(NAME))
    metrics = json.loads((repo / "data/metrics/zeroshot" / f"{ds}.json").read_text())
    assert set(metrics["acc"]) == {"without_pretraining", "with_pretraining", key}
    assert "up to date" in _sh([*dvc, "status", *stages[1:]], repo, env)

    _released_file(ck, TINY_QUICK, seed=4)  # another checkpoint at the same path
    status = _sh([*dvc, "status", stages[1]], repo, env)
    assert "modified" in status and "ck/best_eval.pth" in status
    _sh([*dvc, "repro", "-s", stages[1]], repo, env)
    status = _sh([*dvc, "status", stages[2]], repo, env)
    assert "modified" in status and "data/models" in status

    raw["pretrain"]["external"] = {}
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    assert "external_encoder" not in _sh([*dvc, "stage", "list"], repo, env)
    _sh([*dvc, "repro", "-s", stages[0], *stages[2:]], repo, env)
    metrics = json.loads((repo / "data/metrics/zeroshot" / f"{ds}.json").read_text())
    assert set(metrics["acc"]) == {"without_pretraining", "with_pretraining"}


def test_released_keys_picks_released_encoders_in_order():
    from pipeline.keys import released_keys

    keys = released_keys(["clip", "released-b", "intra_cross-seed0", "not a key!", "released-a"])
    assert [str(k) for k in keys] == ["released-b", "released-a"] and all(k.is_released for k in keys)
