"""What the stages share: typed keys, the lazily read data root, the dataset lookup, the depth-params
conversion and the one entry wrapper."""

from __future__ import annotations

from pathlib import Path

import pytest

from clip2point.configs import DepthConfig
from pipeline import paths
from pipeline.keys import CLIP, DPA, VARIANTS, EncoderKey, RowKey
from pipeline.params import DepthParams, load_params
from pipeline.stage import StageError, depth_config, depth_settings, find_dataset, run_main

ROOT = Path(__file__).resolve().parents[1]


def test_encoder_key_round_trip_and_source():
    for key in (EncoderKey(CLIP), *(EncoderKey(v, s) for v in VARIANTS for s in (0, 2, 17))):
        assert EncoderKey.parse(str(key)) == key
    assert str(EncoderKey("intra_cross", 2)) == "intra_cross-seed2"
    assert EncoderKey.parse("intra_cross-seed2").source() == {"variant": "intra_cross", "seed": 2}
    assert EncoderKey.parse("clip").source() == {"variant": "clip"} and EncoderKey.parse("clip").is_clip
    for bad in ("intra_cross", "intra_cross-seedX", ""):
        with pytest.raises(ValueError, match="encoder key"):
            EncoderKey.parse(bad)
    with pytest.raises(ValueError):
        EncoderKey("intra_cross")  # a pre-training variant needs its seed


def test_row_key_round_trip():
    assert str(DPA) == "dual_path@clip+intra_cross" and RowKey.parse(str(DPA)) == DPA
    assert RowKey.parse("global_view@clip") == RowKey("global_view", (CLIP,))
    with pytest.raises(ValueError, match="row key"):
        RowKey.parse("dual_path")


def test_data_root_is_read_when_asked_unless_replaced(monkeypatch, tmp_path):
    monkeypatch.setenv("CLIP2POINT_DATA", str(tmp_path / "a"))
    assert paths.points_table("x") == tmp_path / "a" / "points" / "x.parquet"
    monkeypatch.setenv("CLIP2POINT_DATA", str(tmp_path / "b"))
    assert paths.pretrain_dir("cross_only", 1) == tmp_path / "b" / "models" / "pretrain" / "cross_only-seed1"
    monkeypatch.setenv("CLIP2POINT_DATA", str(tmp_path / "pinned"))
    assert paths.data_root() == tmp_path / "pinned" and paths.report_dir() == tmp_path / "pinned" / "report"


def test_find_dataset_names_the_known():
    params = load_params(ROOT / "params.yaml")
    assert find_dataset(params, params.data.pretrain.name) is params.data.pretrain
    with pytest.raises(StageError, match=f"unknown dataset 'nope'.*{params.data.pretrain.name}"):
        find_dataset(params, "nope")


def test_depth_config_carries_every_shared_field():
    d = DepthParams(image_size=40, dilation=3, mode="weighted", projection="perspective", distance=1.5,
                    footprint="disc", radius=0.05)
    cfg = depth_config(d)
    assert (cfg.image_size, cfg.dilation, cfg.mode, cfg.projection) == (40, 3, "weighted", "perspective")
    assert (cfg.footprint, cfg.radius) == ("disc", 0.05)
    # every renderer setting params defines, in DepthConfig's order; no distance, no jitter (pre-training's)
    assert list(depth_settings(d)) == ["image_size", "dilation", "mode", "projection", "footprint", "radius",
                                       "realistic"]
    # the realistic projection's settings as a JSON-ready mapping that DepthConfig takes back
    from clip2point.configs import RealisticConfig

    r = DepthParams(realistic=RealisticConfig(resolution=64, densify=5))
    assert depth_settings(r)["realistic"]["resolution"] == 64
    assert depth_config(r).realistic == RealisticConfig(resolution=64, densify=5)
    assert DepthConfig(**depth_settings(r)).realistic.densify == 5


def test_run_main_one_line_codes_and_debug(monkeypatch, capsys):
    def fail(e: BaseException):
        def body():
            raise e
        return body

    assert run_main("s", lambda: None) == 0
    assert run_main("s", fail(ValueError("bad\nvalue"))) == 1
    assert capsys.readouterr().err == "s: bad value\n"
    assert run_main("s", fail(StageError("no input")), code=2) == 2
    assert run_main("s", fail(StageError("too many rejected", exit_code=1)), code=2) == 1
    assert run_main("s", fail(KeyboardInterrupt())) == 130
    with pytest.raises(KeyError):
        run_main("s", fail(KeyError("not a user error")))
    assert run_main("s", fail(KeyError("k")), user_errors=(KeyError,)) == 1
    monkeypatch.setenv("CLIP2POINT_DEBUG", "1")
    with pytest.raises(StageError, match="no input"):
        run_main("s", fail(StageError("no input")))
