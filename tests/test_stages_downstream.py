"""The features / zeroshot / fewshot stages end to end on a tiny dataset with tiny random encoders."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from downstream_support import CLASSES, DATASET, ENCODERS, N_TEST, N_TRAIN, make_run_dir, write_signal_store

import pipeline.params as pparams
import pipeline.paths as ppaths
from clip2point.render.views import union_views
from pipeline import adapter_grid
from pipeline import models as pmodels
from pipeline.artifacts import read_json
from pipeline.feature_store import FeatureStore
from pipeline.zeroshot_table import zero_shot_table
from stages import features as features_stage
from stages import fewshot as fewshot_stage
from stages import zeroshot as zeroshot_stage

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    return make_run_dir(tmp_path, monkeypatch)


def test_features_zeroshot_fewshot_end_to_end(run_dir, capsys):
    from clip2point.models.clip import encode_views
    from clip2point.predict import bundle_from_checkpoint, predict
    from clip2point.render.depth import DepthConfig, render_depth

    assert features_stage.main([DATASET, "--variants", "intra_cross"]) == 0
    store = FeatureStore.open(ppaths.features_dir(DATASET))
    assert store.class_names == CLASSES and store.encoders == ENCODERS
    assert store.meta["splits"] == {"test": 4 * N_TEST, "train": 4 * N_TRAIN}
    assert store.meta["view_sets"] == {"pretrain10": 10, "zeroshot6": 6}
    assert store.meta["rendered_views"] == 10
    f10 = store.features("clip", "pretrain10", "test")
    f6 = store.features("clip", "zeroshot6", "test")
    assert f10.shape == (4 * N_TEST, 10, 32) and f6.shape == (4 * N_TEST, 6, 32)
    _, where = union_views({"pretrain10": _vs("pretrain10"), "zeroshot6": _vs("zeroshot6")}, 1.0)
    assert torch.equal(f6, f10[:, where["zeroshot6"]])
    # the cache holds what the encoder gives on the rendered depth maps of these very clouds, in index order
    test_rows = run_dir["table"].filter(pa.compute.equal(run_dir["table"].column("split"), "test"))
    assert store.ids("test") == test_rows.column("id").to_pylist()
    from clip2point.schema import table_points

    pts = torch.from_numpy(table_points(test_rows).copy())
    with torch.no_grad():
        ref = encode_views(run_dir["encoders"]["intra_cross-seed1"],
                           render_depth(pts, "pretrain10", 1.0, DepthConfig(image_size=16)))
    assert torch.allclose(store.features("intra_cross-seed1", "pretrain10", "test"), ref, atol=2e-3)

    # zero-shot: Table 1 rows, metrics agree with the predictions table
    assert zeroshot_stage.main([DATASET]) == 0
    zs = read_json(ppaths.details_file(f"zeroshot/{DATASET}"))
    assert set(zs["rows"]) == {"without_pretraining", "with_pretraining"}
    assert zs["missing_rows"] == ["cross_only", "rgb_control"]
    assert zs["rows"]["with_pretraining"]["n_seeds"] == 2
    assert zs["rows"]["without_pretraining"]["n_seeds"] == 1
    out = ppaths.results_dir("zeroshot") / DATASET
    preds = pq.read_table(out / "predictions.parquet").to_pylist()
    assert len(preds) == 3 * 4 * N_TEST
    sel = [r for r in preds if r["encoder"] == "intra_cross-seed0"]
    assert zs["rows"]["with_pretraining"]["seeds"]["intra_cross-seed0"]["acc"] == pytest.approx(
        np.mean([r["label"] == r["pred"] for r in sel])
    )
    assert (out / "confusion_with_pretraining.png").read_bytes()[:4] == b"\x89PNG"

    # few-shot grid: rows with missing encoders are skipped; checkpoint of the DPA reproduces its predictions
    assert fewshot_stage.main(["--mode", "fewshot", DATASET]) == 0
    fs = read_json(ppaths.details_file(f"fewshot/{DATASET}"))
    assert adapter_grid.MAIN_ROW in fs["rows"] and "global_view@clip" in fs["rows"]
    assert "dual_path@clip+rgb_control" in fs["missing_rows"]
    dpa = fs["rows"][adapter_grid.MAIN_ROW]
    assert dpa["n_seeds"] == 2 and dpa["seeds"]["seed0"]["n_train"] == 16
    assert dpa["seeds"]["seed1"]["encoders"] == ["clip", "intra_cross-seed1"]
    assert "fewshot_global_vs_inter" in fs["findings"]
    out = ppaths.results_dir("fewshot") / DATASET
    ckpt = torch.load(out / "adapter.pt", weights_only=False)
    assert ckpt["paths"][0] == "clip" and ckpt["views"] == "pretrain10" and ckpt["depth"]["image_size"] == 16
    assert ckpt["encoders"][ckpt["paths"][1]] == {"variant": "intra_cross", "seed": ckpt["seed"]}
    bundle = bundle_from_checkpoint(ckpt, run_dir["encoders"])
    preds = pq.read_table(out / "predictions.parquet").to_pylist()
    mine = {r["id"]: r for r in preds if r["method"] == adapter_grid.MAIN_ROW and r["seed"] == ckpt["seed"]}
    for i in range(3):
        top = predict(pts[i].numpy(), bundle, top_k=1)[0]
        row = mine[store.ids("test")[i]]
        assert top[0] == row["pred_name"] and top[1] == pytest.approx(row["prob"], abs=2e-2)
    assert (out / "confusion_dpa.png").is_file()

    # supervised: the whole training split
    assert fewshot_stage.main(["--mode", "supervised", DATASET]) == 0
    sv = read_json(ppaths.details_file(f"supervised/{DATASET}"))
    assert sv["rows"][adapter_grid.MAIN_ROW]["seeds"]["seed0"]["n_train"] == 4 * N_TRAIN
    assert (ppaths.results_dir("supervised") / DATASET / "adapter.pt").is_file()


def _vs(name: str):
    from clip2point.render.views import VIEW_SETS

    return VIEW_SETS[name]


def test_stage_errors_are_one_line(run_dir, capsys, monkeypatch):
    assert zeroshot_stage.main([DATASET]) == 1  # no feature cache yet
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "stages.features" in err
    assert features_stage.main(["no_such_dataset"]) == 1
    assert "no_such_dataset" in capsys.readouterr().err
    # k larger than a class's training samples: the class is named
    raw = dict(run_dir["params"])
    raw["adapter"] = {**raw["adapter"], "k_shot": N_TRAIN + 1}
    pparams.params_file().write_text(yaml.safe_dump(raw))
    write_signal_store(ppaths.features_dir(DATASET))
    assert fewshot_stage.main(["--mode", "fewshot", DATASET]) == 1
    err = capsys.readouterr().err
    assert "'rod_x' (label 0)" in err and "k=11" in err


def test_signal_in_features_shows_in_zero_shot_and_fewshot(tmp_path):
    store = write_signal_store(tmp_path / "feats")
    metrics, preds, cms, = zero_shot_table(store, "zeroshot6", [0, 1])
    rows = metrics["rows"]
    assert rows["with_pretraining"]["acc"] > 0.9 and rows["without_pretraining"]["acc"] < 0.6
    assert metrics["findings"]["zeroshot_pretraining_helps"] is True
    assert cms["with_pretraining"].sum() == 2 * 4 * N_TEST

    AP = pparams.AdapterParams(k_shot=8, seeds=(0, 1), epochs=100, lr=1e-3, weight_decay=1e-4, batch_size=8,
                               hidden=0, dropout=0.0, val_fraction=0.25, views="pretrain10")

    grid = [r for r in adapter_grid.GRID if r.key in ("global_view@clip", adapter_grid.MAIN_ROW)]
    m, preds, cms, ckpt = adapter_grid.run_grid(store, "fewshot", AP, [0, 1], grid, log=lambda s: None)
    assert m["rows"][adapter_grid.MAIN_ROW]["acc"] > 0.75  # chance is 0.25
    assert m["rows"]["global_view@clip"]["acc"] < 0.6  # the CLIP path alone carries no label
    assert m["findings"]["fewshot_dpa_vs_single"] is True
    assert ckpt is not None and ckpt.val_acc == max(
        s["val_acc"] for s in m["rows"][adapter_grid.MAIN_ROW]["seeds"].values()
    )
    assert len(preds) == 2 * 2 * 4 * N_TEST


def test_features_do_not_rotate_a_z_up_dataset_twice(run_dir):
    """The sample stage writes y-up points for every dataset; features must render them as stored.

    Regression: features rotated the (already y-up) points of an ``up_axis: z`` dataset a second time, so
    ModelNet shapes were seen tipped 90° about x.
    """
    from clip2point.models.clip import encode_views
    from clip2point.render.depth import DepthConfig, render_depth
    from clip2point.schema import table_points

    raw = copy.deepcopy(run_dir["params"])
    raw["data"]["benchmarks"][DATASET]["up_axis"] = "z"
    pparams.params_file().write_text(yaml.safe_dump(raw))
    assert features_stage.main([DATASET, "--variants", "intra_cross"]) == 0
    store = FeatureStore.open(ppaths.features_dir(DATASET))
    test_rows = run_dir["table"].filter(pa.compute.equal(run_dir["table"].column("split"), "test"))
    pts = torch.from_numpy(table_points(test_rows).copy())
    with torch.no_grad():
        maps = render_depth(pts, "pretrain10", 1.0, DepthConfig(image_size=16))
        ref = encode_views(run_dir["encoders"]["clip"], maps)
    assert torch.allclose(store.features("clip", "pretrain10", "test"), ref, atol=2e-3)


def test_released_head_and_protocol_switches(tmp_path):
    """``adapter.head: released`` trains the released SimplifiedAdapter heads; ``adapter.protocol:
    released_best_test`` keeps the best-test epoch and says so in the metrics."""
    store = write_signal_store(tmp_path / "feats")
    ap = pparams.AdapterParams(k_shot=8, seeds=(0,), epochs=15, lr=1e-3, batch_size=8, val_fraction=0.25,
                               head="released", protocol="released_best_test", decay="all")
    grid = [r for r in adapter_grid.GRID if r.key in ("global_view@clip", adapter_grid.MAIN_ROW)]
    m, _, _, ckpt = adapter_grid.run_grid(store, "fewshot", ap, [0, 1], grid, log=lambda s: None)
    assert m["head"] == "released" and m["protocol"] == "released_best_test"
    assert ckpt.adapter["name"] == "released_dual_path"
    row = m["rows"][adapter_grid.MAIN_ROW]
    # the chosen epoch's accuracy is the best test accuracy: the reported test accuracy equals it
    assert row["seeds"]["seed0"]["val_acc"] == pytest.approx(row["seeds"]["seed0"]["acc"])
    assert row["acc"] > 0.75


def test_features_stage_removes_a_killed_runs_temporary_folder(run_dir):
    """Issue 22.12: ``kill -9`` during ``features@<ds>`` left ``.<ds>.*.tmp`` next to the cache for good; the
    next run of the stage removes it (and leaves another dataset's temporary alone)."""
    import os
    import time

    parent = ppaths.features_dir(DATASET).parent
    parent.mkdir(parents=True, exist_ok=True)
    stale, other = parent / f".{DATASET}.k1ll3d.tmp", parent / ".another_dataset.k1ll3d.tmp"
    for d in (stale, other):
        d.mkdir()
        (d / "text.pt").write_bytes(b"\0" * 10)
        os.utime(d, (time.time() - 3600, time.time() - 3600))
    assert features_stage.main([DATASET, "--variants", "intra_cross"]) == 0
    assert not stale.exists() and other.is_dir()
    assert sorted(p.name for p in parent.iterdir()) == sorted([DATASET, other.name])


def test_searched_view_weights_never_read_a_test_label(tmp_path):
    """Issue 19: zeroshot.view_weights searched carves its validation part from the training split; with every
    test label corrupted the searched weights (and the record of the search) are identical."""
    store = write_signal_store(tmp_path / "a")
    m1, _, _ = zero_shot_table(store, "zeroshot6", [0, 1], view_weights="searched", val_fraction=0.25)
    rec = m1["view_weights"]
    assert rec["rule"] == "searched" and rec["split"] == "train" and rec["n_val"] == 4 * round(0.25 * N_TRAIN)
    assert set(rec["weights"]) == set(ENCODERS) and all(len(w) == 6 for w in rec["weights"].values())
    corrupt = write_signal_store(tmp_path / "b")
    index = pq.read_table(tmp_path / "b" / "index.parquet")
    labels = index.column("label").to_numpy().copy()
    test = np.array([s == "test" for s in index.column("split").to_pylist()])
    labels[test] = (labels[test] + 1) % len(CLASSES)
    pq.write_table(index.set_column(index.schema.get_field_index("label"), "label", pa.array(labels, pa.int32())),
                   tmp_path / "b" / "index.parquet")
    corrupt = FeatureStore.open(tmp_path / "b")
    m2, _, _ = zero_shot_table(corrupt, "zeroshot6", [0, 1], view_weights="searched", val_fraction=0.25)
    assert m2["view_weights"] == rec
    assert m2["rows"]["with_pretraining"]["acc"] < 0.5 < m1["rows"]["with_pretraining"]["acc"]  # test labels read


def test_equal_searched_weights_reproduce_eq15(tmp_path):
    """A grid holding only 1.0 cannot move any weight: searched equals the mean rule, row by row."""
    store = write_signal_store(tmp_path / "feats")
    mean, _, _ = zero_shot_table(store, "zeroshot6", [0, 1])
    searched, _, _ = zero_shot_table(store, "zeroshot6", [0, 1], view_weights="searched", grid=(1.0,))
    assert {r: v["acc"] for r, v in mean["rows"].items()} == {r: v["acc"] for r, v in searched["rows"].items()}
    assert mean["view_weights"] == {"rule": "mean"}


def test_family_stage_rows_match_a_direct_recomputation(run_dir):
    """Issue 19: stage ``family@<ds>``: every member's row is zero-shot (Eq. 15, or searched weights on the
    training hold-out) of the member's own maps (its depth setting and view set), recomputed here directly."""
    from clip2point.configs import DepthConfig
    from clip2point.evaluate import zero_shot_logits
    from clip2point.fewshot import stratified_holdout
    from clip2point.models.clip import encode_views, text_features
    from clip2point.render.depth import render_depth
    from clip2point.schema import table_points
    from clip2point.view_weights import search_view_weights
    from pipeline.family import FAMILY
    from pipeline.headline import headline
    from stages import family as family_stage

    assert family_stage.main([DATASET]) == 0
    details = json_load(ppaths.details_file(f"family/{DATASET}"))
    assert set(details["rows"]) == {"pointclip", "pointclip_v2", "pointclip_v2+searched", "clip2point",
                                    "clip2point_disc"}
    assert details["protocol"]["val_split"] == "train" and details["n"] == 4 * N_TEST
    assert json_load(ppaths.metrics_file(f"family/{DATASET}")) == headline(f"family/{DATASET}", details)
    assert (ppaths.results_dir("family") / DATASET / "family.png").stat().st_size > 0

    table = run_dir["table"]
    split = table.column("split").to_pylist()
    test = table.filter(pa.compute.equal(table.column("split"), "test"))
    train = table.filter(pa.compute.equal(table.column("split"), "train"))
    y_test = test.column("label").to_numpy()
    y_train = train.column("label").to_numpy()
    _, val = stratified_holdout(y_train, run_dir["params"]["zeroshot"]["val_fraction"], run_dir["params"]["seed"])
    clip = run_dir["encoders"]["clip"]
    from clip2point.models.clip import create_clip

    _, tok = create_clip("c2p-tiny")
    assert split.count("test") == len(y_test)
    for name in ("pointclip", "pointclip_v2"):
        member = FAMILY[name]
        cfg = DepthConfig(**{**DepthConfig(image_size=16).__dict__, **member.depth})
        with torch.no_grad():
            text = text_features(pmodels.load_encoders(["intra_cross"], [0, 1])[1], tok, CLASSES,
                                 run_dir["params"]["clip"]["templates"])
            f_test = encode_views(clip, render_depth(torch.from_numpy(table_points(test).copy()), member.views,
                                                     None, cfg))
            f_val = encode_views(clip, render_depth(torch.from_numpy(table_points(train).copy()[val]),
                                                    member.views, None, cfg))
        for rule in member.rules:
            w = search_view_weights(f_val, y_train[val], text)[0] if rule == "searched" else None
            acc = float((zero_shot_logits(f_test, text, weights=w).argmax(-1).numpy() == y_test).mean())
            key = name if rule == member.rules[0] else f"{name}+{rule}"
            assert details["rows"][key]["without_pretraining"]["acc"] == pytest.approx(acc, abs=1e-9), key
            if w is not None:
                assert details["rows"][key]["weights"]["clip"] == pytest.approx(w.tolist())


def json_load(path):
    import json

    return json.loads(Path(path).read_text())
